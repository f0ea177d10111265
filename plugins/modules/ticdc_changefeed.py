#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE). Runs inside Ansible, which is licensed under the
# GNU General Public License v3.0+ (https://www.gnu.org/licenses/gpl-3.0.txt); Apache 2.0 code may be combined with it.

from __future__ import annotations

DOCUMENTATION = r'''
module: ticdc_changefeed
short_description: Create, update, pause, resume or remove a TiCDC changefeed through the OpenAPI v2
version_added: 1.0.0
description:
  - Converges one changefeed through TiCDC's C(/api/v2/changefeeds) routes; works with the new architecture
    (needed by TiCI) and classic TiCDC.
  - Reads the changefeed first. A missing one is created. An existing one is compared with what you gave, and
    only that - the sink URI (parsed, query order ignored, parts the server masks ignored), the keys of
    O(replica_config) (recursively) and O(target_ts). On a difference the changefeed is paused if it runs,
    updated, and resumed if it should run.
  - An update sends the changefeed's current config with O(replica_config) merged on top, because TiCDC
    replaces the config wholesale and would reset every omitted field to its default.
  - Decisions follow TiCDC's C(error_code), never the HTTP status alone. Connection errors, HTTP 503, transient codes
    (C(ErrClusterIsUnhealthy), C(ErrOwnerNotFound), ...) and HTTP 5xx without an error code (for example while the
    coordinator initialises) are retried until O(timeout).
  - After each change the module reads the changefeed until the change is visible; after a removal, until
    TiCDC reports C(CDC:ErrChangeFeedNotExists).
  - An unchanged changefeed costs exactly one HTTP request.
  - Secrets in the sink URI (S3 keys, passwords) never appear in the result, the diff or messages.
extends_documentation_fragment:
  - tidbops.cluster.attributes
  - tidbops.cluster.connection
options:
  server:
    description: URL of any TiCDC server, like C(http://cdc0:8300). Changefeed calls are forwarded to the coordinator.
    type: str
    required: true
  changefeed_id:
    description: The changefeed ID; letters and digits joined by single hyphens (no underscores), at most 128 characters.
    type: str
    required: true
  state:
    description:
      - V(present) - the changefeed exists and runs.
      - V(paused) - the changefeed exists and is stopped.
      - V(absent) - the changefeed does not exist.
    type: str
    choices: [present, paused, absent]
    default: present
  sink_uri:
    description:
      - The sink URI, for TiCI like C(s3://bucket/prefix/cdc?protocol=canal-json&endpoint=...&access-key=...&secret-access-key=...).
      - Required unless O(state=absent).
    type: str
  replica_config:
    description:
      - "The changefeed's replica config in the OpenAPI v2 snake_case form, for example C({sink: {date_separator: none}})."
      - Only the keys given are compared; on create, omitted keys take TiCDC's defaults.
    type: dict
  start_ts:
    description: TSO to start replicating from when the changefeed is created; 0 or unset means now. Never changed afterwards.
    type: int
  target_ts:
    description: TSO at which replication stops; 0 means never. Must be above O(start_ts).
    type: int
  keyspace:
    description: Keyspace of the changefeed (next-generation TiCDC only), sent as the C(keyspace) query parameter.
    type: str
  timeout:
    description: Seconds the module may take, retries and waits for visibility included.
    type: float
    default: 120
attributes:
  check_mode:
    support: full
    details:
      - Only reads, asking TiCDC once without retries; returns the requests it would send in RV(requests).
      - When TiCDC cannot answer (not deployed yet), warns and reports a change instead of failing.
  diff_mode:
    support: full
    details: Before and after of the managed fields, with every secret masked.
  idempotent:
    support: full
seealso:
  - module: tidbops.cluster.component_ready
author:
  - tidbops maintainers (@tidbops)
'''

EXAMPLES = r'''
- name: Replicate every table to S3 for TiCI
  tidbops.cluster.ticdc_changefeed:
    server: http://cdc0:8300
    changefeed_id: tici-replication-task
    # s3://<bucket>/<prefix>/cdc?protocol=canal-json&...&access-key=...&secret-access-key=...
    sink_uri: "{{ tici_s3 | tidbops.cluster.tici_sink_uri }}"
    replica_config:
      sink:
        protocol: canal-json
        date_separator: none

- name: Pause it
  tidbops.cluster.ticdc_changefeed:
    server: http://cdc0:8300
    changefeed_id: tici-replication-task
    sink_uri: "{{ tici_sink_uri }}"
    state: paused

- name: Remove it and wait until it is gone
  tidbops.cluster.ticdc_changefeed:
    server: http://cdc0:8300
    changefeed_id: tici-replication-task
    state: absent
'''

