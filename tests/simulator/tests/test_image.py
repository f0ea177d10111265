"""The simulator image on real engines: host networking, real paths, readiness over HTTP, fast stop."""

import json
import os
import shutil
import subprocess
import time
import uuid

import pytest

from tidbsim.testing import DEFAULT_TIKV_CONFIG, SIM_ROOT, free_ports, http_get, wait_until

pytestmark = pytest.mark.integration

BUILD = os.path.join(SIM_ROOT, "image", "build.sh")
with open(os.path.join(SIM_ROOT, "VERSION"), encoding="utf-8") as _handle:
    IMAGE = f"localhost/tidbsim:{_handle.read().strip()}"
PODMAN_ENV = {"CONTAINERS_CONF": "/var/lib/tidbops/podman/containers.conf",
              "CONTAINERS_STORAGE_CONF": "/var/lib/tidbops/podman/storage.conf"}


def engine_env(engine):
    env = dict(os.environ)
    if engine == "podman":
        for key, value in PODMAN_ENV.items():
            env.setdefault(key, value)
    return env


def engine_works(engine):
    if shutil.which(engine) is None:
        return False
    if engine == "podman" and not os.path.exists(PODMAN_ENV["CONTAINERS_CONF"]):
        return False
    return subprocess.run([engine, "info"], env=engine_env(engine), capture_output=True, check=False, timeout=60).returncode == 0


@pytest.fixture(scope="module", params=[pytest.param("docker", marks=pytest.mark.docker),
                                        pytest.param("podman", marks=pytest.mark.podman)])
def engine(request):
    name = request.param
    if not engine_works(name):
        pytest.skip(f"{name} engine is not usable here (run tools/engine.sh {name})")
    subprocess.run([BUILD, name], env=engine_env(name), check=True, timeout=900)
    return name


class Containers:
    def __init__(self, engine):
        self.engine = engine
        self.env = engine_env(engine)
        self.names = []
        self.tag = uuid.uuid4().hex[:8]

    def run(self, name, entrypoint, args, env=None, volume=None):
        full = f"tidbsim-test-{self.tag}-{name}"
        cmd = [self.engine, "run", "-d", "--name", full, "--network", "host", "--entrypoint", entrypoint]
        for key, value in (env or {}).items():
            cmd += ["-e", f"{key}={value}"]
        if volume:
            cmd += ["-v", volume]
        subprocess.run(cmd + [IMAGE] + args, env=self.env, check=True, capture_output=True, timeout=60)
        self.names.append(full)
        return full

    def logs(self, name):
        result = subprocess.run([self.engine, "logs", name], env=self.env, capture_output=True, text=True, check=False)
        return result.stdout + result.stderr

    def stop(self, name):
        start = time.monotonic()
        subprocess.run([self.engine, "stop", "-t", "10", name], env=self.env, check=True, capture_output=True, timeout=60)
        return time.monotonic() - start

    def exit_code(self, name):
        wait_until(lambda: subprocess.run([self.engine, "inspect", "--format", "{{.State.Running}}", name], env=self.env,
                                          capture_output=True, text=True, check=True).stdout.strip() == "false", 30, f"{name} exit")
        result = subprocess.run([self.engine, "inspect", "--format", "{{.State.ExitCode}}", name], env=self.env,
                                capture_output=True, text=True, check=True)
        return int(result.stdout.strip())

    def cleanup(self):
        for name in self.names:
            subprocess.run([self.engine, "rm", "-f", "-v", name], env=self.env, capture_output=True, check=False, timeout=60)


@pytest.fixture
def containers(engine):
    box = Containers(engine)
    yield box
    box.cleanup()


def test_pd_tikv_tidb_containers_get_ready_and_stop_fast(containers, tmp_path):
    client, peer, kv, kv_status, sql, status = free_ports(6)
    # TiKV's defaults want 123880 open files and reserve 5% of the disk: use the harness's small values.
    (tmp_path / "tikv.toml").write_text(DEFAULT_TIKV_CONFIG)
    tmp_path.chmod(0o755)
    pd = containers.run("pd", "/pd-server", [
        "--name=pd0", f"--client-urls=http://127.0.0.1:{client}", f"--peer-urls=http://127.0.0.1:{peer}",
        f"--advertise-client-urls=http://127.0.0.1:{client}", f"--advertise-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-cluster=pd0=http://127.0.0.1:{peer}", "--data-dir=/var/lib/pd"])
    tikv = containers.run("tikv", "/tikv-server", [
        f"--pd=127.0.0.1:{client}", f"--addr=127.0.0.1:{kv}", f"--advertise-addr=127.0.0.1:{kv}",
        f"--status-addr=127.0.0.1:{kv_status}", f"--advertise-status-addr=127.0.0.1:{kv_status}", "--data-dir=/var/lib/tikv",
        "--config=/etc/tikv/tikv.toml"], volume=f"{tmp_path}:/etc/tikv:ro")
    tidb = containers.run("tidb", "/tidb-server", [
        "--store=tikv", f"--path=127.0.0.1:{client}", "--host=127.0.0.1", "-P", str(sql), f"--status={status}",
        "--advertise-address=127.0.0.1"])

    def tidb_ok():
        code, body = http_get(f"http://127.0.0.1:{status}/status")
        return code == 200 and json.loads(body)["version"]
    wait_until(tidb_ok, 60, f"TiDB /status 200 (logs: {containers.logs(tidb)[-500:]})")
    members = json.loads(http_get(f"http://127.0.0.1:{client}/pd/api/v1/members")[1])
    assert members["leader"]["name"] == "pd0"
    stores = json.loads(http_get(f"http://127.0.0.1:{client}/pd/api/v1/stores")[1])["stores"]
    assert [s["store"]["state_name"] for s in stores] == ["Up"]
    assert http_get(f"http://127.0.0.1:{kv_status}/status")[0] == 200
    assert '"tidbsim": "ready"' in containers.logs(pd)
    assert json.loads(http_get(f"http://127.0.0.1:{client}/version")[1])["etcdserver"] == "3.5.1"  # a real etcd in the image
    # The only TiKV leads every region; stopping it is an "unsafe stop", visible in the container log.
    wait_until(lambda: json.loads(http_get(f"http://127.0.0.1:{client}/pd/api/v1/stores")[1])["stores"][0]["status"]
               .get("leader_count") == 24, 10, "24 region leaders on the TiKV")
    for name in (tidb, tikv, pd):
        assert containers.stop(name) < 5  # SIGTERM handled by PID 1, no 10 s kill
        assert containers.exit_code(name) == 0
    assert "[WARN] unsafe stop: store 1 still leads 24 regions" in containers.logs(tikv)


def test_minio_entrypoint_prepends_minio_and_cdc_needs_server(containers):
    port, console = free_ports(2)
    minio = containers.run("minio", "/usr/bin/docker-entrypoint.sh",
                           ["server", "/data", "--address", f"127.0.0.1:{port}", "--console-address", f"127.0.0.1:{console}"],
                           env={"MINIO_ROOT_USER": "minioadmin", "MINIO_ROOT_PASSWORD": "minioadmin"})
    wait_until(lambda: http_get(f"http://127.0.0.1:{port}/minio/health/cluster")[0] == 200, 60,
               f"MinIO cluster health (logs: {containers.logs(minio)[-500:]})")
    assert containers.stop(minio) < 5
    typo = containers.run("cdc", "/cdc", ["server", "--pd-addr=http://127.0.0.1:1"])
    wait_until(lambda: "unknown flag: --pd-addr" in containers.logs(typo), 30, "cdc flag error")
    assert containers.exit_code(typo) != 0
