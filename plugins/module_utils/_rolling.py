# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)

# This module_utils is PRIVATE and must only be used by this collection.
# It may change at any time, without notice.

"""Rolling restarts and upgrades: the order, the safety checks, and what moves away before a stop.

TiUP's procedure (pingcap/tiup pkg/cluster/operation/upgrade.go and the PreRestart/PostRestart hooks
of pkg/cluster/spec/pd.go, tikv.go, cdc.go; ../shared/reference/operations.md section 3):

* PD: the leader goes last; before it stops, leadership moves to a healthy member
  (``POST /pd/api/v1/leader/transfer/{name}``, or ``/leader/resign``) and the run waits until another
  member leads.
* TiKV: before each stop an ``evict-leader-scheduler`` for its store (``POST /pd/api/v1/schedulers``),
  then the store's ``leader_count`` must reach 0; after the store is Up again the scheduler goes
  (``DELETE /pd/api/v1/schedulers/evict-leader-scheduler-{id}``). An absent counter reads as 0 (PD
  v3 omitted zero counters; the simulator still does, the harder case for a reader).
  Unlike TiUP, every scheduler this collection adds is recorded in PD's etcd (``/v3/kv/put`` under
  ``MARKER_PREFIX``), so a run killed mid-way leaves a trace the next run removes, and a scheduler a
  DBA added by hand is never touched.
* TiCDC: the owner goes last; before a capture stops, ownership is resigned if it holds it
  (``POST /api/v1/owner/resign``) and its tables are drained (``PUT /api/v1/captures/drain`` until
  ``current_table_count`` is 0). A TiCDC without these APIs (404) is restarted hard, as TiUP does.

Pure functions read payloads; the classes talk HTTP under one deadline.
"""

from __future__ import annotations

import base64
import json
import time

from ansible_collections.tidbops.cluster.plugins.module_utils._http import join_url
from ansible_collections.tidbops.cluster.plugins.module_utils._readiness import store_engine, store_rank
from ansible_collections.tidbops.cluster.plugins.module_utils._waiter import Deadline, retry

MARKER_PREFIX = '/tidbops/evict-leader/'
EVICT_LEADER = 'evict-leader-scheduler'
DRAINED = 'drained'
RELEASED = 'released'
POLL = 0.5


class RollError(Exception):
    """A step that cannot be done safely; the message says what was seen."""


# ---- pure readers of payloads ---------------------------------------------------------------

def pd_leader_name(payload):
    """``GET /pd/api/v1/leader``: the leader's name, or None."""
    return payload.get('name') or None if isinstance(payload, dict) else None


def pd_member_health(payload):
    """``GET /pd/api/v1/health``: {member name: healthy}."""
    if not isinstance(payload, list):
        return {}
    return dict((item.get('name'), bool(item.get('health'))) for item in payload if isinstance(item, dict) and item.get('name'))


def stores_by_address(payload):
    """``GET /pd/api/v1/stores``: {address: {id, state, leader_count, region_count}}, counters 0 when absent."""
    found = {}
    for entry in (payload or {}).get('stores') or [] if isinstance(payload, dict) else []:
        if not isinstance(entry, dict):
            continue
        store, status = entry.get('store') or {}, entry.get('status') or {}
        if not store.get('address'):
            continue
        view = {'id': store.get('id'), 'state': store.get('state_name') or 'unknown', 'engine': store_engine(store),
                'leader_count': int(status.get('leader_count') or 0), 'region_count': int(status.get('region_count') or 0)}
        # Several stores can share an address (a Tombstone left behind): keep the most alive one.
        known = found.get(store['address'])
        if known is None or store_rank(store) < store_rank({'state_name': known['state']}):
            found[store['address']] = view
    return found


def store_view(payload):
    """``GET /pd/api/v1/store/{id}``: {id, state, leader_count, region_count}."""
    payload = payload if isinstance(payload, dict) else {}
    store, status = payload.get('store') or {}, payload.get('status') or {}
    return {'id': store.get('id'), 'state': store.get('state_name') or 'unknown',
            'leader_count': int(status.get('leader_count') or 0), 'region_count': int(status.get('region_count') or 0)}


def evicted_store_ids(payload):
    """``GET /pd/api/v1/scheduler-config/evict-leader-scheduler/list``: the store ids it evicts."""
    ranges = payload.get('store-id-ranges') if isinstance(payload, dict) else None
    ids = set()
    for key in (ranges or {}):
        try:
            ids.add(int(key))
        except (TypeError, ValueError):
            continue
    return ids