RETURN = r'''
changefeed:
  description: The changefeed as TiCDC last reported it, with every secret masked; empty when absent.
  returned: always
  type: dict
  sample: {"id": "tici-replication-task", "state": "normal", "sink_uri": "s3://bucket/prefix/cdc?access-key=********"}
differences:
  description: What differed from the desired changefeed (C(changefeed) when it had to be created).
  returned: always
  type: list
  elements: str
  sample: [sink_uri, replica_config.sink.date_separator]
requests:
  description: The HTTP requests sent (or, in check mode, that would be sent), as method and path; never bodies.
  returned: always
  type: list
  elements: dict
  contains:
    method:
      description: HTTP method.
      type: str
    path:
      description: Request path.
      type: str
    sent:
      description: Whether the request was sent (false for the mutations planned in check mode).
      type: bool
  sample: [{"method": "GET", "path": "/api/v2/changefeeds/tici-replication-task", "sent": true}]
request_count:
  description: The number of HTTP requests actually sent, retries included. An unchanged changefeed costs 1.
  returned: always
  type: int
  sample: 1
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.tidbops.cluster.plugins.module_utils._http import CONNECTION_ARGSPEC, HttpClient, make_transport, path_of, validate_url
from ansible_collections.tidbops.cluster.plugins.module_utils._secrets import Redactor, secret_values
from ansible_collections.tidbops.cluster.plugins.module_utils._ticdc import ChangefeedApi, Converge, TicdcError, TicdcUnavailable, validate
from ansible_collections.tidbops.cluster.plugins.module_utils._waiter import Deadline

POLL_INTERVAL = 0.2


# The options; plugins/action runs the same code with them when the task runs on the controller.
ARGUMENT_SPEC = dict(
    server=dict(type='str', required=True),
    changefeed_id=dict(type='str', required=True),
    state=dict(type='str', default='present', choices=['present', 'paused', 'absent']),
    sink_uri=dict(type='str', no_log=True),
    replica_config=dict(type='dict'),
    start_ts=dict(type='int'),
    target_ts=dict(type='int'),
    keyspace=dict(type='str', no_log=False),
    timeout=dict(type='float', default=120),
)
ARGUMENT_SPEC.update(CONNECTION_ARGSPEC)


def main():
    run(AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True))


def run(module):
    """The module's work, given AnsibleModule or the controller's stand-in for it."""
    params = module.params

    redactor = Redactor(secret_values(params.get('sink_uri')))
    module.no_log_values.update(secret_values(params.get('sink_uri')))
    errors = validate(params)
    error = validate_url(params['server'], 'server', params.get('kube_proxy'))
    if error:
        errors.insert(0, error)
    if errors:
        module.fail_json(msg='ticdc_changefeed: ' + '; '.join(errors))

    client = HttpClient(make_transport(module))
    # Check mode asks once: a cluster that is not deployed yet must not hold a dry run for the whole timeout.
    deadline = Deadline(0 if module.check_mode else params['timeout'], POLL_INTERVAL)
    api = ChangefeedApi(client, params['server'], params['changefeed_id'], deadline, params.get('keyspace'), redact=redactor.text)
    converge = Converge(api, params, module.check_mode)

    def report():
        sent = [dict(method=method, path=path_of(url), sent=True) for method, url in client.sent]
        if module.check_mode:
            sent.extend(dict(method=method, path=path, sent=False) for method, path in converge.planned)
        return dict(
            changefeed=redactor.data(converge.info or {}),
            differences=converge.differences,
            requests=sent,
            request_count=len(client.sent),
        )

    try:
        changed = converge.run()
    except TicdcUnavailable as exc:
        if not module.check_mode:
            module.fail_json(msg='ticdc_changefeed: %s' % redactor.text(str(exc)), **report())
        module.warn('ticdc_changefeed: TiCDC cannot answer yet (%s); in check mode the changefeed is assumed to need a change'
                    % redactor.text(str(exc)))
        module.exit_json(changed=params['state'] != 'absent', **report())
    except TicdcError as exc:
        module.fail_json(msg='ticdc_changefeed: %s' % redactor.text(str(exc)), **report())

    result = dict(changed=changed, **report())
    if module._diff:
        before, after = converge.diff_views()
        result['diff'] = dict(before=redactor.data(before), after=redactor.data(after))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
