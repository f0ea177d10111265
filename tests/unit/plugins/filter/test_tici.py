# -*- coding: utf-8 -*-
"""TiCI filters: the TiFlash [tici.*] merge, meta/worker configs, the TiDB DSN and the sink URI."""

from __future__ import annotations

import copy
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.tidbops.cluster.plugins.filter.tidb_config import (
    mask_secrets,
    tici_server_config,
    tici_sink_uri,
    tici_tidb_dsn,
    tiflash_tici_config,
)

SECRET = "s+cr/t=&?x y%2B"
S3 = {
    "endpoint": "http://minio:9000",
    "bucket": "ticidefaultbucket",
    "prefix": "tici_default_prefix",
    "region": "us-east-1",
    "access_key": "minio admin",
    "secret_key": SECRET,
    "use_path_style": True,
}
TICI = {"reader_addr": "0.0.0.0:8520", "reader_advertise_addr": "tiflash0:8520", "s3": S3}
GENERATED_S3 = {
    "endpoint": "http://minio:9000",
    "bucket": "ticidefaultbucket",
    "prefix": "tici_default_prefix",
    "region": "us-east-1",
    "access-key": "minio admin",
    "secret-key": SECRET,
    "use-path-style": True,
}
LEGACY_S3 = dict(GENERATED_S3, access_key="minio admin", secret_key=SECRET, use_path_style=True)


def with_s3(**changes):
    s3 = dict(S3, **changes)
    return dict(TICI, s3={key: value for key, value in s3.items() if value is not None})


# ---------------------------------------------------------------------------------------------
# tiflash_tici_config

def test_tiflash_adds_kebab_case_sections():
    config = tiflash_tici_config({"flash": {"service_addr": "tiflash0:3930"}}, TICI)
    assert config == {
        "flash": {"service_addr": "tiflash0:3930"},
        "tici": {"reader-node": {"addr": "0.0.0.0:8520", "advertise-addr": "tiflash0:8520"}, "s3": GENERATED_S3},
    }


def test_tiflash_legacy_aliases_write_both_spellings():
    config = tiflash_tici_config(None, TICI, legacy_aliases=True)
    assert config == {"tici": {
        "reader-node": {"addr": "0.0.0.0:8520", "advertise-addr": "tiflash0:8520"},
        "reader_node": {"addr": "0.0.0.0:8520", "advertise_addr": "tiflash0:8520"},
        "s3": LEGACY_S3,
    }}


def test_tiflash_logger_and_storage_only_when_given():
    config = tiflash_tici_config({}, dict(TICI, log_file="/data/logs/tici.log", data_dir="/data/tici"), legacy_aliases=True)
    assert config["tici"]["logger"] == {"filename": "/data/logs/tici.log"}
    assert config["tici"]["storage"] == {"data-dir": "/data/tici"}
    assert "logger" not in tiflash_tici_config({}, TICI)["tici"]
    assert "storage" not in tiflash_tici_config({}, dict(TICI, data_dir=None, log_file=""))["tici"]


def test_tiflash_optional_s3_settings_only_when_given():
    config = tiflash_tici_config({}, with_s3(region=None, access_key=None, secret_key=None, use_path_style=None))
    assert config["tici"]["s3"] == {"endpoint": "http://minio:9000", "bucket": "ticidefaultbucket", "prefix": "tici_default_prefix"}


def test_tiflash_use_path_style_false_is_written():
    assert tiflash_tici_config({}, with_s3(use_path_style=False))["tici"]["s3"]["use-path-style"] is False


def test_tiflash_prefix_trailing_slash_is_stripped():
    assert tiflash_tici_config({}, with_s3(prefix="team/tici/"))["tici"]["s3"]["prefix"] == "team/tici"


@pytest.mark.parametrize("user", [
    {"tici": {"s3": {"bucket": "mine"}, "reader-node": {"addr": "10.0.0.1:9520"}}},
    {"tici.s3.bucket": "mine", "tici.reader-node.addr": "10.0.0.1:9520"},
    {"tici.s3": {"bucket": "mine"}, "tici": {"reader-node.addr": "10.0.0.1:9520"}},
], ids=["nested", "dotted", "mixed"])
def test_tiflash_user_keys_win(user):
    config = tiflash_tici_config(user, TICI, legacy_aliases=True)
    assert config["tici"]["s3"]["bucket"] == "mine"
    assert config["tici"]["reader-node"]["addr"] == "10.0.0.1:9520"
    # the alias carries the user's value, not the generated one
    assert config["tici"]["reader_node"]["addr"] == "10.0.0.1:9520"
    assert config["tici"]["reader-node"]["advertise-addr"] == "tiflash0:8520"


