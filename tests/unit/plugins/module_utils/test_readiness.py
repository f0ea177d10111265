# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""Readiness predicates over the response shapes the components serve: tikv/pd server/api, tikv/tikv
status_server, pingcap/tidb /status, pingcap/tiflash store-status, pingcap/ticdc api/v2, minio
healthcheck-handler.go and PD's etcd gateway."""

from __future__ import annotations

import base64
import json

import pytest

from ansible_collections.tidbops.cluster.plugins.module_utils import _readiness as rd
from ansible_collections.tidbops.cluster.plugins.module_utils._http import Response
from ansible_collections.tidbops.cluster.plugins.module_utils._waiter import FAILED, READY, WAITING


def reply(status, body='', headers=None):
    if not isinstance(body, str):
        body = json.dumps(body)
    return Response('GET', 'http://x', status, body, headers)


def refused():
    return Response('GET', 'http://x', error='[Errno 111] Connection refused', error_kind='refused')


def member(name, health=True):
    return {'name': name, 'member_id': 12345678901234567890, 'client_urls': ['http://%s:2379' % name], 'health': health}


MEMBERS_OK = {'header': {'cluster_id': 7}, 'members': [{'name': 'pd0'}, {'name': 'pd1'}, {'name': 'pd2'}],
              'leader': {'name': 'pd1'}, 'etcd_leader': {'name': 'pd1'}}


@pytest.mark.parametrize('health, members, state, reason', [
    (reply(200, [member('pd0'), member('pd1'), member('pd2')]), reply(200, MEMBERS_OK), READY, 'leader pd1'),
    (reply(200, [member('pd0'), member('pd1', False), member('pd2')]), reply(200, MEMBERS_OK), WAITING, '2 of 3 members healthy'),
    (reply(200, [member('pd0'), member('pd1')]), reply(200, MEMBERS_OK), WAITING, '2 of 2 members healthy, 3 expected'),
    (reply(200, [member('pd0'), member('pd1'), member('pd2')]),
     reply(503, '"[PD:apiutil:ErrRedirectNoLeader]redirect finds no leader"'), WAITING, 'no leader yet (HTTP 503)'),
    (reply(200, [member('pd0'), member('pd1'), member('pd2')]), reply(200, dict(MEMBERS_OK, leader=None)), WAITING, 'no leader'),
    (reply(503, ''), reply(200, MEMBERS_OK), WAITING, 'health: HTTP 503'),
    (refused(), refused(), WAITING, 'connection refused'),
])
def test_pd(health, members, state, reason):
    check = rd.pd_ready('http://pd0:2379', health, members, 3)
    assert check.state == state
    assert reason in check.reason


def store(address, state='Up', engine=None, store_id=1):
    body = {'id': store_id, 'address': address, 'state_name': state, 'node_state': 1}
    if engine:
        body['labels'] = [{'key': 'engine', 'value': engine}]
    return {'store': body, 'status': {'leader_count': 0}}


def stores(*entries):
    return reply(200, {'count': len(entries), 'stores': list(entries)})


@pytest.mark.parametrize('response, tiflash, expected', [
    (stores(store('tikv0:20160'), store('tikv1:20160')), False, [READY, READY]),
    (stores(store('tikv0:20160')), False, [READY, WAITING]),
    (stores(store('tikv0:20160', 'Disconnected'), store('tikv1:20160')), False, [WAITING, READY]),
    (stores(store('tikv0:20160', 'Down'), store('tikv1:20160')), False, [FAILED, READY]),
    (stores(store('tikv0:20160', 'Offline'), store('tikv1:20160', 'Tombstone')), False, [FAILED, FAILED]),
    # A tombstone left by an earlier deployment does not hide the new store at the same address.
    (stores(store('tikv0:20160', 'Tombstone', store_id=1), store('tikv0:20160', store_id=4), store('tikv1:20160')), False, [READY, READY]),
    (stores(store('tikv0:20160', engine='tiflash'), store('tikv1:20160')), False, [FAILED, READY]),
    (reply(500, '"TiKV cluster not bootstrapped, please start TiKV first"'), False, [WAITING, WAITING]),
    (refused(), False, [WAITING, WAITING]),
    (stores(store('tikv0:20160', engine='tiflash'), store('tikv1:20160', engine='tiflash_compute')), True, [READY, READY]),
    (stores(store('tikv0:20160'), store('tikv1:20160', 'Disconnected', engine='tiflash')), True, [FAILED, WAITING]),
])
def test_stores(response, tiflash, expected):
    checks = rd.stores_ready(response, ['tikv0:20160', 'tikv1:20160'], tiflash)
    assert [check.instance for check in checks] == ['tikv0:20160', 'tikv1:20160']
    assert [check.state for check in checks] == expected


def test_stores_not_bootstrapped_reason():
    check = rd.stores_ready(reply(500, '"TiKV cluster not bootstrapped, please start TiKV first"'), ['a:1'], False)[0]
    assert check.reason == 'stores: cluster not bootstrapped yet (HTTP 500)'


def test_store_state_in_reason():
    check = rd.stores_ready(stores(store('a:1', 'Down', store_id=9)), ['a:1'], False)[0]
    assert check.reason == 'store 9 state Down'


@pytest.mark.parametrize('ready, status, state', [
    (reply(200), None, READY),
    (reply(500, '{"connected_to_pd":true,"raft_peers_caught_up":false}'), None, WAITING),
    (reply(404, 'not found'), reply(200), READY),
    (reply(404, 'not found'), refused(), WAITING),
    (refused(), None, WAITING),
])
def test_tikv_status(ready, status, state):
    assert rd.tikv_status('http://tikv0:20180', ready, status).state == state


