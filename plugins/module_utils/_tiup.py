# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)

# This module_utils is PRIVATE and must only be used by this collection.
# It may change at any time, without notice.

"""A TiUP ``topology.yaml`` read as this collection's inventory (the inventory plugin tidbops.cluster.tiup).

The facts come from pingcap/tiup pkg/cluster/spec (master, and the feature/fts branch that adds TiCI):

* spec.go ``Specification``: the top-level sections; its ``UnmarshalYAML`` decodes with yaml.v3's
  ``KnownFields(true)``, so an unknown key anywhere but in a free-form map (``config``,
  ``learner_config``, ``server_configs.<component>``, ``global.custom``) is refused. So here.
* pd.go, tidb.go, tikv.go, tiflash.go, cdc.go, tici_meta.go, tici_worker.go: each server entry's
  fields and port defaults (the port defaults are the registry's, module_utils/_topology.py).
* instance.go ``ID()``: an instance is ``host:<main port>``. That is no Ansible host pattern, so an
  instance here is named ``<role>-<host>-<main port>`` (TiUP's PD default name has the same form);
  the main port is the registry's (for TiFlash its ``flash_service_port``: TiUP's ``tcp_port`` is not
  a port TiFlash serves any more).
* validate.go: ``host`` is required, ports lie in [1, 65535], and no two ports share one host.

What has no meaning for containers (the host layout: ``deploy_dir``, ``data_dir``, ``log_dir``,
``numa_node``, ``resource_control``...) is accepted and left out; data lives in the instances' volumes.
Fields that would change what runs but are not applied are named in one warning, with the sections
this collection does not deploy.
"""

from __future__ import annotations

from ansible_collections.tidbops.cluster.plugins.module_utils import _topology as topo

# Fields every TiUP server entry has (BaseInstance-like specs).
COMMON_FIELDS = ('host', 'manage_host', 'ssh_port', 'patched', 'ignore_exporter', 'deploy_dir', 'log_dir', 'source',
                 'numa_node', 'config', 'arch', 'os', 'resource_control')
# Each deployed section's own fields, as the spec structs' yaml tags name them.
OWN_FIELDS = {
    'pd': ('listen_host', 'advertise_client_addr', 'advertise_peer_addr', 'name', 'client_port', 'peer_port', 'data_dir'),
    'tidb': ('listen_host', 'advertise_address', 'port', 'status_port', 'numa_cores'),
    'tikv': ('listen_host', 'advertise_addr', 'port', 'status_port', 'advertise_status_addr', 'data_dir', 'offline',
             'numa_cores'),
    'tiflash': ('tcp_port', 'http_port', 'flash_service_port', 'flash_proxy_port', 'flash_proxy_status_port', 'metrics_port',
                'tici_reader_node_port', 'data_dir', 'tmp_path', 'offline', 'numa_cores', 'learner_config'),
    'ticdc': ('port', 'data_dir', 'offline', 'gc-ttl', 'tz', 'ticdc_cluster_id'),
    'tici_meta': ('listen_host', 'advertise_host', 'imported', 'port', 'status_port', 'numa_cores'),
    'tici_worker': ('listen_host', 'advertise_host', 'imported', 'port', 'status_port', 'data_dir', 'numa_cores'),
}
# The host layout of a machine TiUP deploys binaries to; a container has none of it.
HOST_LAYOUT = ('manage_host', 'patched', 'ignore_exporter', 'deploy_dir', 'data_dir', 'log_dir', 'tmp_path', 'source',
               'numa_node', 'numa_cores', 'arch', 'os', 'resource_control', 'imported')
# TiUP's port field -> the registry's, where they differ.
PORT_NAMES = {('tiflash', 'tici_reader_node_port'): 'tici_reader_port'}
# Ports TiUP knows that no process here serves (validated and checked for conflicts all the same).
UNSERVED_PORTS = {'tiflash': ('tcp_port', 'http_port')}
# Fields copied as they are, under the registry's variable name.
COPIED = {'listen_host': 'listen_host', 'advertise_host': 'advertise_host', 'config': 'config', 'learner_config': 'learner_config'}

# Sections TiUP knows (either branch) that this collection does not deploy.
OTHER_SECTIONS = ('tiproxy_servers', 'tso_servers', 'scheduling_servers', 'resource_manager_servers', 'router_servers',
                  'tidb_dashboard_servers', 'pump_servers', 'drainer_servers', 'kvcdc_servers', 'tispark_masters',
                  'tispark_workers', 'monitoring_servers', 'grafana_servers', 'alertmanager_servers', 'monitored',
                  'component_sources')
