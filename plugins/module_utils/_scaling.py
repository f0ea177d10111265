# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)

# This module_utils is PRIVATE and must only be used by this collection.
# It may change at any time, without notice.

"""Scaling a cluster: what PD says about its members and stores, whether a scale-in is safe, and
the steps that retire a PD member or a store.

TiUP's scale-in (pingcap/tiup pkg/cluster/operation/scale_in.go; ../shared/reference/operations.md
section 3) and PD's own rules (tikv/pd server/api/store.go, server/api/member.go,
server/cluster/cluster.go):

* a TiKV or TiFlash store is taken offline with ``DELETE /pd/api/v1/store/{id}`` (Up -> Offline);
  PD moves its regions to other stores and buries it (Tombstone) once none is left; the process can
  then stop, and ``DELETE /pd/api/v1/stores/remove-tombstone`` forgets it (TiUP's ``prune``). PD
  refuses the offline when fewer Up stores than ``max-replicas`` would stay; a TiFlash store holds
  the learners of tables with TiFlash replicas, so fewer TiFlash stores than the largest replica
  count in use can never be emptied (pingcap/docs scale-tidb-using-tiup.md);
* a PD member leaves with ``DELETE /pd/api/v1/members/name/{name}``; TiUP moves leadership away
  from it first and removes the leader last.

Pure functions read payloads and plan; the classes talk HTTP under one deadline (``_rolling.Api``).
"""

from __future__ import annotations

import time

from ansible_collections.tidbops.cluster.plugins.module_utils import _topology as topo
from ansible_collections.tidbops.cluster.plugins.module_utils._readiness import store_engine
from ansible_collections.tidbops.cluster.plugins.module_utils._rolling import PdLeader, RollError, pd_member_health

# The order of a scale-in: what serves SQL and feeds TiCI first, then the stores, PD and MinIO last.
SCALE_IN_ORDER = ('tidb', 'ticdc', 'tici_worker', 'tici_meta', 'tiflash', 'tikv', 'pd', 'minio')
# Kinds a cluster cannot lose entirely (TiUP refuses every PD and every TiKV; without TiDB nothing
# serves SQL, and TiCI meta reaches TiDB); with TiCI, its feed and both of its processes too.
KEEP_ONE = ('pd', 'tikv', 'tidb')
KEEP_ONE_WITH_TICI = ('ticdc', 'tici_meta', 'tici_worker')
STORE_KINDS = ('tikv', 'tiflash')
TOMBSTONE = 'Tombstone'


class ScaleError(RollError):
    """A scale-in step that cannot be done; the message says what was seen."""


# ---- pure readers of PD payloads --------------------------------------------------------------

def members_view(payload):
    """``GET /pd/api/v1/members``: [{name, member_id, client_urls}] and the leader's name."""
    payload = payload if isinstance(payload, dict) else {}
    members = [{'name': m.get('name') or '', 'member_id': m.get('member_id'), 'client_urls': list(m.get('client_urls') or [])}
               for m in payload.get('members') or [] if isinstance(m, dict)]
    leader = payload.get('leader') if isinstance(payload.get('leader'), dict) else {}
    return members, leader.get('name') or None


def stores_view(payload):
    """``GET /pd/api/v1/stores`` (every state): [{id, address, state, engine, region_count, leader_count}].
    An absent counter is 0 (see _rolling)."""
    found = []
    for entry in (payload or {}).get('stores') or [] if isinstance(payload, dict) else []:
        if not isinstance(entry, dict):
            continue
        store, status = entry.get('store') or {}, entry.get('status') or {}
        found.append({'id': store.get('id'), 'address': store.get('address'), 'state': store.get('state_name') or 'unknown',
                      'engine': store_engine(store), 'region_count': int(status.get('region_count') or 0),
                      'leader_count': int(status.get('leader_count') or 0)})
    return sorted(found, key=lambda s: (s['id'] is None, s['id']))


def tiflash_replicas(payload):
    """The largest TiFlash replica count in use: the largest ``count`` of the placement rules TiDB
    writes for TiFlash replicas (group ``tiflash``; pingcap/tidb pkg/ddl/placement rule for TiFlash).
    ``payload`` is ``GET /pd/api/v1/config/rules/group/tiflash``."""
    counts = [rule.get('count') for rule in payload or [] if isinstance(payload, list) and isinstance(rule, dict)]
    return max([c for c in counts if isinstance(c, int) and not isinstance(c, bool)] or [0])


