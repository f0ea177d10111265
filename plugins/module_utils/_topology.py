# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)

# This module_utils is PRIVATE and must only be used by this collection.
# It may change at any time, without notice.

"""The topology registry: every component kind this collection deploys, defined once.

Everything else reads it: the cluster model (_model), the process specs (_process), the readiness
gates (_gates), the Kubernetes manifests, the status table, the benchmarks. Adding a kind means
one entry here, a component role, and a gate in _gates (docs/architecture.md has the checklist).

Port names are TiUP's topology field names (pingcap/tiup pkg/cluster/spec/*.go; TiCI on the
feature/fts branch). TiUP's ``port`` and PD's ``name`` are reserved words in Ansible, which warns
whenever an inventory sets them, so each kind also reads an alias (``tikv_port``, ``pd_name``...);
the alias wins when both are set.
"""

from __future__ import annotations

from collections import namedtuple

Port = namedtuple('Port', 'name default alias label')
Port.__doc__ = ('A per-instance port: its TiUP field name, TiUP default, the Ansible-safe alias (or None), and a short '
                'label (a Kubernetes port name: at most 15 characters of a-z, 0-9 and -).')

Kind = namedtuple('Kind', [
    'name',         # component kind, also the component_ready component
    'title',        # how people write it
    'group',        # TiUP inventory group
    'role',         # component role of this collection
    'image',        # key of tidb_images
    'config_key',   # key of server_configs (TiUP's name)
    'ports',        # tuple of Port, main port first
    'http_port',    # port of the HTTP API the gate and the status table read
    'probe',        # (port name, HTTP path or None for a TCP check): a cheap liveness/readiness probe
    'stateful',     # keeps data of its own (a data volume or PVC)
    'stop_grace',   # seconds a stop waits for a clean shutdown before SIGKILL: 90, systemd's default
                    # TimeoutStopSec, which TiUP's units keep (pkg/cluster/module/systemd.go); TiDB adds
                    # its graceful-wait-before-shutdown (_process.stop_grace)
    'depends',      # kinds that must pass their gates before this one starts (docs/order.md)
    'store',        # registers a store in PD (gated by its address there)
    'tici',         # deployed only with tici_enabled
    'extra_vars',   # per-instance variables besides ports and the common ones, {name: alias or None}
])

# Variables every instance may set (docs/architecture.md).
COMMON_VARS = ('advertise_host', 'listen_host', 'data_dir', 'config')

KINDS = (
    Kind('pd', 'PD', 'pd_servers', 'pd', 'pd', 'pd',
         (Port('client_port', 2379, None, 'client'), Port('peer_port', 2380, None, 'peer')),
         # A TCP probe: /pd/api/v1/health needs a quorum, so during a leader election every PD would
         # leave the -pd Service everything starts from (tidb-operator's PD has no HTTP probe either).
         # The playbook's PD gate stays semantic (component_ready pd).
         'client_port', ('client_port', None), True, 90, (), False, False,
         {'name': 'pd_name'}),
    Kind('tikv', 'TiKV', 'tikv_servers', 'tikv', 'tikv', 'tikv',
         (Port('port', 20160, 'tikv_port', 'server'), Port('status_port', 20180, None, 'status')),
         'status_port', ('status_port', '/status'), True, 90, ('pd',), True, False, {}),
    Kind('minio', 'MinIO', 'minio_servers', 'minio', 'minio', None,
         (Port('port', 9000, 'minio_port', 's3'), Port('console_port', 9001, None, 'console')),
         'port', ('port', '/minio/health/ready'), True, 90, (), False, True, {}),
    Kind('tidb', 'TiDB', 'tidb_servers', 'tidb', 'tidb', 'tidb',
         (Port('port', 4000, 'tidb_port', 'mysql'), Port('status_port', 10080, None, 'status')),
         'status_port', ('status_port', '/status'), False, 90, ('pd', 'tikv'), False, False, {}),
    Kind('ticdc', 'TiCDC', 'cdc_servers', 'ticdc', 'ticdc', 'cdc',
         (Port('port', 8300, 'ticdc_port', 'api'),),
         'port', ('port', '/status'), True, 90, ('pd', 'tikv'), False, False, {}),
    Kind('tici_meta', 'TiCI meta', 'tici_meta_servers', 'tici', 'tici', 'tici_meta',
         (Port('port', 8500, 'tici_port', 'grpc'), Port('status_port', 8501, None, 'status')),
         'status_port', ('status_port', None), False, 90, ('pd', 'tidb', 'minio'), False, True, {}),
    Kind('tici_worker', 'TiCI worker', 'tici_worker_servers', 'tici', 'tici', 'tici_worker',
         (Port('port', 8510, 'tici_port', 'grpc'), Port('status_port', 8511, None, 'status')),
         'status_port', ('status_port', None), True, 90, ('pd', 'tici_meta', 'minio'), False, True, {}),
    Kind('tiflash', 'TiFlash', 'tiflash_servers', 'tiflash', 'tiflash', 'tiflash',
         (Port('flash_service_port', 3930, None, 'service'), Port('flash_proxy_port', 20170, None, 'proxy'),
          Port('flash_proxy_status_port', 20292, None, 'proxy-status'), Port('metrics_port', 8234, None, 'metrics'),
          Port('tici_reader_port', 8520, None, 'tici-reader')),
         'flash_proxy_status_port', ('flash_proxy_status_port', '/tiflash/readyz'), True, 90,
         ('pd', 'tikv', 'tici_meta', 'tici_worker'), True, False, {'learner_config': None}),
)

