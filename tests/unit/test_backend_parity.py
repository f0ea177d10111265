"""Both backends run the same processes: for every instance of inventories/local-ha, the container
the container backend would create and the pod the Kubernetes backend would render have the same
entrypoint, the same flags and the same config files, addresses aside.

"Addresses aside" means: every host:port, URL host, bare instance host and PD member name is
replaced by a placeholder before comparing, because containers advertise engine-host addresses and
pods their DNS names. Flag names and order, every other value, every config key and value must
match exactly. The Kubernetes side is read back from the rendered objects (StatefulSet arguments
with $(POD_NAME) expanded for each pod, files from the ConfigMap or Secret key each mount selects),
so the manifests are checked, not only the model.
"""

import copy
import hashlib
import hmac
import json
import pathlib
import re
import tomllib

import pytest
import yaml

from ansible_collections.tidbops.cluster.plugins.filter.container import container_command, container_specs
from ansible_collections.tidbops.cluster.plugins.filter.k8s_manifests import k8s_manifests
from ansible_collections.tidbops.cluster.plugins.module_utils import _model
from ansible_collections.tidbops.cluster.plugins.module_utils import _topology as topo

REPO = pathlib.Path(__file__).resolve().parents[2]
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.()$-]+):[0-9]{1,5}\b")


def _load(path):
    return yaml.safe_load((REPO / path).read_text(encoding="utf-8"))


def _inventory(strip_ports=False):
    hosts_yml = _load("inventories/local-ha/hosts.yml")
    common = hosts_yml["all"].get("vars") or {}
    groups, hosts = {}, {}
    for group, body in hosts_yml["all"]["children"].items():
        groups[group] = list(body["hosts"])
        port_vars = {name for port in topo.BY_GROUP[group].ports for name in (port.name, port.alias) if name}
        for host, host_vars in body["hosts"].items():
            own = {key: value for key, value in (host_vars or {}).items() if not (strip_ports and key in port_vars)}
            hosts[host] = {"group_names": [group], "vars": dict(common, **own)}
    return {"groups": groups, "hosts": hosts, "play_hosts": list(hosts)}


def _settings(backend, backend_settings):
    group_vars = _load("inventories/local-ha/group_vars/all.yml")
    simulator = _load("inventories/simulator.yml")
    return {
        "backend": backend, "cluster_name": "tidbha", "network_mode": "host", "images": simulator["tidb_images"],
        "version": simulator["tidb_version"],
        "server_configs": copy.deepcopy(group_vars.get("server_configs") or {}), "tici_enabled": True,
        # Keys of a user made by hand: on Kubernetes the MinIO role cannot make TiCI's user yet (the model warns).
        "tici_s3": {"access_key": "tici-by-hand", "secret_key": "tici-by-hand-secret"},
        "minio_root_user": group_vars["minio_root_user"], "minio_root_password": group_vars["minio_root_password"],
        "minio_tici_user": "tici", "minio_tici_password": "tici-S3-secret",
        "tici_tidb_user": "tici", "tici_tidb_password": "tici-Pw-1", "changefeed_id": "tici-replication-task", "digest_key": "k" * 64,
        "cdc_flush_interval": "", "container_env": {}, "backend_settings": backend_settings,
    }


CONTAINER_SETTINGS = {"config_root": "/var/lib/tidbops/clusters", "image_pull": "never",
                      "ulimits": {"nofile": _load("inventories/local-ha/group_vars/all.yml")["tidb_container_ulimits"]["nofile"]}}
K8S_SETTINGS = {"namespace": "tidb", "create_namespace": True, "render_dir": "/tmp/unused", "image_pull_policy": "IfNotPresent",
                "kubeconfig": "", "context": "", "tiflash_probe": {}, "s3_client_image": "example.invalid/mc:1", "sql_client_image": "example.invalid/mysql:1",
                "log_tailer_image": "example.invalid/busybox:1", "runner_image": "example.invalid/tidbops-ee:1",
                "storage": {"class_name": "", "pd": "1Gi", "tikv": "1Gi", "tiflash": "1Gi", "ticdc": "1Gi", "tici_worker": "1Gi",
                            "minio": "1Gi"},
                "resources": {name: {"requests": {"cpu": "100m"}} for name in topo.NAMES}}


@pytest.fixture(scope="module")
def models():
    containers = _model.build(_settings("docker", CONTAINER_SETTINGS), _inventory())
    # Pods have addresses of their own, so one pod template serves every instance of a kind: the
    # per-host ports local-ha needs on one engine host are left out (they are addresses too).
    pods = _model.build(_settings("kubernetes", K8S_SETTINGS), _inventory(strip_ports=True))
    assert containers["problems"] == [] and pods["problems"] == []
    return containers, pods


def _anonymizer(*models):
    hosts = set()
    names = set()
    ports = set()
    for model in models:
        for instance in model["instances"].values():
            hosts.update((instance["listen_host"], instance["advertise_host"]))
            names.update(filter(None, (instance.get("pd_name"), instance.get("pod"))))
            ports.update(str(port) for port in instance["ports"].values())

    def anonymize(value):
        if isinstance(value, dict):
            return {key: anonymize(item) for key, item in value.items()}
        if isinstance(value, list):
            # One address per instance on containers, one Service on Kubernetes (TiCI's TiDB DSNs).
            items = [anonymize(item) for item in value]
            return items[:1] if len(items) > 1 and all(item == items[0] for item in items) else items
        if not isinstance(value, str):
            return value
        # A bare port (TiDB's -P 4001, --status=10081) is an address too: local-ha gives each
        # instance on the one engine host its own, where every pod has the default.
        if value in ports:
            return "PORT"
        value = re.sub(r"(?<==)(%s)$" % "|".join(map(re.escape, sorted(ports))), "PORT", value)
        text = _HOST_PORT.sub("ADDR", value)
        text = re.sub(r"((?:[a-z]+://)?)ADDR(,\1ADDR)+", r"\1ADDR", text)
        for name in sorted(names, key=len, reverse=True):
            text = re.sub(r"(?<=[=,])%s(?==)|(?<=^--name=)%s$" % (re.escape(name), re.escape(name)), "NAME", text)
        text = re.sub(r"NAME=http://ADDR(,NAME=http://ADDR)*", "MEMBERS", text)
        return "HOST" if text in hosts else re.sub(r"(?<==)(%s)$" % "|".join(map(re.escape, hosts)), "HOST", text)
    return anonymize