SETTINGS_SECTIONS = ('global', 'server_configs', 'component_versions')
# GlobalOptions (spec.go); enable_tls, listen_host and ssh_port are applied.
GLOBAL_FIELDS = ('user', 'group', 'ssh_port', 'ssh_type', 'enable_tls', 'listen_host', 'deploy_dir', 'data_dir', 'log_dir',
                 'resource_control', 'os', 'arch', 'custom', 'systemd_mode', 'pd_mode')
# server_configs and component_versions keys TiUP knows beyond the kinds deployed here.
OTHER_CONFIG_KEYS = ('tso', 'scheduling', 'resource_manager', 'router', 'tidb_dashboard', 'tiproxy', 'pump', 'drainer', 'kvcdc',
                     'grafana', 'ng_monitoring')
OTHER_VERSION_KEYS = ('tso', 'scheduling', 'resource_manager', 'router', 'tidb_dashboard', 'pump', 'drainer', 'kvcdc', 'tiproxy',
                      'prometheus', 'grafana', 'alertmanager')
PORT_RANGE = (1, 65535)


class TopologyError(ValueError):
    """A topology TiUP would refuse; the message names the field path and what was expected."""


def host_name(kind, host, port):
    """``<role>-<host>-<main port>``; an IPv6 address's colons become dashes (a colon ends a host pattern)."""
    return '%s-%s-%s' % (topo.tiup_role(kind), str(host).strip('[]').replace(':', '-'), port)


def _port(value, path):
    if isinstance(value, bool) or not isinstance(value, int) or not PORT_RANGE[0] <= value <= PORT_RANGE[1]:
        raise TopologyError('%s: expected a port in [%d, %d], got %r' % ((path,) + PORT_RANGE + (value,)))
    return value


def _mapping(value, path):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TopologyError('%s: expected a mapping, got %s' % (path, type(value).__name__))
    return value


def _unknown(entry, allowed, path):
    unknown = sorted(str(key) for key in entry if key not in allowed)
    if unknown:
        raise TopologyError('%s: unknown field%s %s (TiUP refuses it too); expected some of: %s'
                            % (path, 's' if len(unknown) > 1 else '', ', '.join(unknown), ', '.join(sorted(allowed))))


def _instance(kind, entry, path, ports_seen, unapplied, tici):
    """(inventory host name, host variables) of one server entry; records its ports in ``ports_seen``."""
    allowed = COMMON_FIELDS + OWN_FIELDS[kind]
    entry = _mapping(entry, path)
    _unknown(entry, allowed, path)
    host = entry.get('host')
    if not isinstance(host, str) or not host.strip():
        raise TopologyError('%s.host: expected the address of the machine, got %r (TiUP: `%s` contains empty host field)'
                            % (path, host, topo.kind(kind).group))
    host_vars = {'ansible_host': host}
    for port in topo.kind(kind).ports:
        field = _tiup_port(kind, port.name)
        where = '%s.%s' % (path, field)
        value = _port(entry[field], where) if field in entry else port.default
        # TiFlash's TiCI reader port is served only with TiCI (TiUP checks it only then, too).
        if tici or port.name not in topo.TICI_PORTS or field in entry:
            ports_seen.append((host, value, where if field in entry else where + ' (default)'))
        host_vars[port.alias or port.name] = value
    for field in UNSERVED_PORTS.get(kind, ()):
        if field in entry:
            ports_seen.append((host, _port(entry[field], '%s.%s' % (path, field)), '%s.%s' % (path, field)))
            unapplied.add(field)
    if 'ssh_port' in entry:
        host_vars['ansible_port'] = _port(entry['ssh_port'], path + '.ssh_port')
    if entry.get('name') is not None:
        if not isinstance(entry['name'], str) or not entry['name']:
            raise TopologyError('%s.name: expected a member name, got %r' % (path, entry['name']))
        host_vars['pd_name'] = entry['name']
    for field, variable in COPIED.items():
        if entry.get(field) is not None:
            host_vars[variable] = _mapping(entry[field], '%s.%s' % (path, field)) if field.endswith('config') else entry[field]
    applied = HOST_LAYOUT + ('host', 'ssh_port', 'name') + tuple(COPIED) + tuple(_tiup_port(kind, p.name) for p in topo.kind(kind).ports)
    unapplied.update(field for field in entry if field not in applied and field not in UNSERVED_PORTS.get(kind, ()))
    return host_name(kind, host, host_vars[_var(kind, topo.main_port(kind))]), host_vars


