# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE). Runs inside Ansible, which is licensed under the
# GNU General Public License v3.0+ (https://www.gnu.org/licenses/gpl-3.0.txt); Apache 2.0 code may be combined with it.

from __future__ import annotations

DOCUMENTATION = r'''
name: tls_files
author:
  - tidbops maintainers (@tidbops)
version_added: 1.0.0
short_description: What a cluster's TLS directory holds, and which certificates must be issued again
description:
  - Reads the CA, the client certificate and the instance certificates of the cluster model's C(tls) plan
    (see C(tidb_tls_dir)) on the controller.
  - With O(want=stale), says which certificates are missing or no longer fit (not signed by C(ca.crt), a key that
    does not match, SANs that lack a name the instance is dialled by, or less than 30 days left), so that
    community.crypto runs only for those.
  - With O(want=material), returns the PEM contents the process specs mount. The result holds private keys; use
    it with C(no_log).
options:
  _terms:
    description: The cluster model's C(tls) mapping (its C(dir) and C(certificates)).
    required: true
  want:
    description: What to return.
    type: str
    choices: [stale, material]
    default: stale
  placeholder:
    description:
      - With O(want=material), the text that stands for a certificate or key still to be issued (check mode), and for a
        CA still to be made; the certificates in O(stale) read as it. Empty reads the files as they are.
    type: str
    default: ''
  stale:
    description: With O(placeholder), the names of the certificates still to be issued.
    type: list
    elements: str
    default: []
'''

EXAMPLES = r'''
- name: Which certificates must be issued
  ansible.builtin.debug:
    msg: "{{ query('tidbops.cluster.tls_files', __tidbops_cluster.tls, want='stale') | first }}"
'''

RETURN = r'''
_raw:
  description:
    - With O(want=stale), one mapping per term with C(ca) (V(missing) when a CA must be made, else null),
      C(certificates) (the names of the certificates to issue) and C(problems) (what cannot be fixed on the controller).
    - With O(want=material), one mapping per term with C(ca) (PEM) and C(certificates) ({name => {cert, key}}).
  type: list
  elements: dict
'''

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible_collections.tidbops.cluster.plugins.module_utils import _tls


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        want = self.get_option('want')
        found = []
        for tls in terms:
            if not isinstance(tls, dict) or not tls.get('enabled') or 'certificates' not in tls:
                raise AnsibleLookupError('tls_files: expected the cluster model\'s tls mapping with TLS enabled')
            if want == 'stale':
                found.append(_tls.stale(tls['certificates'], tls['dir']))
            else:
                found.append(_tls.material(tls['certificates'], tls['dir'], self.get_option('placeholder') or None,
                                           self.get_option('stale')))
        return found
