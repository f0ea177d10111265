#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE). Runs inside Ansible, which is licensed under the
# GNU General Public License v3.0+ (https://www.gnu.org/licenses/gpl-3.0.txt); Apache 2.0 code may be combined with it.

from __future__ import annotations

DOCUMENTATION = r'''
module: instance_drain
short_description: Move leaders away from a PD, TiKV or TiCDC instance before it stops, and back after
version_added: 1.0.0
description:
  - The step before (O(state=drained)) and after (O(state=released)) one instance restarts in a rolling
    restart or upgrade, as TiUP's PreRestart and PostRestart hooks do (pingcap/tiup pkg/cluster/spec/pd.go,
    tikv.go, cdc.go).
  - C(pd), O(state=drained) - when O(instance) (a member name) leads, leadership moves to a healthy member
    (C(/pd/api/v1/leader/transfer/{name}), else C(/leader/resign)) and the module waits until another member
    leads. A follower needs nothing.
  - C(tikv), O(state=drained) - adds an C(evict-leader-scheduler) for the store that advertises O(instance) and
    waits until PD reports its C(leader_count) as 0 (an absent counter counts as 0). The scheduler is recorded in
    PD's etcd (key C(/tidbops/evict-leader/<store id>)) before it is added, so that a run that is killed
    mid-way leaves a trace.
  - C(tikv), O(state=released) - removes that scheduler and its record; without O(instance), every
    scheduler this collection recorded (the leftovers of an interrupted run). Schedulers added by hand carry
    no record and are left alone.
  - C(ticdc), O(state=drained) - when the capture that advertises O(instance) is the owner, resigns it and
    waits for another owner; then drains its tables (C(PUT /api/v1/captures/drain)) until none is left.
    With a single capture, or a TiCDC without these APIs (HTTP 404), it warns and lets the restart go on,
    as TiUP does.
  - C(pd) and C(ticdc) have nothing to release.
  - Connection errors and HTTP 5xx answers are retried on every endpoint until O(timeout).
extends_documentation_fragment:
  - tidbops.cluster.attributes
  - tidbops.cluster.connection
options:
  component:
    description: The instance's component.
    type: str
    required: true
    choices: [pd, tikv, ticdc]
  state:
    description: V(drained) before the instance stops, V(released) after it is back.
    type: str
    default: drained
    choices: [drained, released]
  instance:
    description:
      - The PD member name, the TiKV store address or the TiCDC capture address, as advertised.
      - Required except for C(tikv) with O(state=released), where leaving it out releases every leftover.
    type: str
  endpoints:
    description:
      - URLs of the APIs to ask, the first that answers wins; PD client URLs for C(pd) and C(tikv), TiCDC
        server URLs for C(ticdc).
    type: list
    elements: str
    required: true
  timeout:
    description: Seconds to move the leaders (TiUP's C(--transfer-timeout)), retries included.
    type: float
    default: 600
  force:
    description:
      - When the leaders or tables are not all moved in O(timeout), warn and report success instead of failing
        (TiUP's C(--force)).
    type: bool
    default: false
  owner:
    description: Who records a TiKV eviction (written into its record), for people reading PD's etcd.
    type: str
    default: tidbops.cluster
attributes:
  check_mode:
    support: full
    details:
      - Reads once, without retries or waiting, and reports what it would move.
      - With O(state=released), a PD that cannot answer (a cluster not deployed yet) gives a warning and no change.
  diff_mode:
    support: full
    details: Shows the leader, leader count or owner before and after.
  idempotent:
    support: full
    details: A follower, an evicted store with no leaders left, or a released store reports no change.
seealso:
  - module: tidbops.cluster.roll_plan
  - module: tidbops.cluster.component_ready
author:
  - tidbops maintainers (@tidbops)
'''

