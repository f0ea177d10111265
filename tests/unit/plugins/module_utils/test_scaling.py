# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""Scale-in rules and steps (module_utils/_scaling.py) and PD's first-start flags (_process)."""

from __future__ import annotations

import json
import re

import pytest

from werkzeug import Response

from ansible_collections.tidbops.cluster.plugins.filter.container import container_command
from ansible_collections.tidbops.cluster.plugins.module_utils import _process, _rolling, _scaling
from ansible_collections.tidbops.cluster.plugins.module_utils._http import HttpClient
from ansible_collections.tidbops.cluster.plugins.module_utils._waiter import Deadline

KINDS = {'pd': ['pd0', 'pd1', 'pd2', 'pd3', 'pd4'], 'tikv': ['tikv0', 'tikv1', 'tikv2', 'tikv3'], 'tidb': ['tidb0', 'tidb1'],
         'tiflash': ['tiflash0', 'tiflash1'], 'ticdc': ['ticdc0', 'ticdc1'], 'tici_meta': ['meta0'], 'tici_worker': ['worker0'],
         'minio': ['minio0']}


def model(tici=True):
    instances, members = {}, {}
    for kind, hosts in KINDS.items():
        members[kind] = list(hosts)
        for index, host in enumerate(hosts):
            record = {'name': host, 'kind': kind, 'addr': '%s:%d' % (host, 20160 + index), 'url': 'http://%s:%d' % (host, 2379)}
            if kind == 'pd':
                record['pd_name'] = host
            instances[host] = record
    return {'instances': instances, 'members': members, 'tici_enabled': tici,
            's3': {'endpoint': 'http://' + instances['minio0']['addr']}}


def info(leader='pd0', unhealthy=(), max_replicas=3, tiflash_replicas=1, offline=()):
    cluster = model()
    stores = []
    for index, host in enumerate(KINDS['tikv'] + KINDS['tiflash']):
        stores.append({'id': index + 1, 'address': cluster['instances'][host]['addr'], 'state': 'Offline' if host in offline else 'Up',
                       'engine': 'tiflash' if host.startswith('tiflash') else None, 'region_count': 10, 'leader_count': 3})
    return {'reachable': True, 'leader': leader, 'max_replicas': max_replicas, 'tiflash_replicas': tiflash_replicas, 'stores': stores,
            'members': [{'name': n, 'client_urls': ['http://%s:2379' % n], 'health': n not in unhealthy} for n in KINDS['pd']]}


def test_the_steps_go_kind_by_kind_with_the_pd_leader_last():
    plan = _scaling.scale_in_plan(model(), ['pd3', 'tikv3', 'tidb1', 'pd1'], info(leader='pd1'))
    assert plan['problems'] == []
    assert [s['name'] for s in plan['steps']] == ['tidb1', 'tikv3', 'pd3', 'pd1']
    tikv = plan['steps'][1]
    assert tikv == {'name': 'tikv3', 'kind': 'tikv', 'address': 'tikv3:20163', 'store': 4}
    assert plan['steps'][2]['pd_name'] == 'pd3'
    assert plan['remaining']['pd'] == ['pd0', 'pd2', 'pd4'] and plan['remaining']['tikv'] == ['tikv0', 'tikv1', 'tikv2']


