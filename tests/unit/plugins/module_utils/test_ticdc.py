# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""Pure parts of the changefeed converge: validation, error classification, comparison."""

from __future__ import annotations

import json

import pytest

from ansible_collections.tidbops.cluster.plugins.module_utils._http import Response
from ansible_collections.tidbops.cluster.plugins.module_utils._ticdc import (
    config_differences, is_transient, project, sink_uri_equal, validate)
from ansible_collections.tidbops.cluster.plugins.module_utils._dicts import deep_merge


def reply(status, body):
    return Response('GET', 'http://cdc0:8300/api/v2/changefeeds/x', status, json.dumps(body) if not isinstance(body, str) else body)


def params(**overrides):
    base = dict(changefeed_id='tici-replication-task', state='present', sink_uri='s3://b/p/cdc?protocol=canal-json',
                replica_config=None, start_ts=None, target_ts=None)
    base.update(overrides)
    return base


@pytest.mark.parametrize('overrides, message', [
    (dict(changefeed_id='tici_task'), 'changefeed_id: expected letters and digits'),
    (dict(changefeed_id='-a'), 'changefeed_id'),
    (dict(changefeed_id='a--b'), 'changefeed_id'),
    (dict(changefeed_id='a' * 129), 'at most 128'),
    (dict(sink_uri=None), 'sink_uri: required unless state is absent'),
    (dict(sink_uri='bucket/prefix/cdc'), 'sink_uri: expected a URI with a scheme'),
    (dict(start_ts=200, target_ts=100), 'target_ts: expected a TSO above start_ts (200), got 100'),
    (dict(start_ts=100, target_ts=100), 'target_ts'),
    (dict(replica_config=['sink']), 'replica_config: expected a dict'),
])
def test_validate_rejects(overrides, message):
    errors = validate(params(**overrides))
    assert any(message in error for error in errors), errors


@pytest.mark.parametrize('overrides', [
    dict(), dict(changefeed_id='a' * 128), dict(state='absent', sink_uri=None), dict(start_ts=1, target_ts=2), dict(target_ts=5),
])
def test_validate_accepts(overrides):
    assert validate(params(**overrides)) == []


@pytest.mark.parametrize('response, transient', [
    (Response('GET', 'u', error='refused', error_kind='refused'), True),
    (reply(503, {'error_msg': 'not ready', 'error_code': 'CDC:ErrServerIsNotReady'}), True),
    (reply(500, {'error_msg': 'coordinator is not fully initialized, wait a moment', 'error_code': ''}), True),
    (reply(500, 'coordinator is not fully initialized, wait a moment'), True),
    (reply(500, {'error_msg': 'unhealthy', 'error_code': 'CDC:ErrClusterIsUnhealthy'}), True),
    (reply(400, {'error_msg': 'changefeed not exists', 'error_code': 'CDC:ErrChangeFeedNotExists'}), False),
    (reply(500, {'error_msg': 'changefeed already exists', 'error_code': 'CDC:ErrChangeFeedAlreadyExists'}), False),
    (reply(400, {'error_msg': 'bad sink', 'error_code': 'CDC:ErrSinkURIInvalid'}), False),
    (reply(200, {}), False),
])
def test_is_transient(response, transient):
    assert is_transient(response) is transient


@pytest.mark.parametrize('desired, current, equal', [
    ('s3://b/p/cdc?protocol=canal-json&access-key=a&secret-access-key=s',
     's3://b/p/cdc?secret-access-key=s&access-key=a&protocol=canal-json', True),
    ('s3://b/p/cdc?protocol=canal-json&secret-access-key=s', 's3://b/p/cdc?protocol=canal-json&secret-access-key=OTHER', False),
    ('s3://b/p/cdc?protocol=canal-json', 's3://b/p/cdc/?protocol=canal-json', True),
    ('s3://b/p/cdc?protocol=canal-json', 's3://b/other/cdc?protocol=canal-json', False),
    ('s3://b/p/cdc?protocol=canal-json', 's3://b/p/cdc?protocol=canal-json&flush-interval=5s', False),
    ('mysql://root:pw@tidb0:4000/', 'mysql://root:xxxxx@tidb0:4000/', True),
    ('mysql://root:pw@tidb0:4000/', 'mysql://admin:xxxxx@tidb0:4000/', False),
    ('kafka://k:9092/t?sasl-password=pw&protocol=canal-json', 'kafka://k:9092/t?protocol=canal-json&sasl-password=xxxxx', True),
    ('s3://b/p/cdc', None, False),
    # The server may percent-encode the path or user name; decoded they are the same.
    ('s3://b/tici_prefix/cdc?protocol=canal-json', 's3://b/tici%5Fprefix/cdc?protocol=canal-json', True),
    ('s3://b/tici%20prefix/cdc', 's3://b/tici prefix/cdc', True),
    ('s3://b/tici_prefix/cdc', 's3://b/tici%2Dprefix/cdc', False),
    ('mysql://ti%40ci:pw@tidb0:4000/', 'mysql://ti@ci:xxxxx@tidb0:4000/', True),
])
def test_sink_uri_equal(desired, current, equal):
    assert sink_uri_equal(desired, current) is equal


CURRENT = {'memory_quota': 1073741824, 'case_sensitive': False, 'force_replicate': False,
           'filter': {'rules': ['*.*']},
           'sink': {'protocol': 'canal-json', 'date_separator': 'day', 'enable_partition_separator': True,
                    'dispatchers': [{'matcher': ['*.*'], 'partition': 'table', 'topic': ''}]}}


@pytest.mark.parametrize('desired, differences', [
    ({'sink': {'protocol': 'canal-json'}}, []),
    ({'sink': {'date_separator': 'none'}}, ['replica_config.sink.date_separator']),
    ({'case_sensitive': False, 'memory_quota': 1073741824.0}, []),
    ({'force_replicate': True, 'filter': {'rules': ['test.*']}}, ['replica_config.force_replicate', 'replica_config.filter.rules']),
    ({'sink': {'dispatchers': [{'matcher': ['*.*'], 'partition': 'table'}]}}, []),
    ({'sink': {'dispatchers': [{'matcher': ['*.*'], 'partition': 'ts'}]}}, ['replica_config.sink.dispatchers']),
    ({'consistent': {'level': 'eventual'}}, ['replica_config.consistent']),
    ({'sink': {'csv': {}}}, []),
])
def test_config_differences(desired, differences):
    assert config_differences(desired, CURRENT) == differences


def test_deep_merge_and_project():
    merged = deep_merge(CURRENT, {'sink': {'date_separator': 'none'}, 'force_replicate': True})
    assert merged['sink']['date_separator'] == 'none'
    assert merged['sink']['protocol'] == 'canal-json'
    assert merged['force_replicate'] is True and merged['memory_quota'] == 1073741824
    assert CURRENT['sink']['date_separator'] == 'day'
    assert project(CURRENT, {'sink': {'date_separator': 'none'}, 'bdr_mode': True}) == {'sink': {'date_separator': 'day'}, 'bdr_mode': None}
