"""tidb_k8s_transport: in_cluster against the fake API server: every gate and component call runs as a
Job in the namespace (plugin_utils/_in_cluster.py), the controller talks only to the API server, and
the fake refuses the pod and Service proxy (the in_cluster Role does not grant it)."""

import json
import os

import kubernetes_validate
import pytest
from fake_apiserver import FakeApiServer
from test_live_orchestration import SITE, changed, run

from ansible_collections.tidbops.cluster.plugins.plugin_utils import _in_cluster

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
VERIFY = os.path.join(TOP, "tests", "unit", "kubernetes", "playbooks", "verify_live.yml")
IN_CLUSTER = ("tici_enabled=false", "tidb_k8s_transport=in_cluster", "tidb_k8s_runner_image=example.invalid/tidbops-ee:1")


def _leftovers(api):
    return [path for path in api.objects if "/jobs/" in path or "/secrets/" in path or "-run-" in path]


def test_verify_runs_every_gate_in_the_cluster(tmp_path):
    with FakeApiServer(transport="in_cluster") as api:
        result = run(VERIFY, api.kubeconfig(tmp_path / "kubeconfig"), 20, *IN_CLUSTER)
        assert result.returncode == 0, result.stdout[-3000:]
        assert changed(result.stdout) == 0 and api.forbidden == []
        assert not any("/proxy/" in path for _method, path in api.requests)
        # One Job per gate: PD, TiKV, TiDB, TiCDC, TiFlash; their requests went to the cluster's names.
        assert len(api.job_runs) == 5 and all(name.startswith("tidb-run-component-ready-") for name in api.job_runs)
        reached = {path for _method, path in api.cluster_requests}
        assert {"tidb-pd:2379/pd/api/v1/stores", "tidb-tidb-1.tidb-tidb-peer:10080/status",
                "tidb-tiflash-1.tidb-tiflash-peer:20292/tiflash/store-status"} <= reached
        assert _leftovers(api) == []  # each Job deleted, its pod and Secret with it


def test_a_gate_that_fails_in_the_cluster_fails_the_task_with_its_message(tmp_path):
    with FakeApiServer(transport="in_cluster", tikv_stores=2) as api:
        result = run(VERIFY, api.kubeconfig(tmp_path / "kubeconfig"), 2, *IN_CLUSTER)
        assert result.returncode != 0
        assert "tidb-tikv-2.tidb-tikv-peer.tidb.svc:20160" in result.stdout
        assert _leftovers(api) == []


def test_site_runs_in_the_cluster_and_the_proxy_is_never_used(tmp_path):
    with FakeApiServer(transport="in_cluster") as api:
        kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
        first = run(SITE, kubeconfig, 20, *IN_CLUSTER)
        assert first.returncode == 0, first.stdout[-3000:]
        assert api.forbidden == [] and not any("/proxy/" in path for _method, path in api.requests)
        # PD's settings and the gates ran in the cluster.
        assert any(name.startswith("tidb-run-pd-replication-config-") for name in api.job_runs)
        again = run(SITE, kubeconfig, 20, *IN_CLUSTER)
        assert again.returncode == 0, again.stdout[-3000:]
        assert changed(again.stdout) == 0 and _leftovers(api) == []


def test_a_proxy_run_is_refused_by_the_in_cluster_role(tmp_path):
    """The fake's RBAC is the Role of the transport: a proxy run against the in_cluster Role fails."""
    with FakeApiServer(transport="in_cluster") as api:
        result = run(VERIFY, api.kubeconfig(tmp_path / "kubeconfig"), 2, "tici_enabled=false")
        assert result.returncode != 0 and any('"pods/proxy"' in denied for denied in api.forbidden)


SETTINGS = {"image": "example.invalid/tidbops-ee:1", "python": "/usr/bin/python3.11", "collections_path": "/usr/share/ansible/collections",
            "job_prefix": "tidb-run", "labels": {"app.kubernetes.io/instance": "tidb"}, "deadline": 420,
            "pod_security_context": {"runAsNonRoot": True, "fsGroup": 1000}}


