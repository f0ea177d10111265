#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE). Runs inside Ansible, which is licensed under the
# GNU General Public License v3.0+ (https://www.gnu.org/licenses/gpl-3.0.txt); Apache 2.0 code may be combined with it.

# The action plugin of the same name does the work; this file holds its documentation.

from __future__ import annotations

DOCUMENTATION = r'''
module: run_module
short_description: Run a module of another collection without a module process when the task runs on the controller
version_added: 1.0.0
description:
  - Runs the module O(module) with the options O(args) and returns its result, unchanged.
  - Where the task runs on the controller - a local connection, no become, no task environment, no async - the
    module runs in a fork of Ansible's worker process, which has its code loaded already (the
    P(tidbops.cluster.linear#strategy) strategy loads it once, before the first such worker forks). The fork reads the options
    as JSON on stdin and writes the result as JSON on stdout, as ansible-core's direct invocation of a module does.
    That skips the module payload, the new Python process and the compilation of the module and its
    module_utils, most of a module task's cost - 0.7 to 0.9 s for a container start with
    C(community.docker.docker_container), against 0.16 s - on a 2-core machine.
  - Anywhere else it runs O(module) as Ansible runs any module.
  - The collection's roles use it for the engine and SQL calls on the critical path of a deployment or a roll (start,
    restart and list containers, TiCI's TiDB account).
options:
  module:
    description:
      - The module, by its fully qualified name (C(namespace.collection.name)). It must be a Python module of a
        collection, with no action plugin of its own (an action plugin would be bypassed).
    type: str
    required: true
  args:
    description:
      - The options of O(module). They are checked by O(module) itself, as in any run of it.
    type: dict
    default: {}
extends_documentation_fragment:
  - tidbops.cluster.attributes
attributes:
  action:
    description: Indicates this has a corresponding action plugin, so some parts of the options can be executed on the controller.
    support: full
  async:
    description: Supports being used with the C(async) keyword.
    support: none
  check_mode:
    support: full
    details: O(module) runs in check mode, and reports what it would change if it supports check mode; otherwise it is skipped.
  diff_mode:
    support: full
    details: O(module) runs in diff mode, and returns its diff if it has one.
  idempotent:
    support: full
    details: As idempotent as O(module).
notes:
  - On the controller O(module) runs with the controller's Python, so its Python requirements must be installed there,
    as for this collection's own modules (the collection's execution environment has them).
  - The result of O(module) is masked by O(module) itself, as in a module process - its C(no_log) options never leave it.
seealso:
  - module: community.docker.docker_container
  - module: containers.podman.podman_container
  - module: community.mysql.mysql_user
  - name: Debugging modules (ansible-core's direct invocation of a module)
    description: A module reads its options as JSON on stdin and prints its result as JSON on stdout.
    link: https://docs.ansible.com/ansible/latest/dev_guide/debugging.html
author:
  - tidbops maintainers (@tidbops)
'''

EXAMPLES = r'''
- name: Start a container, without a module process when Docker runs on the controller
  tidbops.cluster.run_module:
    module: community.docker.docker_container
    args:
      name: tidb-demo-pd0
      image: pingcap/pd:v8.5.0
      state: started
'''

RETURN = r'''
# The result of the module named by O(module), as it returns it.
'''
