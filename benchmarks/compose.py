# Copyright (c) tidbops.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The docker-compose peer: the containers site.yml started, rewritten as a compose file.

Same images, entrypoints, commands, env and config files (copied out of the cluster's config root),
host networking, a fresh named volume per instance, `depends_on: condition: service_healthy` along
the dependency graph, and the healthchecks a compose user would write (curl the status endpoints,
as often as the gates poll). The bucket and the changefeed are one-shot services, so the peer does the same work.
"""

import json
import shutil
import subprocess
import time
from pathlib import Path

import yaml

import graph
import harness

# As often as the gates poll while a component boots (component_ready's interval, 0.2 s, for the first
# fast_for = 10 s of a wait), so that neither side waits longer to see a component ready; Docker accepts
# intervals down to 1 ms.
HEALTH_INTERVAL = "200ms"


def _healthcheck(kind, host_vars):
    """The check a compose user would write for this component: curl its status endpoint."""
    url = {
        "pd": "http://127.0.0.1:{client_port}/pd/api/v1/health",
        "tikv": "http://127.0.0.1:{status_port}/status",
        "tidb": "http://127.0.0.1:{status_port}/status",
        "minio": "http://127.0.0.1:{port}/minio/health/ready",
        "ticdc": "http://127.0.0.1:{port}/api/v2/health",
        "tici_meta": "http://127.0.0.1:{status_port}/status",
        "tici_worker": "http://127.0.0.1:{status_port}/status",
        "tiflash": "http://127.0.0.1:{flash_proxy_status_port}/tiflash/store-status",
    }[kind].format(**host_vars)
    test = f"curl -fsS -m 2 {url}"
    if kind == "tiflash":  # TiUP's own check: the store status must read Running
        test += " | grep -qx Running"
    return {"test": ["CMD-SHELL", test], "interval": HEALTH_INTERVAL, "timeout": "2s", "retries": 600, "start_period": "0s"}


def _service_from_container(info, config_dir):
    """Image, entrypoint, command, env and mounts of one running container, config files copied to config_dir."""
    config = info["Config"]
    host_config = info["HostConfig"]
    volumes = []
    for mount in info["Mounts"]:
        if mount["Type"] == "bind":
            src = Path(mount["Source"])
            dst = config_dir / src.name
            shutil.copy2(src, dst)  # keeps the 0600 mode of secret files
            volumes.append(f"{dst}:{mount['Destination']}:ro")
    service = {
        "image": config["Image"],
        "entrypoint": config["Entrypoint"],
        "command": config["Cmd"] or [],
        "environment": sorted(config.get("Env") or []),
        "network_mode": "host",
        "volumes": volumes,
    }
    if host_config.get("Ulimits"):
        service["ulimits"] = {u["Name"]: {"soft": u["Soft"], "hard": u["Hard"]} for u in host_config["Ulimits"]}
    return service


def _data_target(info):
    for mount in info["Mounts"]:
        if mount["Type"] == "volume":
            return mount["Destination"]
    return "/data"


def generate(cluster, workdir, one_shots):
    """Write <workdir>/docker-compose.yml for the running `cluster`. Returns its path.

    one_shots maps each one-shot service of graph.ONE_SHOT to its shell command (run in the same image).
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    services, volumes = {}, {}
    by_kind = {}
    image = None
    for host, kind, host_vars in cluster.instances():
        info = harness.docker_inspect([cluster.container(host)])[0]
        config_dir = workdir / "configs" / host
        config_dir.mkdir(parents=True, exist_ok=True)
        service = _service_from_container(info, config_dir)
        service["volumes"].append(f"data-{host}:{_data_target(info)}")
        volumes[f"data-{host}"] = {}
        service["healthcheck"] = _healthcheck(kind, host_vars)
        services[host] = service
        by_kind.setdefault(kind, []).append(host)
        image = image or service["image"]
    for name, command in one_shots.items():
        services[name] = {"image": image, "entrypoint": ["/bin/sh", "-c"], "command": [command],
                          "network_mode": "host", "restart": "on-failure"}
        by_kind[name] = [name]
    for kind, needs in graph.DEPENDS.items():
        for name in by_kind.get(kind, []):
            depends = {}
            for need in needs:
                condition = "service_completed_successfully" if need in graph.ONE_SHOT else "service_healthy"
                for dep in by_kind.get(need, []):
                    depends[dep] = {"condition": condition}
            if depends:
                services[name]["depends_on"] = depends
    path = workdir / "docker-compose.yml"
    harness.write_private(path, yaml.safe_dump({"services": services, "volumes": volumes}, sort_keys=False))
    return path


class Compose:
    """docker-compose (1.29) on one generated file, under its own project name."""

    def __init__(self, path, project):
        self.path = Path(path)
        self.project = project

    def _run(self, *args, check=True):
        return subprocess.run(["docker-compose", "-p", self.project, "-f", str(self.path), *args],
                              check=check, capture_output=True, text=True)

    def down(self):
        self._run("down", "-v", "--remove-orphans", "-t", "5", check=False)

    def containers(self, service=None):
        """Names of the project's containers, or of one service's."""
        filters = ["--filter", f"label=com.docker.compose.project={self.project}"]
        if service is not None:
            filters += ["--filter", f"label=com.docker.compose.service={service}"]
        out = subprocess.run(["docker", "ps", "-a", *filters, "--format", "{{.Names}}"], check=True, capture_output=True, text=True).stdout
        return out.split()

    def containers_of(self, services):
        """Names of the containers of these services (the peer names a service after its inventory host)."""
        return [name for service in services for name in self.containers(service)]

    def up_and_wait(self, timeout=600):
        """Seconds from `up -d` until every long-running service is healthy and every one-shot exited 0.

        docker-compose 1.29 has no --wait, so poll `docker inspect` (what --wait does) on one deadline.
        """
        start = time.monotonic()
        deadline = start + timeout
        proc = subprocess.Popen(["docker-compose", "-p", self.project, "-f", str(self.path), "up", "-d"],  # pylint: disable=consider-using-with
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        expected = len(yaml.safe_load(self.path.read_text(encoding="utf-8"))["services"])
        delay = 0.05
        last = None
        while time.monotonic() < deadline:
            names = self.containers()
            if len(names) == expected:
                states = [info["State"] for info in harness.docker_inspect(names)]
                last = [(n, s["Status"], (s.get("Health") or {}).get("Status"), s.get("ExitCode")) for n, s in zip(names, states)]
                if all(_done(state) for state in states):
                    elapsed = time.monotonic() - start
                    proc.wait(timeout=max(1, deadline - time.monotonic()))
                    return elapsed
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)
        proc.kill()
        raise RuntimeError(f"compose peer not ready after {timeout}s: {json.dumps(last)}; up output: {proc.communicate()[0][-2000:]}")


def _done(state):
    health = (state.get("Health") or {}).get("Status")
    if health is not None:
        return health == "healthy"
    return state["Status"] == "exited" and state["ExitCode"] == 0
