# -*- coding: utf-8 -*-
"""The cluster model (module_utils/_model.py, _process.py, _topology.py): addresses per network,
what components hand each other, the process specs, and every rule the inventory can break."""

from __future__ import annotations

import copy
import os
import pathlib
import re
import tomllib
from urllib.parse import parse_qsl, urlsplit

import pytest
import yaml

from ansible_collections.tidbops.cluster.plugins.module_utils import _model, _topology
from ansible_collections.tidbops.cluster.plugins.module_utils import _process
from ansible_collections.tidbops.cluster.plugins.module_utils import _topology as topo

REPO = pathlib.Path(__file__).resolve().parents[4]
ONE_OF_EACH = {"pd_servers": ["pd0"], "tikv_servers": ["tikv0"], "tidb_servers": ["tidb0"], "tiflash_servers": ["tiflash0"],
               "cdc_servers": ["cdc0"], "tici_meta_servers": ["tici-meta0"], "tici_worker_servers": ["tici-worker0"],
               "minio_servers": ["minio0"]}
SECRET = "s3cr3t-Passw0rd"


def inventory(groups=None, host_vars=None, common=None, play_hosts=None):
    groups = copy.deepcopy(ONE_OF_EACH if groups is None else groups)
    hosts = {}
    for group, members in groups.items():
        for host in members:
            own = dict(common or {"ansible_host": "127.0.0.1"}, **(host_vars or {}).get(host, {}))
            hosts.setdefault(host, {"group_names": [], "vars": own})
            hosts[host]["group_names"].append(group)
    return {"groups": groups, "hosts": hosts, "play_hosts": list(hosts) if play_hosts is None else play_hosts}


def settings(**overrides):
    base = {
        "backend": "docker", "cluster_name": "tidb", "network_mode": "host",
        "images": {key: "example.invalid/%s:1" % key for key in ("pd", "tikv", "tidb", "tiflash", "ticdc", "tici", "minio")},
        "server_configs": {}, "tici_enabled": True, "tici_s3": {}, "minio_root_user": "tidbops", "minio_root_password": SECRET,
        "minio_tici_user": "tici", "minio_tici_password": "tici-S3-secret",
        "tici_tidb_user": "tici", "tici_tidb_password": "tici-Pw-1", "changefeed_id": "tici-replication-task", "cdc_flush_interval": "",
        "digest_key": "0123456789abcdef" * 4,
        "container_env": {}, "backend_settings": {"ulimits": {"nofile": 1000000}},
    }
    base.update(copy.deepcopy(overrides))
    return base


def build(inventory_args=None, **overrides):
    return _model.build(settings(**overrides), inventory(**(inventory_args or {})))


def ok(inventory_args=None, **overrides):
    model = build(inventory_args, **overrides)
    assert model["problems"] == []
    return model


def toml(model, host, name):
    return tomllib.loads([f for f in model["processes"][host]["files"] if f["name"] == name][0]["content"])


# ---------------------------------------------------------------------------------------------
# The registry

def test_registry_order_puts_dependencies_first():
    assert topo.start_order(topo.NAMES) == list(topo.NAMES)
    for index, name in enumerate(topo.NAMES):
        assert set(topo.kind(name).depends) <= set(topo.NAMES[:index])
    assert topo.start_order(["tiflash", "pd"]) == ["pd", "tiflash"]


def test_every_kind_has_a_role_with_a_gate():
    for kind in topo.KINDS:
        tasks = REPO / "roles" / kind.role / "tasks"
        assert (tasks / "start.yml").is_file() and (tasks / "gate.yml").is_file(), kind.name
        assert "component: %s\n" % kind.name in (tasks / "gate.yml").read_text(encoding="utf-8"), kind.name


def test_component_ready_documents_every_kind():
    text = (REPO / "plugins" / "modules" / "component_ready.py").read_text(encoding="utf-8")
    choices = re.search(r"choices: \[([^\]]*)\]", text).group(1)
    assert sorted(choice.strip() for choice in choices.split(",")) == sorted(topo.NAMES)


# ---------------------------------------------------------------------------------------------
# Addresses