@pytest.mark.parametrize("legacy_aliases", [False, True])
def test_tiflash_user_snake_spelling_wins_over_both_spellings(legacy_aliases):
    user = {"tici.reader_node.advertise_addr": "custom:8520", "tici": {"s3": {"secret_key": "user-secret", "use_path_style": False}}}
    config = tiflash_tici_config(user, TICI, legacy_aliases=legacy_aliases)
    tici = config["tici"]
    assert tici["reader-node"]["advertise-addr"] == "custom:8520"
    assert tici["reader_node"] == ({"addr": "0.0.0.0:8520", "advertise_addr": "custom:8520"} if legacy_aliases
                                   else {"advertise_addr": "custom:8520"})
    assert tici["s3"]["secret-key"] == "user-secret"
    assert tici["s3"]["secret_key"] == "user-secret"
    assert tici["s3"]["use-path-style"] is False
    assert tici["s3"]["use_path_style"] is False
    # nothing generated contradicts the user anywhere
    assert SECRET not in repr(config)


def test_tiflash_user_values_under_both_spellings_are_kept_as_given():
    user = {"tici.s3.access-key": "kebab", "tici.s3.access_key": "snake"}
    config = tiflash_tici_config(user, TICI, legacy_aliases=True)
    assert (config["tici"]["s3"]["access-key"], config["tici"]["s3"]["access_key"]) == ("kebab", "snake")


def test_tiflash_unrelated_user_keys_are_kept():
    user = {"logger.level": "debug", "tici": {"reader-node": {"heartbeat-interval": "3s"}, "s3": {"region": "eu-west-1"}}}
    config = tiflash_tici_config(user, with_s3(region=None))
    assert config["logger"] == {"level": "debug"}
    assert config["tici"]["reader-node"]["heartbeat-interval"] == "3s"
    assert config["tici"]["s3"]["region"] == "eu-west-1"


def test_tiflash_inputs_are_not_mutated_or_shared():
    user = {"tici": {"s3": {"bucket": "mine"}}, "storage": {"main": {"dir": ["/data"]}}}
    tici = dict(TICI, s3=dict(S3))
    saved = copy.deepcopy((user, tici))
    config = tiflash_tici_config(user, tici, legacy_aliases=True)
    assert (user, tici) == saved
    config["tici"]["s3"]["bucket"] = "changed"
    config["storage"]["main"]["dir"].append("/more")
    assert (user, tici) == saved


@pytest.mark.parametrize("tiflash_config, tici, message", [
    ([], TICI, "tiflash_config must be a mapping (dict), got list"),
    ({}, None, "tici must be a mapping with keys reader_addr"),
    ({}, dict(TICI, reader_port=8520), "unknown key(s) reader_port in tici"),
    ({}, dict(TICI, reader_addr=None), "tici.reader_addr must be a 'host:port' string"),
    ({}, dict(TICI, reader_addr="0.0.0.0"), "tici.reader_addr must be 'host:port'"),
    ({}, dict(TICI, reader_advertise_addr=8520), "tici.reader_advertise_addr must be a 'host:port' string, got int"),
    ({}, dict(TICI, reader_advertise_addr="tiflash0:99999"), "tici.reader_advertise_addr must be 'host:port'"),
    ({}, dict(TICI, s3=None), "tici.s3 must be a mapping"),
    ({}, with_s3(bucket=None), "tici.s3.bucket is required"),
    ({}, with_s3(bucket=""), "tici.s3.bucket is required"),
    ({}, with_s3(endpoint=None), "tici.s3.endpoint is required"),
    ({}, with_s3(endpoint="minio:9000"), "tici.s3.endpoint must be an http:// or https:// URL"),
    ({}, with_s3(prefix=None), "tici.s3.prefix is required"),
    ({}, with_s3(prefix="/abs"), "tici.s3.prefix must be a non-empty path inside the bucket without a leading '/'"),
    ({}, with_s3(prefix="a//b"), "tici.s3.prefix must be a non-empty path"),
    ({}, with_s3(bucket="a/b"), "tici.s3.bucket must be an S3 bucket name"),
    ({}, with_s3(use_path_style="true"), "tici.s3.use_path_style must be a boolean, got str"),
    ({}, with_s3(secret_key=12345), "tici.s3.secret_key must be a string, got int"),
    ({}, dict(TICI, s3=dict(S3, **{"secret-key": "x"})), "unknown key(s) secret-key in tici.s3"),
    ({}, dict(TICI, log_file=["x"]), "tici.log_file must be a string"),
    ({"tici": "on"}, TICI, "the user config sets 'tici' to a non-table value"),
    ({"tici.s3": 1}, TICI, "the user config sets 'tici.s3' to a non-table value"),
    ({"tici.s3": 1, "tici.s3.bucket": "x"}, TICI, "conflicting keys: 'tici.s3'"),
])
def test_tiflash_bad_input_names_the_key(tiflash_config, tici, message):
    with pytest.raises(AnsibleFilterError, match="^tiflash_tici_config: ") as error:
        tiflash_tici_config(tiflash_config, tici)
    assert message in str(error.value)
    assert SECRET not in str(error.value) and "minio admin" not in str(error.value)