@pytest.mark.parametrize('names, pd, expected', [
    (['tikv9'], info(), ['tikv9 not in the inventory']),
    ([], info(), ['expected a non-empty list']),
    ('tikv3', info(), ['expected a non-empty list']),
    (['tikv2', 'tikv3'], info(), ['would leave 2 TiKV stores Up (tikv0:20160, tikv1:20161), fewer than PD\'s max-replicas (3)']),
    (['tikv3'], info(offline=('tikv2',)), ['would leave 2 TiKV stores Up']),
    (['tiflash1'], info(tiflash_replicas=2), ['would leave 1 TiFlash store Up (tiflash0:20160), fewer than the largest TiFlash '
                                              'replica count in use (2)']),
    (['pd2', 'pd3', 'pd4'], info(), ['removing PD pd2, pd3, pd4 would leave 2 healthy of the 5 current members (pd0, pd1), '
                                     'below their quorum of 3']),
    (['pd4'], info(unhealthy=('pd0', 'pd1')), ['would leave 2 healthy of the 5 current members']),
    (['ticdc0', 'ticdc1'], info(), ['would leave no TiCDC (cdc_servers); TiCI needs one']),
    (['meta0'], info(), ['would leave no TiCI meta']),
    (['worker0'], info(), ['would leave no TiCI worker']),
    (['tidb0', 'tidb1'], info(), ['would leave no TiDB']),
    (['minio0'], info(), ['holds TiCI\'s objects']),
    (['tikv3'], {'reachable': False, 'error': 'connection refused'}, ['PD does not answer (connection refused)']),
    # Every broken rule at once.
    (['tikv1', 'tikv2', 'tikv3', 'pd2', 'pd3', 'pd4'], info(), ['would leave 1 TiKV store Up', 'below their quorum']),
])
def test_each_refusal_names_the_hosts_and_the_rule(names, pd, expected):
    plan = _scaling.scale_in_plan(model(), names, pd)
    assert plan['steps'] == []
    assert len(plan['problems']) == len(expected), plan['problems']
    for problem, text in zip(plan['problems'], expected):
        assert text in problem and problem.startswith('tidb_scale_in: ')


def test_on_kubernetes_only_the_highest_ordinals_go():
    cluster = dict(model(), backend='kubernetes')
    plan = _scaling.scale_in_plan(cluster, ['tikv1'], info())
    assert plan['problems'] == ['tidb_scale_in: on Kubernetes a StatefulSet removes its highest ordinals first; of tikv_servers '
                                'remove the last 1 hosts (tikv3), not tikv1']
    assert _scaling.scale_in_plan(cluster, ['tikv3'], info())['problems'] == []
    # The highest ordinal first, whoever leads.
    assert [s['name'] for s in _scaling.scale_in_plan(cluster, ['pd3', 'pd4'], info(leader='pd3'))['steps']] == ['pd4', 'pd3']


def test_without_tici_the_last_ticdc_may_go():
    plan = _scaling.scale_in_plan(model(tici=False), ['ticdc0', 'ticdc1', 'minio0'], info())
    assert plan['problems'] == [] and [s['name'] for s in plan['steps']] == ['ticdc0', 'ticdc1', 'minio0']


def test_payload_readers():
    members, leader = _scaling.members_view({'members': [{'name': 'pd0', 'member_id': 7, 'client_urls': ['http://a:2379']}],
                                             'leader': {'name': 'pd0'}})
    assert members == [{'name': 'pd0', 'member_id': 7, 'client_urls': ['http://a:2379']}] and leader == 'pd0'
    stores = _scaling.stores_view({'stores': [
        {'store': {'id': 9, 'address': 'a:1', 'state_name': 'Tombstone'}, 'status': {}},
        {'store': {'id': 2, 'address': 'a:1', 'state_name': 'Offline', 'labels': [{'key': 'engine', 'value': 'tiflash'}]},
         'status': {'region_count': 4}}]})
    assert [(s['id'], s['state'], s['engine'], s['region_count']) for s in stores] == [(2, 'Offline', 'tiflash', 4), (9, 'Tombstone', None, 0)]
    assert _scaling.store_for(stores, 'a:1')['id'] == 2  # the live one, not the tombstone
    assert _scaling.store_for(stores[1:], 'a:1')['id'] == 9
    assert _scaling.store_for(stores, 'b:1') is None
    assert _scaling.tiflash_replicas([{'group_id': 'tiflash', 'count': 1}, {'count': 2}, {'count': True}]) == 2
    assert _scaling.tiflash_replicas('Placement rules feature is disabled.') == 0


# ---- PD's first-start flags -------------------------------------------------------------------

MEMBERSHIP = {'bootstrap': ['--initial-cluster=pd0=http://a:2380,pd1=http://b:2380'], 'client_url': 'http://b:2379'}