def store_for(stores, address):
    """The store PD keeps for ``address``: one that is not Tombstone, else the newest Tombstone, else None."""
    mine = [s for s in stores if s['address'] == address]
    alive = [s for s in mine if s['state'] != TOMBSTONE]
    if alive:
        return alive[-1]
    return mine[-1] if mine else None


# ---- the plan --------------------------------------------------------------------------------

def _names_problem(names, instances):
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        return 'tidb_scale_in: expected a non-empty list of inventory host names, got %r' % (names,)
    unknown = [n for n in names if n not in instances]
    if unknown:
        groups = ', '.join(topo.kind(k).group for k in topo.NAMES)
        return 'tidb_scale_in: %s not in the inventory (expected hosts of %s)' % (', '.join(unknown), groups)
    return None


def scale_in_plan(model, names, info):
    """{problems, steps, remaining} of removing the inventory hosts ``names`` from the cluster.

    ``model``: the cluster model (_model.build) of the inventory that still lists them; ``info``:
    tidbops.cluster.pd_info's result. ``steps``: [{name, kind, address, pd_name, store}] in
    SCALE_IN_ORDER, inventory order within a kind, the PD leader last (on Kubernetes: the highest
    ordinal first). ``remaining``: {kind: names}.
    Every rule is checked and every broken one reported; no step is planned when one is.
    """
    instances = model.get('instances') or {}
    problem = _names_problem(names, instances)
    if problem:
        return {'problems': [problem], 'steps': [], 'remaining': {}}
    problems = []
    removing = list(dict.fromkeys(names))
    members = model.get('members') or {}
    remaining = dict((kind, [h for h in hosts if h not in removing]) for kind, hosts in members.items())
    by_kind = dict((kind, [h for h in hosts if h in removing]) for kind, hosts in members.items())
    keep = KEEP_ONE + (KEEP_ONE_WITH_TICI if model.get('tici_enabled') else ())
    for kind in keep:
        if by_kind.get(kind) and not remaining.get(kind):
            problems.append('tidb_scale_in: removing %s would leave no %s (%s)%s' % (
                ', '.join(by_kind[kind]), topo.kind(kind).title, topo.kind(kind).group,
                '; TiCI needs one while tici_enabled is true' if kind in KEEP_ONE_WITH_TICI else ''))
    if model.get('backend') == 'kubernetes':
        problems += _ordinal_problems(members, by_kind, remaining)
    s3 = model.get('s3') or {}
    for host in by_kind.get('minio') or []:
        if model.get('tici_enabled') and s3.get('endpoint') == 'http://%s' % instances[host].get('addr'):
            problems.append('tidb_scale_in: %s is the MinIO server that holds TiCI\'s objects (tici_s3.endpoint %s); it cannot '
                            'be removed while tici_enabled is true' % (host, s3['endpoint']))
    if not info.get('reachable'):
        problems.append('tidb_scale_in: PD does not answer (%s), and a scale-in needs it to move data and members safely'
                        % (info.get('error') or 'no endpoint answered'))
        return {'problems': problems, 'steps': [], 'remaining': remaining}
    stores = info.get('stores') or []
    problems += _store_problems(instances, by_kind, remaining, stores, info)
    problems += _pd_problems(instances, by_kind, info)
    if problems:
        return {'problems': problems, 'steps': [], 'remaining': remaining}
    steps = []
    by_ordinal = model.get('backend') == 'kubernetes'
    for kind in SCALE_IN_ORDER:
        def order(host, kind=kind):
            # A StatefulSet drops its highest ordinal first; elsewhere the PD leader goes last (its
            # leadership moves away before it leaves either way).
            if by_ordinal:
                return (-members[kind].index(host),)
            return (kind == 'pd' and instances[host].get('pd_name') == info.get('leader'), members[kind].index(host))
        for host in sorted(by_kind.get(kind) or [], key=order):
            record = instances[host]
            step = {'name': host, 'kind': kind, 'address': record.get('addr')}
            if kind == 'pd':
                step['pd_name'] = record['pd_name']
            if kind in STORE_KINDS:
                store = store_for(stores, record.get('addr'))
                step['store'] = store['id'] if store else None
            steps.append(step)
    return {'problems': [], 'steps': steps, 'remaining': remaining}


