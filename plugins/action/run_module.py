# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""tidbops.cluster.run_module: run another collection's module in a fork of the worker when the task runs on
the controller (plugin_utils/_forked.py), and as a module elsewhere."""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash

from ansible_collections.tidbops.cluster.plugins.plugin_utils import _forked
from ansible_collections.tidbops.cluster.plugins.plugin_utils._in_process import runs_on_controller

CORE_PREFIXES = ('ansible.builtin.', 'ansible.legacy.')  # ansible-core's modules, which are not a collection's

ARGUMENT_SPEC = dict(
    module=dict(type='str', required=True),
    args=dict(type='dict', default={}),
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    @classmethod
    def worker_imports(cls, args, template):  # pylint: disable=unused-argument  # the name is literal, or skipped
        """The module a task with options ``args`` runs, when it is named literally: tidbops.cluster.linear
        imports it in the controller before the task's worker forks, once, so the fork finds it loaded."""
        name = args.get('module')
        if isinstance(name, str) and name.count('.') == 2 and '{' not in name and not name.startswith(CORE_PREFIXES):
            return (_forked.python_name(name),)
        return ()

    def _resolve(self, name):
        """The fully qualified name of the module ``name``; refused unless its own action would be ansible.builtin.normal."""
        context = self._shared_loader_obj.module_loader.find_plugin_with_context(name, collection_list=self._task.collections)
        if not context.resolved:
            raise AnsibleActionFail('run_module: module is %r, which names no module Ansible can find; expected a module '
                                    'by its fully qualified name, such as community.docker.docker_container' % name)
        fqcn = str(context.resolved_fqcn)  # a plain str: the module's process may be handed it (argv[0])
        if fqcn.startswith(CORE_PREFIXES) or fqcn.count('.') != 2:
            raise AnsibleActionFail('run_module: module is %r; expected a module of a collection, not of ansible-core' % name)
        if context.action_plugin or self._shared_loader_obj.action_loader.has_plugin(fqcn, collection_list=self._task.collections):
            raise AnsibleActionFail('run_module: module %s has an action plugin of its own, which this would bypass; '
                                    'call it directly' % fqcn)
        return fqcn

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # no longer used
        _validation, args = self.validate_argument_spec(ARGUMENT_SPEC)
        fqcn = self._resolve(args['module'])
        if runs_on_controller(self):
            try:
                return merge_hash(result, _forked.run(self, fqcn, args['args'], task_vars or {}))
            except _forked.NotRunnable as exc:
                raise AnsibleActionFail('run_module: %s (the task runs on the controller)' % exc) from exc
        return merge_hash(result, self._execute_module(module_name=fqcn, module_args=args['args'], task_vars=task_vars))
