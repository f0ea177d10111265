# -*- coding: utf-8 -*-
# Copyright: tidbops.cluster contributors
# Apache License 2.0 (see LICENSE)
"""Filters over the cluster model (module_utils/_model.py): building it from the inventory, the
status table that playbooks/status.yml prints, and the plans of a rolling restart and a scale-in."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.tidbops.cluster.plugins.module_utils import _config
from ansible_collections.tidbops.cluster.plugins.module_utils import _model
from ansible_collections.tidbops.cluster.plugins.module_utils import _scaling
from ansible_collections.tidbops.cluster.plugins.module_utils import _topology as topo

# Host variables the model reads besides each kind's own (ports, aliases, extra variables).
_HOST_VARS = ('ansible_host',)


def _instance_vars(host_vars, kind_names):
    names = list(_HOST_VARS)
    for kind in kind_names:
        for name, alias in topo.instance_vars(kind).items():
            names += [name] + ([alias] if alias else [])
    found = {}
    for name in names:
        if name in host_vars and name not in found:
            found[name] = host_vars[name]
    return found


def cluster_model(settings, groups, hostvars, play_hosts):
    """The cluster model of _model.build from the settings and Ansible's groups, hostvars and play hosts."""
    name = 'cluster_model'
    if not isinstance(settings, dict):
        raise AnsibleFilterError('%s: the input must be the settings mapping' % name)
    registry_groups = dict((group, list(groups.get(group) or [])) for group in topo.GROUPS)
    hosts = {}
    for host in set(sum(registry_groups.values(), [])) | set(play_hosts or []):
        host_vars = hostvars[host]
        group_names = list(host_vars.get('group_names') or [])
        kinds = [topo.BY_GROUP[group].name for group in group_names if group in topo.BY_GROUP]
        hosts[host] = {'group_names': group_names, 'vars': _config.plain(_instance_vars(host_vars, kinds), name)}
    inventory = {'groups': registry_groups, 'hosts': hosts,
                 'play_hosts': [host for host in play_hosts or [] if any(group in topo.BY_GROUP for group in hosts[host]['group_names'])]}
    try:
        return _model.build(_config.plain(settings, name), inventory)
    except _config.ConfigError as error:
        raise AnsibleFilterError(str(error)) from None


def status_table(cluster, probes, states):
    """Lines of a table like `tiup cluster display`: one row per instance.

    ``probes``: component_ready results in check mode (their ``instances``); ``states``: instance name
    to the backend's state record ({status}).
    """
    seen = [check for probe in probes or [] for check in (probe.get('instances') or [])]
    rows = [['COMPONENT', 'INSTANCE', 'ADDRESS', 'PORTS', 'STATE', 'STATUS', 'DETAIL']]
    for kind in cluster['deployed_kinds']:
        for host in cluster['members'][kind]:
            instance = cluster['instances'][host]
            keys = (instance.get('url'), instance.get('addr'))
            mine = [check for check in seen if check.get('instance') in keys]
            waiting = [check.get('reason', '') for check in mine if not check.get('ready')]
            state = (states or {}).get(host) or {}
            rows.append([kind, host, instance.get('addr', '-'), '/'.join(str(port) for port in instance['ports'].values()),
                         state.get('status', '-'), 'Up' if mine and not waiting else 'Down', '; '.join(waiting)])
    widths = [max(len(str(row[col])) for row in rows) for col in range(len(rows[0]) - 1)]
    return ['  '.join([str(cell).ljust(width) for cell, width in zip(row, widths)] + [str(row[-1])]).rstrip() for row in rows]


def roll_candidates(names, cluster):
    """The instances of a rolling restart as tidbops.cluster.roll_plan takes them: name, kind, id (the PD
    member name, else the advertised address: a TiKV store's, a TiCDC capture's) and, for a pod, its ordinal."""
    cluster = _config.plain(cluster, 'roll_candidates')
    found = []
    for name in names or []:
        instance = cluster['instances'][name]
        item = {'name': name, 'kind': instance['kind'],
                'id': instance['pd_name'] if instance['kind'] == 'pd' else instance.get('addr', name)}
        if instance.get('ordinal') is not None:
            item['ordinal'] = instance['ordinal']
        found.append(item)
    return found


def scale_in_plan(names, cluster, pd):
    """{problems, steps, remaining} of removing the inventory hosts ``names`` (module_utils/_scaling.py)."""
    return _scaling.scale_in_plan(_config.plain(cluster, 'scale_in_plan'), _config.plain(names, 'scale_in_plan'),
                                  _config.plain(pd, 'scale_in_plan') or {})


def backend_role(backend):
    """The backend role that runs instances for tidb_backend (the registry's BACKENDS); '' when unknown."""
    return topo.BACKENDS.get(backend, '') if isinstance(backend, str) else ''


class FilterModule:
    """Cluster model filters."""

    def filters(self):
        return {'cluster_model': cluster_model, 'status_table': status_table, 'backend_role': backend_role,
                'roll_candidates': roll_candidates, 'scale_in_plan': scale_in_plan}
