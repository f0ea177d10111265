"""The live path of the Kubernetes backend against a fake API server on 127.0.0.1.

It checks what the playbooks ask of Kubernetes: the apply order, server-side apply with the tidbops
field manager, the rollout wait before the gate, the gate through the pod proxy, a second run
without changes, a failed rollout that stops before the gate, site.yml rolling a changed StatefulSet
in its last play, and destroy.yml deleting what site.yml created (PVCs and the namespace only with
tidb_destroy_data). The fake answers like a cluster where everything is ready and plays the
StatefulSet controller (test_live_rolling.py tests the rolling update itself).
"""

import json
import os
import subprocess
import sys

from fake_apiserver import FakeApiServer

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
PLAYBOOK = os.path.join(TOP, "tests", "unit", "kubernetes", "playbooks", "pd_live.yml")


def run(playbook, kubeconfig, timeout=20, *extra, inventory=None):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(TOP, "ansible.cfg"), ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               ANSIBLE_NOCOLOR="1")
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", inventory or os.path.join(TOP, "inventories", "k8s"),
               playbook, "-e", "tidb_k8s_kubeconfig=%s" % kubeconfig, "-e", "tidb_gate_timeout=%d" % timeout]
    for value in extra:
        command += ["-e", value]
    return subprocess.run(command, cwd=TOP, env=env, capture_output=True, text=True, timeout=300, check=False)


def sts_path(name):
    return "/apis/apps/v1/namespaces/tidb/statefulsets/%s" % name


def run_pd_step(kubeconfig, timeout=20):
    return run(PLAYBOOK, kubeconfig, timeout)


def changed(output):
    line = [line for line in output.splitlines() if line.startswith("pd-0")][-1]
    return int(line.split("changed=")[1].split()[0])


def test_pd_step_applies_in_order_waits_then_gates_through_the_proxy(tmp_path):
    with FakeApiServer(pd_members=3) as api:
        kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
        first = run_pd_step(kubeconfig)
        assert first.returncode == 0, first.stdout[-3000:]
        assert changed(first.stdout) > 0
        sts = "/apis/apps/v1/namespaces/tidb/statefulsets/tidb-pd"
        assert [path for path, _type, _args in api.patches] == [
            "/api/v1/namespaces/tidb",
            "/api/v1/namespaces/tidb/configmaps/tidb-pd-config",
            "/api/v1/namespaces/tidb/services/tidb-pd-peer",
            "/api/v1/namespaces/tidb/services/tidb-pd",
            sts,
        ]
        for _path, content_type, args in api.patches:
            assert content_type == "application/apply-patch+yaml"
            assert args == {"fieldManager": "tidbops", "force": "true"}
        requests = api.requests
        patched = requests.index(("PATCH", sts))
        # The rollout is read after the StatefulSet is applied, and the gate comes after the rollout.
        rollout = requests.index(("GET", sts), patched)
        proxied = [i for i, (_m, path) in enumerate(requests) if "/proxy/" in path]
        assert proxied and min(proxied) > rollout
        for pod in ("tidb-pd-0", "tidb-pd-1", "tidb-pd-2"):
            assert ("GET", "/api/v1/namespaces/tidb/pods/%s:2379/proxy/pd/api/v1/health" % pod) in requests
        assert api.objects[sts]["spec"]["replicas"] == 3

        second = run_pd_step(kubeconfig)
        assert second.returncode == 0, second.stdout[-3000:]
        assert changed(second.stdout) == 0


def test_a_stuck_rollout_fails_before_the_gate(tmp_path):
    with FakeApiServer(rolled_out=False) as api:
        result = run_pd_step(api.kubeconfig(tmp_path / "kubeconfig"), timeout=2)
        assert result.returncode != 0
        assert "StatefulSet tidb/tidb-pd not ready after" in result.stdout
        assert not any("/proxy/" in path for _method, path in api.requests)


def run_verify(kubeconfig, timeout=20):
    return run(os.path.join(TOP, "tests", "unit", "kubernetes", "playbooks", "verify_live.yml"), kubeconfig, timeout,
               "tici_enabled=false")


