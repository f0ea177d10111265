# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)

# This module_utils is PRIVATE and must only be used by this collection.
# It may change at any time, without notice.

"""Readiness predicates: pure functions from observed responses to verdicts.

Each predicate takes Response observations (status, body, parsed JSON, connection error) that
someone else fetched, and returns Check verdicts with a short reason. No I/O happens here.
The rules follow what each component serves: tikv/pd server/api (health, members, stores, the
etcd gateway PD embeds), tikv/tikv status_server, pingcap/tidb /status, pingcap/tiflash
/tiflash/store-status, pingcap/ticdc api/v2, minio/minio healthcheck-handler.go, and the TiCI meta
election key TiDB reads (pingcap/tidb pkg/tici/tici_manager_client.go).
"""

from __future__ import annotations

import base64

from ansible_collections.tidbops.cluster.plugins.module_utils._waiter import FAILED, READY, WAITING, Check

# PD rewrites an Up store as Disconnected (missed heartbeats) or Down; Offline and Tombstone
# are being or have been removed. Disconnected may recover; the others will not on their own.
STORE_UP = 'Up'
STORE_STATES_FAIL = frozenset(('Down', 'Offline', 'Tombstone'))
TIFLASH_ENGINES = frozenset(('tiflash', 'tiflash_compute'))

TIFLASH_RUNNING = 'Running'
TIFLASH_STATUS_FAIL = frozenset(('Stopping', 'Terminated'))

TICDC_LIVENESS = {0: 'alive', 1: 'draining', 2: 'stopping'}

TICI_ELECTION_PREFIX = '/tici/metaservice/election'


def _unanswered(instance, response, what):
    """A verdict for a response that is not a 2xx: keep waiting and say what was seen."""
    return Check(instance, WAITING, '%s: %s' % (what, response.describe()), response)


def _json_object(response):
    data = response.json
    return data if isinstance(data, dict) else None


# --- PD ---------------------------------------------------------------------------------------

def pd_health(instance, response, expected_members):
    """``/pd/api/v1/health``: 200 with one entry per member, all healthy, ``expected_members`` of them."""
    if not response.ok:
        return _unanswered(instance, response, 'health')
    members = response.json
    if not isinstance(members, list):
        return Check(instance, WAITING, 'health: unexpected body %s' % response.describe(), response)
    healthy = [m.get('name', '?') for m in members if isinstance(m, dict) and m.get('health') is True]
    if len(members) != expected_members or len(healthy) != len(members):
        return Check(instance, WAITING, 'health: %d of %d members healthy, %d expected' % (len(healthy), len(members), expected_members),
                     response)
    return Check(instance, READY, 'health: %d members healthy' % len(members), response)


def pd_members(instance, response, expected_members):
    """``/pd/api/v1/members``: 200 with a leader and ``expected_members`` members; 503 means no leader yet."""
    if response.status == 503:
        return Check(instance, WAITING, 'members: no leader yet (HTTP 503)', response)
    if not response.ok:
        return _unanswered(instance, response, 'members')
    data = _json_object(response) or {}
    leader = data.get('leader')
    members = data.get('members') or []
    if not isinstance(leader, dict) or not leader.get('name'):
        return Check(instance, WAITING, 'members: no leader yet', response)
    if len(members) != expected_members:
        return Check(instance, WAITING, 'members: %d members, %d expected' % (len(members), expected_members), response)
    return Check(instance, READY, 'leader %s' % leader['name'], response)


def pd_ready(instance, health, members, expected_members):
    """PD instance verdict: both health and members must be ready."""
    first = pd_health(instance, health, expected_members)
    if first.state != READY:
        return first
    second = pd_members(instance, members, expected_members)
    if second.state != READY:
        return second
    return Check(instance, READY, '%s; %s' % (first.reason, second.reason), members)


# --- stores (TiKV, TiFlash) -------------------------------------------------------------------

def store_engine(store):
    """The value of a store's ``engine`` label, or None (TiKV stores carry no engine label)."""
    for label in store.get('labels') or []:
        if isinstance(label, dict) and label.get('key') == 'engine':
            return label.get('value')
    return None