def _ordinal_problems(members, by_kind, remaining):
    """A StatefulSet scales in from its highest ordinal: the hosts removed of a kind must be its last ones."""
    problems = []
    for kind, removed in sorted(by_kind.items()):
        last = members[kind][len(remaining[kind]):]
        if removed and last != removed:
            problems.append('tidb_scale_in: on Kubernetes a StatefulSet removes its highest ordinals first; of %s remove the '
                            'last %d hosts (%s), not %s' % (topo.kind(kind).group, len(removed), ', '.join(last), ', '.join(removed)))
    return problems


def _store_problems(instances, by_kind, remaining, stores, info):
    problems = []
    removing_addresses = set(instances[h].get('addr') for kind in STORE_KINDS for h in by_kind.get(kind) or [])
    for kind, need, why in (('tikv', int(info.get('max_replicas') or 0), "PD's max-replicas"),
                            ('tiflash', int(info.get('tiflash_replicas') or 0), 'the largest TiFlash replica count in use')):
        if not by_kind.get(kind):
            continue
        engine = None if kind == 'tikv' else 'tiflash'
        up = sorted(s['address'] for s in stores
                    if s['engine'] == engine and s['state'] == 'Up' and s['address'] not in removing_addresses)
        if len(up) < need:
            problems.append('tidb_scale_in: removing %s would leave %d %s store%s Up (%s), fewer than %s (%d); '
                            'PD could not move their replicas anywhere%s' % (
                                ', '.join(by_kind[kind]), len(up), topo.kind(kind).title, '' if len(up) == 1 else 's',
                                ', '.join(up) or 'none', why, need,
                                '' if kind == 'tikv' else '; lower the replicas first (ALTER TABLE ... SET TIFLASH REPLICA n)'))
    return problems


def _pd_problems(instances, by_kind, info):
    leaving = [instances[h]['pd_name'] for h in by_kind.get('pd') or []]
    if not leaving:
        return []
    health = dict((m['name'], bool(m.get('health'))) for m in info.get('members') or [])
    current = len(health)
    quorum = current // 2 + 1
    staying_healthy = sorted(name for name, ok in health.items() if ok and name not in leaving)
    if len(staying_healthy) < quorum:
        return ['tidb_scale_in: removing PD %s would leave %d healthy of the %d current members (%s), below their quorum of %d'
                % (', '.join(leaving), len(staying_healthy), current, ', '.join(staying_healthy) or 'none', quorum)]
    return []


# ---- HTTP: reading PD, retiring members and stores ---------------------------------------------

def read_pd(api):
    """Members (with health), leader, stores of every state, max-replicas and the TiFlash replica
    count of a PD that answers: the result of tidbops.cluster.pd_info."""
    members, leader = members_view(api.json('GET', '/pd/api/v1/members'))
    health = pd_member_health(api.json('GET', '/pd/api/v1/health'))
    for member in members:
        member['health'] = health.get(member['name'], False)
    response = api.send('GET', '/pd/api/v1/stores?state=0&state=1&state=2')
    # Before the first store registers, PD answers 500 "TiKV cluster not bootstrapped".
    stores = stores_view(response.json) if response.ok else []
    if not response.ok and 'not bootstrapped' not in (response.body or ''):
        raise ScaleError('PD GET /pd/api/v1/stores: %s' % response.describe())
    replicate = api.json('GET', '/pd/api/v1/config/replicate')
    response = api.send('GET', '/pd/api/v1/config/rules/group/tiflash', accept=(200, 404, 412))
    replicas = tiflash_replicas(response.json) if response.ok else 0
    return {'reachable': True, 'members': members, 'leader': leader, 'stores': stores,
            'max_replicas': int(replicate.get('max-replicas') or 0) if isinstance(replicate, dict) else 0,
            'tiflash_replicas': replicas}