def test_tiflash_legacy_aliases_must_be_boolean():
    with pytest.raises(AnsibleFilterError, match="legacy_aliases must be a boolean, got str"):
        tiflash_tici_config({}, TICI, legacy_aliases="yes")


# ---------------------------------------------------------------------------------------------
# tici_server_config

META_DSN = "mysql://root@tidb0:4000"


def test_meta_config():
    config = tici_server_config("meta", s3=S3, pd_addrs=["pd0:2379"], tidb_dsns=[META_DSN])
    assert config == {"s3": GENERATED_S3, "server": {"pd-addr": "pd0:2379"}, "tidb-server": {"dsns": [META_DSN]}}


def test_worker_config_has_no_tidb_server():
    config = tici_server_config("worker", s3=S3, pd_addrs="pd0:2379,pd1:2379")
    assert config == {"s3": GENERATED_S3, "server": {"pd-addr": "pd0:2379,pd1:2379"}}


def test_server_config_legacy_aliases():
    config = tici_server_config("meta", s3=S3, pd_addrs=["pd0:2379", "pd1:2379"], tidb_dsns=[META_DSN], legacy_aliases=True)
    assert config == {
        "s3": LEGACY_S3,
        "server": {"pd-addr": "pd0:2379,pd1:2379", "pd_addr": "pd0:2379,pd1:2379"},
        "tidb-server": {"dsns": [META_DSN]},
        "tidb_server": {"dsns": [META_DSN]},
    }


def test_server_config_user_keys_win_in_either_spelling():
    user = {
        "server.pd-addr": "pd-lb:2379",
        "tidb_server": {"dsns": ["mysql://other@tidb9:4000"]},
        "s3.prefix": "custom",
        "shard": {"max-size": "128MB"},
        "heartbeat-interval": "3s",
    }
    config = tici_server_config("meta", s3=S3, pd_addrs=["pd0:2379"], tidb_dsns=[META_DSN], user_config=user, legacy_aliases=True)
    assert config["server"] == {"pd-addr": "pd-lb:2379", "pd_addr": "pd-lb:2379"}
    assert config["tidb-server"] == {"dsns": ["mysql://other@tidb9:4000"]}
    assert config["tidb_server"] == {"dsns": ["mysql://other@tidb9:4000"]}
    assert config["s3"]["prefix"] == "custom"
    assert config["shard"] == {"max-size": "128MB"}
    assert config["heartbeat-interval"] == "3s"


def test_server_config_inputs_are_not_mutated():
    user = {"s3": {"bucket": "mine"}}
    dsns = [META_DSN]
    s3 = dict(S3)
    saved = copy.deepcopy((user, dsns, s3))
    config = tici_server_config("meta", s3=s3, pd_addrs=["pd0:2379"], tidb_dsns=dsns, user_config=user)
    config["tidb-server"]["dsns"].append("x")
    config["s3"]["bucket"] = "y"
    assert (user, dsns, s3) == saved


@pytest.mark.parametrize("role, kwargs, message", [
    ("tici_meta", {}, "role must be one of meta, worker"),
    ("meta", {"pd_addrs": ["pd0:2379"], "tidb_dsns": [META_DSN]}, "s3 must be a mapping"),
    ("worker", {"s3": S3}, "pd_addrs must be a non-empty list"),
    ("worker", {"s3": S3, "pd_addrs": []}, "pd_addrs must be a non-empty list"),
    ("worker", {"s3": S3, "pd_addrs": ["http://pd0:2379"]}, "pd_addrs[0] must be 'host:port' without a scheme"),
    ("worker", {"s3": S3, "pd_addrs": ["pd0:2379", "pd1"]}, "pd_addrs[1] must be 'host:port'"),
    ("worker", {"s3": S3, "pd_addrs": ["pd0:2379"], "tidb_dsns": [META_DSN]}, "tidb_dsns applies to role meta only"),
    ("meta", {"s3": S3, "pd_addrs": ["pd0:2379"]}, "tidb_dsns must be a non-empty list"),
    ("meta", {"s3": S3, "pd_addrs": ["pd0:2379"], "tidb_dsns": ["root:" + SECRET + "@tidb0:4000"]}, "tidb_dsns[0] must be a 'mysql://"),
    ("meta", {"s3": dict(S3, prefix="/x"), "pd_addrs": ["pd0:2379"], "tidb_dsns": [META_DSN]},
     "s3.prefix must be a non-empty path inside the bucket without a leading '/'"),
    ("worker", {"s3": S3, "pd_addrs": ["pd0:2379"], "user_config": "x"}, "user_config must be a mapping"),
    ("worker", {"s3": S3, "pd_addrs": ["pd0:2379"], "user_config": {"server": 1}}, "sets 'server' to a non-table value"),
])
def test_server_config_bad_input_names_the_key(role, kwargs, message):
    with pytest.raises(AnsibleFilterError, match="^tici_server_config: ") as error:
        tici_server_config(role, **kwargs)
    assert message in str(error.value)
    assert SECRET not in str(error.value)