def test_host_network_listens_where_it_advertises_unless_told():
    """listen_host (TiUP's name) defaults to the advertised IP address, not to every address."""
    model = ok({"common": {"ansible_host": "10.0.0.5"}})
    assert {record["listen_host"] for record in model["instances"].values()} == {"10.0.0.5"}
    assert "--client-urls=http://10.0.0.5:2379" in model["processes"]["pd0"]["command"]
    assert not [w for w in model["warnings"] if "listen on all addresses" in w]
    # Asked for: every address, and no warning.
    model = ok({"common": {"ansible_host": "10.0.0.5", "listen_host": "0.0.0.0"}})
    assert {record["listen_host"] for record in model["instances"].values()} == {"0.0.0.0"}
    assert not [w for w in model["warnings"] if "listen on all addresses" in w]
    # A name cannot be bound as it is by every component: all addresses, and a warning naming the hosts.
    model = ok({"common": {"ansible_host": "db1.example"}})
    assert model["instances"]["tidb0"]["listen_host"] == "0.0.0.0"
    warning = [w for w in model["warnings"] if "listen on all addresses" in w]
    assert len(warning) == 1 and "tidb0" in warning[0] and "set listen_host" in warning[0]


def test_host_network_listens_and_advertises_as_the_inventory_says():
    model = ok({"common": {"ansible_host": "10.0.0.5", "listen_host": "10.0.0.5"}})
    pd = model["instances"]["pd0"]
    assert (pd["listen_host"], pd["advertise_host"], pd["access_host"]) == ("10.0.0.5",) * 3
    assert model["pd_addrs"] == ["10.0.0.5:2379"] and model["pd_urls"] == ["http://10.0.0.5:2379"]
    assert model["initial_cluster"] == "pd0=http://10.0.0.5:2380"
    assert model["s3"]["endpoint"] == model["s3_controller_endpoint"] == "http://10.0.0.5:9000"
    assert model["gates"]["tikv"] == {"component": "tikv", "endpoints": ["http://10.0.0.5:20180"],
                                      "store_addresses": ["10.0.0.5:20160"], "pd_endpoint": "http://10.0.0.5:2379"}


def test_bridge_network_advertises_container_names_and_reaches_published_ports():
    model = ok({"common": {"ansible_host": "127.0.0.1", "listen_host": "127.0.0.1"}}, network_mode="bridge")
    tiflash = model["instances"]["tiflash0"]
    # Inside its container a process binds its own interfaces; others dial its name on the network.
    assert tiflash["listen_host"] == "0.0.0.0" and tiflash["advertise_host"] == "tidb-tiflash0"
    assert tiflash["access_host"] == tiflash["publish_host"] == "127.0.0.1"
    config = toml(model, "tiflash0", "tiflash.toml")
    # Real TiFlash binds flash.service_addr itself: it must be the container's own name, not the engine host's address.
    assert config["flash"]["service_addr"] == "tidb-tiflash0:3930"
    assert config["flash"]["proxy"]["addr"] == "0.0.0.0:20170"
    assert model["s3"]["endpoint"] == "http://tidb-minio0:9000" and model["s3_controller_endpoint"] == "http://127.0.0.1:9000"
    assert model["gates"]["pd"]["endpoints"] == ["http://127.0.0.1:2379"]
    assert model["gates"]["tiflash"]["store_addresses"] == ["tidb-tiflash0:3930"]
    # The controller dials the engine host when ports are published on every address.
    model = ok({"common": {"ansible_host": "192.0.2.7"}}, network_mode="bridge")
    assert model["instances"]["tidb0"]["url"] == "http://192.0.2.7:10080"


def test_kubernetes_addresses_are_pod_names_and_the_api_server_proxy():
    backend = {"namespace": "db", "kubeconfig": "/k", "render_dir": "", "image_pull_policy": "Never",
               "storage": {name: "1Gi" for name in topo.NAMES}, "resources": {}, "s3_client_image": "mc:1", "sql_client_image": "mysql:1",
               "log_tailer_image": "busybox:1"}
    model = ok(backend="kubernetes", backend_settings=backend)
    assert model["instances"]["tikv0"]["advertise_host"] == "tidb-tikv-0.tidb-tikv-peer.db.svc"
    assert model["pd_addrs"] == ["tidb-pd:2379"] and model["pd_endpoint"] == "http://tidb-pd:2379"
    assert model["transport"] == {"kube_proxy": {"namespace": "db", "kubeconfig": "/k"}}
    assert model["s3_controller_endpoint"] is None and model["live"] is True
    assert model["pod_templates"]["pd"]["command"][0] == "--name=$(POD_NAME)"
    assert build(backend="kubernetes", backend_settings=dict(backend, render_dir="/tmp/out"))["live"] is False