def test_membership_bootstraps_without_members_and_joins_the_others_otherwise():
    assert _process.membership_args(MEMBERSHIP, None) == MEMBERSHIP['bootstrap']
    assert _process.membership_args(MEMBERSHIP, []) == MEMBERSHIP['bootstrap']
    members = [{'name': 'pd0', 'client_urls': ['http://a:2379']}, {'name': 'pd1', 'client_urls': ['http://b:2379']},
               {'name': 'pd2', 'client_urls': ['http://c:2379', 'http://a:2379']}]
    # Its own URL is left out: PD refuses "join self".
    assert _process.membership_args(MEMBERSHIP, members) == ['--join=http://a:2379,http://c:2379']
    # The only member is itself (a single PD restarting): the bootstrap list, which PD ignores with data.
    assert _process.membership_args(MEMBERSHIP, members[1:2]) == MEMBERSHIP['bootstrap']
    assert _process.membership_args(None, members) == []


def test_the_first_start_flags_stay_out_of_the_spec_hash():
    spec = {'command': ['--name=pd1'], 'membership': MEMBERSHIP, 'hash': 'h'}
    assert container_command(spec) == ['--name=pd1'] + MEMBERSHIP['bootstrap']
    assert container_command(spec, [{'name': 'pd0', 'client_urls': ['http://a:2379']}]) == ['--name=pd1', '--join=http://a:2379']
    assert container_command({'command': ['server'], 'membership': None}) == ['server']


# ---- HTTP -------------------------------------------------------------------------------------

class FakePd:
    """Stores that lose ``rate`` regions per GET once offline, remove-tombstone, members and their deletion."""

    def __init__(self, server, rate=4):
        self.url = server.url_for('').rstrip('/')
        self.stores = {1: ['tikv0:20160', 'Up', 8], 2: ['tikv1:20160', 'Up', 8]}
        self.members = ['pd0', 'pd1', 'pd2']
        self.leader = 'pd0'
        self.rate = rate
        self.log = []
        server.expect_request(re.compile('^/.*')).respond_with_handler(self.handle)

    @staticmethod
    def _json(value, status=200):
        return Response(json.dumps(value), status=status, content_type='application/json')

    def handle(self, request):
        path = request.path
        self.log.append((request.method, path))
        if path == '/pd/api/v1/stores':
            for store in self.stores.values():
                if store[1] == 'Offline':
                    store[2] = max(0, store[2] - self.rate)
                    store[1] = 'Tombstone' if store[2] == 0 else 'Offline'
            return self._json({'count': len(self.stores), 'stores': [
                {'store': {'id': i, 'address': s[0], 'state_name': s[1]}, 'status': {'region_count': s[2]} if s[2] else {}}
                for i, s in sorted(self.stores.items())]})
        match = re.match(r'^/pd/api/v1/store/(\d+)$', path)
        if match and request.method == 'DELETE':
            store = self.stores[int(match.group(1))]
            if store[1] == 'Tombstone':
                return self._json('[PD:core:ErrStoreRemoved]store %s has been removed' % match.group(1), 410)
            store[1] = 'Offline'
            return self._json('The store is set as Offline.')
        if path == '/pd/api/v1/stores/remove-tombstone':
            self.stores = dict((i, s) for i, s in self.stores.items() if s[1] != 'Tombstone')
            return self._json('The tombstone stores are removed.')
        if path == '/pd/api/v1/members':
            return self._json({'members': [{'name': n, 'client_urls': ['http://%s:2379' % n]} for n in self.members],
                               'leader': {'name': self.leader}})
        if path == '/pd/api/v1/leader':
            return self._json({'name': self.leader})
        if path == '/pd/api/v1/health':
            return self._json([{'name': n, 'health': True} for n in self.members])
        if path.startswith('/pd/api/v1/leader/transfer/'):
            self.leader = path.rsplit('/', 1)[-1]
            return self._json('The transfer command is submitted.')
        match = re.match(r'^/pd/api/v1/members/name/(.+)$', path)
        if match and request.method == 'DELETE':
            if match.group(1) not in self.members:
                return self._json('not found, pd: %s' % match.group(1), 404)
            self.members.remove(match.group(1))
            return self._json('removed, pd: %s' % match.group(1))
        return self._json('unknown path', 404)


def api(url, timeout=5.0):
    return _rolling.Api(HttpClient(), [url], Deadline(timeout, 0.01, 0.02), 'PD')