EXAMPLES = r'''
- name: Move the region leaders away from tikv1 before it restarts
  tidbops.cluster.instance_drain:
    component: tikv
    instance: 10.0.1.11:20160
    endpoints: [http://10.0.1.1:2379, http://10.0.1.2:2379]
    timeout: 600

- name: Let tikv1 lead again
  tidbops.cluster.instance_drain:
    component: tikv
    state: released
    instance: 10.0.1.11:20160
    endpoints: [http://10.0.1.1:2379]

- name: Remove every eviction an interrupted run left behind
  tidbops.cluster.instance_drain:
    component: tikv
    state: released
    endpoints: [http://10.0.1.1:2379]

- name: Move PD leadership away from pd0 when it leads
  tidbops.cluster.instance_drain:
    component: pd
    instance: pd0
    endpoints: [http://10.0.1.1:2379, http://10.0.1.2:2379]
'''

RETURN = r'''
before:
  description: What the module saw first (C(leader); C(store), C(leader_count), C(evicting); C(marked); C(capture), C(owner)).
  returned: success
  type: dict
  sample: {"store": 4, "leader_count": 8, "evicting": false}
after:
  description: What holds after the run (what would hold, in check mode).
  returned: success
  type: dict
  sample: {"store": 4, "leader_count": 0, "evicting": true}
elapsed:
  description: Seconds the run took.
  returned: success
  type: float
  sample: 3.2
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.tidbops.cluster.plugins.module_utils._http import CONNECTION_ARGSPEC, HttpClient, endpoints_problem, make_transport
from ansible_collections.tidbops.cluster.plugins.module_utils import _rolling


# The options; plugins/action runs the same code with them when the task runs on the controller.
ARGUMENT_SPEC = dict(
    component=dict(type='str', required=True, choices=['pd', 'tikv', 'ticdc']),
    state=dict(type='str', default='drained', choices=['drained', 'released']),
    instance=dict(type='str'),
    endpoints=dict(type='list', elements='str', required=True),
    timeout=dict(type='float', default=600),
    force=dict(type='bool', default=False),
    owner=dict(type='str', default='tidbops.cluster'),
)
ARGUMENT_SPEC.update(CONNECTION_ARGSPEC)


def main():
    run(AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True))


def run(module):
    """The module's work, given AnsibleModule or the controller's stand-in for it."""
    params = module.params
    name = 'instance_drain'
    error = endpoints_problem(params['endpoints'], 'endpoints', params.get('kube_proxy'))
    if error:
        module.fail_json(msg='%s: %s' % (name, error))
    if not params['instance'] and not (params['component'] == 'tikv' and params['state'] == 'released'):
        module.fail_json(msg='%s: instance is required for %s with state=%s' % (name, params['component'], params['state']))

    started = time.monotonic()
    deadline = _rolling.deadline(params['timeout'], module.check_mode)
    api = _rolling.Api(HttpClient(make_transport(module)), params['endpoints'], deadline,
                       'PD' if params['component'] != 'ticdc' else 'TiCDC')
    try:
        if params['state'] == 'released':
            if params['component'] != 'tikv':
                changed, before, after, warning = False, {}, {}, None
            else:
                changed, before, after, warning = _rolling.TikvLeaders(api, params['instance'], params['owner']).release(module.check_mode)
        elif params['component'] == 'pd':
            changed, before, after, warning = _rolling.PdLeader(api, params['instance']).drain(module.check_mode)
        elif params['component'] == 'tikv':
            changed, before, after, warning = _rolling.TikvLeaders(api, params['instance'], params['owner']).drain(
                module.check_mode, params['force'])
        else:
            changed, before, after, warning = _rolling.TicdcCapture(api, params['instance']).drain(module.check_mode, params['force'])
    except _rolling.RollError as exc:
        if not (module.check_mode and params['state'] == 'released'):
            module.fail_json(msg='%s: %s %s: %s' % (name, params['component'], params['instance'] or '', exc))
        # A dry run before the first deploy (or of a TLS switch) finds no PD that answers as planned.
        module.warn('%s: PD cannot answer (%s); in check mode no leader eviction is assumed to be left' % (name, exc))
        changed, before, after, warning = False, {}, {}, None
    if warning:
        module.warn('%s: %s' % (name, warning))
    result = dict(changed=changed, before=before, after=after, elapsed=round(time.monotonic() - started, 3))
    if module._diff:
        result['diff'] = dict(before=before, after=after)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
