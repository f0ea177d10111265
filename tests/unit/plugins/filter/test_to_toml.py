# -*- coding: utf-8 -*-
"""to_toml: deterministic output that tomllib parses back to the same document."""

from __future__ import annotations

import copy
import datetime
import math
import random
import tomllib

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.tidbops.cluster.plugins.module_utils import _config
from ansible_collections.tidbops.cluster.plugins.filter.tidb_config import tiflash_tici_config, to_toml

TIFLASH_WITH_TICI = tiflash_tici_config(
    {
        "tmp_path": "/data/tmp",
        "path": "/data/db",
        "listen_host": "0.0.0.0",
        "flash": {
            "service_addr": "tiflash0:3930",
            "proxy": {"addr": "0.0.0.0:20170", "advertise-addr": "tiflash0:20170", "config": "/etc/tiflash/learner.toml"},
        },
        "logger.level": "info",
        "logger.count": 10,
        "raft.pd_addr": "pd0:2379,pd1:2379",
        "status.metrics_port": 8234,
        "profiles": {"default": {"max_memory_usage": 0, "max_threads": 8}, "readonly": {"readonly": 1}},
        "users": {"default": {"password": "", "profile": "default", "quota": "default", "networks": {"ip": "::/0"}}},
        "quotas.default.interval": {"duration": 3600, "errors": 0, "queries": 0, "read_rows": 0, "result_rows": 0},
        "storage.main.dir": ["/data/db"],
        "storage.main.capacity": [0],
        "storage.s3.enable": False,
    },
    {
        "reader_addr": "0.0.0.0:8520",
        "reader_advertise_addr": "tiflash0:8520",
        "s3": {"endpoint": "http://minio:9000", "bucket": "ticidefaultbucket", "prefix": "tici_default_prefix",
               "region": "us-east-1", "access_key": "minio", "secret_key": "s3cr+t/key=", "use_path_style": True},
        "log_file": "/data/logs/tici_searchlib.log",
        "data_dir": "/data/tici/searchlib",
    },
    legacy_aliases=True,
)

REPRESENTATIVE = {
    "tiflash with tici": TIFLASH_WITH_TICI,
    "tikv": {
        "log": {"level": "info", "file": {"max-days": 7, "max-backups": 3}},
        "server": {"grpc-concurrency": 4, "labels": {"zone": "z1", "host": "h1"}},
        "storage": {"reserve-space": "0MB", "block-cache": {"capacity": "1GB"}},
        "raftstore": {"capacity": "10GB"},
        "security": {"encryption": {"data-encryption-method": "aes256-ctr",
                                    "master-key": {"type": "file", "path": "/k"}}},
        "rocksdb": {"defaultcf": {"compression-per-level": ["no", "no", "lz4", "lz4", "lz4", "zstd", "zstd"]}},
    },
    "arrays of tables": {
        "name": "top",
        "servers": [
            {"host": "a", "port": 1, "tags": ["x", "y"], "meta": {"rack": "r1", "deep": {"x": 1}}},
            {"host": "b", "port": 2, "replicas": [{"id": 1}, {"id": 2, "sub": {"k": "v"}}]},
            {},
        ],
        "only_tables": {"a": {"b": {"c": 1}}, "aot": [{"x": 1}]},
        "only_aot": {"items": [{"k": 1}, {"k": 2}]},
        "list_of_empty": [{}, {}],
    },
    "strings": {
        "quote": 'say "hi"',
        "single": "it's",
        "backslash": "C:\\path\\to",
        "newlines": "line1\nline2\r\nline3",
        "tab": "a\tb",
        "unicode": "h\u00e9llo \u4e16\u754c \U0001F600",
        "control": "bell\x07 esc\x1b del\x7f nul-adjacent\x01",
        "triple": "''' and \"\"\"",
        "empty": "",
        "looks like toml": "[table]\nkey = 1 # comment",
        "key with space": 1,
        "dotted.key": 2,
        "": "empty key",
        "\u00fcnicode-key": True,
    },
    "numbers": {
        "zero": 0, "negative": -42, "int_max": 2 ** 63 - 1, "int_min": -(2 ** 63),
        "float": 0.1, "big": 1e300, "tiny": 5e-324, "neg_zero": -0.0, "inf": float("inf"), "ninf": float("-inf"),
        "true": True, "false": False,
    },
    "dates": {
        "date": datetime.date(2026, 11, 22),
        "naive": datetime.datetime(2026, 11, 22, 3, 4, 5),
        "aware": datetime.datetime(2026, 11, 22, 3, 4, 5, 123000, tzinfo=datetime.timezone(datetime.timedelta(hours=8))),
        "utc": datetime.datetime(2026, 11, 22, 3, 4, 5, tzinfo=datetime.timezone.utc),
        "time": datetime.time(3, 4, 5),
    },
    "arrays": {
        "empty": [],
        "nested": [[1, 2], ["a", [True]], []],
        "mixed": [1, "two", 3.0, False, {"inline": {"deep": [1, {"x": "y"}]}}],
        "inline_after_scalar": [1, {"a": 1}],
        "tables": {"empty": {}, "with_empty": {"inner": {}}},
    },
    "empty document": {},
}


@pytest.mark.parametrize("document", list(REPRESENTATIVE.values()), ids=list(REPRESENTATIVE))
def test_round_trip(document):
    text = to_toml(document)
    assert tomllib.loads(text) == document
    assert to_toml(tomllib.loads(text)) == text  # a fixed point: encoding the parsed document changes nothing