# ---------------------------------------------------------------------------------------------
# What components hand each other

def test_s3_defaults_and_the_changefeed_carry_the_flush_interval():
    model = ok(cdc_flush_interval="1s", tici_s3={"prefix": "team/tici/"})
    s3 = model["s3"]
    assert (s3["bucket"], s3["prefix"], s3["region"], s3["use_path_style"]) == ("ticidefaultbucket", "team/tici", "us-east-1", True)
    # TiCI's own MinIO user, not the root credentials.
    assert (s3["access_key"], s3["secret_key"]) == ("tici", "tici-S3-secret")
    assert model["minio_user"] == {"endpoint": "http://127.0.0.1:9000", "root_user": "tidbops", "root_password": SECRET,
                                   "access_key": "tici", "secret_key": "tici-S3-secret", "bucket": "ticidefaultbucket",
                                   "policy_name": "tidbops-tici-ticidefaultbucket"}
    feed = model["changefeed"]
    parts = urlsplit(feed["sink_uri"])
    params = dict(parse_qsl(parts.query))
    assert (parts.netloc, parts.path) == ("ticidefaultbucket", "/team/tici/cdc")
    assert params["flush-interval"] == "1s" and params["force-path-style"] == "true" and params["protocol"] == "canal-json"
    assert feed["replica_config"] == {"sink": {"protocol": "canal-json", "date_separator": "none"}}
    assert feed["server"] == "http://127.0.0.1:8300" and feed["id"] == "tici-replication-task"
    # TiCI, TiFlash and the sink agree on the bucket, prefix and keys.
    assert toml(model, "tici-worker0", "tici.toml")["s3"]["prefix"] == "team/tici"
    assert toml(model, "tiflash0", "tiflash.toml")["tici"]["s3"]["secret-key"] == "tici-S3-secret"
    assert SECRET not in feed["sink_uri"] and "secret-access-key=tici-S3-secret" in feed["sink_uri"]
    assert not [f for p in model["processes"].values() for f in p["files"] if p["kind"] != "minio" and SECRET in f["content"]]


def test_tici_s3_keys_are_the_users_unless_given_and_root_only_makes_the_bucket():
    # Keys given in tici_s3: no user is made, those keys are used.
    given = ok(tici_s3={"access_key": "mine", "secret_key": "mine-secret"})
    assert given["minio_user"] is None and given["s3"]["access_key"] == "mine"
    # A too short generated or given secret, or the root user's name, is refused with the variable named.
    problems = build(minio_tici_password="short")["problems"]
    assert [p for p in problems if p.startswith("minio_tici_password must have 8 characters")]
    problems = build(minio_tici_user="tidbops")["problems"]
    assert [p for p in problems if p.startswith("minio_tici_user must have 3 characters or more and differ from minio_root_user")]
    # Kubernetes: the controller cannot reach MinIO's admin API; the same user, made by the bucket Job.
    backend = {"namespace": "db", "kubeconfig": "/k", "render_dir": "", "image_pull_policy": "Never",
               "storage": {name: "1Gi" for name in topo.NAMES}, "resources": {}, "s3_client_image": "mc:1", "sql_client_image": "mysql:1",
               "log_tailer_image": "busybox:1"}
    k8s = ok(backend="kubernetes", backend_settings=backend)
    assert k8s["s3"]["access_key"] == "tici" and k8s["minio_user"]["endpoint"] is None
    assert k8s["bucket_credentials"] == {"access_key": "tidbops", "secret_key": SECRET}


def test_a_user_endpoint_is_used_everywhere():
    model = ok({"groups": dict(ONE_OF_EACH, minio_servers=[])}, tici_s3={"endpoint": "https://s3.example.com"})
    assert model["s3"]["endpoint"] == model["s3_controller_endpoint"] == "https://s3.example.com"
    assert "minio" not in model["gates"]


