#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE). Runs inside Ansible, which is licensed under the
# GNU General Public License v3.0+ (https://www.gnu.org/licenses/gpl-3.0.txt); Apache 2.0 code may be combined with it.

from __future__ import annotations

DOCUMENTATION = r'''
module: instance_retire
short_description: Take a TiKV or TiFlash store, or a PD member, out of a TiDB cluster
version_added: 1.0.0
description:
  - The PD side of a scale-in, as TiUP's C(scale-in) and C(prune) do it (pingcap/tiup
    pkg/cluster/operation/scale_in.go), with PD's own APIs (tikv/pd server/api/store.go, member.go).
  - C(tikv) and C(tiflash), O(state=offline) - C(DELETE /pd/api/v1/store/{id}) on the store that advertises
    O(instance) when it is still C(Up) (or C(Disconnected), C(Down)); PD then moves its regions to other stores. It
    does not wait. PD refuses it when too few Up stores would stay for C(max-replicas).
  - C(tikv) and C(tiflash), O(state=tombstone) - offline, then waits until PD has moved every region away and made
    the store C(Tombstone). RV(progress) records the regions left over time; a timeout fails with the regions left.
  - C(tikv) and C(tiflash), O(state=removed) - once the store is C(Tombstone) (and its process stopped), removes the
    tombstone records from PD (C(DELETE /pd/api/v1/stores/remove-tombstone), TiUP's C(prune)). A store that is not
    C(Tombstone) yet fails.
  - C(pd), O(state=removed) - moves leadership away when O(instance) (a member name) leads, deletes the member
    (C(DELETE /pd/api/v1/members/name/{name})) and waits until PD no longer lists it. PD's last member is refused.
  - A store or member PD does not know (any more) needs nothing. Connection errors and HTTP 5xx answers are retried
    on every endpoint until O(timeout).
extends_documentation_fragment:
  - tidbops.cluster.attributes
  - tidbops.cluster.connection
options:
  component:
    description: The instance's component.
    type: str
    required: true
    choices: [pd, tikv, tiflash]
  state:
    description: How far to take it out; C(pd) has V(removed) only.
    type: str
    default: removed
    choices: [offline, tombstone, removed]
  instance:
    description: The store's address as advertised (C(tikv), C(tiflash)) or the PD member's name (C(pd)).
    type: str
    required: true
  endpoints:
    description: PD client URLs, the first that answers wins; leave the member being removed out for C(pd).
    type: list
    elements: str
    required: true
  timeout:
    description: Seconds for the whole step, retries and waiting included (C(tidb_scale_in_timeout) in the playbooks).
    type: float
    default: 3600
attributes:
  check_mode:
    support: full
    details: Reads once, without waiting, and reports what it would change.
  diff_mode:
    support: full
    details: Shows the store's state or the membership before and after.
  idempotent:
    support: full
    details: An offline store, a tombstone already removed or a member already gone reports no change.
seealso:
  - module: tidbops.cluster.pd_info
  - module: tidbops.cluster.instance_drain
author:
  - tidbops maintainers (@tidbops)
'''

EXAMPLES = r'''
- name: Move every region off tikv3 until PD makes it a tombstone
  tidbops.cluster.instance_retire:
    component: tikv
    state: tombstone
    instance: 10.0.1.13:20160
    endpoints: [http://10.0.1.1:2379, http://10.0.1.2:2379]
    timeout: 3600

- name: Forget the tombstone once the process is gone (TiUP's prune)
  tidbops.cluster.instance_retire:
    component: tikv
    state: removed
    instance: 10.0.1.13:20160
    endpoints: [http://10.0.1.1:2379]

- name: Remove PD member pd4
  tidbops.cluster.instance_retire:
    component: pd
    instance: pd4
    endpoints: [http://10.0.1.1:2379, http://10.0.1.2:2379]
    timeout: 600
'''

RETURN = r'''
before:
  description: What the module saw first (C(store), C(state); C(member), C(members)).
  returned: success
  type: dict
  sample: {"store": 7, "state": "Up"}
after:
  description: What holds after the run (what would hold, in check mode).
  returned: success
  type: dict
  sample: {"store": 7, "state": "Tombstone", "region_count": 0}
progress:
  description: With O(state=tombstone), the regions left on the store each time the count changed (C(elapsed) seconds, C(region_count)).
  returned: success
  type: list
  elements: dict
  sample: [{"elapsed": 0.0, "region_count": 24}, {"elapsed": 1.6, "region_count": 11}]
elapsed:
  description: Seconds the run took.
  returned: success
  type: float
  sample: 12.4
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.tidbops.cluster.plugins.module_utils._http import CONNECTION_ARGSPEC, HttpClient, endpoints_problem, make_transport
from ansible_collections.tidbops.cluster.plugins.module_utils import _rolling, _scaling


# The options; plugins/action runs the same code with them when the task runs on the controller.
ARGUMENT_SPEC = dict(
    component=dict(type='str', required=True, choices=['pd', 'tikv', 'tiflash']),
    state=dict(type='str', default='removed', choices=['offline', 'tombstone', 'removed']),
    instance=dict(type='str', required=True),
    endpoints=dict(type='list', elements='str', required=True),
    timeout=dict(type='float', default=3600),
)
ARGUMENT_SPEC.update(CONNECTION_ARGSPEC)


def main():
    run(AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True))


def run(module):
    """The module's work, given AnsibleModule or the controller's stand-in for it."""
    params = module.params
    name = 'instance_retire'
    error = endpoints_problem(params['endpoints'], 'endpoints', params.get('kube_proxy'))
    if error:
        module.fail_json(msg='%s: %s' % (name, error))
    if params['component'] == 'pd' and params['state'] != 'removed':
        module.fail_json(msg='%s: state: a PD member is only removed (state=removed), got %s' % (name, params['state']))

    started = time.monotonic()
    api = _rolling.Api(HttpClient(make_transport(module)), params['endpoints'], _rolling.deadline(params['timeout'], module.check_mode), 'PD')
    progress, warning = [], None
    try:
        if params['component'] == 'pd':
            changed, before, after, warning = _scaling.PdMemberRetire(api, params['instance']).removed(module.check_mode)
        else:
            store = _scaling.StoreRetire(api, params['instance'])
            if params['state'] == 'offline':
                changed, before, after = store.offline(module.check_mode)
            elif params['state'] == 'tombstone':
                changed, before, after, progress = store.tombstone(module.check_mode)
            else:
                changed, before, after = store.removed(module.check_mode)
    except _rolling.RollError as exc:
        module.fail_json(msg='%s: %s %s: %s' % (name, params['component'], params['instance'], exc))
    if warning:
        module.warn('%s: %s' % (name, warning))
    result = dict(changed=changed, before=before, after=after, progress=progress, elapsed=_scaling.elapsed_since(started))
    if module._diff:
        result['diff'] = dict(before=before, after=after)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
