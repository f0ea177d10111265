# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)

# This plugin_utils is PRIVATE and must only be used by this collection.
# It may change at any time, without notice.

"""Run one of this collection's modules inside the controller's worker process.

Most of the collection's modules are delegated to the controller: the gates, the changefeed, PD's
settings, the leader moves. Run as modules, each task costs a module payload built and copied and a
Python process started, 0.4 to 1 s on a 2-core machine, which was most of a no-op ``site.yml``. When
the task runs on the controller anyway (a local connection, no become, no task environment, no
async), the action plugins in ``plugins/action`` run the module's own ``run(module)`` here instead,
with ``InProcessModule`` standing in for AnsibleModule. It validates the options against the
module's own ARGUMENT_SPEC, ends the module's code where AnsibleModule would exit, and masks
``no_log`` values in the result, as AnsibleModule does. Elsewhere the action plugins run the module
as usual.
"""

from __future__ import annotations

import json
import os
import sys

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.errors import UnsupportedError
from ansible.plugins.action.normal import ActionModule as NormalAction


class _Finished(BaseException):
    """exit_json or fail_json was called. A BaseException, as AnsibleModule's SystemExit is, so that a
    module's own ``except Exception`` cannot swallow the end of the module."""

    def __init__(self, result):
        super().__init__()
        self.result = result


class InProcessModule:
    """The part of AnsibleModule the collection's modules use: params, check_mode, _diff, warn,
    no_log_values, atomic_move, exit_json and fail_json."""

    def __init__(self, params, check_mode=False, diff=False, no_log_values=()):
        self.params = params
        self.check_mode = check_mode
        self._diff = diff
        self.no_log_values = set(no_log_values)
        self._warnings = []

    def warn(self, warning):
        self._warnings.append(warning)

    @staticmethod
    def atomic_move(src, dest):
        """Replace ``dest`` with ``src`` in one rename. config_files (module_utils/_files.py), the one
        caller, makes ``src`` in the directory of ``dest`` with its final mode; and as the task runs
        as this user without become, the owner is the one the module would have given it."""
        os.replace(src, dest)

    def exit_json(self, **result):
        raise _Finished(self._formatted(result))

    def fail_json(self, msg, **result):
        result.update(msg=msg, failed=True)
        raise _Finished(self._formatted(result))

    def _formatted(self, result):
        warnings = self._warnings + list(result.pop('warnings', None) or [])
        result.setdefault('changed', False)
        if warnings:
            result['warnings'] = warnings
        result.setdefault('invocation', dict(module_args=self.params))
        # As AnsibleModule does: no value of a no_log option leaves the module, whatever key holds it.
        return remove_values(result, self.no_log_values)


def validate(module_file, args):
    """``args`` checked against the module's ARGUMENT_SPEC (and ARGUMENT_RULES): (the validation, the
    module's failed result or None)."""
    validator = ArgumentSpecValidator(module_file.ARGUMENT_SPEC, **getattr(module_file, 'ARGUMENT_RULES', {}))
    validation = validator.validate(args)
    if not validation.error_messages:
        return validation, None
    message = validation.errors.msg
    if isinstance(validation.errors[0], UnsupportedError):
        message = 'Unsupported parameters for (%s) module: %s' % (module_file.__name__.rsplit('.', 1)[-1], message)
    no_log_values = validation._no_log_values  # pylint: disable=protected-access  # AnsibleModule reads it the same way
    return validation, remove_values(dict(failed=True, changed=False, msg=message), no_log_values)


def run_module(module_file, args, check_mode=False, diff=False):
    """Run ``module_file.run`` with ``args`` checked against its ARGUMENT_SPEC (and ARGUMENT_RULES);
    return the module's result, ``failed`` set when it failed."""
    name = module_file.__name__.rsplit('.', 1)[-1]
    # What a module process receives: the options as JSON, so plain str, int, list and dict. The task's
    # own values are Ansible's tagged subclasses of them (templating marks where each came from), and
    # a library may insist on the exact type (PyMySQL: ``type(port) is int``).
    args = json.loads(json.dumps(args))
    validation, failed = validate(module_file, args)
    if failed:
        return failed
    no_log_values = validation._no_log_values  # pylint: disable=protected-access  # AnsibleModule reads it the same way
    module = InProcessModule(validation.validated_parameters, check_mode, diff, no_log_values)
    try:
        module_file.run(module)
    except _Finished as finished:
        return finished.result
    raise RuntimeError('%s: returned without exit_json or fail_json' % name)


# What the kubernetes client takes to import: the client, its REST errors, its kubeconfig loader, and
# what the modules use of it. The client (37.0 here) imports an API class or the kubeconfig loader
# only when it is first named, so naming the packages alone left each worker 0.7 s of imports.
KUBERNETES_IMPORTS = ('kubernetes.client', 'kubernetes.client.rest', 'kubernetes.config', 'urllib3.exceptions',
                      'kubernetes.client.api_client', 'kubernetes.client.configuration', 'kubernetes.config.kube_config',
                      'kubernetes.client.api.apps_v1_api', 'kubernetes.client.api.core_v1_api',
                      'kubernetes.client.api.batch_v1_api')


def runs_on_controller(action):
    """Whether the module of ``action`` (an action plugin) would run on this machine, as this user, in
    this environment, at once: a local connection, no become, no task environment, no async."""
    return (action._connection.transport == 'local'  # pylint: disable=protected-access
            and not action._play_context.become  # pylint: disable=protected-access
            and not any(action._task.environment or ())  # pylint: disable=protected-access  # a task without one has [{}]
            and not action._task.async_val)  # pylint: disable=protected-access


class InProcessAction(NormalAction):
    """The action plugin of a module that may run in the controller's worker process; anywhere else it
    is Ansible's own action for modules (ansible.builtin.normal).

    Subclasses name the module file in MODULE (its ARGUMENT_SPEC and ``run(module)``).
    """

    MODULE = None
    # Modules the module imports only when it runs (a heavy client); see worker_imports().
    WORKER_IMPORTS = ()

    @classmethod
    def worker_imports(cls, args, template):
        """The Python modules a task with options ``args`` imports in its worker; tidbops.cluster.linear
        imports them in the controller before that worker forks, once. ``template(value)`` templates an
        option as the worker will. With a ``kube_proxy`` (the cluster runs on Kubernetes) that includes
        the Kubernetes client, which module_utils/_http.py imports only then."""
        if 'kube_proxy' not in args or 'kubernetes' in sys.modules:
            return cls.WORKER_IMPORTS
        try:
            kube_proxy = template(args['kube_proxy'])
        except Exception:  # pylint: disable=broad-except  # omitted (no Kubernetes), or wrong: the worker says so
            kube_proxy = None
        return cls.WORKER_IMPORTS + (KUBERNETES_IMPORTS if isinstance(kube_proxy, dict) and kube_proxy else ())

    def in_process(self):
        """Whether the module would run on this machine, as this user, in this environment, at once."""
        return runs_on_controller(self)

    def run(self, tmp=None, task_vars=None):
        # tidb_k8s_transport: in_cluster; the controller only talks to the API server (_in_cluster.py).
        if (self._task.args.get('kube_proxy') or {}).get('in_cluster'):
            from ansible_collections.tidbops.cluster.plugins.plugin_utils import _in_cluster  # pylint: disable=import-outside-toplevel
            return _in_cluster.run_as_job(self.MODULE, dict(self._task.args), bool(self._task.check_mode), bool(self._task.diff))
        if not self.in_process():
            return super().run(tmp, task_vars)
        return run_module(self.MODULE, dict(self._task.args), bool(self._task.check_mode), bool(self._task.diff))