def test_without_tici_there_is_no_s3_changefeed_or_reader():
    model = ok(tici_enabled=False, tici_s3={})
    assert "changefeed" not in model and model["s3"] is None
    assert set(model["processes"]) == {"pd0", "tikv0", "tidb0", "tiflash0", "cdc0"}
    assert "tici" not in toml(model, "tiflash0", "tiflash.toml")
    assert "--newarch" not in model["processes"]["cdc0"]["command"]
    assert "tici_reader_port" not in model["instances"]["tiflash0"]["ports"]


def test_user_config_wins_over_generated_settings():
    model = ok(server_configs={"tiflash": {"flash.service_addr": "127.0.0.1:3931", "tici.s3.region": "eu-west-1"},
                               "tikv": {"log.level": "warn"}}, inventory_args={"host_vars": {"tikv0": {"config": {"log.level": "error"}}}})
    tiflash = toml(model, "tiflash0", "tiflash.toml")
    assert tiflash["flash"]["service_addr"] == "127.0.0.1:3931" and tiflash["tici"]["s3"]["region"] == "eu-west-1"
    assert toml(model, "tikv0", "tikv.toml")["log"]["level"] == "error"


# ---------------------------------------------------------------------------------------------
# Open files: what TiKV and TiFlash's proxy check at start

def test_open_files_are_lowered_to_fit_the_granted_limit():
    model = ok(backend_settings={"ulimits": {"nofile": 20000}})
    tikv = toml(model, "tikv0", "tikv.toml")
    # TiKV counts rocksdb twice (Titan is on for a new cluster): 1000 + 2 x 6333 + 6333 <= 20000.
    assert tikv["rocksdb"]["max-open-files"] == tikv["raftdb"]["max-open-files"] == 6333
    proxy = toml(model, "tiflash0", "proxy.toml")
    assert proxy["rocksdb"]["max-open-files"] == proxy["raftdb"]["max-open-files"] == 9500
    # TiUP's 1000000 needs nothing lowered.
    assert "rocksdb" not in toml(ok(), "tikv0", "tikv.toml")


def test_open_files_the_user_set_too_high_are_refused_with_the_numbers():
    model = build(backend_settings={"ulimits": {"nofile": 20000}}, server_configs={"tikv": {"rocksdb.max-open-files": 40960}})
    assert any("TiKV needs 1000 + 2 x rocksdb.max-open-files + raftdb.max-open-files = 123880 open files, "
               "but tidb_container_ulimits.nofile grants 20000" in problem for problem in model["problems"])
    assert ok(backend_settings={"ulimits": {"nofile": 20000}},
              server_configs={"tikv": {"rocksdb.max-open-files": 256, "raftdb.max-open-files": 256}})


def test_fit_open_files_counts_titan_only_where_it_runs():
    assert _process.fit_open_files({"rocksdb": {"titan": {"enabled": False}}}, 90000, True, "TiKV", "x") == {}
    assert _process.fit_open_files({}, 90000, False, "proxy", "x") == {}
    assert _process.fit_open_files({}, 90000, True, "TiKV", "x") == {"rocksdb": {"max-open-files": 29666},
                                                                     "raftdb": {"max-open-files": 29666}}
    assert _process.fit_open_files({}, None, True, "TiKV", "x") == {}  # unknown (Kubernetes): left to TiKV
    with pytest.raises(_process.ProcessError, match="each at least 256"):
        _process.fit_open_files({}, 1500, True, "TiKV", "x")


# ---------------------------------------------------------------------------------------------
# Rules: every broken rule at once, each naming the variable