def captures(payload):
    """TiCDC captures from ``/api/v2/captures`` ({items: [...]}) or ``/api/v1/captures`` ([...])."""
    items = payload.get('items') if isinstance(payload, dict) else payload
    return [{'id': item.get('id'), 'address': item.get('address'), 'is_owner': bool(item.get('is_owner'))}
            for item in items or [] if isinstance(item, dict) and item.get('id')]


def etcd_kvs(payload):
    """``/v3/kv/range``: {key: value} decoded from base64 (kvs is omitted when nothing matches)."""
    found = {}
    for item in (payload or {}).get('kvs') or [] if isinstance(payload, dict) else []:
        try:
            key = base64.b64decode(item.get('key', '')).decode('utf-8')
            value = base64.b64decode(item.get('value', '') or '').decode('utf-8')
        except (ValueError, UnicodeDecodeError):
            continue
        found[key] = value
    return found


def _b64(text):
    return base64.b64encode(text.encode('utf-8')).decode('ascii')


def prefix_end(prefix):
    """etcd's range end for a prefix: the prefix with its last byte incremented."""
    raw = bytearray(prefix.encode('utf-8'))
    raw[-1] += 1
    return bytes(raw).decode('utf-8')


def roll_order(instances, update_order, leaders, leader_last=True):
    """The names of ``instances`` ({name, kind}) in the order they roll.

    Kinds follow ``update_order``; within a kind the inventory order, except that a leader (a name
    in ``leaders``: the PD leader, the TiCDC owner) goes last when ``leader_last``. On Kubernetes a
    StatefulSet's partition only moves down, so pods go from the highest ordinal (``ordinal``) down.
    """
    rank = dict((kind, index) for index, kind in enumerate(update_order))
    position = dict((item['name'], index) for index, item in enumerate(instances))

    def key(item):
        within = -item['ordinal'] if item.get('ordinal') is not None else position[item['name']]
        last = 1 if leader_last and item['name'] in leaders else 0
        return (rank.get(item['kind'], len(rank)), last, within)
    return [item['name'] for item in sorted(instances, key=key)]


def pd_quorum_problem(health, rolling):
    """A problem text when an unhealthy PD member means that restarting one PD of ``rolling`` (names)
    would leave PD without a quorum. With every member healthy there is none: a cluster of one or two
    PDs loses its quorum whenever one restarts, which no order avoids (TiUP restarts it as well)."""
    if not rolling or not health:
        return None
    members = len(health)
    healthy = [name for name, ok in health.items() if ok]
    unhealthy = sorted(name for name, ok in health.items() if not ok)
    if not unhealthy:
        return None
    quorum = members // 2 + 1
    # Every PD that rolls is healthy before it stops (or it is one of the unhealthy ones).
    worst = len(healthy) - (1 if any(name in healthy for name in rolling) else 0)
    if worst < quorum:
        return ('PD %s unhealthy: with one more member restarting, %d of %d would be healthy, below the quorum of %d; '
                'bring %s back first' % (', '.join(unhealthy), worst, members, quorum, ', '.join(unhealthy)))
    return None


def tikv_replica_problem(stores, addresses, rolling):
    """A problem text when a TiKV store of ``addresses`` is not Up while TiKV instances roll."""
    if not rolling:
        return None
    bad = ['%s (%s)' % (address, stores[address]['state'] if address in stores else 'not registered')
           for address in addresses if stores.get(address, {}).get('state') != 'Up']
    if bad:
        return ('TiKV stores not Up: %s; restarting another TiKV could leave regions without a majority of their replicas; '
                'bring them back first' % ', '.join(bad))
    return None


# ---- HTTP -------------------------------------------------------------------------------------

class Api:
    """Requests to the first of several endpoints that answers (TiUP's tryURLs), under one deadline."""

    def __init__(self, client, endpoints, deadline, what):
        self.client = client
        self.endpoints = list(endpoints)
        self.deadline = deadline
        self.what = what

    def send(self, method, path, body=None, accept=(200,)):
        """The first answer with a status (any endpoint), retrying connection errors and 5xx until the deadline.

        Statuses in ``accept`` or below 500 return at once; the last response otherwise.
        """
        def answered(response):
            return response.status is not None and (response.status in accept or response.status < 500)

        def attempt():
            response = None
            for endpoint in self.endpoints:
                response = self.client.request(method, join_url(endpoint, path), body, timeout=max(self.deadline.remaining(), 1.0))
                if answered(response):
                    break
            return response
        return retry(attempt, lambda response: not answered(response), self.deadline)

    def json(self, method, path, body=None):
        response = self.send(method, path, body)
        if not response.ok:
            raise RollError('%s %s %s: %s' % (self.what, method, path, response.describe()))
        return response.json