def _var(kind, name):
    """The inventory variable of the registry's port ``name`` (its Ansible-safe alias where it has one)."""
    port = [port for port in topo.kind(kind).ports if port.name == name][0]
    return port.alias or port.name


def _tiup_port(kind, name):
    """TiUP's field name of the registry's port ``name``."""
    for (owner, field), ours in PORT_NAMES.items():
        if owner == kind and ours == name:
            return field
    return name


def _conflicts(ports_seen):
    first = {}
    for host, port, where in ports_seen:
        if (host, port) in first:
            raise TopologyError('port conflict for %d on %s between %s and %s' % (port, host, first[(host, port)], where))
        first[(host, port)] = where


def _settings(topology, present, ignored):
    """Group variables from ``global``, ``server_configs`` and ``component_versions``."""
    settings = {'tici_enabled': any(topo.kind(kind).tici for kind in present)}
    glob = _mapping(topology.get('global'), 'global')
    _unknown(glob, GLOBAL_FIELDS, 'global')
    if 'enable_tls' in glob:
        if not isinstance(glob['enable_tls'], bool):
            raise TopologyError('global.enable_tls: expected true or false, got %r' % (glob['enable_tls'],))
        settings['tidb_tls_enabled'] = glob['enable_tls']
    if glob.get('listen_host'):
        settings['listen_host'] = glob['listen_host']
    if 'ssh_port' in glob:
        settings['ansible_port'] = _port(glob['ssh_port'], 'global.ssh_port')
    ours = [kind.config_key for kind in topo.KINDS if kind.config_key] + list(topo.EXTRA_CONFIG_KEYS)
    configs = _mapping(topology.get('server_configs'), 'server_configs')
    _unknown(configs, ours + list(OTHER_CONFIG_KEYS), 'server_configs')
    kept = {}
    for key, value in configs.items():
        if key in OTHER_CONFIG_KEYS:
            ignored.add('server_configs.' + key)
        elif value is not None:
            kept[key] = _mapping(value, 'server_configs.' + key)
    if kept:
        settings['server_configs'] = kept
    versions = _mapping(topology.get('component_versions'), 'component_versions')
    _unknown(versions, [kind.config_key for kind in topo.KINDS if kind.config_key] + list(OTHER_VERSION_KEYS), 'component_versions')
    kept = {}
    for key, value in versions.items():
        if key in OTHER_VERSION_KEYS:
            ignored.add('component_versions.' + key)
        elif value is not None:
            kept[key] = str(value)
    if kept:
        settings['component_versions'] = kept
    return settings


def convert(topology):
    """A parsed TiUP topology as {'groups': {group: {host: vars}}, 'vars': {...}, 'warnings': [...]}.

    Raises TopologyError naming the first problem, before anything is returned.
    """
    topology = _mapping(topology, 'topology')
    deployed = [kind for kind in topo.KINDS if kind.name in OWN_FIELDS]
    _unknown(topology, SETTINGS_SECTIONS + tuple(kind.group for kind in deployed) + OTHER_SECTIONS, 'topology')
    groups, ports_seen, unapplied, ignored, pd_names = {}, [], set(), set(), {}
    tici = any(topology.get(kind.group) for kind in deployed if kind.tici)
    for kind in deployed:
        entries = topology.get(kind.group)
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise TopologyError('%s: expected a list of server entries, got %s' % (kind.group, type(entries).__name__))
        hosts = groups.setdefault(kind.group, {})
        for index, entry in enumerate(entries):
            path = '%s[%d]' % (kind.group, index)
            name, host_vars = _instance(kind.name, entry, path, ports_seen, unapplied, tici)
            if kind.name == 'pd':
                pd_name = host_vars.get('pd_name', name)
                if pd_name in pd_names:
                    raise TopologyError('%s.name: %s is the name of %s too; PD member names must be unique'
                                        % (path, pd_name, pd_names[pd_name]))
                pd_names[pd_name] = path
            hosts[name] = host_vars
    _conflicts(ports_seen)
    if not groups.get('pd_servers'):
        raise TopologyError('pd_servers: expected at least one PD server entry')
    sections = [section for section in OTHER_SECTIONS if topology.get(section)]
    settings = _settings(topology, [kind.name for kind in deployed if groups.get(kind.group)], ignored)
    warnings = []
    if sections or ignored:
        warnings.append('not deployed by tidbops.cluster, left out: %s' % ', '.join(sections + sorted(ignored)))
    if unapplied:
        warnings.append('fields accepted but not applied: %s' % ', '.join(sorted(unapplied)))
    return {'groups': groups, 'vars': settings, 'warnings': warnings}