@pytest.mark.parametrize("document", list(REPRESENTATIVE.values()), ids=list(REPRESENTATIVE))
def test_output_does_not_depend_on_key_order(document):
    def reverse(value):
        if isinstance(value, dict):
            return {key: reverse(value[key]) for key in reversed(list(value))}
        if isinstance(value, list):
            return [reverse(item) for item in value]
        return value
    assert to_toml(reverse(document)) == to_toml(document)


def test_input_is_not_mutated():
    document = copy.deepcopy(REPRESENTATIVE["arrays of tables"])
    to_toml(document)
    assert document == REPRESENTATIVE["arrays of tables"]


def test_layout_is_sorted_with_values_before_tables():
    document = {
        "z": {"b": 1, "a": {"y": 2}},
        "b": [{"n": 1}],
        "a": 1,
        "c": {"x": {"k": "v"}},
        "m": [1, 2],
    }
    assert to_toml(document) == (
        'a = 1\n'
        'm = [1, 2]\n'
        '\n'
        '[c.x]\n'
        'k = "v"\n'
        '\n'
        '[z]\n'
        'b = 1\n'
        '\n'
        '[z.a]\n'
        'y = 2\n'
        '\n'
        '[[b]]\n'
        'n = 1\n'
    )


def test_nan_is_written_as_toml_nan():
    text = to_toml({"x": float("nan")})
    assert text == "x = nan\n"
    assert math.isnan(tomllib.loads(text)["x"])


def test_header_becomes_comments():
    text = to_toml({"a": 1}, header="Generated by tidbops.cluster.\nDo not edit.")
    assert text.startswith("# Generated by tidbops.cluster.\n# Do not edit.\n")
    assert tomllib.loads(text) == {"a": 1}


def _random_scalar(rng):
    choice = rng.randrange(6)
    if choice == 0:
        return rng.randint(-(2 ** 63), 2 ** 63 - 1)
    if choice == 1:
        return rng.uniform(-1e6, 1e6)
    if choice == 2:
        return rng.random() < 0.5
    if choice == 3:
        return datetime.date(2000 + rng.randrange(100), 1 + rng.randrange(12), 1 + rng.randrange(28))
    alphabet = "abc XYZ.-_=\"'\\\n\t#[]{}\u00e9\u4e16\U0001F600\x01"
    return "".join(rng.choice(alphabet) for _position in range(rng.randrange(12)))


def _random_key(rng):
    return "".join(rng.choice("ab-_.1 \u00e9\"") for _position in range(1 + rng.randrange(4)))


def _random_value(rng, depth):
    choice = rng.randrange(10) if depth < 4 else 0
    if choice <= 4:
        return _random_scalar(rng)
    if choice <= 6:
        return _random_table(rng, depth + 1)
    if choice == 7:
        return [_random_table(rng, depth + 1) for _position in range(1 + rng.randrange(3))]
    return [_random_value(rng, depth + 1) for _position in range(rng.randrange(4))]


def _random_table(rng, depth):
    return {_random_key(rng): _random_value(rng, depth) for _position in range(rng.randrange(5))}


@pytest.mark.parametrize("seed", range(300))
def test_round_trip_random_documents(seed):
    document = _random_table(random.Random(seed), 0)
    text = to_toml(document)
    assert tomllib.loads(text) == document
    assert to_toml(document) == text


@pytest.mark.parametrize("document, path", [
    ({"a": None}, "'a' is null"),
    ({"a": {"b": {"c": None}}}, "'a.b.c' is null"),
    ({"a": [1, None]}, "'a.[1]' is null"),
    ({"servers": [{"x": 1}, {"y": None}]}, "'servers[1].y' is null"),
    ({"a": [{"inline": None}, 1]}, "'a.[0].inline' is null"),
])
def test_null_is_rejected_with_its_key_path(document, path):
    with pytest.raises(AnsibleFilterError, match="^to_toml: ") as error:
        to_toml(document)
    assert path in str(error.value)
    assert "TOML cannot represent" in str(error.value)


@pytest.mark.parametrize("document, message", [
    ({"a": {"big": 2 ** 63}}, "'a.big' is outside the 64-bit integer range"),
    ({"a": {"small": -(2 ** 63) - 1}}, "'a.small' is outside the 64-bit integer range"),
    ({"a": {1, 2}}, "'a' has unsupported type set"),
    ({"a": {"b": b"bytes"}}, "'a.b' has unsupported type bytes"),
    ({"a": {2: "x"}}, "key 2 under 'a' must be a string"),
])
def test_unrepresentable_values_are_rejected(document, message):
    with pytest.raises(AnsibleFilterError, match="^to_toml: ") as error:
        to_toml(document)
    assert message in str(error.value)


@pytest.mark.parametrize("data", [None, [1], "a = 1"])
def test_input_must_be_a_mapping(data):
    with pytest.raises(AnsibleFilterError, match="to_toml: the input must be a mapping"):
        to_toml(data)


def test_header_must_be_a_string():
    with pytest.raises(AnsibleFilterError, match="to_toml: header must be a string"):
        to_toml({}, header=["x"])


def test_missing_tomlkit_is_named(monkeypatch):
    monkeypatch.setattr(_config, "tomlkit", None)
    with pytest.raises(AnsibleFilterError, match="to_toml: the Python library 'tomlkit' is required"):
        to_toml({"a": 1})
