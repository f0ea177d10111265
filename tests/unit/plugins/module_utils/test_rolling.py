# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""Rolling restarts (module_utils/_rolling.py): the pure readers and rules, then each drain against a
small stateful PD / TiCDC double on pytest-httpserver (payload shapes of tikv/pd server/api and
pingcap/ticdc api/v1, v2)."""

from __future__ import annotations

import base64
import json
import re

import pytest

from werkzeug import Response

from ansible_collections.tidbops.cluster.plugins.module_utils import _rolling
from ansible_collections.tidbops.cluster.plugins.module_utils._http import HttpClient
from ansible_collections.tidbops.cluster.plugins.module_utils._waiter import Deadline

ORDER = ['tiflash', 'ticdc', 'tici_worker', 'tici_meta', 'pd', 'tikv', 'tidb', 'minio']


# ---- pure -----------------------------------------------------------------------------------

def test_store_counters_read_as_zero_when_absent():
    payload = {'count': 2, 'stores': [
        {'store': {'id': 1, 'address': 'a:20160', 'state_name': 'Up'}, 'status': {'leader_count': 7, 'region_count': 20}},
        {'store': {'id': 4, 'address': 'b:20160', 'state_name': 'Up'}, 'status': {}},
    ]}
    stores = _rolling.stores_by_address(payload)
    assert stores['a:20160'] == {'id': 1, 'state': 'Up', 'engine': None, 'leader_count': 7, 'region_count': 20}
    assert stores['b:20160'] == {'id': 4, 'state': 'Up', 'engine': None, 'leader_count': 0, 'region_count': 0}


def test_a_tombstone_sharing_an_address_does_not_hide_the_live_store():
    payload = {'stores': [{'store': {'id': 1, 'address': 'a:1', 'state_name': 'Tombstone'}},
                          {'store': {'id': 9, 'address': 'a:1', 'state_name': 'Up'}, 'status': {'leader_count': 2}}]}
    assert _rolling.stores_by_address(payload)['a:1']['id'] == 9


def test_payload_readers():
    assert _rolling.pd_leader_name({'name': 'pd1', 'member_id': 3}) == 'pd1'
    assert _rolling.pd_leader_name(None) is None
    assert _rolling.pd_member_health([{'name': 'pd0', 'health': True}, {'name': 'pd1', 'health': False}]) == {'pd0': True, 'pd1': False}
    assert _rolling.evicted_store_ids({'store-id-ranges': {'1': [], '4': [], 'x': []}}) == {1, 4}
    assert _rolling.evicted_store_ids('scheduler not found') == set()
    v2 = {'total': 1, 'items': [{'id': 'c1', 'is_owner': True, 'address': 'h:8300'}]}
    assert _rolling.captures(v2) == [{'id': 'c1', 'address': 'h:8300', 'is_owner': True}]
    assert _rolling.captures([{'id': 'c2', 'address': 'h:8301'}]) == [{'id': 'c2', 'address': 'h:8301', 'is_owner': False}]
    kv = {'kvs': [{'key': base64.b64encode(b'/k/1').decode(), 'value': base64.b64encode(b'v').decode()}], 'count': '1'}
    assert _rolling.etcd_kvs(kv) == {'/k/1': 'v'}
    assert _rolling.etcd_kvs({'header': {}}) == {}  # etcd omits kvs when nothing matches
    assert _rolling.prefix_end('/tidbops/evict-leader/') == '/tidbops/evict-leader0'


def test_roll_order_follows_the_update_order_with_leaders_last():
    instances = [{'name': n, 'kind': k} for n, k in [('pd0', 'pd'), ('pd1', 'pd'), ('pd2', 'pd'), ('tidb0', 'tidb'),
                                                     ('tikv0', 'tikv'), ('cdc0', 'ticdc'), ('cdc1', 'ticdc'), ('flash0', 'tiflash'),
                                                     ('minio0', 'minio'), ('meta0', 'tici_meta'), ('worker0', 'tici_worker')]]
    order = _rolling.roll_order(instances, ORDER, {'pd0', 'cdc0'})
    assert order == ['flash0', 'cdc1', 'cdc0', 'worker0', 'meta0', 'pd1', 'pd2', 'pd0', 'tikv0', 'tidb0', 'minio0']


def test_roll_order_by_ordinal_goes_down_whatever_leads():
    instances = [{'name': 'pd-%d' % i, 'kind': 'pd', 'ordinal': i} for i in range(3)]
    assert _rolling.roll_order(instances, ORDER, {'pd-0'}, leader_last=False) == ['pd-2', 'pd-1', 'pd-0']
    assert _rolling.roll_order(instances, ORDER, {'pd-2'}, leader_last=False) == ['pd-2', 'pd-1', 'pd-0']


@pytest.mark.parametrize('health, rolling, problem', [
    ({'pd0': True, 'pd1': True, 'pd2': True}, ['pd0'], None),
    ({'pd0': True, 'pd1': True, 'pd2': False}, ['pd0'], 'PD pd2 unhealthy: with one more member restarting, 1 of 3'),
    ({'pd0': True, 'pd1': True, 'pd2': False}, ['pd2'], None),  # restarting the unhealthy one loses nothing
    ({'pd%d' % i: i != 4 for i in range(5)}, ['pd0'], None),  # 3 of 5 keep the quorum
    ({'pd0': True}, ['pd0'], None),  # a single PD cannot roll without an outage; no order avoids it
    ({'pd0': True, 'pd1': False}, ['pd0'], 'below the quorum of 2'),
    ({'pd0': True, 'pd1': True, 'pd2': True}, [], None),
])
def test_pd_quorum_rule(health, rolling, problem):
    found = _rolling.pd_quorum_problem(health, rolling)
    assert (found is None) if problem is None else (problem in (found or '')), found


def test_tikv_replica_rule_names_every_store_not_up():
    stores = {'a:1': {'state': 'Up'}, 'b:1': {'state': 'Disconnected'}}
    problem = _rolling.tikv_replica_problem(stores, ['a:1', 'b:1', 'c:1'], True)
    assert 'b:1 (Disconnected), c:1 (not registered)' in problem
    assert _rolling.tikv_replica_problem(stores, ['a:1'], True) is None
    assert _rolling.tikv_replica_problem(stores, ['b:1'], False) is None


# ---- a stateful PD / TiCDC double --------------------------------------------------------------

class FakePd:
    """PD's leader, health, stores, evict-leader scheduler and etcd gateway; leaders leave an evicted
    store ``rate`` per GET of that store."""

    def __init__(self, server, leaders=None, rate=3, members=('pd0', 'pd1', 'pd2')):
        self.url = server.url_for('').rstrip('/')
        self.leader = 'pd0'
        self.health = dict((name, True) for name in members)
        self.leaders = dict(leaders or {1: 5, 4: 4, 5: 3})
        self.address = {1: 'tikv0:20160', 4: 'tikv1:20160', 5: 'tikv2:20160'}
        self.evicting = set()
        self.kv = {}
        self.rate = rate
        self.transfer_status = 200
        self.log = []
        server.expect_request(re.compile('^/.*')).respond_with_handler(self.handle)

    @staticmethod
    def _json(value, status=200):
        return Response(json.dumps(value), status=status, content_type='application/json')

    def handle(self, request):
        path, body = request.path, request.get_data(as_text=True)
        self.log.append((request.method, path))
        if path == '/pd/api/v1/leader':
            return self._json({'name': self.leader})
        if path == '/pd/api/v1/health':
            return self._json([{'name': n, 'health': ok} for n, ok in sorted(self.health.items())])
        if path.startswith('/pd/api/v1/leader/transfer/'):
            if self.transfer_status == 200:
                self.leader = path.rsplit('/', 1)[-1]
            return self._json('The transfer command is submitted.', self.transfer_status)
        if path == '/pd/api/v1/leader/resign':
            self.leader = next(n for n in sorted(self.health) if n != self.leader)
            return self._json('The resign command is submitted.')
        if path == '/pd/api/v1/stores':
            return self._json({'count': 3, 'stores': [self._store(i) for i in sorted(self.leaders)]})
        match = re.match(r'^/pd/api/v1/store/(\d+)$', path)
        if match:
            store_id = int(match.group(1))
            if store_id in self.evicting:
                self.leaders[store_id] = max(0, self.leaders[store_id] - self.rate)
            return self._json(self._store(store_id))
        if path == '/pd/api/v1/schedulers' and request.method == 'POST':
            self.evicting.add(json.loads(body)['store_id'])
            return self._json('The scheduler is created.')
        match = re.match(r'^/pd/api/v1/schedulers/evict-leader-scheduler-(\d+)$', path)
        if match and request.method == 'DELETE':
            if int(match.group(1)) not in self.evicting:
                return self._json('[PD:scheduler:ErrSchedulerNotFound]scheduler not found', 500)
            self.evicting.discard(int(match.group(1)))
            return self._json('The scheduler is removed.')
        if path == '/pd/api/v1/scheduler-config/evict-leader-scheduler/list':
            if not self.evicting:
                return self._json('404 page not found', 404)
            return self._json({'store-id-ranges': dict((str(i), [{'start-key': '', 'end-key': ''}]) for i in self.evicting)})
        if path.startswith('/v3/kv/'):
            return self._etcd(path, json.loads(body))
        return self._json({'error': 'unknown path'}, 404)

    def _store(self, store_id):
        status = {'leader_count': self.leaders[store_id], 'region_count': 12}
        return {'store': {'id': store_id, 'address': self.address[store_id], 'state_name': 'Up'},
                'status': dict((k, v) for k, v in status.items() if v)}

    def _etcd(self, path, body):
        key = base64.b64decode(body['key']).decode()
        if path.endswith('/put'):
            self.kv[key] = base64.b64decode(body['value']).decode()
            return self._json({'header': {}})
        if path.endswith('/deleterange'):
            return self._json({'header': {}, 'deleted': str(int(self.kv.pop(key, None) is not None))})
        end = base64.b64decode(body['range_end']).decode()
        kvs = [{'key': base64.b64encode(k.encode()).decode(), 'value': base64.b64encode(v.encode()).decode()}
               for k, v in sorted(self.kv.items()) if key <= k < end]
        return self._json(dict({'header': {}}, **({'kvs': kvs, 'count': str(len(kvs))} if kvs else {})))


def api(url, timeout=5.0):
    return _rolling.Api(HttpClient(), [url], Deadline(timeout, 0.01, 0.02), 'PD')


def test_tikv_drain_evicts_marks_and_waits_for_zero_leaders(httpserver):
    pd = FakePd(httpserver)
    changed, before, after, warning = _rolling.TikvLeaders(api(pd.url), 'tikv1:20160', 'test').drain(False, False)
    assert (changed, warning) == (True, None)
    assert before == {'store': 4, 'leader_count': 4, 'evicting': False}
    assert after['leader_count'] == 0 and pd.leaders[4] == 0
    assert pd.evicting == {4}
    assert json.loads(pd.kv['/tidbops/evict-leader/4'])['address'] == 'tikv1:20160'
    # The marker goes in before the scheduler: a run killed in between leaves a trace.
    assert pd.log.index(('POST', '/v3/kv/put')) < pd.log.index(('POST', '/pd/api/v1/schedulers'))
    # Again: nothing to do.
    changed, _before, _after, _warning = _rolling.TikvLeaders(api(pd.url), 'tikv1:20160', 'test').drain(False, False)
    assert changed is False


def test_a_single_tikv_restarts_without_an_eviction(httpserver):
    pd = FakePd(httpserver, leaders={1: 24})
    pd.address = {1: 'tikv0:20160'}
    changed, before, after, warning = _rolling.TikvLeaders(api(pd.url), 'tikv0:20160', 'test').drain(False, False)
    assert (changed, before, after) == (False, before, before) and 'only TiKV store' in warning
    assert pd.evicting == set() and pd.kv == {}


def test_tikv_drain_timeout_fails_unless_forced(httpserver):
    pd = FakePd(httpserver, rate=0)
    with pytest.raises(_rolling.RollError, match=r'store 1 \(tikv0:20160\) still leads 5 regions .* tidb_force_restart'):
        _rolling.TikvLeaders(api(pd.url, 0.3), 'tikv0:20160', 'test').drain(False, False)
    changed, _before, after, warning = _rolling.TikvLeaders(api(pd.url, 0.3), 'tikv0:20160', 'test').drain(False, True)
    assert changed and after['leader_count'] == 5 and 'restarting anyway' in warning


def test_tikv_drain_in_check_mode_changes_nothing(httpserver):
    pd = FakePd(httpserver)
    changed, _before, after, _warning = _rolling.TikvLeaders(api(pd.url, 0), 'tikv0:20160', 'test').drain(True, False)
    assert changed and after['evicting'] and pd.evicting == set() and pd.kv == {}


def test_release_removes_only_what_this_collection_marked(httpserver):
    pd = FakePd(httpserver)
    for address in ('tikv0:20160', 'tikv1:20160'):
        _rolling.TikvLeaders(api(pd.url), address, 'test').drain(False, False)
    pd.evicting.add(5)  # a DBA's own eviction: no marker
    changed, before, after, _warning = _rolling.TikvLeaders(api(pd.url), 'tikv0:20160', 'test').release(False)
    assert changed and before == {'marked': [1]} and after == {'marked': []}
    assert pd.evicting == {4, 5}
    changed, before, _after, _warning = _rolling.TikvLeaders(api(pd.url), None, 'test').release(False)
    assert changed and before == {'marked': [4]}
    assert pd.evicting == {5} and pd.kv == {}
    assert _rolling.TikvLeaders(api(pd.url), None, 'test').release(False)[0] is False


def test_release_tolerates_a_scheduler_already_gone(httpserver):
    pd = FakePd(httpserver)
    _rolling.TikvLeaders(api(pd.url), 'tikv2:20160', 'test').drain(False, False)
    pd.evicting.clear()  # removed by hand meanwhile
    changed, _before, _after, _warning = _rolling.TikvLeaders(api(pd.url), None, 'test').release(False)
    assert changed and pd.kv == {}


def test_pd_drain_moves_leadership_to_a_healthy_member(httpserver):
    pd = FakePd(httpserver)
    pd.health['pd1'] = False
    changed, before, after, _warning = _rolling.PdLeader(api(pd.url), 'pd0').drain(False)
    assert changed and before == {'leader': 'pd0'} and after == {'leader': 'pd2'}
    assert ('POST', '/pd/api/v1/leader/transfer/pd2') in pd.log
    assert _rolling.PdLeader(api(pd.url), 'pd1').drain(False)[0] is False  # a follower needs nothing


def test_pd_drain_falls_back_to_resign(httpserver):
    pd = FakePd(httpserver)
    pd.transfer_status = 500
    changed, _before, after, _warning = _rolling.PdLeader(api(pd.url), 'pd0').drain(False)
    assert changed and after['leader'] != 'pd0' and ('POST', '/pd/api/v1/leader/resign') in pd.log


def test_pd_drain_refuses_when_no_other_member_is_healthy(httpserver):
    pd = FakePd(httpserver)
    pd.health.update(pd1=False, pd2=False)
    with pytest.raises(_rolling.RollError, match='no other member is healthy'):
        _rolling.PdLeader(api(pd.url), 'pd0').drain(False)


class FakeCdc:
    def __init__(self, server, tables=4, drain_status=202):
        self.url = server.url_for('').rstrip('/')
        self.captures = [{'id': 'c0', 'address': 'cdc0:8300', 'is_owner': True}, {'id': 'c1', 'address': 'cdc1:8300', 'is_owner': False}]
        self.tables = {'c0': tables, 'c1': tables}
        self.drain_status = drain_status
        server.expect_request(re.compile('^/.*')).respond_with_handler(self.handle)

    def handle(self, request):
        if request.path == '/api/v2/captures':
            return Response(json.dumps({'total': 2, 'items': self.captures}), content_type='application/json')
        if request.path == '/api/v1/owner/resign':
            for capture in self.captures:
                capture['is_owner'] = not capture['is_owner']
            return Response('{}', status=202, content_type='application/json')
        if request.path == '/api/v1/captures/drain':
            if self.drain_status != 202:
                return Response('404 page not found', status=self.drain_status)
            target = json.loads(request.get_data(as_text=True))['capture_id']
            count = self.tables[target]
            self.tables[target] = max(0, count - 2)
            return Response(json.dumps({'current_table_count': count}), status=202, content_type='application/json')
        return Response('not found', status=404)


def test_ticdc_drain_resigns_the_owner_then_drains_its_tables(httpserver):
    cdc = FakeCdc(httpserver)
    changed, before, after, warning = _rolling.TicdcCapture(api(cdc.url), 'cdc0:8300').drain(False, False)
    assert changed and warning is None
    assert before == {'capture': 'c0', 'owner': True, 'captures': 2}
    assert after['tables'] == 0 and cdc.tables['c0'] == 0
    assert [c['id'] for c in cdc.captures if c['is_owner']] == ['c1']


def test_ticdc_without_a_drain_api_restarts_hard_with_a_warning(httpserver):
    cdc = FakeCdc(httpserver, drain_status=404)
    changed, _before, _after, warning = _rolling.TicdcCapture(api(cdc.url), 'cdc1:8300').drain(False, False)
    assert changed and 'no capture drain API' in warning
