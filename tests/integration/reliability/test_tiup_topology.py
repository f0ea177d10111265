"""TiUP's own TiCI topology (pingcap/tiup feature/fts embed/examples/cluster/tici.topology.minimal.yaml, kept
in tests/unit/plugins/inventory/tiup_examples) deploys on the simulator through the inventory plugin
tidbops.cluster.tiup, with MinIO added in a second inventory source, and converges: a second run changes
nothing. On that cluster, playbooks/smoke.yml finds full-text search working, and fails within its deadline
naming the broken link when the changefeed is paused or the TiCI worker is stopped.

Changes to the example, each because this machine needs it: every port is moved to ports the harness
reserved (parallel tests share 127.0.0.1); the small-disk settings of inventories/local join its
server_configs (in group_vars they would replace the topology's whole server_configs: Ansible does not
merge dictionaries across precedence levels); component_versions is emptied by group_vars (the
simulator image has one tag); and listen_host stays 127.0.0.1 (group_vars beat the topology's 0.0.0.0:
tests bind loopback only).
"""

import pathlib
import subprocess
import urllib.request

import pytest
import yaml

from ansible_collections.tidbops.cluster.plugins.module_utils import _tiup, _topology

pytestmark = pytest.mark.integration

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "unit" / "plugins" / "inventory" / "tiup_examples" / "tici.topology.minimal.yaml.txt"


def _write(path, data):
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


@pytest.fixture(scope="module")
def tiup_cluster(make_module_cluster):
    cluster = make_module_cluster("local")  # one instance of each kind, ports reserved and shifted, simulator settings
    reserved = {kind: host_vars for _host, kind, host_vars in cluster.instances()}
    topology = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    for kind in _topology.KINDS:
        if kind.name == "minio":
            continue
        (entry,) = topology[kind.group]
        for port in kind.ports:
            entry[_tiup._tiup_port(kind.name, port.name)] = reserved[kind.name][port.name]
    settings = dict(cluster.group_vars, component_versions={})
    topology["server_configs"].update(settings.pop("server_configs"))
    _write(cluster.workdir / "topology.yaml", topology)
    _write(cluster.inventory / "tiup.yml", {"plugin": "tidbops.cluster.tiup", "topology": "../topology.yaml"})
    minio = {"minio_servers": {"hosts": {"minio0": cluster.hosts["all"]["children"]["minio_servers"]["hosts"]["minio0"]}}}
    _write(cluster.inventory / "hosts.yml", {"all": {"vars": cluster.hosts["all"]["vars"], "children": minio}})
    _write(cluster.inventory / "group_vars" / "all.yml", settings)

    return cluster, reserved, cluster.site()


def test_tiup_tici_minimal_topology_deploys_and_converges(tiup_cluster):
    cluster, reserved, first = tiup_cluster
    assert first.rc == 0, first.stdout[-4000:]
    assert set(first.gate_ends()) == {"pd", "tikv", "tidb", "minio", "ticdc", "tici_meta", "tici_worker", "tiflash"}, first.gate_ends()
    assert "not deployed by tidbops.cluster, left out: monitoring_servers, grafana_servers" in " ".join(first.stdout.split())
    cdc = "cdc-127.0.0.1-%d" % reserved["ticdc"]["port"]
    # server_configs.cdc.newarch reaches TiCDC's file as TiUP writes it (TiCDC's new architecture reads it there too).
    assert "newarch = true" in (cluster.config_root / cluster.name / cdc / "cdc.toml").read_text(encoding="utf-8")

    second = cluster.site()
    assert second.rc == 0 and second.changed == 0, f"the second run changed {second.changed}:\n{second.stdout[-3000:]}"


def _changefeed(cluster, reserved, action):
    url = f"http://127.0.0.1:{reserved['ticdc']['port']}/api/v2/changefeeds/{cluster.group_vars.get('tici_changefeed_id', 'tici-replication-task')}/{action}"
    with urllib.request.urlopen(urllib.request.Request(url, data=b"{}", method="POST"), timeout=10) as reply:  # nosec: loopback
        assert reply.status == 200


def test_smoke_finds_full_text_search_and_names_a_broken_link(tiup_cluster):
    cluster, reserved, first = tiup_cluster
    assert first.rc == 0
    passed = cluster.run("smoke")
    assert passed.rc == 0, passed.stdout[-3000:]
    assert "Full-text search finds new rows" in passed.stdout and passed.changed == 0

    _changefeed(cluster, reserved, "pause")
    try:
        paused = cluster.run("smoke", {"tidb_smoke_timeout": 6})
    finally:
        _changefeed(cluster, reserved, "resume")
    assert paused.rc != 0
    assert "Broken: changefeed tici-replication-task is stopped, not normal" in " ".join(paused.stdout.split()), paused.stdout[-3000:]

    worker = cluster.container(f"tici-worker-127.0.0.1-{reserved['tici_worker']['port']}")
    subprocess.run(["docker", "stop", "-t", "1", worker], check=True, capture_output=True)
    try:
        stopped = cluster.run("smoke", {"tidb_smoke_timeout": 6})
    finally:
        subprocess.run(["docker", "start", worker], check=True, capture_output=True)
    text = " ".join(stopped.stdout.split())
    assert stopped.rc != 0 and f"Broken: TiCI worker http://127.0.0.1:{reserved['tici_worker']['status_port']} does not answer" in text, \
        stopped.stdout[-3000:]
