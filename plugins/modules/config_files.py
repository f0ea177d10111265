#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE). Runs inside Ansible, which is licensed under the
# GNU General Public License v3.0+ (https://www.gnu.org/licenses/gpl-3.0.txt); Apache 2.0 code may be combined with it.

from __future__ import annotations

DOCUMENTATION = r'''
module: config_files
short_description: Write the rendered config files of one or more instances, one directory each
version_added: 1.0.0
description:
  - Ensures the directory O(path) and, inside it, every file of O(files) and O(secret_files) with the given content,
    in a single module run.
  - With O(directories) instead, does the same for several directories in a single module run, each with its own
    mode, files and secret files.
  - It exists for speed. Writing an instance's files with M(ansible.builtin.file) and M(ansible.builtin.copy) takes one
    or two module runs per file; this module takes one run per instance, whatever the number of files.
  - O(directories) goes one step further, to one run per engine host instead of one per instance. When every instance
    of a cluster is prepared at once, the parallel module runs on one host compete for its CPUs (12 instances on a
    host with 2 cores took 2.4 s); one run that writes all the host's directories avoids that.
  - Files whose content and mode already match are left alone. A file whose content matches but whose mode does not
    gets its mode repaired. Files in O(path) that are not listed are left alone.
  - Content is compared byte for byte, after UTF-8 encoding. Each changed file is written to a temporary file in
    O(path) and renamed over the old one, so a reader sees either the old or the new content; the file already has
    its final mode when it appears.
  - Every name is checked before anything is written. A name that is empty, V(.), V(..), holds a C(/), or appears
    twice across O(files) and O(secret_files) is an error that names the option and the file.
  - An entry of O(path) with a listed name that is not a regular file (a directory, a symbolic link) is an error,
    reported before anything is written.
  - With O(directories), every directory is checked (names, modes, paths that are not directories, listed names that
    are not regular files, paths listed twice) before anything is written in any of them, and each error names the
    option with its index, such as C(directories[2].files[0].name). The directories are then written in the given
    order; if writing one fails, the later ones are not touched and the failure tells what was written before it,
    in its message and in RV(directories).
author:
  - tidbops maintainers (@tidbops)
extends_documentation_fragment:
  - tidbops.cluster.attributes
attributes:
  check_mode:
    support: full
    details: Reads the directories and reports what would be created or changed, with the same diff; writes nothing.
  diff_mode:
    support: full
    details:
      - Returns the content before and after of each changed file of O(files) and O(directories[].files).
      - For a file of O(secret_files) or O(directories[].secret_files) the diff holds a placeholder, never the content.
  idempotent:
    support: full
    details: A second run with the same arguments changes nothing and reports C(changed=false).
options:
  path:
    description:
      - The directory of the files.
      - Created if missing, with its missing parents; every directory created gets O(mode).
      - If it exists and is not a directory, the module fails.
      - Exactly one of O(path) and O(directories) is required.
    type: path
  mode:
    description:
      - Permissions of O(path) in octal, as a quoted string like V('0750'). Enforced on every run.
      - Symbolic modes (V(u=rwx,g=rx)) are not supported.
      - Not allowed with O(directories), whose entries have their own O(directories[].mode).
    type: raw
    default: '0750'
  files:
    description:
      - Files written with mode C(0644). Their content may appear in diffs.
      - Not allowed with O(directories).
    type: list
    elements: dict
    default: []
    suboptions: &file_options
      name:
        description: File name inside its directory; a plain name, without C(/).
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
      - Not allowed with O(directories).
    type: list
    elements: dict
    default: []
    suboptions: *file_options
  directories:
    description:
      - Several directories to write in one module run, such as those of all the instances of one engine host.
      - Each entry has the meaning of the single-directory options O(path), O(mode), O(files) and O(secret_files),
        for its own directory.
      - Exactly one of O(path) and O(directories) is required; O(directories) is not allowed with O(path), O(mode),
        O(files) or O(secret_files).
      - Two entries whose paths are the same, after C(~) expansion and normalisation to an absolute path, are an error.
        So is a path that is, or lies inside, a file listed in another entry.
      - The directories are planned together and written in the given order. An earlier entry may be a parent of a
        later one.
      - An empty list is allowed and changes nothing.
    type: list
    elements: dict
    suboptions:
      path:
        description:
          - The directory of the files of this entry.
          - Created if missing, with its missing parents; every directory created gets O(directories[].mode).
          - If it exists and is not a directory, the module fails.
        type: path
        required: true
      mode:
        description:
          - Permissions of O(directories[].path) in octal, as a quoted string like V('0750'). Enforced on every run.
          - Symbolic modes (V(u=rwx,g=rx)) are not supported.
        type: raw
        default: '0750'
      files:
        description:
          - Files written with mode C(0644). Their content may appear in diffs.
        type: list
        elements: dict
        default: []
        suboptions: *file_options
      secret_files:
        description:
          - Files written with mode C(0600), such as a file with passwords or keys.
          - Their content is declared C(no_log), as that of O(secret_files), and never appears in the result, a diff
            or a message; only their names appear, in RV(directories[].changed_files) and in diff headers.
        type: list
        elements: dict
        default: []
        suboptions: *file_options
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

- name: The files of two instances of one engine host, in one module run
  tidbops.cluster.config_files:
    directories:
      - path: /srv/tidb/tikv0/conf
        files:
          - name: tikv.toml
            content: "[storage]\nreserve-space = \"0MB\"\n"
      - path: /srv/tidb/tici-meta0/conf
        mode: '0700'
        secret_files:
          - name: tici.toml
            content: "{{ tici_meta_config }}"
  register: written

- name: Restart the instances whose files changed
  ansible.builtin.debug:
    msg: "restart {{ item.path }}"
  loop: "{{ written.directories | selectattr('changed') }}"
  loop_control:
    label: "{{ item.path }}"
'''