# ---------------------------------------------------------------------------------------------
# tici_tidb_dsn

@pytest.mark.parametrize("password", [None, ""])
def test_dsn_without_password(password):
    assert tici_tidb_dsn("tidb0:4000", "root", password) == "mysql://root@tidb0:4000"


@pytest.mark.parametrize("user, password", [
    ("tici", "p@ss/word"),
    ("us:er@x", SECRET),
    ("root", "\u00fcn\u00efc\u00f8de pass"),
])
def test_dsn_parts_are_encoded_and_parse_back(user, password):
    dsn = tici_tidb_dsn("tidb0:4000", user, password)
    parts = urlsplit(dsn)
    assert (parts.scheme, parts.hostname, parts.port) == ("mysql", "tidb0", 4000)
    assert (unquote(parts.username), unquote(parts.password)) == (user, password)


def test_dsn_documented_example():
    assert tici_tidb_dsn("tidb0:4000", "tici", "p@ss/word") == "mysql://tici:p%40ss%2Fword@tidb0:4000"


def test_dsn_ipv6_host():
    assert tici_tidb_dsn("[::1]:4000", "root") == "mysql://root@[::1]:4000"


@pytest.mark.parametrize("args, message", [
    (("tidb0", "root"), "host_port must be 'host:port'"),
    (("mysql://tidb0:4000", "root"), "host_port must be 'host:port' without a scheme"),
    (("tidb0:4000", ""), "user must be a non-empty string"),
    (("tidb0:4000", None), "user must be a non-empty string"),
    (("tidb0:4000", "root", 1234), "password must be a string, got int"),
])
def test_dsn_bad_input(args, message):
    with pytest.raises(AnsibleFilterError, match="^tici_tidb_dsn: ") as error:
        tici_tidb_dsn(*args)
    assert message in str(error.value)


# ---------------------------------------------------------------------------------------------
# tici_sink_uri

BASE_QUERY = "protocol=canal-json&enable-tidb-extension=true&output-row-key=true&use-table-id-as-path=true"


def test_sink_uri_minimal():
    s3 = {"endpoint": "http://minio:9000", "bucket": "tici", "prefix": "tici_default_prefix"}
    assert tici_sink_uri(s3) == "s3://tici/tici_default_prefix/cdc?" + BASE_QUERY + "&endpoint=http%3A%2F%2Fminio%3A9000"


def test_sink_uri_documented_example():
    s3 = {"endpoint": "http://minio:9000", "bucket": "tici", "prefix": "tici_default_prefix",
          "access_key": "minio", "secret_key": "s3cr+t/=", "use_path_style": True}
    assert tici_sink_uri(s3, flush_interval="1s") == (
        "s3://tici/tici_default_prefix/cdc?" + BASE_QUERY + "&endpoint=http%3A%2F%2Fminio%3A9000&access-key=minio"
        "&secret-access-key=s3cr%2Bt%2F%3D&force-path-style=true&flush-interval=1s")


@pytest.mark.parametrize("secret", [SECRET, "a+b", "a/b=", "&", "?", "with space", "100%", "#frag", "\u00e9"])
def test_sink_uri_secrets_survive_parsing(secret):
    uri = tici_sink_uri(dict(S3, access_key="AK " + secret, secret_key=secret))
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc, parts.path, parts.fragment) == ("s3", "ticidefaultbucket", "/tici_default_prefix/cdc", "")
    query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
    params = dict(query)
    assert len(params) == len(query)  # no parameter split into two by an unencoded '&'
    assert params["secret-access-key"] == secret
    assert params["access-key"] == "AK " + secret
    assert "+" not in parts.query  # Go's query parser would turn a raw '+' into a space