def store_rank(store):
    # Several stores can share an address (a Tombstone left by an earlier deployment): judge the most alive.
    name = store.get('state_name')
    return 0 if name == STORE_UP else 1 if name == 'Disconnected' else 3 if name == 'Tombstone' else 2


def stores_ready(response, addresses, tiflash, restarted=False):
    """``/pd/api/v1/stores``: one verdict per expected address.

    Ready: a store with that address is ``Up`` and of the right kind (an ``engine=tiflash``
    label for TiFlash, none for TiKV). Keep waiting: not bootstrapped (500), missing,
    ``Disconnected``, and ``Down`` when ``restarted`` (PD may mark a store Down while it restarts;
    it comes back Up once it heartbeats). Fail: ``Down`` otherwise, ``Offline``, ``Tombstone``, or a
    store of the wrong kind.
    """
    kind = 'TiFlash' if tiflash else 'TiKV'
    if not response.ok:
        if response.status == 500 and 'not bootstrapped' in response.body:
            reason = 'stores: cluster not bootstrapped yet (HTTP 500)'
        else:
            reason = 'stores: %s' % response.describe()
        return [Check(address, WAITING, reason, response) for address in addresses]
    data = _json_object(response) or {}
    by_address = {}
    for entry in data.get('stores') or []:
        store = entry.get('store') if isinstance(entry, dict) else None
        if isinstance(store, dict) and store.get('address'):
            by_address.setdefault(store['address'], []).append(store)
    checks = []
    for address in addresses:
        candidates = sorted(by_address.get(address, []), key=store_rank)
        if not candidates:
            checks.append(Check(address, WAITING, 'not registered in PD yet', response))
            continue
        store = candidates[0]
        state = store.get('state_name') or 'unknown'
        engine = store_engine(store)
        described = 'store %s state %s' % (store.get('id', '?'), state)
        if (engine in TIFLASH_ENGINES) != tiflash:
            checks.append(Check(address, FAILED, '%s is a %s store, not %s' % (described, 'TiFlash' if engine else 'TiKV', kind), response))
        elif state == STORE_UP:
            checks.append(Check(address, READY, described, response))
        elif state in STORE_STATES_FAIL and not (restarted and state == 'Down'):
            checks.append(Check(address, FAILED, described, response))
        else:
            checks.append(Check(address, WAITING, described, response))
    return checks


def tikv_status(instance, ready_response, status_response=None):
    """TiKV status port: ``/ready`` 200; on builds without it (404) ``/status`` 200."""
    if ready_response.ok:
        return Check(instance, READY, 'ready', ready_response)
    if ready_response.status == 404 and status_response is not None:
        if status_response.ok:
            return Check(instance, READY, 'status 200', status_response)
        return _unanswered(instance, status_response, 'status')
    return _unanswered(instance, ready_response, 'ready')


def tiflash_store_status(instance, response):
    """``/tiflash/store-status``: the plain-text body must be exactly ``Running``."""
    if not response.ok:
        return _unanswered(instance, response, 'store-status')
    status = response.body.strip()
    if status == TIFLASH_RUNNING:
        return Check(instance, READY, 'store-status Running', response)
    if status in TIFLASH_STATUS_FAIL:
        return Check(instance, FAILED, 'store-status %s' % status, response)
    return Check(instance, WAITING, 'store-status %s' % (status or '(empty)'), response)


# --- TiDB, MinIO, TiCI -------------------------------------------------------------------------

def tidb_status(instance, response):
    """``/status``: 200 with JSON carrying ``version``; 500 with an empty body while starting."""
    if response.status == 500 and not response.body.strip():
        return Check(instance, WAITING, 'starting or draining (HTTP 500, empty body)', response)
    if not response.ok:
        return _unanswered(instance, response, 'status')
    data = _json_object(response)
    if not data or not data.get('version'):
        return Check(instance, WAITING, 'status: no version in %s' % response.describe(), response)
    return Check(instance, READY, 'version %s' % data['version'], response)


