# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""component_ready against a real HTTP server on 127.0.0.1 replaying documented responses."""

from __future__ import annotations

import base64
import re
import socket

import pytest

from pytest_httpserver.httpserver import HandlerType

from ansible_collections.tidbops.cluster.plugins.modules import component_ready

FAST = dict(timeout=15, interval=0.02)  # the timeout only matters when a test fails


def oneshots(server, path, answers, method='GET'):
    """Answer ``path`` with each of ``answers`` once, in order (status, json-or-text, headers)."""
    for status, body, *headers in answers:
        handler = server.expect_request(path, method=method, handler_type=HandlerType.ONESHOT)
        if isinstance(body, (dict, list)):
            handler.respond_with_json(body, status=status, headers=(headers or [None])[0])
        else:
            handler.respond_with_data(body, status=status, headers=(headers or [None])[0])


def count(server, path):
    return sum(1 for request, _response in server.log if request.path == path)


def store(address, state='Up', engine=None):
    body = {'id': 1, 'address': address, 'state_name': state}
    if engine:
        body['labels'] = [{'key': 'engine', 'value': engine}]
    return {'store': body, 'status': {}}


def closed_port():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_pd_waits_for_a_leader(httpserver, run_module):
    url = httpserver.url_for('')
    health = [{'name': 'pd0', 'member_id': 18446744073709551615, 'client_urls': [url], 'health': True}]
    oneshots(httpserver, '/pd/api/v1/members', [(503, '"[PD:apiutil:ErrRedirectNoLeader]redirect finds no leader"')] * 2)
    httpserver.expect_request('/pd/api/v1/health').respond_with_json(health)
    httpserver.expect_request('/pd/api/v1/members').respond_with_json({'members': [{'name': 'pd0'}], 'leader': {'name': 'pd0'}})
    result = run_module(component_ready, dict(component='pd', endpoints=[url], **FAST))
    assert result['changed'] is False and result['ready'] is True
    assert count(httpserver, '/pd/api/v1/members') == 3
    assert result['instances'] == [dict(instance=url, ready=True, state='ready', reason='health: 1 members healthy; leader pd0',
                                        status=200, error=None)]


def test_tikv_bootstrap_disconnected_then_up(httpserver, run_module):
    path = '/pd/api/v1/stores'
    oneshots(httpserver, path, [
        (500, '"TiKV cluster not bootstrapped, please start TiKV first"'),
        (200, {'count': 1, 'stores': [store('tikv0:20160', 'Disconnected')]}),
    ])
    httpserver.expect_request(path).respond_with_json({'count': 2, 'stores': [store('tikv0:20160'), store('tikv1:20160')]})
    result = run_module(component_ready, dict(component='tikv', pd_endpoint=httpserver.url_for(''),
                                              store_addresses=['tikv0:20160', 'tikv1:20160'], **FAST))
    assert result['ready'] is True
    assert [i['instance'] for i in result['instances']] == ['tikv0:20160', 'tikv1:20160']
    # PD's default store list leaves out tombstones; asking for every state lets a tombstone fail fast.
    assert httpserver.log[0][0].query_string == b'state=0&state=1&state=2'
    assert count(httpserver, path) == 3


def test_tikv_down_fails_fast(httpserver, run_module):
    httpserver.expect_request('/pd/api/v1/stores').respond_with_json({'count': 1, 'stores': [store('tikv0:20160', 'Down')]})
    result = run_module(component_ready, dict(component='tikv', pd_endpoint=httpserver.url_for(''), store_addresses=['tikv0:20160'],
                                              timeout=30, interval=0.02))
    assert result['failed'] is True
    assert result['msg'] == 'tikv cannot become ready: tikv0:20160: store 1 state Down'
    assert result['elapsed'] < 5
    assert count(httpserver, '/pd/api/v1/stores') == 1


def test_timeout_names_each_instance_and_last_observation(httpserver, run_module):
    port = closed_port()
    httpserver.expect_request('/status').respond_with_data('', status=500)
    tidb = httpserver.url_for('')
    down = 'http://127.0.0.1:%d' % port
    result = run_module(component_ready, dict(component='tidb', endpoints=[tidb, down], timeout=0.4, interval=0.05))
    assert result['failed'] is True and result['ready'] is False
    assert re.match(r'tidb not ready after \d+\.\ds \(\d+ rounds\): ', result['msg'])
    assert '%s: starting or draining (HTTP 500, empty body)' % tidb in result['msg']
    assert '%s: status: connection refused' % down in result['msg']
    assert 0.4 <= result['elapsed'] < 5
    assert [i['status'] for i in result['instances']] == [500, None]
    assert count(httpserver, '/status') >= 3, 'polled several times within the deadline'


def test_check_mode_probes_once_and_never_fails(httpserver, run_module):
    httpserver.expect_request('/status').respond_with_data('', status=500)
    result = run_module(component_ready, dict(component='tidb', endpoints=[httpserver.url_for('')], timeout=30), check_mode=True)
    assert 'failed' not in result
    assert result['ready'] is False and result['changed'] is False
    assert count(httpserver, '/status') == 1


