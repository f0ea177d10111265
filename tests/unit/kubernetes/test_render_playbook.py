"""site.yml and destroy.yml on inventories/k8s in render mode (tidb_k8s_render_dir): the files,
idempotence, destroy.txt, and preflight failures before anything is written."""

import json
import os
import shutil
import stat
import subprocess
import sys

import pytest
import yaml

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
PLAYBOOKS = os.path.join(TOP, "playbooks")
INVENTORY = os.path.join(TOP, "inventories", "k8s")
sys.path.insert(0, os.path.join(TOP, "tools"))
import k8s_check  # noqa: E402  pylint: disable=wrong-import-position


def run_playbook(inventory, *extra_vars, playbook="site.yml"):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(TOP, "ansible.cfg"), ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default")
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", inventory, os.path.join(PLAYBOOKS, playbook)]
    for extra in extra_vars:
        command += ["-e", extra if isinstance(extra, str) else json.dumps(extra)]
    return subprocess.run(command, cwd=TOP, env=env, capture_output=True, text=True, timeout=300, check=False)


def recap(output):
    line = [line for line in output.splitlines() if line.startswith("pd-0")][-1]
    return dict(part.split("=") for part in line.split(":", 1)[1].split())


def test_render_writes_every_manifest_and_is_idempotent(tmp_path):
    out = tmp_path / "manifests"
    first = run_playbook(INVENTORY, "tidb_k8s_render_dir=%s" % out)
    assert first.returncode == 0, first.stdout[-3000:]
    files = sorted(os.listdir(out))
    assert files == ["00-namespace.yaml", "10-pd.yaml", "20-tikv.yaml", "30-tidb-secrets.yaml", "30-tidb.yaml", "40-minio-secrets.yaml",
                     "40-minio.yaml", "50-ticdc-secrets.yaml", "50-ticdc.yaml", "60-tici_meta-secrets.yaml",
                     "60-tici_meta.yaml", "65-tici_worker-secrets.yaml", "65-tici_worker.yaml",
                     "70-tiflash-secrets.yaml", "70-tiflash.yaml", "rbac"]
    # The playbooks' Role, outside the numbered files: an administrator binds it.
    assert [o["kind"] for o in k8s_check.load([str(out / "rbac")])] == ["Role", "ClusterRole"]
    files.remove("rbac")
    for name in files:
        mode = stat.S_IMODE(os.stat(out / name).st_mode)
        assert mode == (0o600 if "secrets" in name else 0o644), name
    objects = k8s_check.load([str(out)])
    assert len(objects) == 41  # with the changefeed Job, its ConfigMap and its Secret
    assert k8s_check.check(objects, secrets=["change-me-example-password"]) == []
    kinds = [o["kind"] for o in objects]
    assert kinds.count("StatefulSet") == 8 and kinds.count("Job") == 3  # the bucket, TiCI's account, the changefeed
    # No partition: a GitOps tool applies them and Kubernetes rolls.
    assert all(o["spec"]["updateStrategy"] == {"type": "RollingUpdate"} for o in objects if o["kind"] == "StatefulSet")
    # No secret reached the log.
    assert "change-me-example-password" not in first.stdout + first.stderr

    second = run_playbook(INVENTORY, "tidb_k8s_render_dir=%s" % out)
    assert second.returncode == 0, second.stdout[-3000:]
    assert recap(second.stdout)["changed"] == "0"


def test_destroy_in_render_mode_lists_what_it_would_delete(tmp_path):
    out = tmp_path / "manifests"
    rendered = run_playbook(INVENTORY, "tidb_k8s_render_dir=%s" % out)
    assert rendered.returncode == 0, rendered.stdout[-3000:]
    created = ["%s %s/%s" % (o["kind"], o["metadata"]["namespace"], o["metadata"]["name"])
               for o in k8s_check.load([str(out)]) if o["kind"] != "Namespace"]
    for destroy_data in (False, True):
        result = run_playbook(INVENTORY, "tidb_k8s_render_dir=%s" % out, {"tidb_destroy_data": destroy_data}, playbook="destroy.yml")
        assert result.returncode == 0, result.stdout[-3000:]
        lines = (out / "destroy.txt").read_text(encoding="utf-8").splitlines()
        # Every object site.yml wrote, once each, deleted in the reverse of the apply order.
        workloads = [line for line in lines if not line.startswith(("PersistentVolumeClaim", "Namespace"))]
        assert sorted(workloads) == sorted(created) and len(set(workloads)) == len(workloads)
        assert workloads[0] == "StatefulSet tidb/tidb-tiflash" and workloads[-1].endswith("/tidb-pd-config")
        claims = [line for line in lines if line.startswith("PersistentVolumeClaim")]
        if destroy_data:
            assert "PersistentVolumeClaim tidb/data-tidb-tikv-2" in claims and lines[-1] == "Namespace /tidb"
        else:
            assert claims == [] and not any(line.startswith("Namespace") for line in lines)


@pytest.fixture
def inventory_without(tmp_path):
    """A copy of inventories/k8s without the given groups' hosts."""
    def make(*groups):
        with open(os.path.join(INVENTORY, "hosts.yml"), encoding="utf-8") as handle:
            hosts = yaml.safe_load(handle)
        for group in groups:
            hosts["all"]["children"][group]["hosts"] = {}
        directory = tmp_path / "inventory"
        directory.mkdir()
        shutil.copytree(os.path.join(INVENTORY, "group_vars"), directory / "group_vars")
        with open(directory / "hosts.yml", "w", encoding="utf-8") as handle:
            yaml.safe_dump(hosts, handle)
        return str(directory)
    return make


@pytest.mark.parametrize("case, extra, variable", [
    ("namespace", {"tidb_k8s_namespace": "TiDB_Prod"}, "tidb_k8s_namespace must be a DNS-1123 label"),
    ("storage", {"tidb_k8s_storage": {"pd": "10 GB", "tikv": "1Gi", "tiflash": "1Gi", "ticdc": "1Gi", "tici_worker": "1Gi",
                                      "minio": "1Gi"}}, "tidb_k8s_storage.pd must be a Kubernetes quantity"),
    ("bad bucket", {"tici_s3": {"bucket": "Not_A_Bucket", "prefix": "tici"}}, "tici_s3.bucket must be an S3 bucket name"),
    ("no s3 key", {"tici_s3": {"access_key": ""}, "minio_root_user": ""}, "tici_s3.access_key must be set"),
    ("no tikv", "tikv_servers", "pd_servers and tikv_servers must each hold at least one instance"),
    ("render dir", {"tidb_k8s_render_dir": "/proc/tidbops-nowhere/manifests"}, "tidb_k8s_render_dir"),
])
def test_bad_input_fails_before_anything_is_written(tmp_path, inventory_without, case, extra, variable):
    out = tmp_path / "manifests"
    inventory = INVENTORY
    extras = ["tidb_k8s_render_dir=%s" % out]
    if isinstance(extra, str):
        inventory = inventory_without(extra)
    else:
        extras.append(extra)
    result = run_playbook(inventory, *extras)
    assert result.returncode != 0, case
    assert variable in result.stdout, result.stdout[-3000:]
    assert not out.exists(), "%s: files were written before the preflight failed" % case
    assert "change-me-example-password" not in result.stdout + result.stderr
