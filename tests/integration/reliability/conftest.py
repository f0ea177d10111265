"""Fixtures of the reliability suite: private clusters on shifted ports, always destroyed afterwards.

Every test builds its own copy of a shipped inventory (benchmarks/harness.py): its own cluster name
(rel-<random>), config root under /tmp and port offset, so it never touches another cluster on the
machine. TIDBOPS_COLLECTIONS_PATH and TIDBOPS_SIM_IMAGE point the suite at another collection tree
or simulator build.
"""

import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))

import harness  # noqa: E402  pylint: disable=wrong-import-position,import-error


def _docker_ready():
    if shutil.which("docker") is None:
        return "docker CLI not installed"
    image = harness.sim_image()
    proc = subprocess.run(["docker", "image", "inspect", image], check=False, capture_output=True)
    if proc.returncode != 0:
        return f"simulator image {image} missing (tests/simulator/image/build.sh docker)"
    return None


@pytest.fixture(scope="session", autouse=True)
def docker_engine():
    problem = _docker_ready()
    if problem:
        pytest.skip(problem)


class ClusterFactory:
    """Makes private clusters and destroys every one of them at teardown."""

    def __init__(self):
        self.clusters = []

    def __call__(self, base="local", **kwargs):
        """harness.Cluster(base, **kwargs) named rel-<random>, work dir /tmp/tidbops-rel-<random>-*.

        Not under pytest's basetemp: other pytest sessions on the machine prune old basetemps,
        which would delete a running cluster's config root.
        """
        name = f"rel-{uuid.uuid4().hex[:6]}"
        cluster = harness.Cluster(base, name=name, **kwargs)
        self.clusters.append(cluster)
        return cluster

    def destroy_all(self):
        for cluster in self.clusters:
            cluster.destroy(remove_workdir=True)


@pytest.fixture
def make_cluster():
    factory = ClusterFactory()
    yield factory
    factory.destroy_all()


@pytest.fixture(scope="module")
def make_module_cluster():
    factory = ClusterFactory()
    yield factory
    factory.destroy_all()
