# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)

# This plugin_utils is PRIVATE and must only be used by this collection.
# It may change at any time, without notice.

"""Run a module of another collection (community.docker, containers.podman, community.mysql) in a
fork of the controller's worker process, by the module's own protocol.

A module task costs a payload built and copied, and a Python process that starts, then imports and
compiles the module and its module_utils from the payload: 0.7 to 0.9 s for
``community.docker.docker_container`` on a 2-core machine, against 0.16 s for the same start run
here. When the task runs on the controller anyway (``_in_process.runs_on_controller``), the module's
code is already importable in the worker (and imported before the worker forked, by the
``tidbops.cluster.linear`` strategy). A fork of the worker then runs the module's ``main()`` as
ansible-core's direct invocation does (``python -m <module>``): the options as JSON on stdin, the
result as JSON on stdout. The module is unchanged, and its AnsibleModule checks the options, honours
check and diff mode and masks its ``no_log`` values, as in a module process. Being a fork, whatever
the module leaves behind (a global, a working directory, an atexit handler) dies with it.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import signal
import sys
import tempfile
import traceback

from ansible.module_utils import _internal as _module_utils_internal
from ansible.module_utils.common.json import Direction, get_module_encoder
from ansible.vars.clean import remove_internal_keys

# What a module process and the controller agree on when the module declares nothing else.
PROFILE = 'legacy'


class NotRunnable(Exception):
    """The module cannot run in a fork of this process (not importable, or no main())."""


def python_name(fqcn):
    """The Python module of a collection's module: ``ns.coll.name`` -> ``ansible_collections.ns.coll.plugins.modules.name``."""
    namespace, collection, name = fqcn.split('.')
    return 'ansible_collections.%s.%s.plugins.modules.%s' % (namespace, collection, name)


def _child(module, fqcn, payload, out, err):
    """In the fork: run the module as ``python -m`` would, then end this process. Never returns."""
    code = 1
    try:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        sys.stdout = io.TextIOWrapper(io.FileIO(1, 'w', closefd=False), encoding='utf-8')
        sys.stderr = io.TextIOWrapper(io.FileIO(2, 'w', closefd=False), encoding='utf-8')
        sys.stdin = io.TextIOWrapper(io.BytesIO(payload), encoding='utf-8')
        sys.argv = [fqcn, '--profile', PROFILE]  # ansible-core's direct invocation: the JSON on stdin
        # module_utils imported by the controller act as the controller's: a warning goes to its display
        # instead of the result. The fork is the module's process now.
        _module_utils_internal.is_controller = False
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        module.main()
        code = 0
    except SystemExit as exit_:  # exit_json and fail_json end the module with sys.exit
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:  # pylint: disable=broad-except  # reported on stderr, as a module process would
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # pylint: disable=broad-except  # nothing left to report it to
                pass
        os._exit(code)  # not sys.exit: the worker's own exit handlers belong to the worker


def run(action, fqcn, module_args, task_vars):
    """The result of module ``fqcn`` run with ``module_args`` in a fork of this process, as Ansible's
    ``_execute_module`` would return it from a module process."""
    try:
        module = importlib.import_module(python_name(fqcn))
    except ImportError as exc:
        raise NotRunnable('%s cannot be imported on the controller: %s' % (fqcn, exc)) from exc
    if not callable(getattr(module, 'main', None)):
        raise NotRunnable('%s has no main(): it is not a Python module that can run here' % fqcn)
    args = dict(module_args)
    with tempfile.TemporaryDirectory(prefix='ansible-tidbops-') as tmpdir, \
            tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        # The internal options a module process gets (check and diff mode, no_log, verbosity...), and a
        # temporary directory the module may use, removed here when it ends.
        action._update_module_args(fqcn, args, task_vars)  # pylint: disable=protected-access  # the controller's own
        args['_ansible_tmpdir'] = tmpdir
        args['_ansible_keep_remote_files'] = False
        payload = json.dumps(dict(ANSIBLE_MODULE_ARGS=args),
                             cls=get_module_encoder(PROFILE, Direction.CONTROLLER_TO_MODULE)).encode('utf-8')
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(module, fqcn, payload, out, err)
        try:
            _pid, status = os.waitpid(pid, 0)
        except BaseException:  # the task's timeout, or an interrupt: the module ends with the task
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise
        out.seek(0)
        err.seek(0)
        returned = dict(rc=os.waitstatus_to_exitcode(status), stdout=out.read().decode('utf-8', 'replace'),
                        stderr=err.read().decode('utf-8', 'replace'))
    data = action._parse_returned_data(returned, PROFILE)  # pylint: disable=protected-access  # as _execute_module does
    remove_internal_keys(data)
    for stream in ('stdout', 'stderr'):  # as _execute_module does
        if stream in data and stream + '_lines' not in data:
            data[stream + '_lines'] = (data[stream] or '').splitlines()
    return data
