# -*- coding: utf-8 -*-
"""roles/minio gate.yml against the simulator's MinIO: who makes the TiCI bucket.

The cluster's own MinIO (the model's minio_user is set): tidbops.cluster.minio_user makes the bucket with
the root credentials, then TiCI's user. Keys given in tici_s3 (minio_user is none): amazon.aws.s3_bucket
makes it with them. Either way a second run changes nothing."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

TOP = pathlib.Path(__file__).resolve().parents[3]
PLAY = """
- name: The MinIO role's gate, bucket and user
  hosts: minio0
  gather_facts: false
  strategy: tidbops.cluster.linear
  tasks:
    - name: Wait for MinIO and create the bucket
      ansible.builtin.include_role:
        name: tidbops.cluster.minio
        tasks_from: gate.yml
"""
ROOT_USER, ROOT_PASSWORD = "rootuser", "root-secret-1"


def _cluster(url, bucket, own_user):
    """The part of the cluster model gate.yml reads."""
    user = {"endpoint": url, "root_user": ROOT_USER, "root_password": ROOT_PASSWORD, "access_key": "tici",
            "secret_key": "tici-secret-1", "bucket": bucket, "policy_name": "tidbops-tici-" + bucket}
    return {"live": True, "gates": {"minio": {"endpoints": [url]}}, "transport": {}, "s3_controller_endpoint": url,
            "s3": {"bucket": bucket, "region": "us-east-1"},
            "bucket_credentials": {"access_key": ROOT_USER, "secret_key": ROOT_PASSWORD},
            "minio_user": user if own_user else None}


def _run(tmp_path, cluster):
    (tmp_path / "play.yml").write_text(PLAY, encoding="utf-8")
    (tmp_path / "vars.json").write_text(json.dumps({"__tidbops_cluster": cluster, "tidb_gate_timeout": 30}), encoding="utf-8")
    env = dict(os.environ, ANSIBLE_CONFIG=str(TOP / "ansible.cfg"), ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_NOCOLOR="1",
               ANSIBLE_COLLECTIONS_PATH=str(TOP / ".collections"))
    proc = subprocess.run([str(pathlib.Path(sys.executable).with_name("ansible-playbook")), "-i", "minio0,", "-c", "local",
                           "-e", "@" + str(tmp_path / "vars.json"), str(tmp_path / "play.yml")],
                          cwd=TOP, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert ROOT_PASSWORD not in proc.stdout + proc.stderr
    return re.search(r"minio0\s+: ok=\d+\s+changed=(\d+) ", proc.stdout).group(1), proc.stdout


@pytest.mark.parametrize("own_user, bucket, maker", [
    (True, "ownbucket", "Create the TiCI bucket, TiCI's MinIO user and its bucket policy"),
    (False, "keysbucket", "Create the TiCI bucket with the keys of tici_s3"),
])
def test_the_bucket_is_made_once_by_the_task_for_the_credentials(tmp_path, own_user, bucket, maker):
    boto3 = pytest.importorskip("boto3")
    testing = pytest.importorskip("tidbsim.testing")
    with testing.Sim(tmp_path / "sim") as sim:
        minio = sim.minio(user=ROOT_USER, password=ROOT_PASSWORD)
        sim.wait_ready(minio)
        cluster = _cluster(minio.url().rstrip("/"), bucket, own_user)
        changed, first = _run(tmp_path, cluster)
        assert changed == "1", first
        assert re.search(r"TASK \[tidbops\.cluster\.minio : %s\] \*+\n(?:[^\n]*\n)?changed: \[minio0" % re.escape(maker), first), first
        s3 = boto3.client("s3", endpoint_url=minio.url(), aws_access_key_id=ROOT_USER, aws_secret_access_key=ROOT_PASSWORD,
                          region_name="us-east-1")
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [bucket]
        changed, second = _run(tmp_path, cluster)
        assert changed == "0", second
