# -*- coding: utf-8 -*-
"""tidbops.cluster.linear: ansible.builtin.linear after the plugins every worker needs are loaded in the
controller process, so the forked workers inherit them instead of loading them again."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

from ansible_collections.tidbops.cluster.plugins.action import k8s_rollout
from ansible_collections.tidbops.cluster.plugins.plugin_utils import _in_process

ROOT = pathlib.Path(__file__).resolve().parents[4]
PLUGINS = ROOT / "plugins"

# Runs in a fresh interpreter: what the controller process has loaded before and after preload_plugins().
PROBE = r'''
import json, sys, types
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder
_AnsibleCollectionFinder(paths=[sys.argv[1]])._install()
from ansible.plugins.loader import filter_loader, init_plugin_loader
init_plugin_loader([sys.argv[1]])
from ansible_collections.tidbops.cluster.plugins.strategy import linear
Task = lambda action, args: types.SimpleNamespace(action=action, resolved_action=action, args=args)
GATE = {"component": "pd", "kube_proxy": "{{ __tidbops_cluster.transport.kube_proxy | default(omit) }}"}
def omitted(value):
    raise ValueError("A template was resolved to an Omit scalar.")
def left_for_the_worker():
    # What the Kubernetes modules name of the client when they run; the client imports some of it only then.
    known = set(sys.modules)
    from kubernetes import client, config
    from kubernetes.client import Configuration
    from kubernetes.config import kube_config
    for name in ("AppsV1Api", "CoreV1Api", "BatchV1Api", "ApiClient", "Configuration"):
        getattr(client, name)
    config.new_client_from_config, kube_config.KubeConfigLoader, Configuration.get_default_copy
    client.ApiClient().sanitize_for_serialization({"a": 1})
    return sorted(name for name in set(sys.modules) - known if name.startswith("kubernetes"))
before = sorted(name for name in sys.modules if name.startswith(linear.PLUGINS_PACKAGE + '.filter.'))
loaded = linear.preload_plugins()
print(json.dumps({"before": before, "loaded": loaded, "again": linear.preload_plugins() == loaded,
                  "builtin_filters": len(filter_loader._cached_non_collection_wrappers),
                  "in_sys_modules": sorted(name for name in loaded if name in sys.modules),
                  "modules": sorted(name for name in sys.modules if name.startswith(linear.PLUGINS_PACKAGE + '.modules.')),
                  "kubernetes": "kubernetes" in sys.modules,
                  "community_docker": any(name.startswith("ansible_collections.community.docker") for name in sys.modules),
                  "for_run_module": linear.import_for_worker(Task("tidbops.cluster.run_module",
                                                                  {"module": "community.docker.docker_container", "args": {}})),
                  "for_gate_off_kubernetes": linear.import_for_worker(Task("tidbops.cluster.component_ready", GATE), omitted),
                  "kubernetes_still": "kubernetes" in sys.modules,
                  "for_gate_on_kubernetes": linear.import_for_worker(Task("tidbops.cluster.component_ready", GATE),
                                                                     lambda value: {"namespace": "tidb"}),
                  "kubernetes_after": "kubernetes" in sys.modules,
                  "for_k8s_rollout": linear.import_for_worker(Task("tidbops.cluster.k8s_rollout", {"name": "x"})),
                  "left_for_the_worker": left_for_the_worker(),
                  "again_for_workers": linear.import_for_worker(Task("tidbops.cluster.k8s_rollout", {"name": "y"}))
                  + linear.import_for_worker(Task("tidbops.cluster.run_module", {"module": "community.docker.docker_container"})),
                  "for_other_tasks": linear.import_for_worker(Task("ansible.builtin.debug", {}))
                  + linear.import_for_worker(Task("tidbops.cluster.component_ready", {"component": "pd"}))
                  + linear.import_for_worker(Task("tidbops.cluster.run_module", {"module": "{{ which }}"}))}))
'''


def _plugin_modules(kind):
    return sorted("ansible_collections.tidbops.cluster.plugins.%s.%s" % (kind, path.stem)
                  for path in (PLUGINS / kind).glob("*.py") if path.stem != "__init__")


def test_preload_imports_every_filter_and_action_plugin_of_the_collection_once():
    proc = subprocess.run([sys.executable, "-c", PROBE, str(ROOT / ".collections")], capture_output=True, text=True,
                          timeout=120, check=False, env=dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg")))
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = sorted(_plugin_modules("filter") + _plugin_modules("action"))
    assert len(expected) > 10 and found["before"] == []
    assert sorted(found["loaded"]) == expected and all(found["loaded"].values())
    assert found["in_sys_modules"] == expected
    # The action plugins import the modules they run in process: those are loaded too (run_module's own
    # module file only documents it).
    assert found["modules"] == [name for name in _plugin_modules("modules") if not name.endswith(".run_module")]
    assert found["again"] is True and found["builtin_filters"] > 50
    # Not what only some runs use: the Kubernetes client, another collection's module.
    assert found["kubernetes"] is False and found["community_docker"] is False
    # Those are imported before the first worker of a task that uses them forks, once.
    assert found["for_run_module"] == ["ansible_collections.community.docker.plugins.modules.docker_container"]
    # A gate's worker imports the Kubernetes client only when its kube_proxy templates to a dict.
    assert found["for_gate_off_kubernetes"] == [] and found["kubernetes_still"] is False
    assert found["for_gate_on_kubernetes"][0] == "kubernetes.client" and found["kubernetes_after"] is True
    assert found["for_k8s_rollout"] == []  # the same names, imported already
    # The client imports an API class or the kubeconfig loader when it is first named: imported before the
    # fork too, or every worker would import them again (0.7 s each on the development machine).
    assert found["left_for_the_worker"] == []
    assert k8s_rollout.ActionModule.worker_imports({"name": "x"}, None) == _in_process.KUBERNETES_IMPORTS
    assert found["again_for_workers"] == [] and found["for_other_tasks"] == []