def test_tidb_ready(httpserver, run_module):
    httpserver.expect_request('/status').respond_with_json({'connections': 0, 'version': '8.0.11-TiDB-v8.5.0', 'git_hash': 'a'})
    result = run_module(component_ready, dict(component='tidb', endpoints=[httpserver.url_for('/')], **FAST))
    assert result['ready'] is True
    assert result['instances'][0]['reason'] == 'version 8.0.11-TiDB-v8.5.0'


def test_minio_cluster_not_live(httpserver, run_module):
    oneshots(httpserver, '/minio/health/cluster', [(503, '', {'x-minio-server-status': 'offline'})])
    httpserver.expect_request('/minio/health/cluster').respond_with_data('', headers={'x-minio-write-quorum': '1'})
    result = run_module(component_ready, dict(component='minio', endpoints=[httpserver.url_for('')], **FAST))
    assert result['ready'] is True
    assert count(httpserver, '/minio/health/cluster') == 2
    assert count(httpserver, '/minio/health/live') == 0


def test_tiflash_store_and_store_status(httpserver, run_module):
    httpserver.expect_request('/pd/api/v1/stores').respond_with_json(
        {'count': 2, 'stores': [store('tikv0:20160'), store('tiflash0:3930', engine='tiflash')]})
    oneshots(httpserver, '/tiflash/store-status', [(200, 'Idle'), (200, 'Ready')])
    httpserver.expect_request('/tiflash/store-status').respond_with_data('Running')
    url = httpserver.url_for('')
    result = run_module(component_ready, dict(component='tiflash', pd_endpoint=url, store_addresses=['tiflash0:3930'], endpoints=[url], **FAST))
    assert result['ready'] is True
    assert [i['reason'] for i in result['instances']] == ['store 1 state Up', 'store-status Running']
    assert count(httpserver, '/tiflash/store-status') == 3


def test_ticdc(httpserver, run_module):
    url = httpserver.url_for('')
    httpserver.expect_request('/status').respond_with_json({'id': 'c1', 'is_owner': True, 'liveness': 0})
    oneshots(httpserver, '/api/v2/health', [(500, {'error_msg': 'cluster is unhealthy', 'error_code': 'CDC:ErrClusterIsUnhealthy'})])
    httpserver.expect_request('/api/v2/health').respond_with_json({})
    httpserver.expect_request('/api/v2/captures').respond_with_json({'total': 1, 'items': [{'id': 'c1', 'is_owner': True, 'address': 'cdc0:8300'}]})
    result = run_module(component_ready, dict(component='ticdc', endpoints=[url], **FAST))
    assert result['ready'] is True
    assert count(httpserver, '/api/v2/health') == 2


def test_tici_meta_election_key(httpserver, run_module):
    url = httpserver.url_for('')
    prefix = base64.b64encode(b'/tici/metaservice/election').decode()
    range_end = base64.b64encode(b'/tici/metaservice/electioo').decode()
    httpserver.expect_request('/status').respond_with_data('{}')
    oneshots(httpserver, '/v3/kv/range', [(200, {'header': {'revision': '5'}})], method='POST')
    httpserver.expect_request('/v3/kv/range', method='POST', json={'key': prefix, 'range_end': range_end}).respond_with_json(
        {'header': {}, 'kvs': [{'key': prefix, 'value': base64.b64encode(b'meta0:8500').decode()}], 'count': '1'})
    result = run_module(component_ready, dict(component='tici_meta', endpoints=[url], pd_endpoint=url, **FAST))
    assert result['ready'] is True
    assert result['instances'][-1]['reason'] == 'meta leader meta0:8500'
    assert count(httpserver, '/v3/kv/range') == 2


def test_tici_worker_ignores_pd(httpserver, run_module):
    httpserver.expect_request('/status').respond_with_data('ok')
    url = httpserver.url_for('')
    result = run_module(component_ready, dict(component='tici_worker', endpoints=[url], pd_endpoint=url, **FAST))
    assert result['ready'] is True and len(result['instances']) == 1


@pytest.mark.parametrize('args, message', [
    (dict(component='tikv', pd_endpoint='http://pd0:2379'), 'store_addresses: required for component tikv'),
    (dict(component='tiflash', store_addresses=['tiflash0:3930']), 'pd_endpoint: required for component tiflash'),
    (dict(component='tikv', pd_endpoint='pd0:2379', store_addresses=['tikv0:20160']), "pd_endpoint: expected an http(s) URL"),
    (dict(component='tikv', pd_endpoint='http://pd0:2379', store_addresses=['tikv0']), "store_addresses[0]: expected host:port"),
    (dict(component='tidb', endpoints=['http://tidb0:10080', 'tidb1:10080']), "endpoints[1]: expected an http(s) URL"),
    (dict(component='tidb'), 'endpoints: required for component tidb'),
    (dict(component='tiproxy', endpoints=['http://a:1']), 'value of component must be one of: pd, tikv'),
    (dict(component='tidb', endpoints=['http://tidb0:10080'], fast_for=-1), 'fast_for: expected a number of seconds >= 0, got -1'),
    (dict(component='pd', endpoints=['http://10.0.0.1:2379'], kube_proxy={'namespace': 'tidb'}), 'endpoints[0]: kube_proxy'),
])
def test_bad_input_fails_before_any_request(httpserver, run_module, args, message):
    result = run_module(component_ready, args)
    assert result['failed'] is True
    assert message in result['msg']
    assert httpserver.log == []