BY_NAME = dict((kind.name, kind) for kind in KINDS)
BY_GROUP = dict((kind.group, kind) for kind in KINDS)
NAMES = tuple(kind.name for kind in KINDS)
GROUPS = tuple(kind.group for kind in KINDS)
STORE_KINDS = tuple(kind.name for kind in KINDS if kind.store)
# Ports that exist only with TiCI: the reader TiFlash embeds.
TICI_PORTS = ('tici_reader_port',)
# server_configs keys that belong to no kind of their own: TiFlash's proxy (learner) file.
EXTRA_CONFIG_KEYS = ('tiflash-learner',)

# The order a rolling restart or upgrade takes, kind by kind: TiUP's ComponentsByUpdateOrder on its
# feature/fts branch (pingcap/tiup pkg/cluster/spec/spec.go, TiCDC >= v5.1.0 placement), with MinIO,
# which TiUP does not run, last. Within a kind, one instance at a time; the PD leader and the TiCDC
# owner go last (pkg/cluster/operation/upgrade.go checkAndDeferPDLeader).
UPDATE_ORDER = ('tiflash', 'ticdc', 'tici_worker', 'tici_meta', 'pd', 'tikv', 'tidb', 'minio')

# tidb_backend -> the backend role that runs instances (docs/architecture.md, "Backends").
BACKENDS = {
    'docker': 'tidbops.cluster._container',
    'podman': 'tidbops.cluster._container',
    'kubernetes': 'tidbops.cluster._kubernetes',
}
NETWORK_MODES = ('host', 'bridge')


def kind(name):
    return BY_NAME[name]


def port_defaults(name):
    """{port name: default} of one kind."""
    return dict((port.name, port.default) for port in BY_NAME[name].ports)


def main_port(name):
    return BY_NAME[name].ports[0].name


def instance_vars(name):
    """Every per-instance variable a kind reads, {variable: alias or None}, in a stable order."""
    found = dict((var, None) for var in COMMON_VARS)
    for port in BY_NAME[name].ports:
        found[port.name] = port.alias
    found.update(BY_NAME[name].extra_vars)
    return found


def tiup_role(name):
    """TiUP's role name of a kind (pingcap/tiup pkg/cluster/spec/instance.go: pd, tikv, tidb, tiflash, cdc,
    tici-meta, tici-worker), which names its service and its deploy directory: the server_configs key
    with dashes."""
    return (BY_NAME[name].config_key or name).replace('_', '-')


def tiup_role(name):
    """TiUP's role name of a kind (pingcap/tiup pkg/cluster/spec/instance.go: pd, tikv, tidb, tiflash, cdc,
    tici-meta, tici-worker), which names its service and its deploy directory: the server_configs key
    with dashes."""
    return (BY_NAME[name].config_key or name).replace('_', '-')


def start_order(names):
    """``names`` sorted so that every kind comes after the kinds it depends on (registry order breaks ties)."""
    ordered, pending = [], [name for name in NAMES if name in names]
    while pending:
        ready = [name for name in pending if all(dep in ordered or dep not in names for dep in BY_NAME[name].depends)]
        if not ready:
            raise ValueError('dependency cycle among %s' % ', '.join(pending))
        ordered.append(ready[0])
        pending.remove(ready[0])
    return ordered
