# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""The action plugins run a module in the controller's worker process only where the module would run
on the controller as the same user in the same environment; plugin_utils/_in_process.py stands in for
AnsibleModule there. The module tests (tests/unit/plugins/modules) run every module both ways."""

from __future__ import annotations

import importlib
import types

from pathlib import Path
from unittest.mock import MagicMock

import pytest

from ansible.plugins.action.normal import ActionModule as NormalAction

from ansible_collections.tidbops.cluster.plugins.plugin_utils import _in_process

# Every action plugin but run_module, which runs other collections' modules (test_run_module.py).
ACTIONS = sorted(path.stem for path in (Path(__file__).resolve().parents[4] / 'plugins' / 'action').glob('*.py') if path.stem != 'run_module')


def action(name, args, transport='local', become=False, environment=None, async_val=0, check_mode=False):
    module = importlib.import_module('ansible_collections.tidbops.cluster.plugins.action.' + name)
    task = MagicMock(args=args, check_mode=check_mode, diff=False, environment=environment or [{}], async_val=async_val)
    connection = MagicMock(transport=transport)
    play_context = MagicMock(become=become)
    return module.ActionModule(task, connection, play_context, loader=None, templar=None, shared_loader_obj=None)


@pytest.fixture
def module_path(monkeypatch):
    """Replace Ansible's module path with a recorder: a run that reaches it returns ran=module."""
    calls = []

    def run(self, tmp=None, task_vars=None):
        calls.append(self._task.args)
        return dict(ran='module')
    monkeypatch.setattr(NormalAction, 'run', run)
    return calls


def test_every_action_plugin_runs_the_module_of_its_name():
    assert 'component_ready' in ACTIONS and 'config_files' in ACTIONS
    for name in ACTIONS:
        plugin = importlib.import_module('ansible_collections.tidbops.cluster.plugins.action.' + name)
        assert plugin.ActionModule.MODULE.__name__.endswith('.modules.' + name)
        assert callable(plugin.ActionModule.MODULE.run) and isinstance(plugin.ActionModule.MODULE.ARGUMENT_SPEC, dict)


def test_on_the_controller_the_module_code_runs_in_process(module_path):
    # pd_info's own check of its endpoints answers: the module's code ran, and no module process did.
    result = action('pd_info', dict(endpoints=['ftp://pd0:2379'])).run(task_vars={})
    assert module_path == []
    assert result['failed'] is True and result['msg'].startswith('pd_info: ') and 'ftp://pd0:2379' in result['msg']


@pytest.mark.parametrize('where', [
    dict(transport='ssh'),
    dict(become=True),
    dict(environment=[{'HTTPS_PROXY': 'http://127.0.0.1:3128'}]),
    dict(async_val=30),
], ids=['remote-host', 'become', 'task-environment', 'async'])
def test_elsewhere_it_runs_as_a_module(module_path, where):
    args = dict(endpoints=['http://127.0.0.1:2379'])
    assert action('pd_info', args, **where).run(task_vars={}) == dict(ran='module')
    assert module_path == [args]


def test_options_are_checked_against_the_module_spec(module_path):
    result = action('pd_info', dict(endpoints=['http://127.0.0.1:2379'], endpoint='x')).run(task_vars={})
    assert result['failed'] is True and 'Unsupported parameters for (pd_info) module: endpoint' in result['msg']
    result = action('component_ready', dict(component='etcd')).run(task_vars={})
    assert result['failed'] is True and 'component' in result['msg'] and 'etcd' in result['msg']
    assert module_path == []


def fake_module(run, **spec):
    return types.SimpleNamespace(__name__='ansible_collections.tidbops.cluster.plugins.modules.fake',
                                 ARGUMENT_SPEC=spec or dict(password=dict(type='str', no_log=True)), run=run)


def test_no_log_values_never_leave_and_a_module_cannot_swallow_its_end():
    def run(module):
        try:
            module.warn('about to fail with %s' % module.params['password'])
            module.fail_json(msg='wrong password %s' % module.params['password'], echo=module.params['password'])
        except Exception:  # pylint: disable=broad-exception-caught  # what a module's own handler would do
            module.exit_json(changed=True)
    result = _in_process.run_module(fake_module(run), dict(password='s3cr3t-Pa55'))
    assert result['failed'] is True and result['changed'] is False
    assert 's3cr3t-Pa55' not in repr(result)
    assert result['msg'] == 'wrong password ********' and result['warnings'] == ['about to fail with ********']
    assert result['invocation'] == dict(module_args=dict(password='VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'))


def test_the_module_sees_the_plain_types_a_module_process_would():
    # Templated task values are Ansible's tagged subclasses; a library may check the exact type
    # (PyMySQL refuses a port whose type is not int), as the smoke test did in a real run.
    from ansible._internal._datatag._tags import Origin  # pylint: disable=import-outside-toplevel
    seen = []

    def run(module):
        seen.append({key: type(value) for key, value in module.params.items()})
        module.exit_json(changed=False)
    args = dict(port=Origin(path='/site.yml').tag(4000), host=Origin(path='/site.yml').tag('127.0.0.1'))
    assert type(args['port']) is not int  # pylint: disable=unidiomatic-typecheck
    _in_process.run_module(fake_module(run, port=dict(type='int'), host=dict(type='str')), args)
    assert seen == [dict(port=int, host=str)]


def test_check_mode_and_diff_reach_the_module():
    seen = []

    def run(module):
        seen.append((module.check_mode, module._diff))  # pylint: disable=protected-access
        module.exit_json(changed=False)
    _in_process.run_module(fake_module(run, name=dict(type='str')), {}, check_mode=True, diff=True)
    assert seen == [(True, True)]


def test_a_module_that_returns_without_exit_is_a_bug():
    with pytest.raises(RuntimeError, match='fake: returned without exit_json or fail_json'):
        _in_process.run_module(fake_module(lambda module: None), {})
