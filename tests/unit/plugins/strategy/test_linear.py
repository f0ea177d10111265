# -*- coding: utf-8 -*-
"""tidbops.cluster.linear: ansible.builtin.linear after the plugins every worker needs are loaded in the
controller process, so the forked workers inherit them instead of loading them again."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

from ansible_collections.tidbops.cluster.plugins.action import run_module
from ansible_collections.tidbops.cluster.plugins.plugin_utils import _forked

ROOT = pathlib.Path(__file__).resolve().parents[4]
PLUGINS = ROOT / "plugins"

# Runs in a fresh interpreter: what the controller process has loaded before and after preload_plugins().
PROBE = r'''
import json, sys
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder
_AnsibleCollectionFinder(paths=[sys.argv[1]])._install()
from ansible.plugins.loader import filter_loader, init_plugin_loader
init_plugin_loader([sys.argv[1]])
from ansible_collections.tidbops.cluster.plugins.strategy import linear
before = sorted(name for name in sys.modules if name.startswith(linear.PLUGINS_PACKAGE + '.filter.'))
loaded = linear.preload_plugins()
print(json.dumps({"before": before, "loaded": loaded, "again": linear.preload_plugins() == loaded,
                  "builtin_filters": len(filter_loader._cached_non_collection_wrappers),
                  "in_sys_modules": sorted(name for name in loaded if name in sys.modules),
                  "modules": sorted(name for name in sys.modules if name.startswith(linear.PLUGINS_PACKAGE + '.modules.'))}))
'''


def _plugin_modules(kind):
    return sorted("ansible_collections.tidbops.cluster.plugins.%s.%s" % (kind, path.stem)
                  for path in (PLUGINS / kind).glob("*.py") if path.stem != "__init__")


def test_preload_imports_every_filter_and_action_plugin_of_the_collection_once():
    proc = subprocess.run([sys.executable, "-c", PROBE, str(ROOT / ".collections")], capture_output=True, text=True,
                          timeout=120, check=False, env=dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg")))
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    # And the other collections' modules that run_module runs in a fork of the worker.
    library = sorted(_forked.python_name(name) for name in run_module.PRELOADED_MODULES)
    expected = sorted(_plugin_modules("filter") + _plugin_modules("action") + library)
    assert len(expected) > 10 and len(library) >= 5 and found["before"] == []
    assert sorted(found["loaded"]) == expected and all(found["loaded"].values())
    assert found["in_sys_modules"] == expected
    # The action plugins import the modules they run in process: those are loaded too (run_module's own
    # module file only documents it).
    assert found["modules"] == [name for name in _plugin_modules("modules") if not name.endswith(".run_module")]
    assert found["again"] is True and found["builtin_filters"] > 50
