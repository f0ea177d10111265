# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""Shared fixtures for the unit tests: run a module's main() and read its JSON result."""

from __future__ import annotations

import json

import pytest

from ansible.module_utils import _internal as ansible_internal
from ansible.module_utils.testing import patch_module_args

from ansible_collections.tidbops.cluster.plugins.plugin_utils._in_process import run_module as run_module_in_process


@pytest.fixture
def run_as_module(capsys, monkeypatch):
    """Run ``module.main()`` with ``args`` as Ansible runs a module; return its parsed JSON result
    (``failed`` is set on fail_json).

    The result is what Ansible would see, after the module's own no_log masking, so tests can check
    that secrets do not leak.
    """
    def run(module, args, check_mode=False, diff=False):
        # A module runs in a process of its own. Tests that load controller code in the same worker
        # flip this flag, after which module warnings go to the controller's display, not the result.
        monkeypatch.setattr(ansible_internal, "is_controller", False)
        args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
        capsys.readouterr()
        with patch_module_args(args):
            with pytest.raises(SystemExit):
                module.main()
        out = capsys.readouterr().out
        return json.loads(out)
    return run


# Tests of the modules the action plugins may run on the controller run twice: as a module, and in
# the controller's worker process (plugin_utils/_in_process.py), with the same checks.
@pytest.fixture(params=['module', 'in_process'])
def run_module(request, run_as_module):
    """``run_as_module``, or the same run in process; ``run_module.mode`` says which."""
    def run_in_process(module, args, check_mode=False, diff=False):
        # JSON both ways, as the task executor hands a result on.
        return json.loads(json.dumps(run_module_in_process(module, dict(args), check_mode, diff)))

    run = run_as_module if request.param == 'module' else run_in_process
    run.mode = request.param
    return run


@pytest.fixture(scope='session')
def httpserver_listen_address():
    """pytest-httpserver listens on 127.0.0.1 only (tests send traffic to loopback only)."""
    return ('127.0.0.1', 0)
