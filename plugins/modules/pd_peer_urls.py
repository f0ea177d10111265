#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE). Runs inside Ansible, which is licensed under the
# GNU General Public License v3.0+ (https://www.gnu.org/licenses/gpl-3.0.txt); Apache 2.0 code may be combined with it.

from __future__ import annotations

DOCUMENTATION = r'''
module: pd_peer_urls
short_description: Ensure PD members' peer URLs use http or https
version_added: 1.0.0
description:
  - The last step of switching TLS on a deployed cluster, as TiUP's C(tiup cluster tls) does it (pingcap/tiup
    pkg/cluster/operation/pd_member.go) - once every PD runs with the new setting, the peer URLs its embedded etcd
    recorded for each member still carry the old scheme; a member that joins later would dial them. This module
    rewrites the scheme of every member's peer URLs to O(scheme) and leaves host and port as they are.
  - It lists the members with C(POST /v3/cluster/member/list) and updates each one that differs with
    C(POST /v3/cluster/member/update), both through PD's etcd gateway on its client URLs, then lists them again
    until none differs. Client URLs need nothing - etcd publishes them itself each time a member starts.
  - Connection errors and HTTP 5xx answers are retried on every endpoint until O(timeout).
extends_documentation_fragment:
  - tidbops.cluster.attributes
  - tidbops.cluster.connection
options:
  endpoints:
    description: PD client URLs, with the scheme PD serves now.
    type: list
    elements: str
    required: true
  scheme:
    description: The scheme every peer URL must have - V(https) when the cluster runs with TLS.
    type: str
    required: true
    choices: [http, https]
  timeout:
    description: Seconds for the whole step, retries included.
    type: float
    default: 60
attributes:
  check_mode:
    support: full
    details:
      - Lists the members once, without retries, and reports the updates it would make.
      - When PD cannot answer (in a dry run of a TLS switch it still serves the old scheme), warns and reports a change.
  diff_mode:
    support: full
    details: Shows the peer URLs of every member before and after.
  idempotent:
    support: full
seealso:
  - module: tidbops.cluster.pd_info
author:
  - tidbops maintainers (@tidbops)
'''

EXAMPLES = r'''
- name: PD members dial each other over TLS
  tidbops.cluster.pd_peer_urls:
    endpoints: [https://10.0.1.1:2379]
    scheme: https
    ca_cert: /home/tidb/.tidbops/prod/tls/ca.crt
    client_cert: /home/tidb/.tidbops/prod/tls/client.crt
    client_key: /home/tidb/.tidbops/prod/tls/client.pem
'''

RETURN = r'''
members:
  description: Every member with C(name), C(id) (etcd's member ID) and C(peer_urls), after the run (as they would be, in check mode).
  returned: success
  type: list
  elements: dict
  sample: [{"name": "pd0", "id": "10276657743932975437", "peer_urls": ["https://10.0.1.1:2380"]}]
updated:
  description: The names of the members whose peer URLs were (or would be) rewritten.
  returned: success
  type: list
  elements: str
  sample: [pd0]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.tidbops.cluster.plugins.module_utils._http import CONNECTION_ARGSPEC, HttpClient, endpoints_problem, make_transport
from ansible_collections.tidbops.cluster.plugins.module_utils import _rolling
from ansible_collections.tidbops.cluster.plugins.module_utils._pd_peers import PeerUrls


# The options; plugins/action runs the same code with them when the task runs on the controller.
ARGUMENT_SPEC = dict(
    endpoints=dict(type='list', elements='str', required=True),
    scheme=dict(type='str', required=True, choices=['http', 'https']),
    timeout=dict(type='float', default=60),
)
ARGUMENT_SPEC.update(CONNECTION_ARGSPEC)


def main():
    run(AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True))


def run(module):
    """The module's work, given AnsibleModule or the controller's stand-in for it."""
    params = module.params
    error = endpoints_problem(params['endpoints'], 'endpoints', params.get('kube_proxy'))
    if error:
        module.fail_json(msg='pd_peer_urls: %s' % error)
    if params['timeout'] <= 0:
        module.fail_json(msg='pd_peer_urls: timeout: expected seconds > 0, got %s' % params['timeout'])
    api = _rolling.Api(HttpClient(make_transport(module)), params['endpoints'],
                       _rolling.deadline(params['timeout'], module.check_mode), 'PD')
    try:
        changed, before, after = PeerUrls(api).ensure(params['scheme'], module.check_mode)
    except _rolling.RollError as exc:
        if not module.check_mode:
            module.fail_json(msg='pd_peer_urls: %s' % exc)
        # A dry run of a TLS switch asks PD with the new scheme while PD still serves the old one.
        module.warn('pd_peer_urls: PD cannot answer (%s); in check mode the peer URLs are assumed to need a change' % exc)
        module.exit_json(changed=True, members=[], updated=[])
    old = dict((member['id'], member['peer_urls']) for member in before)
    result = dict(changed=changed, members=after,
                  updated=[member['name'] for member in after if member['peer_urls'] != old.get(member['id'])])
    if module._diff:
        result['diff'] = dict(before=dict((m['name'], m['peer_urls']) for m in before),
                              after=dict((m['name'], m['peer_urls']) for m in after))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