def test_sink_uri_full_parameter_set():
    uri = tici_sink_uri(S3, flush_interval="500ms")
    params = parse_qsl(urlsplit(uri).query, strict_parsing=True)
    assert params == [
        ("protocol", "canal-json"),
        ("enable-tidb-extension", "true"),
        ("output-row-key", "true"),
        ("use-table-id-as-path", "true"),
        ("endpoint", "http://minio:9000"),
        ("access-key", "minio admin"),
        ("secret-access-key", SECRET),
        ("region", "us-east-1"),
        ("force-path-style", "true"),
        ("flush-interval", "500ms"),
    ]


@pytest.mark.parametrize("use_path_style, expected", [(True, "true"), (False, "false"), (None, None)])
def test_sink_uri_force_path_style(use_path_style, expected):
    s3 = {key: value for key, value in dict(S3, use_path_style=use_path_style).items() if value is not None}
    assert dict(parse_qsl(urlsplit(tici_sink_uri(s3)).query)).get("force-path-style") == expected


def test_sink_uri_without_optional_settings():
    params = dict(parse_qsl(urlsplit(tici_sink_uri(dict(S3, region=None, access_key=None, secret_key=None, use_path_style=None))).query))
    assert not {"region", "access-key", "secret-access-key", "force-path-style", "flush-interval"} & set(params)


@pytest.mark.parametrize("prefix, path", [
    ("tici_default_prefix/", "/tici_default_prefix/cdc"),
    ("team/tici///", "/team/tici/cdc"),
    ("with space", "/with%20space/cdc"),
])
def test_sink_uri_prefix_path(prefix, path):
    assert urlsplit(tici_sink_uri(dict(S3, prefix=prefix))).path == path


@pytest.mark.parametrize("s3, flush_interval, message", [
    (dict(S3, prefix="/tici"), None, "s3.prefix must be a non-empty path inside the bucket without a leading '/'"),
    (dict(S3, prefix="/"), None, "s3.prefix must be a non-empty path inside the bucket without a leading '/'"),
    (dict(S3, prefix="///"), None, "s3.prefix must be a non-empty path inside the bucket without a leading '/'"),
    (dict(S3, prefix=None), None, "s3.prefix is required"),
    (dict(S3, bucket=None), None, "s3.bucket is required"),
    (dict(S3, endpoint=""), None, "s3.endpoint is required"),
    (dict(S3, endpoint="s3.amazonaws.com"), None, "s3.endpoint must be an http:// or https:// URL"),
    (dict(S3, use_path_style="yes"), None, "s3.use_path_style must be a boolean"),
    ("s3://bucket", None, "s3 must be a mapping"),
    (S3, "5", "flush_interval must be a duration string"),
    (S3, 5, "flush_interval must be a duration string"),
    (S3, "5 s", "flush_interval must be a duration string"),
])
def test_sink_uri_bad_input_names_the_key(s3, flush_interval, message):
    with pytest.raises(AnsibleFilterError, match="^tici_sink_uri: ") as error:
        tici_sink_uri(s3, flush_interval)
    assert message in str(error.value)
    assert SECRET not in str(error.value)


@pytest.mark.parametrize("flush_interval", ["5s", "100ms", "1m30s", "0.5s", "2h"])
def test_sink_uri_accepts_go_durations(flush_interval):
    assert dict(parse_qsl(urlsplit(tici_sink_uri(S3, flush_interval)).query))["flush-interval"] == flush_interval


# ---------------------------------------------------------------------------------------------
# mask_secrets (a thin wrapper over module_utils._secrets.mask_data)

def test_mask_secrets_hides_generated_secrets():
    config = tiflash_tici_config({}, TICI, legacy_aliases=True)
    masked = mask_secrets({"tiflash": config, "sink": tici_sink_uri(S3), "dsn": tici_tidb_dsn("tidb0:4000", "tici", SECRET)})
    text = repr(masked)
    assert SECRET not in text and "s%2Bcr" not in text and "minio admin" not in text and "minio%20admin" not in text
    assert masked["tiflash"]["tici"]["s3"]["bucket"] == "ticidefaultbucket"
    assert masked["tiflash"]["tici"]["s3"]["secret-key"] == masked["tiflash"]["tici"]["s3"]["secret_key"] == "********"
    assert dict(parse_qsl(urlsplit(masked["sink"]).query))["secret-access-key"] == "********"
    assert urlsplit(masked["dsn"]).password == "********"
    assert config["tici"]["s3"]["secret-key"] == SECRET  # the input is untouched