def test_a_store_goes_offline_then_tombstone_with_progress_then_is_forgotten(httpserver):
    pd = FakePd(httpserver)
    store = _scaling.StoreRetire(api(pd.url), 'tikv1:20160')
    changed, before, after, progress = store.tombstone(False)
    assert changed and before == {'store': 2, 'state': 'Up'} and after['state'] == 'Tombstone'
    assert [p['region_count'] for p in progress] == [4]  # 8 -> 4 -> Tombstone, one sample per change seen
    assert ('DELETE', '/pd/api/v1/store/2') in pd.log
    # Again: nothing to take offline, nothing to wait for.
    assert store.tombstone(False)[0] is False
    changed, before, after = store.removed(False)
    assert changed and after == {'store': 2, 'state': 'absent'} and 2 not in pd.stores
    assert store.removed(False)[0] is False


def test_a_store_that_is_not_tombstone_is_never_forgotten(httpserver):
    pd = FakePd(httpserver)
    with pytest.raises(_scaling.ScaleError, match='is Up, not Tombstone'):
        _scaling.StoreRetire(api(pd.url), 'tikv0:20160').removed(False)
    assert ('DELETE', '/pd/api/v1/stores/remove-tombstone') not in pd.log


def test_the_tombstone_wait_fails_with_the_regions_left(httpserver):
    pd = FakePd(httpserver, rate=0)
    with pytest.raises(_scaling.ScaleError, match=r'store 1 \(tikv0:20160\) is still Offline with 8 regions left \(it had 8\)'):
        _scaling.StoreRetire(api(pd.url, timeout=0.2), 'tikv0:20160').tombstone(False)


def test_check_mode_takes_nothing_offline(httpserver):
    pd = FakePd(httpserver)
    changed, _before, after, _progress = _scaling.StoreRetire(api(pd.url, timeout=0), 'tikv0:20160').tombstone(True)
    assert changed and after['state'] == 'Tombstone'
    assert [m for m, _p in pd.log] == ['GET'] and pd.stores[1][1] == 'Up'


def test_a_leading_pd_member_hands_over_then_leaves(httpserver):
    pd = FakePd(httpserver)
    changed, before, after, _warning = _scaling.PdMemberRetire(api(pd.url), 'pd0').removed(False)
    assert changed and before == {'member': True, 'members': 3} and after == {'member': False, 'members': 2}
    assert pd.leader != 'pd0' and pd.members == ['pd1', 'pd2']
    assert pd.log.index(('POST', '/pd/api/v1/leader/transfer/pd1')) < pd.log.index(('DELETE', '/pd/api/v1/members/name/pd0'))
    assert _scaling.PdMemberRetire(api(pd.url), 'pd0').removed(False)[0] is False


def test_the_last_pd_member_is_refused(httpserver):
    pd = FakePd(httpserver)
    pd.members = ['pd0']
    with pytest.raises(_scaling.ScaleError, match='only member'):
        _scaling.PdMemberRetire(api(pd.url), 'pd0').removed(False)


def test_read_pd_tolerates_a_cluster_without_stores(httpserver):
    def handle(request):
        answers = {'/pd/api/v1/members': ({'members': [{'name': 'pd0', 'client_urls': ['http://x:2379']}], 'leader': {'name': 'pd0'}}, 200),
                   '/pd/api/v1/health': ([{'name': 'pd0', 'health': True}], 200),
                   '/pd/api/v1/stores': ('[PD:cluster:ErrNotBootstrapped]TiKV cluster not bootstrapped, please start TiKV first', 500),
                   '/pd/api/v1/config/replicate': ({'max-replicas': 3}, 200),
                   '/pd/api/v1/config/rules/group/tiflash': ([], 200)}
        body, status = answers[request.path]
        return Response(json.dumps(body), status=status, content_type='application/json')
    httpserver.expect_request(re.compile('^/.*')).respond_with_handler(handle)
    found = _scaling.read_pd(api(httpserver.url_for('').rstrip('/'), timeout=0))
    assert found['reachable'] and found['stores'] == [] and found['max_replicas'] == 3 and found['tiflash_replicas'] == 0
    assert found['members'] == [{'name': 'pd0', 'member_id': None, 'client_urls': ['http://x:2379'], 'health': True}]