@pytest.mark.parametrize('response, state', [
    (reply(200, {'connections': 0, 'version': '8.0.11-TiDB-v8.5.0', 'git_hash': 'x', 'status': {'init_stats_percentage': 100}}), READY),
    (reply(500, ''), WAITING),
    (reply(200, {'connections': 0}), WAITING),
    (reply(200, 'ok'), WAITING),
    (reply(404, '404 page not found'), WAITING),
    (refused(), WAITING),
])
def test_tidb(response, state):
    assert rd.tidb_status('http://tidb0:10080', response).state == state


@pytest.mark.parametrize('response, state', [
    (reply(200, 'Running'), READY),
    (reply(200, 'Running\n'), READY),
    (reply(200, 'Idle'), WAITING),
    (reply(200, 'Ready'), WAITING),
    (reply(200, 'Unknown'), WAITING),
    (reply(200, 'Stopping'), FAILED),
    (reply(200, 'Terminated'), FAILED),
    (reply(404, ''), WAITING),
])
def test_tiflash_store_status(response, state):
    assert rd.tiflash_store_status('http://tiflash0:20292', response).state == state


@pytest.mark.parametrize('response, state, reason', [
    (reply(200, '', {'X-Minio-Write-Quorum': '1'}), READY, 'cluster healthy'),
    (reply(503, '', {'X-Minio-Server-Status': 'offline'}), WAITING, 'server offline'),
    (reply(503, ''), WAITING, 'HTTP 503'),
    (reply(412, ''), WAITING, 'HTTP 412'),
    (reply(403, ''), FAILED, 'forbidden'),
    (refused(), WAITING, 'refused'),
])
def test_minio(response, state, reason):
    check = rd.minio_cluster('http://minio0:9000', response)
    assert check.state == state
    assert reason in check.reason


STATUS_NEW = {'version': 'v8.5.4', 'git_hash': 'x', 'id': 'c1', 'cluster_id': 'default', 'pid': 1, 'is_owner': True, 'liveness': 0}
STATUS_CLASSIC = {'version': 'v8.5.0', 'git_hash': 'x', 'id': 'c1', 'pid': 1, 'is_owner': True}
CAPTURES_OK = {'total': 2, 'items': [{'id': 'c1', 'is_owner': True, 'address': 'cdc0:8300'}, {'id': 'c2', 'is_owner': False, 'address': 'cdc1:8300'}]}
UNHEALTHY = {'error_msg': 'cluster is unhealthy', 'error_code': 'CDC:ErrClusterIsUnhealthy'}
NOT_READY = {'error_msg': 'server is not ready', 'error_code': 'CDC:ErrServerIsNotReady'}


@pytest.mark.parametrize('status, health, captures, state, reason', [
    (reply(200, STATUS_NEW), reply(200, {}), reply(200, CAPTURES_OK), READY, '2 captures'),
    (reply(200, STATUS_CLASSIC), reply(200, {}), reply(200, CAPTURES_OK), READY, '2 captures'),
    (reply(200, dict(STATUS_NEW, liveness=1)), reply(200, {}), reply(200, CAPTURES_OK), WAITING, 'liveness 1 (draining)'),
    (reply(200, dict(STATUS_NEW, liveness=2)), reply(200, {}), reply(200, CAPTURES_OK), WAITING, 'stopping'),
    (reply(200, STATUS_NEW), reply(500, UNHEALTHY), reply(200, CAPTURES_OK), WAITING, 'CDC:ErrClusterIsUnhealthy'),
    (reply(200, STATUS_NEW), reply(503, NOT_READY), reply(503, NOT_READY), WAITING, 'HTTP 503 CDC:ErrServerIsNotReady'),
    (reply(200, STATUS_NEW), reply(500, 'coordinator is not fully initialized, wait a moment'), reply(200, CAPTURES_OK), WAITING, 'HTTP 500'),
    (reply(200, STATUS_NEW), reply(200, {}), reply(200, dict(CAPTURES_OK, total=1, items=CAPTURES_OK['items'][:1])), WAITING, '1 of 2'),
    (reply(200, STATUS_NEW), reply(200, {}),
     reply(200, {'total': 2, 'items': [{'id': 'c1', 'is_owner': False}, {'id': 'c2', 'is_owner': False}]}), WAITING, '0 owner'),
    (refused(), refused(), refused(), WAITING, 'refused'),
])
def test_ticdc(status, health, captures, state, reason):
    check = rd.ticdc_ready('http://cdc0:8300', status, health, captures, 2)
    assert check.state == state
    assert reason in check.reason


def test_etcd_range_body():
    body = rd.etcd_range_body('/tici/metaservice/election')
    assert base64.b64decode(body['key']) == b'/tici/metaservice/election'
    assert base64.b64decode(body['range_end']) == b'/tici/metaservice/electioo'


def kv(value):
    return {'key': base64.b64encode(b'/tici/metaservice/election/694d').decode(), 'value': base64.b64encode(value).decode()}


@pytest.mark.parametrize('response, state, reason', [
    (reply(200, {'header': {}, 'kvs': [kv(b'meta0:8500')], 'count': '1'}), READY, 'meta leader meta0:8500'),
    (reply(200, {'header': {}}), WAITING, '0 keys'),
    (reply(200, {'header': {}, 'kvs': [kv(b'meta0:8500'), kv(b'meta1:8500')], 'count': '2'}), WAITING, '2 keys'),
    (reply(404, '404 page not found'), WAITING, 'HTTP 404'),
])
def test_tici_election(response, state, reason):
    check = rd.tici_election('pd', response)
    assert check.state == state
    assert reason in check.reason


@pytest.mark.parametrize('response, state', [(reply(200, 'whatever'), READY), (reply(500, ''), WAITING), (refused(), WAITING)])
def test_tici_status(response, state):
    assert rd.tici_status('http://meta0:8501', response).state == state