class StoreRetire:
    """Take a TiKV or TiFlash store offline, wait until PD buries it, and forget its tombstone."""

    def __init__(self, api, address):
        self.api = api
        self.address = address

    def store(self):
        return store_for(stores_view(self.api.json('GET', '/pd/api/v1/stores?state=0&state=1&state=2')), self.address)

    def _offline(self, store):
        response = self.api.send('DELETE', '/pd/api/v1/store/%s' % store['id'])
        if not response.ok:
            raise ScaleError('PD refused to take store %s (%s) offline: %s' % (store['id'], self.address, response.describe()))

    def offline(self, check_mode):
        store = self.store()
        before = {'store': store and store['id'], 'state': store['state'] if store else 'absent'}
        if store is None or store['state'] != 'Up' and store['state'] not in ('Disconnected', 'Down'):
            return False, before, before
        if not check_mode:
            self._offline(store)
        return True, before, dict(before, state='Offline')

    def tombstone(self, check_mode):
        """Offline, then wait until Tombstone; (changed, before, after, progress)."""
        changed, before, after = self.offline(check_mode)
        if before['state'] in ('absent', TOMBSTONE):
            return changed, before, before, []
        if check_mode:
            return True, before, dict(after, state=TOMBSTONE, region_count=0), []
        progress = []
        while True:
            store = self.store()
            if store is None or store['state'] == TOMBSTONE:
                return True, before, {'store': before['store'], 'state': TOMBSTONE if store else 'absent', 'region_count': 0}, progress
            if not progress or progress[-1]['region_count'] != store['region_count']:
                progress.append({'elapsed': round(self.api.deadline.elapsed(), 1), 'region_count': store['region_count']})
                self.api.deadline.restart_backoff()  # regions are moving: keep looking often
            if not self.api.deadline.pause():
                first = progress[0]['region_count'] if progress else store['region_count']
                raise ScaleError('store %s (%s) is still %s with %d regions left (it had %d) after tidb_scale_in_timeout; '
                                 'PD moves regions only to other Up stores that do not hold them yet'
                                 % (store['id'], self.address, store['state'], store['region_count'], first))

    def removed(self, check_mode):
        """Forget the tombstone (TiUP's prune); only once the store is Tombstone."""
        store = self.store()
        before = {'store': store and store['id'], 'state': store['state'] if store else 'absent'}
        if store is None:
            return False, before, before
        if store['state'] != TOMBSTONE:
            raise ScaleError('store %s (%s) is %s, not Tombstone: its regions must move away first (state=tombstone)'
                             % (store['id'], self.address, store['state']))
        if not check_mode:
            response = self.api.send('DELETE', '/pd/api/v1/stores/remove-tombstone')
            if not response.ok:
                raise ScaleError('PD remove-tombstone: %s' % response.describe())
        return True, before, {'store': store['id'], 'state': 'absent'}


class PdMemberRetire:
    """Move leadership away from a PD member, delete it, and wait until the others no longer list it."""

    def __init__(self, api, name):
        self.api = api
        self.name = name

    def names(self):
        return [m['name'] for m in members_view(self.api.json('GET', '/pd/api/v1/members'))[0]]

    def removed(self, check_mode):
        names = self.names()
        before = {'member': self.name in names, 'members': len(names)}
        if self.name not in names:
            return False, before, before, None
        if len(names) == 1:
            raise ScaleError('PD %s is the only member; a cluster cannot remove its last PD' % self.name)
        if check_mode:
            return True, before, {'member': False, 'members': len(names) - 1}, None
        _moved, _lead_before, _lead_after, warning = PdLeader(self.api, self.name).drain(False)
        response = self.api.send('DELETE', '/pd/api/v1/members/name/%s' % self.name, accept=(200, 404))
        if not response.ok and response.status != 404:
            raise ScaleError('PD refused to delete member %s: %s' % (self.name, response.describe()))
        while True:
            names = self.names()
            if self.name not in names:
                return True, before, {'member': False, 'members': len(names)}, warning
            if not self.api.deadline.pause():
                raise ScaleError('PD still lists member %s after the timeout (members: %s)' % (self.name, ', '.join(names)))


def elapsed_since(started):
    return round(time.monotonic() - started, 3)
