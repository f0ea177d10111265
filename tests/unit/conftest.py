# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""Shared fixtures for the unit tests: run a module's main() and read its JSON result."""

from __future__ import annotations

import json

import pytest

from ansible.module_utils import _internal as ansible_internal
from ansible.module_utils.testing import patch_module_args


@pytest.fixture
def run_module(capsys, monkeypatch):
    """Run ``module.main()`` with ``args``; return the parsed result (``failed`` is set on fail_json).

    The result is what Ansible would print, after its own no_log masking, so tests can check
    that secrets do not leak.
    """
    # A module runs in a process of its own. Tests that load controller code in the same worker
    # flip this flag, after which module warnings go to the controller's display, not the result.
    monkeypatch.setattr(ansible_internal, "is_controller", False)

    def run(module, args, check_mode=False, diff=False):
        args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
        capsys.readouterr()
        with patch_module_args(args):
            with pytest.raises(SystemExit):
                module.main()
        out = capsys.readouterr().out
        return json.loads(out)
    return run


@pytest.fixture(scope='session')
def httpserver_listen_address():
    """pytest-httpserver listens on 127.0.0.1 only (tests send traffic to loopback only)."""
    return ('127.0.0.1', 0)
