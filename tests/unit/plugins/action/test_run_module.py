# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""tidbops.cluster.run_module: another collection's module, run in a fork of the worker when the task runs on the
controller (plugin_utils/_forked.py) and as a module process elsewhere. The test modules (testns.forked, beside
this file) report how they ran; ansible-playbook runs them both ways."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
TOP = HERE.parents[3]
SECRET = 's3cr3t-Pa55'
PLAY = """
- name: run_module both ways
  hosts: localhost
  gather_facts: false
  strategy: tidbops.cluster.linear
  tasks:
    - name: Forked, twice in a loop
      tidbops.cluster.run_module:
        module: testns.forked.echo
        args: {name: "{{ item }}", secret: "%(secret)s"}
      loop: [one, two]
      register: forked
    - name: As a module process (a task environment)
      tidbops.cluster.run_module:
        module: testns.forked.echo
        args: {name: module, secret: "%(secret)s"}
      environment: {TIDBOPS_TEST: "1"}
      register: as_module
    - name: In check mode, with a diff
      tidbops.cluster.run_module:
        module: testns.forked.echo
        args: {name: checked}
      check_mode: true
      diff: true
      register: checked
    - name: A module that fails
      tidbops.cluster.run_module:
        module: testns.forked.echo
        args: {name: failing, secret: "%(secret)s", fail: true}
      ignore_errors: true
      register: failing
    - name: Options the module does not know
      tidbops.cluster.run_module:
        module: testns.forked.echo
        args: {name: x, colour: blue}
      ignore_errors: true
      register: unknown_option
    - name: A module that crashes, forked
      tidbops.cluster.run_module:
        module: testns.forked.boom
      ignore_errors: true
      register: boom_forked
    - name: A module that crashes, as a module process
      tidbops.cluster.run_module:
        module: testns.forked.boom
      environment: {TIDBOPS_TEST: "1"}
      ignore_errors: true
      register: boom_module
    - name: No such module
      tidbops.cluster.run_module:
        module: testns.forked.nothing
      ignore_errors: true
      register: missing
    - name: A module with an action plugin of its own
      tidbops.cluster.run_module:
        module: community.docker.docker_container_copy_into
        args: {container: x, path: /etc/hostname, container_path: /tmp/x}
      ignore_errors: true
      register: own_action
    - name: A module of ansible-core
      tidbops.cluster.run_module:
        module: ansible.builtin.ping
      ignore_errors: true
      register: core
    - name: A module without main()
      tidbops.cluster.run_module:
        module: testns.forked.nomain
      ignore_errors: true
      register: nomain
    - name: A module whose library the controller lacks
      tidbops.cluster.run_module:
        module: testns.forked.needs_missing_lib
      ignore_errors: true
      register: missing_lib
    - name: Keep the results
      ansible.builtin.copy:
        content: "{{ dict(forked=forked.results, as_module=as_module, checked=checked, failing=failing, unknown_option=unknown_option,
                          boom_forked=boom_forked, boom_module=boom_module, missing=missing, own_action=own_action, core=core,
                          nomain=nomain, missing_lib=missing_lib) | to_json }}"
        dest: "%(out)s"
        mode: "0600"
"""


@pytest.fixture(scope='module')
def played(tmp_path_factory):
    """The play's results and output: one ansible-playbook run for the tests below."""
    tmp_path = tmp_path_factory.mktemp('run_module')
    out = tmp_path / 'results.json'
    (tmp_path / 'play.yml').write_text(PLAY % dict(secret=SECRET, out=out), encoding='utf-8')
    env = dict(os.environ, ANSIBLE_CONFIG=str(TOP / 'ansible.cfg'), ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_NOCOLOR='1',
               ANSIBLE_COLLECTIONS_PATH='%s:%s' % (HERE / 'collections', TOP / '.collections'))
    proc = subprocess.run([str(pathlib.Path(sys.executable).with_name('ansible-playbook')), '-i', 'localhost,', '-c', 'local',
                           str(tmp_path / 'play.yml')], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return json.loads(out.read_text(encoding='utf-8')), proc.stdout + proc.stderr


def test_run_module_forks_on_the_controller_and_runs_a_module_process_elsewhere(played):
    results, output = played
    forked, as_module = results['forked'], results['as_module']
    # The fork runs the module's main() as a direct invocation does (its name as argv[0]), a module process runs
    # AnsiballZ's payload; the result is the same otherwise.
    assert [result['argv0'] for result in forked] == ['testns.forked.echo'] * 2
    assert as_module['argv0'] != 'testns.forked.echo'
    # (Ansible drops the invocation of a registered result, and moves a loop item's warnings to the task's.)
    assert set(forked[0]) - {'item', 'ansible_loop_var', 'invocation'} == set(as_module) - {'warnings'}, (forked[0], as_module)
    for result, name in zip(forked + [as_module], ['one', 'two', 'module']):
        assert result['changed'] is True and result['failed'] is False
        # Each run starts from the worker as it was: nothing the previous run of a loop did is seen.
        assert result['calls'] == [name] and 'warned by %s' % name in output
        assert result['echoed'] == 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'
        assert not pathlib.Path(result['tmpdir']).exists()  # its temporary directory is gone
    assert as_module['warnings'] == ['warned by module']
    assert SECRET not in output and SECRET not in json.dumps(results)
    checked = results['checked']
    assert checked['check_mode'] is True and checked['diff_mode'] is True and checked['changed'] is False
    assert checked['warnings'] == ['warned by checked']  # the module's own warning, in its result
    failing = results['failing']
    assert failing['failed'] is True and failing['msg'] == 'failed as asked, with ********'
    assert results['unknown_option']['failed'] is True
    assert 'Unsupported parameters for (testns.forked.echo) module: colour' in results['unknown_option']['msg']


def test_a_crash_fails_the_task_with_the_module_error_either_way(played):
    results, _output = played
    for run in ('boom_forked', 'boom_module'):
        result = results[run]
        assert result['failed'] is True, result
        assert 'the boom module blew up' in json.dumps(result), result


def test_what_run_module_refuses_is_named(played):
    results, _output = played
    assert results['missing']['failed'] is True
    assert "module is 'testns.forked.nothing', which names no module" in results['missing']['msg']
    assert results['own_action']['failed'] is True
    assert 'community.docker.docker_container_copy_into has an action plugin of its own' in results['own_action']['msg']
    assert results['core']['failed'] is True and 'not of ansible-core' in results['core']['msg']
    assert results['nomain']['failed'] is True and 'testns.forked.nomain has no main()' in results['nomain']['msg']
    missing_lib = results['missing_lib']
    assert missing_lib['failed'] is True and 'testns.forked.needs_missing_lib cannot be imported on the controller' in missing_lib['msg']
    assert 'tidbops_no_such_library' in missing_lib['msg']