RETURN = r'''
path:
  description:
    - The directory, as given in O(path) (with C(~) and variables expanded).
    - Not returned with O(directories); see RV(directories[].path).
  returned: when O(path) is given
  type: str
  sample: /srv/tidb/pd0/conf
changed_files:
  description:
    - Names of the files that were created, or whose content or mode changed (in check mode, that would be).
    - In input order, O(files) first, then O(secret_files).
    - Not returned with O(directories), where a name alone would not tell the directory; see
      RV(directories[].changed_files).
  returned: when O(path) is given
  type: list
  elements: str
  sample: [pd.toml, credentials.env]
created_dir:
  description:
    - Whether O(path) was created (in check mode, would be).
    - Not returned with O(directories); see RV(directories[].created_dir).
  returned: when O(path) is given
  type: bool
  sample: false
directories:
  description:
    - With O(directories), one entry per entry of O(directories), in input order. The module's C(changed) is true
      when any entry's RV(directories[].changed) is.
    - Also returned when writing a directory fails, holding the directories written before the failure and, last, the
      one that failed, with what was written in it. The message names the failed entry, such as C(directories[2]).
  returned: when O(directories) is given
  type: list
  elements: dict
  contains:
    path:
      description: The directory, as given in O(directories[].path) (with C(~) and variables expanded).
      type: str
      returned: always
      sample: /srv/tidb/pd0/conf
    changed:
      description: Whether anything in this directory changed (in check mode, would change).
      type: bool
      returned: always
      sample: true
    changed_files:
      description:
        - Names of the files of this directory that were created, or whose content or mode changed (in check mode,
          that would be).
        - In input order, O(directories[].files) first, then O(directories[].secret_files).
      type: list
      elements: str
      returned: always
      sample: [pd.toml]
    created_dir:
      description: Whether O(directories[].path) was created (in check mode, would be).
      type: bool
      returned: always
      sample: false
  sample:
    - path: /srv/tidb/pd0/conf
      changed: true
      changed_files: [pd.toml]
      created_dir: false
    - path: /srv/tidb/minio0/conf
      changed: false
      changed_files: []
      created_dir: false
diff:
  description:
    - In diff mode, a list of entries in the usual C(before)/C(after) form.
    - With O(directories), the entries of every directory, directory after directory in input order.
    - One entry per created or rewritten file, with C(before_header) and C(after_header) set to the file's path and
      C(before) (empty for a new file) and C(after) set to the text.
    - 'For a file of O(secret_files), C(before) and C(after) are fixed one-line placeholders instead,
      "(secret file NAME: old content not shown)" and "(secret file NAME: new content not shown)".
      The same holds for O(directories[].secret_files).'
    - One entry per existing file whose mode changes, with C(before) and C(after) holding C(path) and C(mode).
    - For the directory, before the entries of its files, if it is created (C(state) V(absent) before, V(directory) after) or its mode changes.
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

from ansible_collections.tidbops.cluster.plugins.module_utils._files import (
    FilesError, apply, apply_directories, diff, parse_mode, plan, plan_directories, summary, validate_names, wanted_files,
)

FILE_OPTIONS = dict(
    name=dict(type='str', required=True),
    content=dict(type='str', required=True),
)
SECRET_FILE_OPTIONS = dict(
    name=dict(type='str', required=True),
    content=dict(type='str', required=True, no_log=True),
)
DIRECTORY_OPTIONS = dict(
    path=dict(type='path', required=True),
    mode=dict(type='raw', default='0750'),
    files=dict(type='list', elements='dict', default=[], options=FILE_OPTIONS),
    secret_files=dict(type='list', elements='dict', default=[], options=SECRET_FILE_OPTIONS, no_log=False),
)


# The options; plugins/action runs the same code with them when the task runs on the controller.
ARGUMENT_SPEC = dict(
    path=dict(type='path'),
    mode=dict(type='raw', default='0750'),
    files=dict(type='list', elements='dict', default=[], options=FILE_OPTIONS),
    secret_files=dict(type='list', elements='dict', default=[], options=SECRET_FILE_OPTIONS, no_log=False),
    directories=dict(type='list', elements='dict', options=DIRECTORY_OPTIONS),
)
ARGUMENT_RULES = dict(
    # Checked before the defaults of mode, files and secret_files are filled in.
    required_one_of=[('path', 'directories')],
    mutually_exclusive=[('directories', option) for option in ('path', 'mode', 'files', 'secret_files')],
)


def main():
    run(AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True, **ARGUMENT_RULES))


def run(module):
    """The module's work, given AnsibleModule or the controller's stand-in for it."""
    if module.params['directories'] is not None:
        write_directories(module)
    else:
        write_directory(module)


def write_directory(module):
    """The single-directory form: O(path), O(mode), O(files), O(secret_files)."""
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


def write_directories(module):
    """The O(directories) form: plan every directory, then write them in order."""
    try:
        plans = plan_directories(module.params['directories'])
    except FilesError as exc:
        module.fail_json(msg='config_files: %s' % exc)
    if not module.check_mode:
        try:
            apply_directories(plans, module.atomic_move)
        except FilesError as exc:
            module.fail_json(msg='config_files: %s' % exc, changed=exc.changed, directories=exc.directories)

    result = dict(changed=any(each.changed for each in plans), directories=[summary(each) for each in plans])
    if module._diff:
        result['diff'] = [entry for each in plans for entry in diff(each)]
    module.exit_json(**result)


if __name__ == '__main__':
    main()
