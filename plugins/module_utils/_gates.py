# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)

# This module_utils is PRIVATE and must only be used by this collection.
# It may change at any time, without notice.

"""Readiness gates: which requests to send per component, judged by the _readiness predicates."""

from __future__ import annotations

import re

from ansible_collections.tidbops.cluster.plugins.module_utils import _readiness as rd
from ansible_collections.tidbops.cluster.plugins.module_utils import _topology as topo
from ansible_collections.tidbops.cluster.plugins.module_utils._http import join_url, validate_url

# Every kind of the registry has a gate here (make_probe); stores are gated by their address in PD.
COMPONENTS = topo.NAMES
STORE_COMPONENTS = topo.STORE_KINDS

_HOST_PORT = re.compile(r'^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})$')


def validate(params):
    """Return a list of error texts for a component_ready call; empty when the input is usable."""
    errors = []
    component = params['component']
    endpoints = params.get('endpoints') or []
    kube = params.get('kube_proxy')
    if component not in COMPONENTS:
        errors.append('component: expected one of %s, got %r' % (', '.join(COMPONENTS), component))
        return errors
    if component in STORE_COMPONENTS:
        if not params.get('pd_endpoint'):
            errors.append('pd_endpoint: required for component %s (the PD URL whose stores are checked)' % component)
        if not params.get('store_addresses'):
            errors.append('store_addresses: required for component %s (the store addresses expected in PD, host:port)' % component)
    elif not endpoints:
        errors.append('endpoints: required for component %s (a non-empty list of base URLs)' % component)
    for index, address in enumerate(params.get('store_addresses') or []):
        match = _HOST_PORT.match(address or '')
        if not match or not 0 < int(match.group(2)) < 65536:
            errors.append('store_addresses[%d]: expected host:port as advertised to PD, got %r' % (index, address))
    for index, url in enumerate(endpoints):
        error = validate_url(url, 'endpoints[%d]' % index, kube)
        if error:
            errors.append(error)
    if params.get('pd_endpoint'):
        error = validate_url(params['pd_endpoint'], 'pd_endpoint', kube)
        if error:
            errors.append(error)
    if params.get('timeout') is not None and params['timeout'] < 0:
        errors.append('timeout: expected a number of seconds >= 0, got %s' % params['timeout'])
    for name in ('interval', 'max_interval'):
        if params.get(name) is not None and params[name] <= 0:
            errors.append('%s: expected a number of seconds > 0, got %s' % (name, params[name]))
    if params.get('fast_for') is not None and params['fast_for'] < 0:
        errors.append('fast_for: expected a number of seconds >= 0, got %s' % params['fast_for'])
    return errors


def make_probe(client, params, deadline):
    """Return a function that runs one poll round for the component and returns its Checks."""
    component = params['component']
    endpoints = params.get('endpoints') or []
    pd = params.get('pd_endpoint')
    addresses = params.get('store_addresses') or []

    def get(base, path):
        return client.get(join_url(base, path), timeout=deadline.remaining())

    def probe_pd():
        return [rd.pd_ready(url, get(url, '/pd/api/v1/health'), get(url, '/pd/api/v1/members'), len(endpoints)) for url in endpoints]

    def probe_stores():
        checks = rd.stores_ready(get(pd, '/pd/api/v1/stores?state=0&state=1&state=2'), addresses, component == 'tiflash',
                                 bool(params.get('restarted')))
        for url in endpoints:
            if component == 'tiflash':
                checks.append(rd.tiflash_store_status(url, get(url, '/tiflash/store-status')))
            else:
                ready = get(url, '/ready')
                checks.append(rd.tikv_status(url, ready, get(url, '/status') if ready.status == 404 else None))
        return checks

    def probe_ticdc():
        return [rd.ticdc_ready(url, get(url, '/status'), get(url, '/api/v2/health'), get(url, '/api/v2/captures'), len(endpoints))
                for url in endpoints]

    def probe_tici():
        checks = [rd.tici_status(url, get(url, '/status')) for url in endpoints]
        if component == 'tici_meta' and pd:
            response = client.post(join_url(pd, '/v3/kv/range'), rd.etcd_range_body(rd.TICI_ELECTION_PREFIX), timeout=deadline.remaining())
            checks.append(rd.tici_election('%s %s' % (pd, rd.TICI_ELECTION_PREFIX), response))
        return checks

    def probe_single(path, predicate):
        return lambda: [predicate(url, get(url, path)) for url in endpoints]

    probes = dict(
        pd=probe_pd,
        tikv=probe_stores,
        tiflash=probe_stores,
        tidb=probe_single('/status', rd.tidb_status),
        ticdc=probe_ticdc,
        tici_meta=probe_tici,
        tici_worker=probe_tici,
        minio=probe_single('/minio/health/cluster', rd.minio_cluster),
    )
    return probes[component]


def timeout_message(component, result):
    """Name the component, every instance that is not ready, and what it last said."""
    lines = ['%s: %s' % (check.instance, check.reason) for check in result.not_ready()]
    return '%s not ready after %.1fs (%d rounds): %s' % (component, result.elapsed, result.rounds, '; '.join(lines))


def failure_message(component, result):
    lines = ['%s: %s' % (check.instance, check.reason) for check in result.checks if check.state == rd.FAILED]
    return '%s cannot become ready: %s' % (component, '; '.join(lines))
