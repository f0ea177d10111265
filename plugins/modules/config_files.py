#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE). Runs inside Ansible, which is licensed under the
# GNU General Public License v3.0+ (https://www.gnu.org/licenses/gpl-3.0.txt); Apache 2.0 code may be combined with it.

from __future__ import annotations

DOCUMENTATION = r'''
module: config_files
short_description: Write the rendered config files of one instance into one directory
version_added: 1.0.0
description:
  - Ensures the directory O(path) and, inside it, every file of O(files) and O(secret_files) with the given content,
    in a single module run.
  - It exists for speed. Writing an instance's files with M(ansible.builtin.file) and M(ansible.builtin.copy) takes one
    or two module runs per file; this module takes one run per instance, whatever the number of files.
  - Files whose content and mode already match are left alone. A file whose content matches but whose mode does not
    gets its mode repaired. Files in O(path) that are not listed are left alone.
  - Content is compared byte for byte, after UTF-8 encoding. Each changed file is written to a temporary file in
    O(path) and renamed over the old one, so a reader sees either the old or the new content; the file already has
    its final mode when it appears.
  - Every name is checked before anything is written. A name that is empty, V(.), V(..), holds a C(/), or appears
    twice across O(files) and O(secret_files) is an error that names the option and the file.
  - An entry of O(path) with a listed name that is not a regular file (a directory, a symbolic link) is an error,
    reported before anything is written.
author:
  - tidbops maintainers (@tidbops)
extends_documentation_fragment:
  - tidbops.cluster.attributes
attributes:
  check_mode:
    support: full
    details: Reads the directory and reports what would be created or changed, with the same diff; writes nothing.
  diff_mode:
    support: full
    details:
      - Returns the content before and after of each changed file of O(files).
      - For a file of O(secret_files) the diff holds a placeholder, never the content.
  idempotent:
    support: full
    details: A second run with the same arguments changes nothing and reports C(changed=false).
options:
  path:
    description:
      - The directory of the files.
      - Created if missing, with its missing parents; every directory created gets O(mode).
      - If it exists and is not a directory, the module fails.
    type: path
    required: true
  mode:
    description:
      - Permissions of O(path) in octal, as a quoted string like V('0750'). Enforced on every run.
      - Symbolic modes (V(u=rwx,g=rx)) are not supported.
    type: raw
    default: '0750'
  files:
    description:
      - Files written with mode C(0644). Their content may appear in diffs.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: File name inside O(path); a plain name, without C(/).
        type: str
        required: true
      content:
        description: The content, as text; written UTF-8 encoded.
        type: str
        required: true
  secret_files:
    description:
      - Files written with mode C(0600), such as a file with passwords or keys.
      - Their content is declared C(no_log), so Ansible masks it in the logged invocation. The module never puts it in
        its result, a diff or a message; only their names appear, in RV(changed_files) and in diff headers.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: File name inside O(path); a plain name, without C(/).
        type: str
        required: true
      content:
        description: The content, as text; written UTF-8 encoded.
        type: str
        required: true
notes:
  - Ownership is not managed. A new file belongs to the user the module runs as; a replaced file keeps its owner and
    group where the user may set them.
  - The temporary files are named C(.<name>.<random>.tmp) and removed after the rename, also on failure.
seealso:
  - module: ansible.builtin.copy
  - module: ansible.builtin.file
'''

EXAMPLES = r'''
- name: Write the config files of pd0
  tidbops.cluster.config_files:
    path: /srv/tidb/pd0/conf
    files:
      - name: pd.toml
        content: |
          [replication]
          max-replicas = 3
      - name: labels.json
        content: '{"zone": "z1"}'

- name: A secret file next to the plain ones, in a directory only the owner may enter
  tidbops.cluster.config_files:
    path: /srv/tidb/minio0/conf
    mode: '0700'
    files:
      - name: minio.env
        content: "MINIO_BROWSER=off\n"
    secret_files:
      - name: credentials.env
        content: "MINIO_ROOT_PASSWORD={{ minio_root_password }}\n"
  notify: restart minio0

- name: The files of every instance, one module run each
  tidbops.cluster.config_files:
    path: "{{ item.config_dir }}"
    files: "{{ item.files }}"
    secret_files: "{{ item.secret_files }}"
  loop: "{{ instances }}"
  loop_control:
    label: "{{ item.config_dir }}"
'''

RETURN = r'''
path:
  description: The directory, as given in O(path) (with C(~) and variables expanded).
  returned: always
  type: str
  sample: /srv/tidb/pd0/conf
changed_files:
  description:
    - Names of the files that were created, or whose content or mode changed (in check mode, that would be).
    - In input order, O(files) first, then O(secret_files).
  returned: always
  type: list
  elements: str
  sample: [pd.toml, credentials.env]
created_dir:
  description: Whether O(path) was created (in check mode, would be).
  returned: always
  type: bool
  sample: false
diff:
  description:
    - In diff mode, a list of entries in the usual C(before)/C(after) form.
    - One entry per created or rewritten file, with C(before_header) and C(after_header) set to the file's path and
      C(before) (empty for a new file) and C(after) set to the text.
    - 'For a file of O(secret_files), C(before) and C(after) are fixed one-line placeholders instead,
      "(secret file NAME: old content not shown)" and "(secret file NAME: new content not shown)".'
    - One entry per existing file whose mode changes, with C(before) and C(after) holding C(path) and C(mode).
    - For the directory, first, if it is created (C(state) V(absent) before, V(directory) after) or its mode changes.
  returned: when diff mode is on
  type: list
  elements: dict
  sample:
    - before_header: /srv/tidb/pd0/conf/pd.toml
      after_header: /srv/tidb/pd0/conf/pd.toml
      before: "[replication]\nmax-replicas = 1\n"
      after: "[replication]\nmax-replicas = 3\n"
    - before_header: /srv/tidb/pd0/conf/credentials.env
      after_header: /srv/tidb/pd0/conf/credentials.env
      before: ''
      after: "(secret file credentials.env: new content not shown)\n"
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.tidbops.cluster.plugins.module_utils._files import FilesError, apply, diff, parse_mode, plan, validate_names, wanted_files

FILE_OPTIONS = dict(
    name=dict(type='str', required=True),
    content=dict(type='str', required=True),
)
SECRET_FILE_OPTIONS = dict(
    name=dict(type='str', required=True),
    content=dict(type='str', required=True, no_log=True),
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            mode=dict(type='raw', default='0750'),
            files=dict(type='list', elements='dict', default=[], options=FILE_OPTIONS),
            secret_files=dict(type='list', elements='dict', default=[], options=SECRET_FILE_OPTIONS, no_log=False),
        ),
        supports_check_mode=True,
    )
    params = module.params
    path = params['path']

    errors = validate_names(params['files'], params['secret_files'])
    try:
        dir_mode = parse_mode(params['mode'])
    except ValueError as exc:
        errors.insert(0, 'mode: %s' % exc)
    if errors:
        module.fail_json(msg='config_files: ' + '; '.join(errors), path=path)

    try:
        changes = plan(path, dir_mode, wanted_files(params['files'], params['secret_files']))
    except (FilesError, OSError) as exc:
        module.fail_json(msg='config_files: %s' % exc, path=path)
    if not module.check_mode:
        try:
            apply(changes, module.atomic_move)
        except FilesError as exc:
            module.fail_json(msg='config_files: %s' % exc, path=path, changed=exc.changed, changed_files=exc.written)

    result = dict(changed=changes.changed, path=path, changed_files=changes.changed_files, created_dir=changes.created_dir)
    if module._diff:
        result['diff'] = diff(changes)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
