# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE). Runs inside Ansible, which is licensed under the
# GNU General Public License v3.0+ (https://www.gnu.org/licenses/gpl-3.0.txt); Apache 2.0 code may be combined with it.

from __future__ import annotations

DOCUMENTATION = r'''
name: tiup
short_description: A TiUP topology.yaml as the inventory of a tidbops.cluster cluster
version_added: 1.0.0
description:
  - Reads a TiUP cluster topology (C(tiup cluster deploy <name> <version> topology.yaml)) and yields this collection's
    groups and host variables, so a cluster described for TiUP deploys with C(playbooks/site.yml) as it is.
  - One inventory host per instance, named C(<role>-<host>-<main port>) (for example C(pd-10.0.1.11-2379),
    C(tidb-10.0.1.14-4001), C(tiflash-10.0.1.19-3930)), because TiUP's C(host:port) is no Ansible host pattern; the
    name equals TiUP's default PD member name. C(ansible_host) is the entry's C(host). Absent ports get TiUP's defaults.
  - The groups are TiUP's section names - C(pd_servers), C(tikv_servers), C(tidb_servers), C(tiflash_servers),
    C(cdc_servers), C(tici_meta_servers), C(tici_worker_servers) (TiUP's feature/fts branch).
  - Group variables of C(all) - C(server_configs) (merged under each instance's C(config) with TiUP's semantics by
    the cluster model) and C(component_versions) for the components deployed here; C(global.enable_tls) as
    C(tidb_tls_enabled), C(global.listen_host) as C(listen_host), C(global.ssh_port) as C(ansible_port);
    C(tici_enabled) is true exactly when the topology has TiCI servers.
  - Per instance - the ports (under their Ansible-safe names, such as C(tikv_port)), C(listen_host),
    C(advertise_host) (TiCI), C(name) as C(pd_name), C(config), C(learner_config) (TiFlash), C(ssh_port) as
    C(ansible_port).
  - The host layout TiUP manages on a machine (C(deploy_dir), C(data_dir), C(log_dir), C(numa_node),
    C(resource_control), C(arch), C(os)...) has no meaning for containers and is left out; data lives in each
    instance's volume. Fields that would change what runs but are not applied (say C(advertise_addr), C(offline)),
    and sections this collection does not deploy (C(monitoring_servers), C(grafana_servers), C(kvcdc_servers)...),
    are named in one warning.
  - Parsing is as strict as TiUP's (yaml.v3 with known fields only) - an unknown field, a missing C(host), a port
    outside [1, 65535] or two ports on one host fail with the field's path, before any host is added.
  - TiUP has no MinIO; with TiCI servers, add C(minio_servers) (and settings such as C(minio_root_password)) in a
    second inventory source or in C(group_vars).
options:
  plugin:
    description: The name of this plugin.
    required: true
    type: str
    choices: [tidbops.cluster.tiup]
  topology:
    description:
      - The TiUP topology - a file name (relative to this inventory source, C(~) expanded; Ansible Vault files work) or
        the topology itself as a mapping.
    required: true
    type: raw
  cluster_name:
    description:
      - Sets C(tidb_cluster_name). TiUP takes the name on its command line, so the topology does not hold it.
    type: str
author:
  - tidbops maintainers (@tidbops)
'''

EXAMPLES = r'''
# inventory/tiup.yml, beside TiUP's topology.yaml:
plugin: tidbops.cluster.tiup
topology: topology.yaml
cluster_name: prod

# ansible-inventory -i inventory/tiup.yml --graph
# ansible-playbook -i inventory/tiup.yml -i inventory/minio.yml tidbops.cluster.site

---
# Another source, with the topology inline:
plugin: tidbops.cluster.tiup
topology:
  pd_servers:
    - host: 10.0.1.11
  tikv_servers:
    - host: 10.0.1.12
  tidb_servers:
    - host: 10.0.1.13
      port: 4001
'''

import os

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin

from ansible_collections.tidbops.cluster.plugins.module_utils._tiup import TopologyError, convert


class InventoryModule(BaseInventoryPlugin):
    """Hosts, groups and variables from a TiUP topology."""

    NAME = 'tidbops.cluster.tiup'

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(('.yml', '.yaml'))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        topology = self.get_option('topology')
        where = path
        if isinstance(topology, str):
            where = os.path.join(os.path.dirname(path), os.path.expanduser(topology))
            if not os.path.isfile(where):
                raise AnsibleParserError('%s: topology: no file %s' % (self.NAME, where))
            topology = self.loader.load_from_file(where)
        try:
            found = convert(topology)
        except TopologyError as exc:
            raise AnsibleParserError('%s: %s: %s' % (self.NAME, where, exc)) from exc
        for warning in found['warnings']:
            self.display.warning('%s: %s: %s' % (self.NAME, where, warning))
        for group, hosts in found['groups'].items():
            self.inventory.add_group(group)
            for host, host_vars in hosts.items():
                self.inventory.add_host(host, group=group)
                for key, value in host_vars.items():
                    self.inventory.set_variable(host, key, value)
        settings = dict(found['vars'])
        if self.get_option('cluster_name'):
            settings['tidb_cluster_name'] = self.get_option('cluster_name')
        for key, value in settings.items():
            self.inventory.set_variable('all', key, value)
