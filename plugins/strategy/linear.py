# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE). Runs inside Ansible, which is licensed under the
# GNU General Public License v3.0+ (https://www.gnu.org/licenses/gpl-3.0.txt); Apache 2.0 code may be combined with it.

from __future__ import annotations

DOCUMENTATION = r'''
name: linear
short_description: Ansible's linear strategy, with the plugins the workers need loaded once beforehand
version_added: 1.0.0
description:
  - Runs a play exactly as C(ansible.builtin.linear) does (tasks in lockstep over the hosts).
  - Before the first play, it loads in the controller process Ansible's own filters and tests, and this
    collection's filter, test and action plugins with the modules and module_utils they import.
    Ansible forks a worker for every host of every task, and a worker inherits what its parent loaded;
    otherwise each worker loads them again.
  - Before it forks the first worker of a task that will import more, it imports that too, once - the
    module of another collection that P(tidbops.cluster.run_module#module) runs, or the C(kubernetes)
    client of P(tidbops.cluster.k8s_rollout#module). A run loads only what it uses, so a deployment on
    Docker never imports the Kubernetes client, which takes 0.2 to 0.5 s. Of the client it imports the API
    classes and the kubeconfig loader too, which the client imports only when they are first named
    (another 0.7 s in each worker otherwise).
  - That is most of a task's cost in this collection's playbooks. To find one of a collection's filters,
    a worker imports every filter file of the collection, and the collection loader compiles collection
    code from source without caching bytecode. It also builds the table of Ansible's own filters and
    tests. In a no-op run of C(playbooks/site.yml) on 14 instances, sampled with py-spy, the workers'
    CPU time fell from 5.7 s (3.2 s of it loading plugins) to 0.8 s, and the run from about 12.5 s to
    about 10 s on two cores.
  - The collection's playbooks name it in every play. Plays of your own can use it too, with the play
    keyword C(strategy) or C(strategy) in C(ansible.cfg) set to C(tidbops.cluster.linear).
notes:
  - Loading happens once per C(ansible-playbook) process. A plugin that fails to load is left to fail
    where a task uses it, as it would without this strategy.
seealso:
  - name: Ansible's plugin loader
    description: Where a worker finds a collection's filter by importing each file of the collection's filter plugins.
    link: https://github.com/ansible/ansible/blob/devel/lib/ansible/plugins/loader.py
author:
  - tidbops maintainers (@tidbops)
'''

import importlib
import pkgutil
import sys

from ansible.plugins.loader import action_loader, filter_loader, test_loader
from ansible.plugins.strategy.linear import StrategyModule as LinearStrategyModule
from ansible.template import Templar
from ansible.utils.display import Display

display = Display()

# ansible_collections.<namespace>.<name>.plugins: this collection's plugins, wherever it is installed.
PLUGINS_PACKAGE = __name__.rsplit('.', 2)[0]
# The plugin types a worker loads for this collection's tasks: the action plugins import the modules they
# run in process (plugins/plugin_utils/_in_process.py), and those their module_utils.
PRELOADED_TYPES = ('filter', 'test', 'action')

_preloaded = {}  # name -> whether it loaded; empty until the first play
_imported_for_workers = {}  # name -> whether it imported, by import_for_worker()


def preload_plugins():
    """Load, in this (the controller's) process, what each forked worker would otherwise load again.
    Returns {module name: whether it loaded} for this collection's plugin modules."""
    if _preloaded:
        return dict(_preloaded)
    # Ansible's own Jinja plugins: the table every worker builds before it resolves a filter or a test.
    for loader in (filter_loader, test_loader):
        for _plugin in loader.all():
            pass
    for _plugin in action_loader.all(class_only=True):
        pass
    for plugin_type in PRELOADED_TYPES:
        try:
            package = importlib.import_module('%s.%s' % (PLUGINS_PACKAGE, plugin_type))
        except ImportError:
            continue
        for module in pkgutil.iter_modules(package.__path__):
            name = '%s.%s' % (package.__name__, module.name)
            try:
                importlib.import_module(name)
            except Exception as exc:  # pylint: disable=broad-except  # a task that uses it reports the error
                display.vvv('tidbops.cluster.linear: not preloaded %s: %s' % (name, exc))
                _preloaded[name] = False
            else:
                _preloaded[name] = True
    return dict(_preloaded)


def import_for_worker(task, template=None):
    """Import in this (the controller's) process what the worker of ``task`` will import for one of this
    collection's action plugins (its ``worker_imports``): k8s_rollout's Kubernetes client, or the module of
    another collection that run_module runs. Once per name, on the first such task: a run loads only what
    it uses, and every later worker inherits it. ``template(value)`` templates an option with the task's
    variables (by default the raw value). Returns the names it imported."""
    action = getattr(task, 'resolved_action', None) or task.action or ''
    if not action.startswith('tidbops.cluster.'):
        return []
    plugin = sys.modules.get('%s.action.%s' % (PLUGINS_PACKAGE, action.rsplit('.', 1)[1]))
    worker_imports = getattr(getattr(plugin, 'ActionModule', None), 'worker_imports', None)
    if worker_imports is None:
        return []
    imported = []
    for name in worker_imports(task.args or {}, template or (lambda value: value)):
        if name in _imported_for_workers:
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:  # pylint: disable=broad-except  # the task reports it where it runs
            display.vvv('tidbops.cluster.linear: not imported %s: %s' % (name, exc))
            _imported_for_workers[name] = False
        else:
            _imported_for_workers[name] = True
            imported.append(name)
    return imported


class StrategyModule(LinearStrategyModule):
    """ansible.builtin.linear, after preload_plugins(), and import_for_worker() before each worker forks."""

    def __init__(self, tqm):
        super().__init__(tqm)
        preload_plugins()

    def _queue_task(self, host, task, task_vars, play_context):
        import_for_worker(task, lambda value: Templar(loader=self._loader, variables=task_vars).template(value))
        super()._queue_task(host, task, task_vars, play_context)