def minio_cluster(instance, response):
    """``/minio/health/cluster``: 200 once the object layer, metadata and IAM are up with write quorum."""
    if response.ok:
        return Check(instance, READY, 'cluster healthy', response)
    if response.status == 403:
        return Check(instance, FAILED, 'cluster health forbidden (HTTP 403)', response)
    server_status = response.headers.get('x-minio-server-status')
    if response.status is not None and server_status:
        return Check(instance, WAITING, 'cluster: HTTP %d, server %s' % (response.status, server_status), response)
    return _unanswered(instance, response, 'cluster')


def tici_status(instance, response):
    """TiCI meta/worker ``/status``: any 200 (its body is undocumented)."""
    if response.ok:
        return Check(instance, READY, 'status 200', response)
    return _unanswered(instance, response, 'status')


def etcd_prefix_end(prefix):
    """etcd's range_end for a prefix: the prefix with its last byte incremented."""
    key = bytearray(prefix.encode('utf-8'))
    for index in range(len(key) - 1, -1, -1):
        if key[index] < 0xff:
            key[index] += 1
            return bytes(key[:index + 1])
    return b'\0'


def etcd_range_body(prefix):
    """The JSON body of an etcd v3 gateway ``/v3/kv/range`` prefix query."""
    return dict(key=base64.b64encode(prefix.encode('utf-8')).decode('ascii'),
                range_end=base64.b64encode(etcd_prefix_end(prefix)).decode('ascii'))


def tici_election(instance, response):
    """PD etcd gateway range over ``/tici/metaservice/election``: exactly one key (the meta leader)."""
    if not response.ok:
        return _unanswered(instance, response, 'election key')
    data = _json_object(response) or {}
    kvs = data.get('kvs') or []
    if len(kvs) != 1:
        return Check(instance, WAITING, 'election: %d keys under %s, 1 expected' % (len(kvs), TICI_ELECTION_PREFIX), response)
    try:
        leader = base64.b64decode(kvs[0].get('value') or '').decode('utf-8', 'replace')
    except (ValueError, TypeError, AttributeError):
        leader = '?'
    return Check(instance, READY, 'meta leader %s' % leader, response)


# --- TiCDC -------------------------------------------------------------------------------------

def ticdc_error_code(response):
    data = _json_object(response) or {}
    return data.get('error_code') or ''


def ticdc_status(instance, response):
    """``/status``: 200 with liveness 0 (classic TiCDC has no liveness field: counted as alive)."""
    if not response.ok:
        return _unanswered(instance, response, 'status')
    data = _json_object(response) or {}
    liveness = data.get('liveness', 0)
    if liveness != 0:
        return Check(instance, WAITING, 'liveness %s (%s)' % (liveness, TICDC_LIVENESS.get(liveness, 'unknown')), response)
    return Check(instance, READY, 'alive%s' % (', owner' if data.get('is_owner') else ''), response)


def ticdc_health(instance, response):
    """``/api/v2/health``: 200; 500 ErrClusterIsUnhealthy or no coordinator and 503 mean not yet."""
    if response.ok:
        return Check(instance, READY, 'healthy', response)
    code = ticdc_error_code(response)
    if code:
        return Check(instance, WAITING, 'health: HTTP %s %s' % (response.status, code), response)
    return _unanswered(instance, response, 'health')


def ticdc_captures(instance, response, expected):
    """``/api/v2/captures``: ``total == expected`` and exactly one owner."""
    if not response.ok:
        return _unanswered(instance, response, 'captures')
    data = _json_object(response) or {}
    items = data.get('items') or []
    owners = [item for item in items if isinstance(item, dict) and item.get('is_owner') is True]
    total = data.get('total', len(items))
    if total != expected or len(owners) != 1:
        return Check(instance, WAITING, 'captures: %s of %d, %d owner(s)' % (total, expected, len(owners)), response)
    return Check(instance, READY, 'captures %d, owner %s' % (total, owners[0].get('address') or owners[0].get('id')), response)


def ticdc_ready(instance, status, health, captures, expected):
    """TiCDC instance verdict: status, health and captures must all be ready."""
    for check in (ticdc_status(instance, status), ticdc_health(instance, health), ticdc_captures(instance, captures, expected)):
        if check.state != READY:
            return check
    return Check(instance, READY, 'alive, healthy, %d captures' % expected, captures)