class PdLeader:
    """Move PD leadership away from one member before it stops."""

    def __init__(self, api, member):
        self.api = api
        self.member = member

    def leader(self):
        return pd_leader_name(self.api.json('GET', '/pd/api/v1/leader'))

    def drain(self, check_mode):
        leader = self.leader()
        before = {'leader': leader}
        if leader != self.member:
            return False, before, before, None
        health = pd_member_health(self.api.json('GET', '/pd/api/v1/health'))
        others = sorted(name for name, ok in health.items() if ok and name != self.member)
        if not others:
            if len(health) <= 1:
                return False, before, before, 'PD %s is the only member: nothing to move leadership to' % self.member
            raise RollError('PD %s leads and no other member is healthy (%s): restarting it would stop the cluster'
                            % (self.member, json.dumps(health, sort_keys=True)))
        if check_mode:
            return True, before, {'leader': 'one of ' + ', '.join(others)}, None
        while True:
            # Transfer to a healthy member; PD re-elects among the others when it only resigns.
            response = self.api.send('POST', '/pd/api/v1/leader/transfer/%s' % others[0])
            if not response.ok:
                response = self.api.send('POST', '/pd/api/v1/leader/resign')
            asked = time.monotonic()
            while time.monotonic() - asked < 5.0:
                leader = self.leader()
                if leader and leader != self.member:
                    return True, before, {'leader': leader}, None
                if not self.api.deadline.pause():
                    raise RollError('PD %s still leads after the transfer timeout (last answer: %s, leader %s)'
                                    % (self.member, response.describe(), leader))
            others = others[1:] + others[:1]


class TikvLeaders:
    """Evict region leaders from one TiKV store before it stops; remove the eviction afterwards."""

    def __init__(self, api, address, marker_owner):
        self.api = api
        self.address = address
        self.marker_owner = marker_owner

    def stores(self):
        return stores_by_address(self.api.json('GET', '/pd/api/v1/stores'))

    def store(self, stores=None):
        stores = self.stores() if stores is None else stores
        if self.address not in stores:
            raise RollError('no TiKV store with the address %s in PD (stores: %s)' % (self.address, ', '.join(sorted(stores)) or 'none'))
        return stores[self.address]

    def evicting(self):
        response = self.api.send('GET', '/pd/api/v1/scheduler-config/%s/list' % EVICT_LEADER, accept=(200, 404))
        return evicted_store_ids(response.json) if response.ok else set()

    def markers(self):
        body = {'key': _b64(MARKER_PREFIX), 'range_end': _b64(prefix_end(MARKER_PREFIX))}
        return etcd_kvs(self.api.json('POST', '/v3/kv/range', body))

    def _mark(self, store_id):
        value = json.dumps({'store_id': store_id, 'address': self.address, 'by': self.marker_owner, 'since': int(time.time())})
        self.api.json('POST', '/v3/kv/put', {'key': _b64(MARKER_PREFIX + str(store_id)), 'value': _b64(value)})

    def _unmark(self, store_id):
        self.api.json('POST', '/v3/kv/deleterange', {'key': _b64(MARKER_PREFIX + str(store_id))})

    def _remove_scheduler(self, store_id):
        response = self.api.send('DELETE', '/pd/api/v1/schedulers/%s-%s' % (EVICT_LEADER, store_id), accept=(200, 404))
        # Gone already: PD answers 404 or an error naming a missing scheduler (TiUP's RemoveStoreEvict ignores both).
        if not response.ok and response.status != 404 and 'not found' not in response.body.lower():
            raise RollError('removing the %s of store %s: %s' % (EVICT_LEADER, store_id, response.describe()))

    def drain(self, check_mode, force):
        stores = self.stores()
        store = self.store(stores)
        before = {'store': store['id'], 'leader_count': store['leader_count'], 'evicting': store['id'] in self.evicting()}
        others = [address for address, view in stores.items() if address != self.address and view['engine'] is None and view['state'] == 'Up']
        if not others:
            # Nowhere to move leaders to (TiUP's PreRestart skips a single TiKV too): restart as it is.
            return False, before, before, 'TiKV %s is the only TiKV store that is Up: restarting it without moving its leaders' % self.address
        if before['evicting'] and store['leader_count'] == 0:
            return False, before, before, None
        if check_mode:
            return True, before, {'store': store['id'], 'leader_count': 0, 'evicting': True}, None
        # The marker first: a run killed between the two leaves a marker, never an unmarked scheduler.
        self._mark(store['id'])
        if not before['evicting']:
            self.api.json('POST', '/pd/api/v1/schedulers', {'name': EVICT_LEADER, 'store_id': store['id']})
        while True:
            view = store_view(self.api.json('GET', '/pd/api/v1/store/%s' % store['id']))
            if view['leader_count'] == 0:
                return True, before, {'store': store['id'], 'leader_count': 0, 'evicting': True}, None
            if not self.api.deadline.pause():
                message = ('store %s (%s) still leads %d regions after the leader transfer timeout'
                           % (store['id'], self.address, view['leader_count']))
                if force:
                    return True, before, {'store': store['id'], 'leader_count': view['leader_count'], 'evicting': True}, \
                        message + '; restarting anyway (tidb_force_restart)'
                raise RollError(message + '; set tidb_force_restart to restart it anyway')

    def release(self, check_mode):
        """Remove the eviction of this store (address given) or every one this collection left (address None)."""
        markers = self.markers()
        ids = set()
        for key in markers:
            try:
                ids.add(int(key[len(MARKER_PREFIX):]))
            except ValueError:
                continue
        if self.address is not None:
            ids &= set([self.store()['id']])
        before = {'marked': sorted(ids)}
        if not ids:
            return False, before, before, None
        if not check_mode:
            for store_id in sorted(ids):
                self._remove_scheduler(store_id)
                self._unmark(store_id)
        return True, before, {'marked': []}, None


