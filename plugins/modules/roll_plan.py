#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE). Runs inside Ansible, which is licensed under the
# GNU General Public License v3.0+ (https://www.gnu.org/licenses/gpl-3.0.txt); Apache 2.0 code may be combined with it.

from __future__ import annotations

DOCUMENTATION = r'''
module: roll_plan
short_description: Order the instances of a rolling restart or upgrade, and check that it is safe to start
version_added: 1.0.0
description:
  - Reads the cluster (it changes nothing) and returns the order in which O(instances) restart, one at a time
    - kinds in O(update_order) (TiUP's), within a kind the given order, with the PD leader and the TiCDC owner
    last (TiUP's C(checkAndDeferPDLeader)). With O(by_ordinal) (Kubernetes StatefulSets, whose partition only
    moves down) pods go from the highest ordinal down, and the leaders move away before each pod instead.
  - Fails before anything changes when a restart would break the cluster - a PD member is unhealthy so that
    one more restarting PD would lose the quorum, or a TiKV store of O(tikv_stores) is not C(Up) while TiKV
    instances roll (regions would lose the majority of their replicas).
extends_documentation_fragment:
  - tidbops.cluster.attributes
  - tidbops.cluster.connection
options:
  instances:
    description:
      - The instances to restart, each with C(name), C(kind) (a component kind) and C(id) - the PD member name,
        the TiCDC capture address, or anything for other kinds - and, on Kubernetes, C(ordinal).
    type: list
    elements: dict
    required: true
  update_order:
    description: Component kinds in the order they roll.
    type: list
    elements: str
    required: true
  pd_endpoints:
    description: PD client URLs; needed when PD or TiKV instances roll.
    type: list
    elements: str
    default: []
  tikv_stores:
    description: Addresses of every TiKV store of the cluster, all of which must be C(Up) while TiKV rolls.
    type: list
    elements: str
    default: []
  cdc_endpoints:
    description: TiCDC server URLs; needed to find the owner when TiCDC instances roll.
    type: list
    elements: str
    default: []
  by_ordinal:
    description: Order pods of a kind by descending C(ordinal) (a StatefulSet partition) instead of leaders last.
    type: bool
    default: false
  timeout:
    description: Seconds to wait for PD and TiCDC to answer, retries included.
    type: float
    default: 60
attributes:
  check_mode:
    support: full
    details: It only reads; check mode runs it the same way.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: It never changes anything.
seealso:
  - module: tidbops.cluster.instance_drain
author:
  - tidbops maintainers (@tidbops)
'''

EXAMPLES = r'''
- name: Order the instances to restart
  tidbops.cluster.roll_plan:
    instances:
      - {name: pd0, kind: pd, id: pd0}
      - {name: pd1, kind: pd, id: pd1}
      - {name: tikv0, kind: tikv, id: 10.0.1.10:20160}
    update_order: [tiflash, ticdc, tici_worker, tici_meta, pd, tikv, tidb, minio]
    pd_endpoints: [http://10.0.1.1:2379, http://10.0.1.2:2379]
    tikv_stores: [10.0.1.10:20160, 10.0.1.11:20160, 10.0.1.12:20160]
  register: plan
'''

RETURN = r'''
order:
  description: Names of O(instances) in the order they restart.
  returned: success
  type: list
  elements: str
  sample: [cdc1, cdc0, pd1, pd2, pd0, tikv0]
pd_leader:
  description: The PD leader's name, when PD instances roll.
  returned: success
  type: str
  sample: pd0
cdc_owner:
  description: The address of the TiCDC owner, when TiCDC instances roll and it is known.
  returned: success
  type: str
  sample: 10.0.1.20:8300
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.tidbops.cluster.plugins.module_utils._http import CONNECTION_ARGSPEC, HttpClient, make_transport, validate_url
from ansible_collections.tidbops.cluster.plugins.module_utils import _rolling


# The options; plugins/action runs the same code with them when the task runs on the controller.
ARGUMENT_SPEC = dict(
    instances=dict(type='list', elements='dict', required=True),
    update_order=dict(type='list', elements='str', required=True),
    pd_endpoints=dict(type='list', elements='str', default=[]),
    tikv_stores=dict(type='list', elements='str', default=[]),
    cdc_endpoints=dict(type='list', elements='str', default=[]),
    by_ordinal=dict(type='bool', default=False),
    timeout=dict(type='float', default=60),
)
ARGUMENT_SPEC.update(CONNECTION_ARGSPEC)


def main():
    run(AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True))


def run(module):
    """The module's work, given AnsibleModule or the controller's stand-in for it."""
    params = module.params
    name = 'roll_plan'
    for index, item in enumerate(params['instances']):
        if not item.get('name') or item.get('kind') not in params['update_order']:
            module.fail_json(msg='%s: instances[%d] needs a name and a kind among %s' % (name, index, ', '.join(params['update_order'])))
    for option in ('pd_endpoints', 'cdc_endpoints'):
        for url in params[option]:
            error = validate_url(url, option, params.get('kube_proxy'))
            if error:
                module.fail_json(msg='%s: %s' % (name, error))

    kinds = set(item['kind'] for item in params['instances'])
    client = HttpClient(make_transport(module))
    problems, leaders, result = [], set(), dict(changed=False)
    try:
        if kinds & set(['pd', 'tikv']):
            if not params['pd_endpoints']:
                module.fail_json(msg='%s: pd_endpoints: needed when PD or TiKV instances roll' % name)
            pd = _rolling.Api(client, params['pd_endpoints'], _rolling.deadline(params['timeout'], False), 'PD')
            if 'pd' in kinds:
                health = _rolling.pd_member_health(pd.json('GET', '/pd/api/v1/health'))
                rolling = [item.get('id') for item in params['instances'] if item['kind'] == 'pd']
                problems.append(_rolling.pd_quorum_problem(health, rolling))
                leader = _rolling.pd_leader_name(pd.json('GET', '/pd/api/v1/leader'))
                result['pd_leader'] = leader
                leaders.update(item['name'] for item in params['instances'] if item['kind'] == 'pd' and item.get('id') == leader)
            if 'tikv' in kinds:
                stores = _rolling.stores_by_address(pd.json('GET', '/pd/api/v1/stores'))
                problems.append(_rolling.tikv_replica_problem(stores, params['tikv_stores'], True))
        if 'ticdc' in kinds and params['cdc_endpoints']:
            cdc = _rolling.Api(client, params['cdc_endpoints'], _rolling.deadline(params['timeout'], False), 'TiCDC')
            owner = next((c for c in _rolling.TicdcCapture(cdc, None).captures() if c['is_owner']), None)
            if owner:
                result['cdc_owner'] = owner['address']
                leaders.update(item['name'] for item in params['instances'] if item['kind'] == 'ticdc' and item.get('id') == owner['address'])
    except _rolling.RollError as exc:
        module.fail_json(msg='%s: %s' % (name, exc))
    problems = [problem for problem in problems if problem]
    if problems:
        module.fail_json(msg='%s: not safe to roll: %s' % (name, '; '.join(problems)), **result)
    result['order'] = _rolling.roll_order(params['instances'], params['update_order'], leaders, not params['by_ordinal'])
    module.exit_json(**result)


if __name__ == '__main__':
    main()