@pytest.mark.parametrize("version", ["1.30.0", "1.34.0"])
def test_the_job_and_its_secret_are_valid_and_only_the_secret_holds_the_options(version):
    job = _in_cluster.job_objects("tidb-run-ticdc-changefeed-0123abcd", "tidb", "ticdc_changefeed", SETTINGS)
    job["metadata"]["uid"] = "6a1c"
    secret = _in_cluster.request_secret(job, {"module": "ticdc_changefeed", "args": {"sink_uri": "s3://b/p?secret-access-key=K3y"},
                                              "check_mode": False, "diff": False})
    for obj in (job, secret):
        kubernetes_validate.validate(dict(obj, metadata={k: v for k, v in obj["metadata"].items() if k != "uid"}), version, strict=True)
    assert "K3y" not in json.dumps(job) and "K3y" in secret["stringData"]["request.json"]
    assert secret["metadata"]["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "Job", "name": job["metadata"]["name"], "uid": "6a1c"}]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][0] == "/usr/bin/python3.11" and container["command"][-1] == "/etc/tidbops/run/request.json"
    assert job["spec"]["backoffLimit"] == 0 and job["spec"]["template"]["spec"]["securityContext"]["fsGroup"] == 1000


def test_results_and_states_are_read_from_what_kubernetes_returns():
    assert _in_cluster.parse_result("noise\n%s{\"changed\": false, \"ready\": true}\n" % _in_cluster.RESULT_MARK) == {"changed": False, "ready": True}
    assert _in_cluster.parse_result("Traceback (most recent call last):\n  ...") is None
    assert _in_cluster.job_state({"status": {"active": 1}}) is None
    assert _in_cluster.job_state({"status": {"succeeded": 1}}) == "succeeded"
    assert _in_cluster.job_state({"status": {"conditions": [{"type": "Failed", "status": "True"}]}}) == "failed"


def _recap(output, host):
    line = [line for line in output.splitlines() if line.startswith(host + " ")][-1]
    return int(line.split("changed=")[1].split()[0])


def test_the_changefeed_is_made_in_the_cluster_and_its_keys_stay_in_a_secret(tmp_path):
    playbook = os.path.join(TOP, "tests", "unit", "kubernetes", "playbooks", "changefeed_live.yml")
    with FakeApiServer(transport="in_cluster") as api:
        kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
        first = run(playbook, kubeconfig, 20, *IN_CLUSTER[1:])
        assert first.returncode == 0, first.stdout[-3000:]
        assert _recap(first.stdout, "cdc-0") == 1
        feed = api.changefeeds["tici-replication-task"]
        assert feed["config"]["sink"]["date_separator"] == "none"
        again = run(playbook, kubeconfig, 20, *IN_CLUSTER[1:])
        assert again.returncode == 0 and _recap(again.stdout, "cdc-0") == 0, again.stdout[-3000:]
        assert [name.rsplit("-", 1)[0] for name in api.job_runs] == ["tidb-run-ticdc-changefeed"] * 2
        # The S3 secret key reached TiCDC inside the cluster; to the API server only in the Secrets.
        secret_key = dict(part.split("=", 1) for part in feed["sink_uri"].split("?", 1)[1].split("&"))["secret-access-key"]
        assert len(secret_key) >= 8 and not any("/proxy/" in path for _method, path in api.requests)
        holders = [obj["kind"] for obj in api.created if secret_key in json.dumps(obj)]
        assert holders == ["Secret", "Secret"] and secret_key not in first.stdout + again.stdout
        assert _leftovers(api) == []


def test_bad_options_fail_before_any_job_is_made():
    from ansible_collections.tidbops.cluster.plugins.modules import component_ready  # pylint: disable=import-outside-toplevel
    with FakeApiServer(transport="in_cluster") as api:
        result = _in_cluster.run_as_job(component_ready, {"component": "pd", "endpoints": ["http://tidb-pd:2379"], "colour": "red",
                                                          "kube_proxy": {"namespace": "tidb", "in_cluster": SETTINGS}})
        assert result["failed"] is True and "Unsupported parameters for (component_ready) module: colour" in result["msg"]
        assert api.requests == []