class TicdcCapture:
    """Resign a capture's ownership and drain its tables before it stops."""

    def __init__(self, api, address):
        self.api = api
        self.address = address

    def captures(self):
        response = self.api.send('GET', '/api/v2/captures')
        if response.status == 404:
            response = self.api.send('GET', '/api/v1/captures')
        if not response.ok:
            raise RollError('TiCDC GET captures: %s' % response.describe())
        return captures(response.json)

    def drain(self, check_mode, force):
        found = self.captures()
        mine = next((c for c in found if c['address'] == self.address), None)
        before = {'capture': mine['id'] if mine else None, 'owner': bool(mine and mine['is_owner']), 'captures': len(found)}
        if mine is None:
            return False, before, before, 'no TiCDC capture advertises %s: nothing to drain' % self.address
        if len(found) < 2:
            return False, before, before, 'TiCDC %s is the only capture: restarting it without a drain' % self.address
        if check_mode:
            return True, before, dict(before, owner=False, tables=0), None
        warning = None
        if mine['is_owner']:
            response = self.api.send('POST', '/api/v1/owner/resign', accept=(200, 202, 404))
            if response.status == 404:
                return True, before, before, 'TiCDC has no owner resign API (HTTP 404): restarting %s without a drain' % self.address
            while True:
                owner = next((c for c in self.captures() if c['is_owner']), None)
                if owner and owner['id'] != mine['id']:
                    break
                if not self.api.deadline.pause():
                    raise RollError('TiCDC %s still owns the cluster after the timeout' % self.address)
        while True:
            response = self.api.send('PUT', '/api/v1/captures/drain', {'capture_id': mine['id']}, accept=(200, 202, 404))
            if response.status == 404:
                return True, before, dict(before, owner=False), \
                    'TiCDC has no capture drain API (HTTP 404): restarting %s without a drain' % self.address
            if not response.ok:
                raise RollError('TiCDC drain of %s: %s' % (self.address, response.describe()))
            count = int((response.json or {}).get('current_table_count') or 0)
            if count == 0:
                return True, before, dict(before, owner=False, tables=0), warning
            if not self.api.deadline.pause():
                message = 'TiCDC %s still holds %d tables after the drain timeout' % (self.address, count)
                if force:
                    return True, before, dict(before, owner=False, tables=count), message + '; restarting anyway (tidb_force_restart)'
                raise RollError(message + '; set tidb_force_restart to restart it anyway')


def deadline(timeout, check_mode):
    # Check mode asks once: a dry run must not wait.
    return Deadline(0 if check_mode else timeout, POLL)
