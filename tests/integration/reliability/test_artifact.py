"""The collection as users get it: the tarball `make dist` builds, installed into an empty collections
path, runs `ansible-playbook tidbops.cluster.site` from a directory outside this repository (no
ansible.cfg of ours, no .collections link) on the simulator, with the full-text search smoke test last,
and a second run changes nothing.

The collections it depends on come from the `ansible` package this venv has, which is how most users
have them; `ansible-galaxy collection install --offline` checks galaxy.yml's dependencies against them.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import harness  # pylint: disable=import-error  # benchmarks/, put on sys.path by conftest.py

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


def _bundled_collections():
    """The `ansible` package's collections (pytest also puts this checkout's .collections on sys.path)."""
    import ansible_collections  # pylint: disable=import-outside-toplevel
    (bundled,) = [Path(path).parent for path in ansible_collections.__path__ if "site-packages" in Path(path).parts]
    return str(bundled)


def _run(cluster, outside, env, playbook_args):
    timeline = cluster.workdir / f"artifact-timeline-{time.monotonic_ns()}.jsonl"
    run_env = dict(cluster.env(timeline), **env)
    run_env.pop("ANSIBLE_CONFIG")
    started = time.time()
    clock = time.monotonic()
    proc = subprocess.run([str(BIN / "ansible-playbook"), *playbook_args], cwd=outside, env=run_env,
                          capture_output=True, text=True, check=False, timeout=900)
    return harness.PlaybookRun(proc.returncode, proc.stdout + proc.stderr, time.monotonic() - clock, harness.read_events(timeline), started)


def test_the_built_collection_deploys_from_outside_the_repository(make_cluster, tmp_path):
    dist, installed, outside = tmp_path / "dist", tmp_path / "collections", tmp_path / "elsewhere"
    outside.mkdir()
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(dist), str(harness.REPO)],
                   check=True, capture_output=True, text=True)
    (tarball,) = dist.glob("tidbops-cluster-*.tar.gz")
    env = {"ANSIBLE_COLLECTIONS_PATH": f"{installed}{os.pathsep}{_bundled_collections()}"}
    install = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "--offline", "-p", str(installed), str(tarball)],
                             cwd=outside, env=dict(os.environ, **env), capture_output=True, text=True, check=False)
    assert install.returncode == 0, install.stdout + install.stderr
    listed = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "list", "tidbops.cluster"], cwd=outside,
                            env={k: v for k, v in dict(os.environ, **env).items() if k != "ANSIBLE_CONFIG"},
                            capture_output=True, text=True, check=True).stdout
    assert str(installed / "ansible_collections") in listed and str(harness.REPO) not in listed, listed

    cluster = make_cluster("local")
    # With the smoke test, which site.yml runs last: full-text search works end to end.
    first = _run(cluster, outside, env, ["-i", str(cluster.inventory), "-e", "tidb_smoke_test=true", "tidbops.cluster.site"])
    assert first.rc == 0, first.stdout[-4000:]
    assert "Full-text search finds new rows through the changefeed, TiCI and TiFlash" in first.stdout
    assert set(first.gate_ends()) == {"pd", "tikv", "tidb", "minio", "ticdc", "tici_meta", "tici_worker", "tiflash"}, first.gate_ends()
    assert str(harness.REPO) not in first.stdout
    second = _run(cluster, outside, env, ["-i", str(cluster.inventory), "tidbops.cluster.site"])
    assert second.rc == 0 and second.changed == 0, f"the second run changed {second.changed}:\n{second.stdout[-3000:]}"
