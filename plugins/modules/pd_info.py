#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE). Runs inside Ansible, which is licensed under the
# GNU General Public License v3.0+ (https://www.gnu.org/licenses/gpl-3.0.txt); Apache 2.0 code may be combined with it.

from __future__ import annotations

DOCUMENTATION = r'''
module: pd_info
short_description: Read a TiDB cluster's PD members and stores
version_added: 1.0.0
description:
  - Reads what PD knows of the cluster (it changes nothing) - its members with their health and client URLs, the
    leader, every store in every state (C(Up), C(Offline), C(Tombstone), ...) with its region count, the replication
    C(max-replicas), and the largest TiFlash replica count in use (the placement rules of group C(tiflash)).
  - Whether a cluster exists is read here - a new PD member joins it (C(--join)) only when PD lists members; a
    scale-in is planned from it.
  - The first endpoint that answers wins. Connection errors and HTTP 5xx answers are retried until O(timeout); with
    O(timeout=0) every endpoint is asked once, and no answer gives RV(reachable=false) instead of a failure.
extends_documentation_fragment:
  - tidbops.cluster.attributes
  - tidbops.cluster.connection
options:
  endpoints:
    description: PD client URLs.
    type: list
    elements: str
    required: true
  timeout:
    description: Seconds to wait for an answer, retries included; V(0) asks once.
    type: float
    default: 30
attributes:
  check_mode:
    support: full
    details: It only reads.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: It never changes anything.
seealso:
  - module: tidbops.cluster.instance_retire
author:
  - tidbops maintainers (@tidbops)
'''

EXAMPLES = r'''
- name: Read PD
  tidbops.cluster.pd_info:
    endpoints: [http://10.0.1.1:2379, http://10.0.1.2:2379]
  register: pd

- name: Show the stores that are not Up
  ansible.builtin.debug:
    msg: "{{ pd.stores | rejectattr('state', 'eq', 'Up') }}"
'''

RETURN = r'''
reachable:
  description: Whether a PD endpoint answered; the other values are empty when none did.
  returned: always
  type: bool
  sample: true
error:
  description: Why no endpoint answered.
  returned: when RV(reachable) is false
  type: str
members:
  description: PD members, each with C(name), C(member_id), C(client_urls) and C(health).
  returned: always
  type: list
  elements: dict
  sample: [{"name": "pd0", "member_id": 1, "client_urls": ["http://10.0.1.1:2379"], "health": true}]
leader:
  description: The PD leader's name.
  returned: always
  type: str
stores:
  description: >-
    Stores of every state, each with C(id), C(address), C(state) (PD's C(state_name)), C(engine) (C(tiflash) or
    null for TiKV), C(region_count) and C(leader_count).
  returned: always
  type: list
  elements: dict
max_replicas:
  description: PD's C(replication.max-replicas).
  returned: always
  type: int
  sample: 3
tiflash_replicas:
  description: The largest C(count) of the placement rules in group C(tiflash), 0 when there is none.
  returned: always
  type: int
  sample: 1
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.tidbops.cluster.plugins.module_utils._http import CONNECTION_ARGSPEC, HttpClient, endpoints_problem, make_transport
from ansible_collections.tidbops.cluster.plugins.module_utils import _rolling, _scaling
from ansible_collections.tidbops.cluster.plugins.module_utils._waiter import Deadline


# The options; plugins/action runs the same code with them when the task runs on the controller.
ARGUMENT_SPEC = dict(
    endpoints=dict(type='list', elements='str', required=True),
    timeout=dict(type='float', default=30),
)
ARGUMENT_SPEC.update(CONNECTION_ARGSPEC)


def main():
    run(AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True))


def run(module):
    """The module's work, given AnsibleModule or the controller's stand-in for it."""
    params = module.params
    error = endpoints_problem(params['endpoints'], 'endpoints', params.get('kube_proxy'))
    if error:
        module.fail_json(msg='pd_info: %s' % error)
    if params['timeout'] < 0:
        module.fail_json(msg='pd_info: timeout: expected seconds >= 0, got %s' % params['timeout'])
    api = _rolling.Api(HttpClient(make_transport(module)), params['endpoints'], Deadline(params['timeout'], _rolling.POLL), 'PD')
    try:
        info = _scaling.read_pd(api)
    except _rolling.RollError as exc:
        if params['timeout'] > 0:
            module.fail_json(msg='pd_info: %s' % exc)
        info = dict(reachable=False, error=str(exc), members=[], leader=None, stores=[], max_replicas=0, tiflash_replicas=0)
    module.exit_json(changed=False, **info)


if __name__ == '__main__':
    main()
