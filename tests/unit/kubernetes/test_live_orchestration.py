"""The live path of roles/_kubernetes (tasks_from pd.yml) against a fake API server on 127.0.0.1.

It checks what the role asks of Kubernetes: the apply order, server-side apply with the tidbops
field manager, the rollout wait before the gate, the gate through the pod proxy, a second run
without changes, and a failed rollout that stops before the gate. The fake answers like a cluster
where everything is ready; real Kubernetes semantics are not emulated.
"""

import os
import subprocess
import sys

from fake_apiserver import FakeApiServer

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
PLAYBOOK = os.path.join(TOP, "tests", "unit", "kubernetes", "playbooks", "pd_live.yml")


def run_pd_step(kubeconfig, timeout=20):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(TOP, "ansible.cfg"), ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               ANSIBLE_NOCOLOR="1")
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", os.path.join(TOP, "inventories", "k8s"),
               PLAYBOOK, "-e", "tidb_k8s_kubeconfig=%s" % kubeconfig, "-e", "tidb_gate_timeout=%d" % timeout]
    return subprocess.run(command, cwd=TOP, env=env, capture_output=True, text=True, timeout=300, check=False)


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
