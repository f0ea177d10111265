#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE). Runs inside Ansible, which is licensed under the
# GNU General Public License v3.0+ (https://www.gnu.org/licenses/gpl-3.0.txt); Apache 2.0 code may be combined with it.

from __future__ import annotations

DOCUMENTATION = r'''
module: pd_replication_config
short_description: Ensure keys of PD's replication config, such as placement rules
version_added: 1.0.0
description:
  - Reads C(/pd/api/v1/config/replicate) from PD, compares the keys given in O(settings), and POSTs only
    the keys that differ. After a POST it reads the config again until the new values are visible.
  - PD answers booleans as strings (C("true")) and expects strings for them on POST; the module converts
    YAML booleans accordingly and compares values in their text form, so V(true), C("true") and C("True") are equal.
  - Numbers (C(max-replicas)) are sent as numbers, lists (C(location-labels)) as comma-joined strings.
  - A key PD does not report is an error, listed with the keys PD knows, before anything is changed.
  - Connection errors and HTTP 5xx answers are retried until O(timeout).
extends_documentation_fragment:
  - tidbops.cluster.attributes
  - tidbops.cluster.connection
options:
  pd_endpoint:
    description: URL of one PD, like C(http://pd0:2379).
    type: str
    required: true
  settings:
    description:
      - Keys of the replication config and their desired values, for example C(enable-placement-rules) and C(max-replicas).
      - Only these keys are compared and changed.
    type: dict
    required: true
  timeout:
    description: Seconds the module may take, retries and read-back included.
    type: float
    default: 60
attributes:
  check_mode:
    support: full
    details:
      - Reads the config once, without retries, and reports the change it would make without POSTing.
      - When PD cannot answer (not deployed yet), warns and reports a change instead of failing.
  diff_mode:
    support: full
    details: Shows the managed keys before and after.
  idempotent:
    support: full
seealso:
  - module: tidbops.cluster.component_ready
author:
  - tidbops maintainers (@tidbops)
'''

EXAMPLES = r'''
- name: Enable placement rules before the first TiFlash starts
  tidbops.cluster.pd_replication_config:
    pd_endpoint: http://pd0:2379
    settings:
      enable-placement-rules: true

- name: Three replicas, spread over zones and hosts
  tidbops.cluster.pd_replication_config:
    pd_endpoint: http://pd0:2379
    settings:
      max-replicas: 3
      location-labels: [zone, host]
'''

RETURN = r'''
config:
  description: The replication config as PD reports it after the run (before it, in check mode).
  returned: success
  type: dict
  sample: {"max-replicas": 3, "location-labels": "", "enable-placement-rules": "true"}
changes:
  description: The keys that differed, with the value PD had and the value sent (or that would be sent).
  returned: success
  type: dict
  sample: {"enable-placement-rules": {"before": "false", "after": "true"}}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.tidbops.cluster.plugins.module_utils._http import CONNECTION_ARGSPEC, HttpClient, make_transport, validate_url
from ansible_collections.tidbops.cluster.plugins.module_utils._pd import PdError, PdUnavailable, ReplicationConfig, differences
from ansible_collections.tidbops.cluster.plugins.module_utils._waiter import Deadline

POLL_INTERVAL = 0.2


# The options; plugins/action runs the same code with them when the task runs on the controller.
ARGUMENT_SPEC = dict(
    pd_endpoint=dict(type='str', required=True),
    settings=dict(type='dict', required=True),
    timeout=dict(type='float', default=60),
)
ARGUMENT_SPEC.update(CONNECTION_ARGSPEC)


def main():
    run(AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True))


def run(module):
    """The module's work, given AnsibleModule or the controller's stand-in for it."""
    params = module.params

    error = validate_url(params['pd_endpoint'], 'pd_endpoint', params.get('kube_proxy'))
    if error:
        module.fail_json(msg='pd_replication_config: ' + error)
    if not params['settings']:
        module.fail_json(msg='pd_replication_config: settings: expected at least one key')

    # Check mode asks once: a cluster that is not deployed yet must not hold a dry run for the whole timeout.
    deadline = Deadline(0 if module.check_mode else params['timeout'], POLL_INTERVAL)
    pd = ReplicationConfig(HttpClient(make_transport(module)), params['pd_endpoint'], deadline)
    try:
        current = pd.get()
        changes = differences(current, params['settings'])
        if changes and not module.check_mode:
            pd.post(dict((key, new) for key, (_old, new) in changes.items()))
            current = pd.wait_visible(changes)
    except PdUnavailable as exc:
        if not module.check_mode:
            module.fail_json(msg='pd_replication_config: %s' % exc)
        module.warn('pd_replication_config: PD cannot answer yet (%s); in check mode the settings are assumed to need a change' % exc)
        module.exit_json(changed=True, config={}, changes={})
    except PdError as exc:
        module.fail_json(msg='pd_replication_config: %s' % exc)

    result = dict(
        changed=bool(changes),
        config=current,
        changes=dict((key, dict(before=old, after=new)) for key, (old, new) in changes.items()),
    )
    if module._diff:
        result['diff'] = dict(
            before=dict((key, old) for key, (old, _new) in changes.items()),
            after=dict((key, new) for key, (_old, new) in changes.items()),
        )
    module.exit_json(**result)


if __name__ == '__main__':
    main()
