# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""A test module for tidbops.cluster.run_module: it reports how and where it ran."""

from __future__ import annotations

import os
import sys

from ansible.module_utils.basic import AnsibleModule

CALLS = []  # what earlier runs in this process left behind


def main():
    module = AnsibleModule(argument_spec=dict(name=dict(type='str', required=True), secret=dict(type='str', no_log=True),
                                              fail=dict(type='bool', default=False)),
                           supports_check_mode=True)
    CALLS.append(module.params['name'])
    module.warn('warned by %s' % module.params['name'])
    marker = os.path.join(module.tmpdir, 'marker')
    with open(marker, 'w', encoding='utf-8') as handle:
        handle.write('x')
    result = dict(changed=not module.check_mode, argv0=sys.argv[0], check_mode=module.check_mode, diff_mode=module._diff,
                  calls=list(CALLS), tmpdir=module.tmpdir, echoed=module.params['secret'])
    if module.params['fail']:
        module.fail_json(msg='failed as asked, with %s' % module.params['secret'], **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
