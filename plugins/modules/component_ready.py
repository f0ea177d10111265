#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE). Runs inside Ansible, which is licensed under the
# GNU General Public License v3.0+ (https://www.gnu.org/licenses/gpl-3.0.txt); Apache 2.0 code may be combined with it.

from __future__ import annotations

DOCUMENTATION = r'''
module: component_ready
short_description: Wait until a TiDB cluster component is ready for the next one
version_added: 1.0.0
description:
  - Polls the HTTP APIs of one component's instances until every instance is ready in the strict sense
    of the component (a PD leader, TiKV stores C(Up) in PD, TiDB C(/status) with a version, and so on),
    an instance is in a state it cannot recover from, or O(timeout) passes.
  - One deadline on a monotonic clock covers the whole wait. Polls are O(interval) apart for the first O(fast_for)
    seconds, then back off (x1.5, up to O(max_interval)). Connection refused, reset and timeouts, and HTTP 5xx
    answers, count as "not yet".
  - On timeout the module fails with a message naming every instance that is not ready and its last observation.
  - "Readiness per component:"
  - "V(pd): every endpoint answers C(/pd/api/v1/health) with one healthy entry per endpoint, and
    C(/pd/api/v1/members) with a leader and as many members (a 503 means no leader yet)."
  - "V(tikv): every address in O(store_addresses) is a store in PD's C(/pd/api/v1/stores) with C(state_name=Up)
    and no C(engine=tiflash) label. C(Disconnected) and a 500 before bootstrap mean keep waiting; C(Down), C(Offline)
    and C(Tombstone) fail at once. With O(endpoints) (status URLs), each C(/ready) (or C(/status) where C(/ready) is 404)
    must answer 200."
  - "V(tidb): C(/status) answers 200 with JSON carrying C(version)."
  - "V(tiflash): every address in O(store_addresses) is an C(engine=tiflash) store in state C(Up). With O(endpoints)
    (proxy status URLs), each C(/tiflash/store-status) must be exactly C(Running); C(Stopping) and C(Terminated) fail."
  - "V(ticdc): each C(/status) has C(liveness) 0, C(/api/v2/health) answers 200, and C(/api/v2/captures) has
    C(total) equal to the number of endpoints with exactly one owner."
  - "V(tici_meta) and V(tici_worker): C(/status) answers 200. For V(tici_meta) with O(pd_endpoint), PD's etcd
    also holds exactly one key under C(/tici/metaservice/election) (read with a POST to PD's C(/v3/kv/range) gateway)."
  - "V(minio): C(/minio/health/cluster) answers 200 (C(/live) and C(/ready) answer 200 too early); 403 fails."
extends_documentation_fragment:
  - tidbops.cluster.attributes
  - tidbops.cluster.connection
options:
  component:
    description: The component to wait for.
    type: str
    required: true
    choices: [pd, tikv, tidb, tiflash, ticdc, tici_meta, tici_worker, minio]
  endpoints:
    description:
      - Base URLs (C(http://host:port) or C(https://host:port)) of the instances' HTTP APIs.
      - PD client URLs for V(pd); status or API URLs for V(tidb), V(ticdc), V(tici_meta), V(tici_worker) and V(minio),
        where they are required.
      - Optional status URLs for V(tikv), and proxy status URLs (port 20292) for V(tiflash).
    type: list
    elements: str
    default: []
  pd_endpoint:
    description:
      - URL of one PD, like C(http://pd0:2379).
      - Required for V(tikv) and V(tiflash). For V(tici_meta) it enables the election-key check.
    type: str
  store_addresses:
    description:
      - The store addresses (C(host:port)) expected in PD, as the stores advertise them.
      - For TiKV the C(--advertise-addr) (port 20160); for TiFlash C(flash.service_addr) (port 3930).
      - Required for V(tikv) and V(tiflash).
    type: list
    elements: str
  restarted:
    description:
      - The instances were just restarted (a rolling restart). A TiKV or TiFlash store that PD marks C(Down) then keeps
        the gate waiting for it to come back C(Up) within O(timeout), instead of failing it at once.
    type: bool
    default: false
  timeout:
    description: Seconds the whole wait may take.
    type: float
    default: 600
  interval:
    description:
      - Seconds between polls during the first O(fast_for) seconds; later pauses grow x1.5 up to O(max_interval).
      - A gate returns at most about one pause after the component became ready, so short pauses make
        a deploy faster; one poll is a few small HTTP requests to each instance.
    type: float
    default: 0.2
  fast_for:
    description:
      - Seconds from the start of the wait during which polls stay O(interval) apart, the time a component
        usually takes to start; a longer wait (a TiKV replaying its log, a TiFlash catching up) backs off.
    type: float
    default: 10
  max_interval:
    description: The longest pause between two polls, in seconds.
    type: float
    default: 0.5
attributes:
  check_mode:
    support: full
    details: Probes once and reports what it saw, without waiting and without failing.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Only reads; never reports a change.
notes:
  - The module only reads, so it is safe to run against a live cluster.
  - V(pd) and V(ticdc) compare the member and capture counts with the number of O(endpoints). List every member
    (on Kubernetes each pod, like C(http://tidb-pd-0.tidb-pd-peer:2379)), not one Service that balances over them.
seealso:
  - module: tidbops.cluster.ticdc_changefeed
  - module: tidbops.cluster.pd_replication_config
author:
  - tidbops maintainers (@tidbops)
'''

