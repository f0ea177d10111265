"""Run each molecule scenario end to end: converge, idempotence (changed=0), a spec change that
replaces every container on kept data, verify, destroy. They need the engine and the simulator
image (make integration prepares both) and share the loopback ports, so they run one at a time."""

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


@pytest.mark.parametrize("scenario,engine", [
    pytest.param("default", "docker", marks=pytest.mark.docker),
    pytest.param("ha", "docker", marks=pytest.mark.docker),
    pytest.param("podman", "podman", marks=pytest.mark.podman),
    # Renders and strictly validates the manifests; runs live only where KUBECONFIG reaches a cluster.
    pytest.param("kubernetes", None),
])
def test_molecule_scenario(scenario, engine):
    if engine and not engine_has_image(engine):
        pytest.skip("%s or %s is not available (make integration builds it)" % (engine, SIM_IMAGE))
    env = dict(os.environ, PATH="%s:%s" % (VENV_BIN, os.environ.get("PATH", "")))
    if engine == "podman":
        env.update(PODMAN_ENV)
    result = subprocess.run([str(VENV_BIN / "molecule"), "test", "-s", scenario], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=1800, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "idempotence" in output and "Executed: Successful" in output