RULES = [
    ({"inventory_args": {"groups": dict(ONE_OF_EACH, tikv_servers=[])}}, "(got 1 PD, 0 TiKV)"),
    ({"inventory_args": {"groups": dict(ONE_OF_EACH, cdc_servers=[])}}, "cdc_servers (TiCI needs TiCDC"),
    ({"inventory_args": {"groups": dict(ONE_OF_EACH, minio_servers=["m0", "m1"])},
      "tici_s3": {}}, "minio_servers holds 2 instances"),
    ({"backend": "lxc"}, "tidb_backend must be one of docker, podman, kubernetes (got lxc)"),
    ({"network_mode": "overlay"}, "tidb_network_mode must be one of host, bridge (got overlay)"),
    ({"images": {"pd": 1}}, "missing or not a string: pd, tikv"),
    ({"version": "v9 beta"}, "tidb_version must be an image tag"),
    ({"component_versions": {"ticdc": "v9"}}, "component_versions.ticdc: unknown component; expected one of cdc,"),
    ({"restart_components": ["tikv", "tivk"]}, "tidb_restart_components: unknown component 'tivk'; expected some of pd, tikv"),
    ({"restart_components": "tikv"}, "tidb_restart_components must be a list of components"),
    ({"inventory_args": {"host_vars": {"tikv0": {"port": "20160a"}}}}, "tikv0: port=20160a"),
    ({"inventory_args": {"host_vars": {"tidb0": {"tidb_port": 2379}}}}, "127.0.0.1:2379 is pd0.client_port and tidb0.tidb_port"),
    ({"inventory_args": {"host_vars": {"tidb0": {"advertise_host": "0.0.0.0"}}}}, "not 0.0.0.0 or :: (instances: tidb0)"),
    ({"inventory_args": {"groups": dict(ONE_OF_EACH, tikv_servers=["pd0"])}}, "inventory host pd0 is in pd_servers, tikv_servers"),
    ({"inventory_args": {"play_hosts": ["pd0"]}}, "--limit left out"),
    ({"inventory_args": {"host_vars": {"pd0": {"name": "pd 0!"}}}}, "pd_name (TiUP: name) must be a unique PD member name"),
    ({"inventory_args": {"groups": dict(ONE_OF_EACH, pd_servers=["pd0", "pd1", "pd2"]),
                         "host_vars": {"pd1": {"pd_name": "pd0", "client_port": 2382, "peer_port": 2383},
                                       "pd2": {"client_port": 2384, "peer_port": 2385}}}}, "(got pd0)"),
    ({"inventory_args": {"groups": dict(ONE_OF_EACH, tikv_servers=["tikv0", "tikv1"]),
                         "host_vars": {"tikv1": {"ansible_host": "127.0.0.2", "advertise_host": "127.0.0.1"}}}},
     "PD keys stores by address"),
    ({"server_configs": {"tidb": {"store": "unistore"}}}, "server_configs.tidb.store / config.store must stay 'tikv'"),
    ({"inventory_args": {"host_vars": {"tidb0": {"config": {"store": "mocktikv"}}}}}, "must stay 'tikv'"),
    ({"inventory_args": {"host_vars": {"tiflash0": {"learner_config": "x"}}}}, "learner_config must be a mapping"),
    ({"server_configs": {"tici_meta": "x"}}, "server_configs.tici_meta must be a mapping"),
    ({"server_configs": {"cdc": ["x"]}}, "server_configs.cdc must be a mapping"),
    ({"tici_tidb_user": ""}, "tici_tidb_user must be a TiDB user name"),
    ({"tici_tidb_user": "a'b"}, "tici_tidb_user must be a TiDB user name"),
    ({"tici_tidb_password": ""}, "tici_tidb_password is empty"),
    ({"tici_tidb_password": None}, "tici_tidb_password must be a string"),
    ({"minio_root_password": "short"}, "minio_root_password (at least 8 characters)"),
    ({"digest_key": "0123456789abcdef"}, "tidb_digest_key must be a string of at least 32 characters"),
    ({"digest_key": None}, "tidb_digest_key must be a string of at least 32 characters"),
    ({"changefeed_id": "tici_task"}, "tici_changefeed_id must be letters and digits"),
    ({"cdc_flush_interval": "5 s"}, "tici_cdc_flush_interval must be a duration"),
    ({"tici_s3": {"bucket": "Not_A_Bucket"}}, "tici_s3.bucket must be an S3 bucket name"),
    ({"tici_s3": {"prefix": "/tici"}}, "tici_s3.prefix must be a non-empty path inside the bucket without a leading '/'"),
    ({"tici_s3": {"endpoint": "minio:9000"}}, "tici_s3.endpoint must be an http:// or https:// URL"),
    ({"tici_s3": {"secret": "x"}}, "unknown key(s) secret in tici_s3"),
    ({"tici_s3": {"use_path_style": "yes"}}, "tici_s3.use_path_style must be a boolean"),
    ({"minio_tici_user": "", "tici_s3": {"access_key": ""}}, "tici_s3.access_key must be set (it defaults to minio_tici_user"),
    ({"inventory_args": {"groups": dict(ONE_OF_EACH, minio_servers=[])}}, "tici_s3.endpoint must be set (it defaults to the first"),
    ({"network_mode": "bridge", "inventory_args": {"host_vars": {"tidb0": {"advertise_host": "10.0.0.9"}}}},
     "advertise_host is set for tidb0, but with tidb_network_mode bridge"),
    ({"network_mode": "bridge", "inventory_args": {"host_vars": {"tidb0": {"ansible_host": "10.0.0.9"}}}},
     "the instances are on 10.0.0.9, 127.0.0.1"),
    ({"backend_settings": {"ulimits": {"nofile": "many"}}}, "tidb_container_ulimits must map limit names to positive integers"),
    ({"inventory_args": {"host_vars": {"tikv0": {"data_dir": "relative/path"}}}}, "data_dir (host tikv0) must be an absolute"),
    ({"inventory_args": {"host_vars": {"pd0": {"listen_host": "pd0.example"}}}}, "listen_host must be an IP address (or localhost) on pd_servers"),
]