EXAMPLES = r'''
- name: Wait for the PD members to elect a leader
  tidbops.cluster.component_ready:
    component: pd
    endpoints:
      - http://pd0:2379
      - http://pd1:2379
      - http://pd2:2379

- name: Wait until every TiKV store is Up in PD
  tidbops.cluster.component_ready:
    component: tikv
    pd_endpoint: http://pd0:2379
    store_addresses: [tikv0:20160, tikv1:20160, tikv2:20160]
    timeout: 300

- name: Wait for the TiCI meta leader election, through the Kubernetes API server
  tidbops.cluster.component_ready:
    component: tici_meta
    endpoints: [http://tidb-tici-meta-0.tidb-tici-meta-peer:8501]
    pd_endpoint: http://tidb-pd:2379
    kube_proxy:
      namespace: tidb
'''

RETURN = r'''
component:
  description: The component that was gated.
  returned: always
  type: str
  sample: tikv
ready:
  description: Whether every instance was ready (in check mode, after the single probe).
  returned: always
  type: bool
  sample: true
elapsed:
  description: Seconds spent waiting.
  returned: always
  type: float
  sample: 3.52
instances:
  description: The last observation of each instance (and, for O(component=tici_meta), of the election key).
  returned: always
  type: list
  elements: dict
  contains:
    instance:
      description: The endpoint URL or store address.
      type: str
      sample: http://pd0:2379
    ready:
      description: Whether this instance was ready.
      type: bool
    state:
      description: V(ready), V(waiting) or V(failed).
      type: str
    reason:
      description: What was seen, in a few words.
      type: str
      sample: store 1 state Disconnected
    status:
      description: HTTP status of the deciding response; null after a connection error.
      type: int
      sample: 200
    error:
      description: Connection error text, if any.
      type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.tidbops.cluster.plugins.module_utils._gates import COMPONENTS, failure_message, make_probe, timeout_message, validate
from ansible_collections.tidbops.cluster.plugins.module_utils._http import CONNECTION_ARGSPEC, HttpClient, make_transport
from ansible_collections.tidbops.cluster.plugins.module_utils._waiter import FAILED, Deadline, wait_for


# The options; plugins/action runs the same code with them when the task runs on the controller.
ARGUMENT_SPEC = dict(
    component=dict(type='str', required=True, choices=list(COMPONENTS)),
    endpoints=dict(type='list', elements='str', default=[]),
    pd_endpoint=dict(type='str'),
    store_addresses=dict(type='list', elements='str'),
    timeout=dict(type='float', default=600),
    interval=dict(type='float', default=0.2),
    fast_for=dict(type='float', default=10),
    max_interval=dict(type='float', default=0.5),
    restarted=dict(type='bool', default=False),
)
ARGUMENT_SPEC.update(CONNECTION_ARGSPEC)


def main():
    run(AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True))


def run(module):
    """The module's work, given AnsibleModule or the controller's stand-in for it."""

    errors = validate(module.params)
    if errors:
        module.fail_json(msg='component_ready: ' + '; '.join(errors))

    deadline = Deadline(module.params['timeout'], module.params['interval'], module.params['max_interval'],
                        steady_for=module.params['fast_for'])
    client = HttpClient(make_transport(module))
    result = wait_for(make_probe(client, module.params, deadline), deadline, check_mode=module.check_mode)

    output = dict(changed=False, component=module.params['component'], ready=result.ready, elapsed=round(result.elapsed, 3),
                  instances=[check.as_dict() for check in result.checks])
    if not result.ready and not module.check_mode:
        component = module.params['component']
        message = failure_message(component, result) if result.state == FAILED else timeout_message(component, result)
        module.fail_json(msg=message, **output)
    module.exit_json(**output)


if __name__ == '__main__':
    main()