def test_verify_gates_every_component_through_the_proxy_and_changes_nothing(tmp_path):
    with FakeApiServer() as api:
        result = run_verify(api.kubeconfig(tmp_path / "kubeconfig"))
        assert result.returncode == 0, result.stdout[-3000:]
        assert api.mutations() == [] and changed(result.stdout) == 0
        proxied = {path for _method, path in api.requests if "/proxy/" in path}
        # PD, then stores through the PD Service, per-pod status of TiKV, TiDB, TiCDC and TiFlash.
        assert "/api/v1/namespaces/tidb/services/tidb-pd:2379/proxy/pd/api/v1/stores" in proxied
        assert "/api/v1/namespaces/tidb/pods/tidb-tidb-1:10080/proxy/status" in proxied
        assert "/api/v1/namespaces/tidb/pods/tidb-ticdc-0:8300/proxy/api/v2/captures" in proxied
        assert "/api/v1/namespaces/tidb/pods/tidb-tiflash-1:20292/proxy/tiflash/store-status" in proxied


def test_verify_fails_when_a_store_is_missing(tmp_path):
    with FakeApiServer(tikv_stores=2) as api:
        result = run_verify(api.kubeconfig(tmp_path / "kubeconfig"), timeout=2)
        assert result.returncode != 0
        assert "tidb-tikv-2.tidb-tikv-peer.tidb.svc:20160" in result.stdout


SITE = os.path.join(TOP, "playbooks", "site.yml")
DESTROY = os.path.join(TOP, "playbooks", "destroy.yml")


def test_site_then_destroy_deletes_what_site_created_and_keeps_the_claims(tmp_path):
    with FakeApiServer(pd_members=3, tikv_stores=3, tiflash_stores=2, captures=2) as api:
        kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
        site = run(SITE, kubeconfig, 20, "tici_enabled=false")
        assert site.returncode == 0, site.stdout[-3000:]
        applied = [path for path, _type, _args in api.patches]
        assert not any("minio" in path or "tici" in path for path in applied)
        claims = sorted(path for path in api.objects if "/persistentvolumeclaims/" in path)
        assert len(claims) == 3 + 3 + 2 + 2  # PD, TiKV, TiCDC, TiFlash (TiDB keeps no data)

        # A changed PD template: site.yml's PD step holds the pods (partition 3) and its last play
        # replaces them one at a time, from the highest ordinal down, leaving partition 0.
        api.events.clear()
        before = len(api.requests)
        changed_pd = run(SITE, kubeconfig, 20, "tici_enabled=false", json.dumps({"tidb_container_env": {"pd": {"TZ": "UTC"}}}))
        assert changed_pd.returncode == 0, changed_pd.stdout[-3000:]
        assert [event for event in api.events if event[0] in ("partition", "replace")] == [
            ("partition", "tidb-pd", 3), ("partition", "tidb-pd", 2), ("replace", "tidb-pd-2"),
            ("partition", "tidb-pd", 1), ("replace", "tidb-pd-1"), ("partition", "tidb-pd", 0), ("replace", "tidb-pd-0")]
        # PD led from pod 0: the lead moved away before the partition reached it.
        requests = api.requests[before:]
        transfer = next(i for i, (method, path) in enumerate(requests) if method == "POST" and "/leader/transfer/" in path)
        last_move = max(i for i, request in enumerate(requests) if request == ("PATCH", sts_path("tidb-pd")))
        assert api.pd_leader != "tidb-pd-0" and transfer < last_move
        applied = [path for path, _type, _args in api.patches if _type == "application/apply-patch+yaml"]

        kept = run(DESTROY, kubeconfig, 20, "tici_enabled=false")
        assert kept.returncode == 0, kept.stdout[-3000:]
        # Every applied object but the namespace, once, the workloads before their config.
        assert sorted(set(api.deletions)) == sorted(set(applied) - {"/api/v1/namespaces/tidb"})
        assert api.deletions.index("/apis/apps/v1/namespaces/tidb/statefulsets/tidb-tiflash") < \
            api.deletions.index("/api/v1/namespaces/tidb/configmaps/tidb-tiflash-config")
        assert sorted(path for path in api.objects if "/persistentvolumeclaims/" in path) == claims
        assert "/api/v1/namespaces/tidb" in api.objects

        api.deletions.clear()
        gone = run(DESTROY, kubeconfig, 20, "tici_enabled=false", "tidb_destroy_data=true")
        assert gone.returncode == 0, gone.stdout[-3000:]
        assert sorted(path for path in api.deletions if "/persistentvolumeclaims/" in path) == claims
        assert api.deletions[-1] == "/api/v1/namespaces/tidb"
        assert not any("/persistentvolumeclaims/" in path for path in api.objects)