def _content(name, text):
    return tomllib.loads(text) if name.endswith(".toml") else text


def _pods(model, settings):
    """{instance: (entrypoint, command, {target: content})} as the rendered StatefulSets run them."""
    found = {}
    for kind in model["deployed_kinds"]:
        objects = k8s_manifests(model, settings, kind)
        sts = [o for o in objects if o["kind"] == "StatefulSet"][0]
        container = sts["spec"]["template"]["spec"]["containers"][0]
        volumes = {v["name"]: v.get("configMap", {}).get("name") or v["secret"]["secretName"]
                   for v in sts["spec"]["template"]["spec"]["volumes"] if "emptyDir" not in v}
        sources = {o["metadata"]["name"]: o.get("data") or o.get("stringData") for o in objects if o["kind"] in ("ConfigMap", "Secret")}
        for host in model["members"][kind]:
            pod = model["instances"][host]["pod"]
            files = {}
            for mount in container["volumeMounts"]:
                if "subPathExpr" in mount:
                    key = mount["subPathExpr"].replace("$(POD_NAME)", pod)
                    files[mount["mountPath"]] = _content(key, sources[volumes[mount["name"]]][key])
            found[host] = (container["command"], [arg.replace("$(POD_NAME)", pod) for arg in container["args"]], files)
    return found


def _containers(model):
    """What each container runs when the cluster is created (PD's bootstrap flags included)."""
    found = {}
    for host, spec in container_specs(model, CONTAINER_SETTINGS).items():
        found[host] = ([spec["entrypoint"]], container_command(spec), {f["target"]: _content(f["name"], f["content"]) for f in spec["files"]})
    return found


def test_every_instance_runs_the_same_process_on_both_backends(models):
    containers, pods = models
    anonymize = _anonymizer(containers, pods)
    on_containers, on_pods = _containers(containers), _pods(pods, K8S_SETTINGS)
    assert sorted(on_containers) == sorted(on_pods) == sorted(containers["processes"])
    assert len(on_containers) == 14  # 3 PD, 3 TiKV, 2 TiDB, 2 TiCDC and one of each other kind
    for host in on_containers:
        assert anonymize(list(on_containers[host])) == anonymize(list(on_pods[host])), host


def test_the_comparison_sees_a_difference(models):
    """A flag or config value that differs (beyond addresses) on one backend fails the comparison."""
    containers, pods = models
    anonymize = _anonymizer(containers, pods)
    on_containers = _containers(containers)
    on_pods = _pods(pods, K8S_SETTINGS)
    entrypoint, command, files = copy.deepcopy(on_pods["tikv0"])
    assert anonymize(list(on_containers["tikv0"])) == anonymize([entrypoint, command, files])
    flag = [entrypoint, command[:-1] + ["--config=/etc/tikv/other.toml"], files]
    value = [entrypoint, command, dict(files, **{"/etc/tikv/tikv.toml": dict(files["/etc/tikv/tikv.toml"], extra=1)})]
    address = [entrypoint, [arg.replace("tidb-pd:2379", "elsewhere:2379") for arg in command], files]
    assert anonymize(list(on_containers["tikv0"])) != anonymize(flag)
    assert anonymize(list(on_containers["tikv0"])) != anonymize(value)
    assert anonymize(list(on_containers["tikv0"])) == anonymize(address)  # addresses aside


def test_digests_in_engine_and_api_metadata_are_keyed(models):
    """The container label and the pod template annotation are HMACs with the cluster's key: a reader
    of either cannot test password guesses against them, and another key gives another digest."""
    containers, pods = models
    specs = container_specs(containers, CONTAINER_SETTINGS)
    minio = specs["minio0"]
    assert any(f["secret"] for f in minio["files"])
    unhashed = {key: value for key, value in minio.items() if key not in ("hash", "membership")}
    # The TLS label is set after the digest (containers made before it keep their digest).
    unhashed["labels"] = {key: value for key, value in minio["labels"].items() if key != "tidbops.tls"}
    assert minio["hash"] != hashlib.sha256(json.dumps(unhashed, sort_keys=True).encode()).hexdigest()
    assert minio["hash"] == hmac.new(containers["digest_key"].encode(), json.dumps(unhashed, sort_keys=True).encode(),
                                     hashlib.sha256).hexdigest()
    rekeyed = container_specs(dict(containers, digest_key="another-key-of-at-least-32-characters"), CONTAINER_SETTINGS)
    assert rekeyed["minio0"]["hash"] != minio["hash"]

    def annotations(model):
        objects = k8s_manifests(model, K8S_SETTINGS, "tici_meta")
        return [o["spec"]["template"]["metadata"]["annotations"]["tidbops/files-sha256"] for o in objects if o["kind"] == "StatefulSet"]
    first, again = annotations(pods), annotations(dict(pods, digest_key="another-key-of-at-least-32-characters"))
    assert first and again and first != again
