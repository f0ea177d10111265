"""Run each molecule scenario end to end: converge, idempotence (changed=0), a spec change that
replaces every container on kept data, verify, destroy. They need the engine and the simulator
image (make integration prepares both) and share the loopback ports, so they run one at a time.
The kubernetes scenario runs twice: its render path always, its live path only where a cluster
answers (otherwise that test reports SKIPPED with the reason)."""

import os
import pathlib
import shutil
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
SIM_IMAGE = "localhost/tidbsim:" + (REPO / "tests" / "simulator" / "VERSION").read_text(encoding="utf-8").strip()
PODMAN_ENV = {
    "CONTAINERS_CONF": "/var/lib/tidbops/podman/containers.conf",
    "CONTAINERS_STORAGE_CONF": "/var/lib/tidbops/podman/storage.conf",
}

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("loopback-ports")]


def engine_has_image(engine):
    if not shutil.which(engine):
        return False
    env = dict(os.environ, **(PODMAN_ENV if engine == "podman" else {}))
    result = subprocess.run([engine, "image", "inspect", SIM_IMAGE], env=env, capture_output=True, timeout=60, check=False)
    return result.returncode == 0


def kubernetes_cluster():
    """The API server's version when the kubeconfig reaches one, else None (the reason is in the skip)."""
    try:
        from kubernetes import client, config  # pylint: disable=import-outside-toplevel
        config.load_kube_config()
        return client.VersionApi().get_code(_request_timeout=5).git_version
    except Exception:  # pylint: disable=broad-except  # no kubeconfig, no server, no route: all mean "no cluster"
        return None


def run_molecule(scenario, extra_env=None):
    env = dict(os.environ, PATH="%s:%s" % (VENV_BIN, os.environ.get("PATH", "")), **(extra_env or {}))
    result = subprocess.run([str(VENV_BIN / "molecule"), "test", "-s", scenario], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=1800, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "idempotence" in output and "Executed: Successful" in output
    return output


@pytest.mark.parametrize("scenario,engine", [
    pytest.param("default", "docker", marks=pytest.mark.docker),
    pytest.param("ha", "docker", marks=pytest.mark.docker),
    pytest.param("podman", "podman", marks=pytest.mark.podman),
])
def test_molecule_scenario(scenario, engine):
    if not engine_has_image(engine):
        pytest.skip("%s or %s is not available (make integration builds it)" % (engine, SIM_IMAGE))
    run_molecule(scenario, PODMAN_ENV if engine == "podman" else None)


def test_molecule_kubernetes_renders_valid_manifests():
    """The kubernetes scenario's render path: site.yml writes the manifests twice (idempotence), they
    validate strictly for Kubernetes 1.30 and 1.34 and pass the structural checks, destroy removes them."""
    output = run_molecule("kubernetes", {"TIDBOPS_K8S_MODE": "render"})
    assert "Rendering and validating the manifests" in output


def test_molecule_kubernetes_live():
    """The kubernetes scenario on a real cluster: converge, idempotence, every gate through the API
    server proxy, destroy. Only where a kubeconfig reaches an API server."""
    version = kubernetes_cluster()
    if version is None:
        pytest.skip("no Kubernetes API server answers (KUBECONFIG or ~/.kube/config): the live converge, idempotence "
                    "and verify of the kubernetes scenario did not run")
    output = run_molecule("kubernetes", {"TIDBOPS_K8S_MODE": "live"})
    assert "answers: running live" in output