@pytest.mark.parametrize("overrides, message", RULES, ids=[str(i) for i in range(len(RULES))])
def test_each_rule_names_the_variable(overrides, message):
    model = build(**overrides)
    text = "; ".join(model["problems"])
    assert message in text
    assert SECRET not in text


def test_every_broken_rule_is_reported_at_once():
    model = build(changefeed_id="bad_id", tici_s3={"bucket": "B"}, server_configs={"tidb": {"store": "unistore"}},
                  inventory_args={"host_vars": {"pd0": {"name": "bad name"}}})
    assert len(model["problems"]) == 4
    assert "processes" not in model or model["processes"] == {}


def test_an_even_pd_count_is_a_warning():
    model = ok({"groups": dict(ONE_OF_EACH, pd_servers=["pd0", "pd1"]), "host_vars": {"pd1": {"client_port": 2382, "peer_port": 2383}}})
    assert model["warnings"] and "an even count" in model["warnings"][0]


def test_hosts_outside_the_groups_are_not_instances():
    inv = inventory()
    inv["hosts"]["bastion"] = {"group_names": ["ungrouped"], "vars": {}}
    model = _model.build(settings(), inv)
    assert model["problems"] == [] and "bastion" not in model["instances"]


def test_the_shipped_inventories_pass():
    for name in ("local", "local-ha", "local-podman"):
        hosts_yml = yaml.safe_load((REPO / "inventories" / name / "hosts.yml").read_text(encoding="utf-8"))
        group_vars = yaml.safe_load((REPO / "inventories" / name / "group_vars" / "all.yml").read_text(encoding="utf-8"))
        common = hosts_yml["all"]["vars"]
        groups = {group: list(body["hosts"]) for group, body in hosts_yml["all"]["children"].items()}
        host_vars = {host: dict(vars or {}, listen_host=group_vars["listen_host"])
                     for body in hosts_yml["all"]["children"].values() for host, vars in body["hosts"].items()}
        model = build({"groups": groups, "host_vars": host_vars, "common": common},
                      server_configs=group_vars["server_configs"],
                      backend_settings={"ulimits": dict({"nofile": 1000000}, **group_vars["tidb_container_ulimits"])})
        assert model["problems"] == [], (name, model["problems"])
        assert os.path.basename(name) and len(model["processes"]) == sum(len(v) for v in groups.values())


# ---------------------------------------------------------------------------------------------
# Versions and rolling

def test_images_follow_the_versions_and_pinned_entries_stay():
    repos = {key: "example.invalid/%s" % key for key in ("pd", "tikv", "tidb", "tiflash", "ticdc", "tici")}
    model = ok(images=dict(repos, minio="example.invalid/minio:pinned"), version="v9.0.0", component_versions={"tikv": "v9.0.1"})
    assert model["images"]["pd"] == "example.invalid/pd:v9.0.0"
    assert model["images"]["tikv"] == "example.invalid/tikv:v9.0.1"
    assert model["images"]["minio"] == "example.invalid/minio:pinned"
    assert model["processes"]["tikv0"]["image"] == "example.invalid/tikv:v9.0.1"
    assert model["image_sources"]["tikv"] == "tidb_images.tikv with component_versions.tikv"


