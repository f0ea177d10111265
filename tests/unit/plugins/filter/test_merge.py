# -*- coding: utf-8 -*-
"""TiUP merge semantics: fold_dotted and merge_server_config."""

from __future__ import annotations

import copy

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.tidbops.cluster.plugins.filter.tidb_config import fold_dotted, merge_server_config


@pytest.mark.parametrize("given, expected", [
    ({}, {}),
    (None, {}),
    ({"log.level": "info"}, {"log": {"level": "info"}}),
    ({"a.b": {"c.d": 1}}, {"a": {"b": {"c": {"d": 1}}}}),
    ({"a": {"b": 1}, "a.c": 2}, {"a": {"b": 1, "c": 2}}),
    ({"a.b": {"c": 1}, "a": {"b": {"d": 2}}}, {"a": {"b": {"c": 1, "d": 2}}}),
    ({"raft.pd_addr": "pd:2379", "storage.block-cache.capacity": "1GB"},
     {"raft": {"pd_addr": "pd:2379"}, "storage": {"block-cache": {"capacity": "1GB"}}}),
    # lists are values: copied as they are, keys inside items not folded
    ({"labels": [{"x.y": 1}], "a.list": [1, [2]]}, {"labels": [{"x.y": 1}], "a": {"list": [1, [2]]}}),
    ({"empty": {}}, {"empty": {}}),
    ({"a.b": None}, {"a": {"b": None}}),
])
def test_fold_dotted(given, expected):
    assert fold_dotted(given) == expected


@pytest.mark.parametrize("given, key", [
    ({"a": 1, "a.b": 2}, "'a' is set to a non-table value, but 'a.b'"),
    ({"a.b": 2, "a": 1}, "'a' is set to a non-table value, but 'a.b'"),
    ({"a": {"b": 1}, "a.b": 2}, "'a.b' is set more than once"),
    ({"a.b": {}, "a": {"b": 1}}, "'a.b' is set more than once"),
    ({"x": {"a.b": 1, "a": {"b": {"c": 1}}}}, "'x.a.b' is set to a non-table value, but 'x.a.b.c'"),
    ({"x": {"a.b": 1, "a": {"b": 2}}}, "'x.a.b' is set more than once"),
    ({"a.b": 1, "a.b.c": 2}, "'a.b' is set to a non-table value, but 'a.b.c'"),
    ({"a..b": 1}, "key 'a..b' has an empty part"),
    ({"x": {".b": 1}}, "key 'x..b' has an empty part"),
    ({1: "x"}, "key 1 under '(top level)' must be a string"),
])
def test_fold_dotted_conflicts_name_the_key(given, key):
    with pytest.raises(AnsibleFilterError, match="^fold_dotted: ") as error:
        fold_dotted(given)
    assert key in str(error.value)


def test_fold_dotted_rejects_non_mapping():
    with pytest.raises(AnsibleFilterError, match="the input must be a mapping"):
        fold_dotted(["a"])


def test_fold_dotted_does_not_share_or_mutate():
    given = {"a.b": {"c": [1, {"d": 2}]}, "e": {"f": 1}}
    before = copy.deepcopy(given)
    folded = fold_dotted(given)
    folded["a"]["b"]["c"][1]["d"] = 99
    folded["e"]["f"] = 99
    assert given == before


@pytest.mark.parametrize("global_config, instance_config, expected", [
    ({"log.level": "info"}, {"log": {"level": "warn"}}, {"log": {"level": "warn"}}),
    ({"log": {"level": "info", "file": {"max-days": 7}}}, {"log.file.max-days": 1},
     {"log": {"level": "info", "file": {"max-days": 1}}}),
    # a non-map value replaces rather than merges, both ways
    ({"a": {"b": 1}}, {"a": 5}, {"a": 5}),
    ({"a": 5}, {"a.b": 1}, {"a": {"b": 1}}),
    ({"labels": ["x", "y"]}, {"labels": ["z"]}, {"labels": ["z"]}),
    ({"x": 1}, None, {"x": 1}),
    (None, {"x": 1}, {"x": 1}),
    (None, None, {}),
    ({"a.b": 1, "c": {"d": 2}}, {"c.e": 3}, {"a": {"b": 1}, "c": {"d": 2, "e": 3}}),
])
def test_merge_server_config(global_config, instance_config, expected):
    assert merge_server_config(global_config, instance_config) == expected


def test_merge_server_config_does_not_mutate_inputs():
    global_config = {"storage": {"reserve-space": "1GB", "block-cache": {"capacity": "1GB"}}, "labels": [1]}
    instance_config = {"storage.block-cache.capacity": "2GB", "server": {"grpc-concurrency": 4}}
    saved = copy.deepcopy((global_config, instance_config))
    merged = merge_server_config(global_config, instance_config)
    assert merged == {
        "storage": {"reserve-space": "1GB", "block-cache": {"capacity": "2GB"}},
        "labels": [1],
        "server": {"grpc-concurrency": 4},
    }
    merged["storage"]["reserve-space"] = "x"
    merged["labels"].append(2)
    merged["server"]["grpc-concurrency"] = 0
    assert (global_config, instance_config) == saved


@pytest.mark.parametrize("global_config, instance_config, message", [
    ([1], {}, "global_config must be a mapping"),
    ({}, "x", "instance_config must be a mapping"),
    ({"a": 1, "a.b": 1}, {}, "'a' is set to a non-table value"),
])
def test_merge_server_config_bad_input(global_config, instance_config, message):
    with pytest.raises(AnsibleFilterError, match="^merge_server_config: ") as error:
        merge_server_config(global_config, instance_config)
    assert message in str(error.value)