def test_update_order_and_restart_kinds_follow_tiup():
    model = ok(restart_components=["tidb", "cdc", "tikv"])
    assert model["update_order"] == ["tiflash", "ticdc", "tici_worker", "tici_meta", "pd", "tikv", "tidb", "minio"]
    assert model["restart_kinds"] == ["ticdc", "tikv", "tidb"]
    assert ok()["restart_kinds"] == model["deployed_kinds"]


def test_a_whole_cluster_stops_dependents_first():
    stop = ok()["stop_order"]
    # Each kind stops before every kind it depends on (the registry's depends, reversed start order).
    for kind in stop:
        assert all(stop.index(kind) < stop.index(dep) for dep in _topology.BY_NAME[kind].depends if dep in stop), (kind, stop)
    assert stop[-1] == "pd" and sorted(stop) == sorted(ok()["deployed_kinds"])


def test_stop_grace_adds_tidbs_graceful_wait():
    model = ok(server_configs={"tidb": {"graceful-wait-before-shutdown": 20}})
    assert model["processes"]["tidb0"]["stop_grace"] == 110
    assert model["processes"]["tikv0"]["stop_grace"] == 90


def test_tici_gets_its_own_tidb_account_limited_to_database_tici():
    model = ok()
    assert model["tici_account"] == {"user": "tici", "host": "%", "password": "tici-Pw-1", "privileges": "tici.*:ALL",
                                     "login_password": ""}
    assert model["tidb_sql"] == {"host": model["instances"]["tidb0"]["access_host"], "port": 4000}
    assert "mysql://tici:tici-Pw-1@" in toml(model, "tici-meta0", "tici.toml")["tidb-server"]["dsns"][0]
    # An empty password only when asked for; root is used as it is, with a warning.
    assert ok(tici_tidb_password="", tici_tidb_allow_empty_password=True)["tici_account"]["password"] == ""
    root = ok(tici_tidb_user="root")
    assert root["tici_account"] is None
    assert [w for w in root["warnings"] if "tici_tidb_user is root" in w]
    assert "tici_account" not in ok(tici_enabled=False)


def test_the_account_job_on_kubernetes_keeps_its_password_in_a_secret():
    from ansible_collections.tidbops.cluster.plugins.filter.k8s_manifests import k8s_manifests  # pylint: disable=import-outside-toplevel
    backend = {"namespace": "db", "kubeconfig": "/k", "render_dir": "", "image_pull_policy": "Never",
               "storage": {name: "1Gi" for name in topo.NAMES}, "resources": {}, "s3_client_image": "mc:1", "sql_client_image": "mysql:1",
               "log_tailer_image": "busybox:1"}
    model = ok(backend="kubernetes", backend_settings=backend, tici_tidb_password="it's\\pw")
    assert model["tidb_sql"] is None  # the controller reaches TiDB through the API server only
    objects = k8s_manifests(model, backend, "tidb")
    job = [o for o in objects if o["kind"] == "Job"][0]
    secret = [o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"].endswith("-tici-account")][0]
    assert "it's" not in str(job) and "pw" not in str(job["spec"])
    assert "CREATE USER IF NOT EXISTS 'tici'@'%' IDENTIFIED BY 'it\\'s\\\\pw';" in secret["stringData"]["account.sql"]
    assert "GRANT ALL PRIVILEGES ON `tici`.* TO 'tici'@'%';" in secret["stringData"]["account.sql"]
    assert "host=tidb-tidb\nport=4000\nuser=root\n" in secret["stringData"]["client.cnf"]
    # Another password is another Job (a Job runs once).
    other = k8s_manifests(ok(backend="kubernetes", backend_settings=backend, tici_tidb_password="other-pw"), backend, "tidb")
    assert [o["metadata"]["name"] for o in other if o["kind"] == "Job"] != [job["metadata"]["name"]]
