"""The manifests of the Kubernetes backend: schemas, structure, flags, secrets, order, preflight, destroy."""

import copy
import importlib.util
import json
import os
import tomllib

import kubernetes_validate
import pytest
from k8s_inventory import SECRETS, make_backend, make_cluster

from ansible_collections.tidbops.cluster.plugins.filter import k8s_manifests as km
from ansible_collections.tidbops.cluster.plugins.module_utils import _model

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
_spec = importlib.util.spec_from_file_location("k8s_check", os.path.join(TOP, "tools", "k8s_check.py"))
k8s_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(k8s_check)


def _find(objects, kind, name):
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, "%s/%s found %d times" % (kind, name, len(matches))
    return matches[0]


def _container(objects, name):
    return _find(objects, "StatefulSet", name)["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("version", ["1.30.0", "1.34.0"])
def test_every_manifest_passes_strict_schema_validation(all_manifests, version):
    assert len(all_manifests) == 38  # the TiDB step adds the Secret and the Job of TiCI's account
    for obj in all_manifests:
        kubernetes_validate.validate(obj, version, strict=True)


def test_structural_checks_pass(all_manifests):
    assert k8s_check.check(all_manifests, secrets=SECRETS.values()) == []


@pytest.mark.parametrize("breakage, expected", [
    (lambda objs: _find(objs, "ConfigMap", "tidb-tikv-config")["data"].update(x=SECRETS["secret_key"]),
     "ConfigMap/tidb-tikv-config carries a secret"),
    (lambda objs: _container(objs, "tidb-tidb").pop("readinessProbe"), "has no readinessProbe"),
    (lambda objs: _container(objs, "tidb-pd").update(resources={}), "has no resource requests"),
    (lambda objs: _find(objs, "StatefulSet", "tidb-tikv")["spec"].pop("volumeClaimTemplates"), "no volumeClaimTemplates"),
    (lambda objs: _find(objs, "Service", "tidb-ticdc")["spec"]["selector"].update({"app.kubernetes.io/component": "cdc"}),
     "Service/tidb-ticdc selects no pod template"),
    (lambda objs: _find(objs, "Service", "tidb-pd")["metadata"]["labels"].pop("app.kubernetes.io/instance"),
     "Service/tidb-pd lacks labels app.kubernetes.io/instance"),
    (lambda objs: objs.remove(_find(objs, "Secret", "tidb-minio-credentials")), "refers to missing Secret key tidb-minio-credentials"),
    (lambda objs: objs.remove(_find(objs, "Secret", "tidb-tici-meta-secret")), "refers to missing Secret tidb-tici-meta-secret"),
])
def test_structural_checks_catch_breakage(all_manifests, breakage, expected):
    broken = copy.deepcopy(all_manifests)
    breakage(broken)
    problems = k8s_check.check(broken)
    assert any(expected in problem for problem in problems), problems


def test_apply_order_within_and_across_steps(cluster):
    order = []
    # The kinds in start order, as roles/_kubernetes applies them.
    for kind in ("pd", "tikv", "minio", "tidb", "ticdc", "tici_meta", "tici_worker", "tiflash"):
        kinds = [o["kind"] for o in km.k8s_manifests(*cluster, kind)]
        # Config and credentials before the Services, the workload last (the Job after its StatefulSet).
        head = kinds[:kinds.index("Service")]
        assert head and set(head) <= {"ConfigMap", "Secret"}
        assert kinds.index("StatefulSet") > kinds.index("Service")
        order += [o["metadata"]["name"] for o in km.k8s_manifests(*cluster, kind) if o["kind"] == "StatefulSet"]
    assert order == ["tidb-pd", "tidb-tikv", "tidb-minio", "tidb-tidb", "tidb-ticdc", "tidb-tici-meta",
                     "tidb-tici-worker", "tidb-tiflash"]
    assert [o["kind"] for o in km.k8s_manifests(*cluster, "minio")][-1] == "Job"


def test_manifests_are_deterministic(cluster):
    first = [km.k8s_manifests(*cluster, kind) for kind in _model.topo.NAMES]
    second = [km.k8s_manifests(*make_cluster(), kind) for kind in _model.topo.NAMES]
    assert first == second


def test_replicas_follow_the_inventory(all_manifests):
    replicas = {o["metadata"]["name"]: o["spec"]["replicas"] for o in all_manifests if o["kind"] == "StatefulSet"}
    assert replicas == {"tidb-pd": 3, "tidb-tikv": 3, "tidb-tidb": 2, "tidb-minio": 1, "tidb-ticdc": 2,
                        "tidb-tici-meta": 1, "tidb-tici-worker": 2, "tidb-tiflash": 2}
    assert all(o["spec"]["podManagementPolicy"] == "Parallel" for o in all_manifests if o["kind"] == "StatefulSet")


def test_pd_bootstrap_lists_every_member(all_manifests):
    args = _container(all_manifests, "tidb-pd")["args"]
    initial = [a for a in args if a.startswith("--initial-cluster=")]
    assert initial == ["--initial-cluster=" + ",".join(
        "tidb-pd-%d=http://tidb-pd-%d.tidb-pd-peer.tidb-test.svc:2380" % (i, i) for i in range(3))]
    assert "--name=$(POD_NAME)" in args
    assert "--advertise-client-urls=http://$(POD_NAME).tidb-pd-peer.tidb-test.svc:2379" in args
    peer = _find(all_manifests, "Service", "tidb-pd-peer")["spec"]
    # Members must resolve each other before any of them is Ready.
    assert peer["clusterIP"] == "None" and peer["publishNotReadyAddresses"] is True


def test_component_flags(all_manifests):
    tidb = _container(all_manifests, "tidb-tidb")["args"]
    assert "--store=tikv" in tidb and "--path=tidb-pd:2379" in tidb
    tikv = _container(all_manifests, "tidb-tikv")["args"]
    assert "--status-addr=0.0.0.0:20180" in tikv
    assert "--advertise-status-addr=$(POD_NAME).tidb-tikv-peer.tidb-test.svc:20180" in tikv
    assert "--advertise-addr=$(POD_NAME).tidb-tikv-peer.tidb-test.svc:20160" in tikv
    cdc = _container(all_manifests, "tidb-ticdc")
    assert cdc["command"] == ["/cdc"] and cdc["args"][0] == "server"
    assert "--newarch" in cdc["args"] and "--pd=http://tidb-pd:2379" in cdc["args"]
    meta = _container(all_manifests, "tidb-tici-meta")
    assert meta["command"] == ["/tici-server"] and meta["args"][0] == "meta"
    assert "--advertise-host=$(POD_NAME).tidb-tici-meta-peer.tidb-test.svc" in meta["args"]
    assert meta["readinessProbe"]["tcpSocket"]["port"] == 8501
    worker = _container(all_manifests, "tidb-tici-worker")
    assert worker["args"][0] == "worker" and "--data-dir=/data" in worker["args"]
    for container in (tidb, tikv, cdc["args"]):
        assert not any(secret in " ".join(container) for secret in SECRETS.values())


def test_without_tici_ticdc_runs_the_classic_architecture():
    model, backend = make_cluster(tici_enabled=False, tici_s3={})
    assert model["problems"] == []
    assert not any(arg.startswith("--newarch") for arg in _container(km.k8s_manifests(model, backend, "ticdc"), "tidb-ticdc")["args"])


@pytest.mark.parametrize("name, path, port", [
    ("tidb-tikv", "/status", 20180), ("tidb-tidb", "/status", 10080),
    ("tidb-ticdc", "/status", 8300), ("tidb-minio", "/minio/health/ready", 9000), ("tidb-tiflash", "/tiflash/readyz", 20292),
])
def test_http_readiness_probes(all_manifests, name, path, port):
    probe = _container(all_manifests, name)["readinessProbe"]["httpGet"]
    assert (probe["path"], probe["port"]) == (path, port)


def test_pd_readiness_needs_no_quorum(all_manifests):
    """PD's /pd/api/v1/health needs a quorum: with it as the probe, a leader election would empty the PD
    Service every component starts from. A TCP check on the client port says what the probe can know."""
    probe = _container(all_manifests, "tidb-pd")["readinessProbe"]
    assert probe["tcpSocket"] == {"port": 2379} and "httpGet" not in probe and "exec" not in probe


def _secret_toml(objects, secret, key):
    return tomllib.loads(_find(objects, "Secret", secret)["stringData"][key])


def _mounts(container):
    return {mount["mountPath"]: mount for mount in container["volumeMounts"]}


def test_tiflash_config_per_pod_with_tici(all_manifests):
    container = _container(all_manifests, "tidb-tiflash")
    assert 8520 in [p["containerPort"] for p in container["ports"]]
    # The same command line and file paths as on a container; each pod's own files through subPathExpr.
    assert container["args"] == ["server", "--config-file", "/etc/tiflash/tiflash.toml"]
    mounts = _mounts(container)
    assert mounts["/etc/tiflash/tiflash.toml"]["subPathExpr"] == "$(POD_NAME).tiflash.toml"
    assert mounts["/etc/tiflash/tiflash.toml"]["name"] == "secret"  # [tici.s3] holds the keys
    assert mounts["/etc/tiflash/proxy.toml"]["name"] == "config"
    assert mounts["/data"]["name"] == "data"
    for index in range(2):
        pod = "tidb-tiflash-%d" % index
        fqdn = "%s.tidb-tiflash-peer.tidb-test.svc" % pod
        config = _secret_toml(all_manifests, "tidb-tiflash-secret", pod + ".tiflash.toml")
        assert config["flash"]["service_addr"] == fqdn + ":3930"
        assert config["tici"]["reader-node"] == {"addr": "0.0.0.0:8520", "advertise-addr": fqdn + ":8520"}
        assert config["tici"]["s3"]["secret-key"] == SECRETS["secret_key"]
        assert config["tici"]["s3"]["endpoint"] == "http://tidb-minio:9000"
        assert config["flash"]["proxy"]["config"] == "/etc/tiflash/proxy.toml"
        assert config["logger"]["level"] == "debug"  # server_configs.tiflash applies
        learner = tomllib.loads(_find(all_manifests, "ConfigMap", "tidb-tiflash-config")["data"][pod + ".proxy.toml"])
        assert learner["server"]["engine-addr"] == fqdn + ":3930"


def test_tici_configs_live_in_secrets(all_manifests):
    meta = _secret_toml(all_manifests, "tidb-tici-meta-secret", "tidb-tici-meta-0.tici.toml")
    assert meta["s3"]["bucket"] == "ticidefaultbucket" and meta["server"]["pd-addr"] == "tidb-pd:2379"
    assert meta["tidb-server"]["dsns"] == ["mysql://tici:tidb-P%40ss%3Aword@tidb-tidb:4000"]
    worker = _secret_toml(all_manifests, "tidb-tici-worker-secret", "tidb-tici-worker-1.tici.toml")
    assert "tidb-server" not in worker and worker["s3"]["access-key"] == SECRETS["access_key"]
    assert "ConfigMap" not in [o["kind"] for o in all_manifests if o["metadata"]["name"].startswith("tidb-tici")]


def test_per_instance_config_reaches_its_pod():
    model, backend = make_cluster(host_vars={"tikv-1": {"config": {"raftstore.capacity": "10GB"}}})
    config_map = km.k8s_manifests(model, backend, "tikv")[0]["data"]
    assert "raftstore" not in tomllib.loads(config_map["tidb-tikv-0.tikv.toml"])
    assert tomllib.loads(config_map["tidb-tikv-1.tikv.toml"])["raftstore"]["capacity"] == "10GB"
    assert tomllib.loads(config_map["tidb-tikv-1.tikv.toml"])["storage"]["reserve-space"] == "0MB"


def test_minio_reads_its_root_credentials_from_files(all_manifests):
    container = _container(all_manifests, "tidb-minio")
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["MINIO_ROOT_PASSWORD_FILE"] == "/etc/minio/secrets/root_password"
    assert _mounts(container)["/etc/minio/secrets/root_password"]["subPathExpr"] == "$(POD_NAME).root_password"
    assert container["args"] == ["server", "/data", "--address=0.0.0.0:9000", "--console-address=0.0.0.0:9001"]


def test_minio_bucket_job_needs_no_shell(all_manifests):
    job = _find(all_manifests, "Job", "tidb-minio-bucket")["spec"]["template"]["spec"]["containers"][0]
    assert job["command"] == ["mc"] and job["args"] == ["mb", "--ignore-existing", "tici/ticidefaultbucket"]
    assert job["env"][0]["valueFrom"]["secretKeyRef"] == {"name": "tidb-minio-credentials", "key": "mc-host"}
    mc_host = _find(all_manifests, "Secret", "tidb-minio-credentials")["stringData"]["mc-host"]
    # MinIO's root credentials make the bucket (TiCI's own keys may not); the secret key is URL-encoded
    # so '+', '/', '=', '&', '?' survive.
    assert mc_host == "http://AKIAEXAMPLEKEY0001:minio-Root-Pw-1234@tidb-minio:9000"
    model, backend = make_cluster(minio_root_password="r00t+/=Pw&x?y")
    secret = _find(km.k8s_manifests(model, backend, "minio"), "Secret", "tidb-minio-credentials")
    assert secret["stringData"]["mc-host"] == "http://AKIAEXAMPLEKEY0001:r00t%2B%2F%3DPw%26x%3Fy@tidb-minio:9000"


def test_the_bucket_job_makes_ticis_minio_user_without_a_key_in_its_spec():
    model, backend = make_cluster(tici_s3={}, minio_tici_password="tici+S3/secret=")
    objects = km.k8s_manifests(model, backend, "minio")
    job = [o for o in objects if o["kind"] == "Job"][0]
    assert job["metadata"]["name"].startswith("tidb-minio-bucket-")
    spec = json.dumps(job)
    assert "tici+S3/secret=" not in spec and "minio-Root-Pw-1234" not in spec
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:2] == ["/bin/sh", "-c"] and "< /etc/tidbops/secret-key" in container["command"][2]
    assert {e["name"]: e.get("value") for e in container["env"]}["TICI_ACCESS_KEY"] == "tici"
    secret = _find(objects, "Secret", "tidb-minio-credentials")["stringData"]
    assert secret["secret-key"] == "tici+S3/secret=\n"
    resources = [r for st in json.loads(secret["policy.json"])["Statement"] for r in st["Resource"]]
    assert resources == ["arn:aws:s3:::ticidefaultbucket", "arn:aws:s3:::ticidefaultbucket/*"]
    # TiCI's clients get the user's keys, not the root credentials.
    meta_secret = _find(km.k8s_manifests(model, backend, "tici_meta"), "Secret", "tidb-tici-meta-secret")
    meta = tomllib.loads(meta_secret["stringData"]["tidb-tici-meta-0.tici.toml"])
    assert (meta["s3"]["access-key"], meta["s3"]["secret-key"]) == ("tici", "tici+S3/secret=")
    # Other keys: another Job (a Job runs once).
    other, _backend = make_cluster(tici_s3={}, minio_tici_password="another-S3-secret")
    assert [o["metadata"]["name"] for o in km.k8s_manifests(other, backend, "minio") if o["kind"] == "Job"] != [job["metadata"]["name"]]


def test_without_tici_there_is_no_minio_or_tici():
    model, backend = make_cluster(tici_enabled=False, tici_s3={})
    for kind in ("minio", "tici_meta", "tici_worker"):
        assert km.k8s_manifests(model, backend, kind) == []
    assert [o["kind"] for o in km.k8s_manifests(model, backend, "ticdc")] == ["ConfigMap", "Service", "Service", "StatefulSet"]
    tiflash = km.k8s_manifests(model, backend, "tiflash")
    assert tiflash[0]["kind"] == "ConfigMap"
    assert "tici" not in tomllib.loads(tiflash[0]["data"]["tidb-tiflash-0.tiflash.toml"])


def test_gates_go_through_the_proxy(cluster):
    model, _backend = cluster
    gates = model["gates"]
    # Two DNS labels address a pod through the API server proxy, one label a Service.
    assert gates["pd"]["endpoints"] == ["http://tidb-pd-%d.tidb-pd-peer:2379" % i for i in range(3)]
    assert gates["tikv"]["pd_endpoint"] == "http://tidb-pd:2379"
    assert gates["tikv"]["store_addresses"] == ["tidb-tikv-%d.tidb-tikv-peer.tidb-test.svc:20160" % i for i in range(3)]
    assert gates["tiflash"]["store_addresses"] == ["tidb-tiflash-%d.tidb-tiflash-peer.tidb-test.svc:3930" % i for i in range(2)]
    assert gates["tiflash"]["endpoints"][0] == "http://tidb-tiflash-0.tidb-tiflash-peer:20292"
    assert model["changefeed"]["server"] == "http://tidb-ticdc:8300"
    assert gates["tici_meta"]["endpoints"] == ["http://tidb-tici-meta-0.tidb-tici-meta-peer:8501"]
    assert model["transport"] == {"kube_proxy": {"namespace": "tidb-test"}}


@pytest.mark.parametrize("backend, settings, sizes, host_vars, variable", [
    ({"namespace": "TiDB_NS"}, {}, None, None, "tidb_k8s_namespace"),
    ({"namespace": "-bad"}, {}, None, None, "tidb_k8s_namespace"),
    ({"storage": {"pd": "10 GB"}}, {}, None, None, "tidb_k8s_storage.pd"),
    ({"storage": {"pd": "10Gi", "tikv": "lots", "tiflash": "1Gi", "ticdc": "1Gi", "tici_worker": "1Gi", "minio": "1Gi"}},
     {}, None, None, "tidb_k8s_storage.tikv"),
    ({}, {}, {"pd_servers": 0}, None, "pd_servers"),
    ({}, {}, {"tikv_servers": 0}, None, "tikv_servers"),
    ({}, {"tici_s3": {"bucket": "bk1", "prefix": "p", "access_key": ""}}, None, None, "tici_s3.access_key"),
    ({}, {"tici_s3": {"bucket": "bk1", "prefix": "p", "access_key": "a", "secret_key": "s"}}, {"minio_servers": 0}, None,
     "tici_s3.endpoint"),
    ({}, {}, {"cdc_servers": 0}, None, "cdc_servers"),
    ({"image_pull_policy": "Sometimes"}, {}, None, None, "tidb_k8s_image_pull_policy"),
    ({"resources": {"pd": {"requests": {"cpu": "lots"}}}}, {}, None, None, "tidb_k8s_resources.pd.requests.cpu"),
    ({}, {}, None, {"tidb-1": {"port": 4001}}, "port must be the same on every host of tidb_servers"),
    # The roles' prefixed spelling (TiUP's `port` is reserved in Ansible) is read too, and wins.
    ({}, {}, None, {"tidb-1": {"tidb_port": 4001}}, "tidb_port must be the same on every host of tidb_servers"),
    ({}, {}, None, {"tidb-1": {"port": 4000, "tidb_port": 4001}}, "tidb_port must be the same on every host of tidb_servers"),
])
def test_preflight_names_the_variable(backend, settings, sizes, host_vars, variable):
    model, _backend = make_cluster(sizes, host_vars, make_backend(**backend), **settings)
    text = "; ".join(model["problems"])
    assert variable in text
    assert not any(secret in text for secret in SECRETS.values())


@pytest.mark.parametrize("quantity, valid", [
    ("10Gi", True), ("500M", True), ("1.5", True), ("100m", True), ("1e3", True), ("2Ti", True),
    ("10 Gi", False), ("10GB", False), ("Gi", False), ("", False), ("-", False), ("1..5", False),
])
def test_quantity_syntax(quantity, valid):
    assert _model._is_quantity(quantity) is valid  # pylint: disable=protected-access


def test_destroy_list_keeps_data_unless_asked(cluster):
    keep = [km.k8s_object_line(obj) for obj in km.k8s_inventory(*cluster)]
    # The changefeed Job's objects too: a cluster applied from rendered files has them.
    created = [o for kind in _model.topo.NAMES for o in km.k8s_manifests(*cluster, kind, with_changefeed=True)]
    assert len(keep) == len(created) and len(set(keep)) == len(keep)
    assert "Job tidb-test/tidb-ticdc-changefeed-" in " ".join(keep)
    # The reverse of the apply order: TiFlash's StatefulSet first, PD's ConfigMap last.
    assert keep[0] == "StatefulSet tidb-test/tidb-tiflash" and keep[-1] == "ConfigMap tidb-test/tidb-pd-config"
    assert not any(line.startswith(("PersistentVolumeClaim", "Namespace")) for line in keep)
    everything = [km.k8s_object_line(obj) for obj in km.k8s_inventory(*cluster, destroy_data=True)]
    claims = [line for line in everything if line.startswith("PersistentVolumeClaim")]
    # One claim per pod of a stateful kind (not TiDB, not TiCI meta), after every workload.
    assert len(claims) == 3 + 3 + 1 + 2 + 2 + 2 and "PersistentVolumeClaim tidb-test/data-tidb-pd-2" in claims
    assert everything.index(claims[0]) > max(i for i, line in enumerate(everything) if line.startswith("StatefulSet"))
    assert everything[-1] == "Namespace /tidb-test"
    only_tikv = km.k8s_inventory(*cluster, destroy_data=True, kinds=["tikv"])
    assert {obj["name"] for obj in only_tikv} == {"tidb-tikv", "tidb-tikv-peer", "tidb-tikv-config", "data-tidb-tikv-0",
                                                  "data-tidb-tikv-1", "data-tidb-tikv-2"}


def test_delete_runs_keep_the_order_and_wait_only_for_statefulsets_and_the_namespace(cluster):
    doomed = km.k8s_inventory(*cluster, destroy_data=True)
    runs = km.k8s_delete_batches(doomed)
    definitions = [definition for run in runs for definition in run["definitions"]]
    # Every object once, in the delete order, as the definition kubernetes.core.k8s deletes.
    assert [(d["apiVersion"], d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]) for d in definitions] == \
        [(o["apiVersion"], o["kind"], o["namespace"], o["name"]) for o in doomed]
    assert definitions[-1] == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tidb-test"}}
    for run in runs:
        assert {d["kind"] in km.WAIT_FOR_DELETION for d in run["definitions"]} == {run["wait"]}
    # Runs are as long as they can be: the next run is waited for otherwise.
    assert all(first["wait"] != second["wait"] for first, second in zip(runs, runs[1:]))
    # The claims go together, unwaited, after the last StatefulSet.
    claims = [run for run in runs if any(d["kind"] == "PersistentVolumeClaim" for d in run["definitions"])]
    assert len(claims) == 1 and not claims[0]["wait"]
    assert len(runs) < len(doomed) / 2
    assert km.k8s_delete_batches([]) == []
    with pytest.raises(km.AnsibleFilterError, match="k8s_delete_batches: the input must be a list"):
        km.k8s_delete_batches({"kind": "Secret"})


def test_every_kind_has_a_render_file_prefix():
    """Render mode names each kind's file by a prefix of roles/_kubernetes (sorting gives the apply order)."""
    import yaml  # pylint: disable=import-outside-toplevel
    with open(os.path.join(TOP, "roles", "_kubernetes", "vars", "main.yml"), encoding="utf-8") as handle:
        prefixes = yaml.safe_load(handle)["__k8s_file_prefix"]
    assert set(prefixes) == set(_model.topo.NAMES) | {"namespace"}
    assert len(set(prefixes.values())) == len(prefixes) and prefixes["namespace"] == min(prefixes.values())


def _template(objects, name):
    return _find(objects, "StatefulSet", name)["spec"]["template"]


def test_pods_get_their_stop_grace_and_rendered_sets_no_partition(cluster, all_manifests):
    model, _backend = cluster
    for obj in all_manifests:
        if obj["kind"] != "StatefulSet":
            continue
        kind = obj["metadata"]["labels"]["app.kubernetes.io/component"].replace("-", "_")
        graces = set(model["processes"][host]["stop_grace"] for host in model["members"][kind])
        assert obj["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == max(graces)
        # The live backend sets the partition when it applies; rendered manifests let Kubernetes roll.
        assert obj["spec"]["updateStrategy"] == {"type": "RollingUpdate"}
    # TiDB keeps serving for its graceful-wait-before-shutdown after SIGTERM: the grace covers it.
    waiting, backend = make_cluster(server_configs={"tidb": {"graceful-wait-before-shutdown": 30}})
    tidb = _template(km.k8s_manifests(waiting, backend, "tidb"), "tidb-tidb")
    assert tidb["spec"]["terminationGracePeriodSeconds"] == waiting["processes"]["tidb-0"]["stop_grace"] == 120


def test_a_changed_file_changes_the_pod_template(all_manifests):
    def digest(objects, name):
        return _template(objects, name)["metadata"]["annotations"][km.FILES_HASH]

    # One pod's plain file (per-host config) and a secret file (TiCI's S3 key) each make a new template;
    # nothing else does.
    model, backend = make_cluster(host_vars={"tikv-1": {"config": {"raftstore.capacity": "10GB"}}})
    assert digest(km.k8s_manifests(model, backend, "tikv"), "tidb-tikv") != digest(all_manifests, "tidb-tikv")
    assert digest(km.k8s_manifests(model, backend, "pd"), "tidb-pd") == digest(all_manifests, "tidb-pd")
    rotated, backend = make_cluster(tici_s3=dict(make_cluster()[0]["s3"], secret_key="another-Secret-Key-5678"))
    assert digest(km.k8s_manifests(rotated, backend, "tici_worker"), "tidb-tici-worker") != \
        digest(all_manifests, "tidb-tici-worker")
    # A digest, never the content.
    assert all(len(digest(all_manifests, name)) == 64 for name in ("tidb-pd", "tidb-tici-meta", "tidb-minio"))


def test_pod_replacement_filter_checks_its_input():
    statefulset = {"kind": "StatefulSet", "metadata": {"name": "tidb-pd"}, "spec": {"replicas": 1},
                   "status": {"updateRevision": "r2"}}
    pod = {"metadata": {"name": "tidb-pd-0", "uid": "u", "labels": {"controller-revision-hash": "r1"}}}
    assert km.k8s_pod_replacement(statefulset, [pod], "tidb-pd-0")["behind"] is True
    with pytest.raises(km.AnsibleFilterError, match="must be a StatefulSet"):
        km.k8s_pod_replacement({"kind": "Pod"}, [], "tidb-pd-0")
    with pytest.raises(km.AnsibleFilterError, match="not a pod of the StatefulSet tidb-pd"):
        km.k8s_pod_replacement(statefulset, [], "tidb-tikv-0")


def _tls_cluster(tmp_path, render_dir="/tmp/rendered"):
    from ansible_collections.tidbops.cluster.plugins.module_utils import _tls  # pylint: disable=import-outside-toplevel
    backend = make_backend(render_dir=render_dir)
    tls = {"enabled": True, "dir": str(tmp_path), "material": None}
    model, _backend = make_cluster(backend=backend, tici_enabled=False, tici_s3={}, tls=tls)
    if model["problems"]:
        return model, backend
    plan = model["tls"]["certificates"]
    # Placeholder PEM text: the manifests only carry it (the unit tests of _tls check real certificates).
    tls["material"] = _tls.material(plan, str(tmp_path), "PEM of the test", [item["name"] for item in plan])
    model, _backend = make_cluster(backend=backend, tici_enabled=False, tici_s3={}, tls=tls)
    return model, backend


def test_tls_is_rendered_as_secrets_and_mounted_where_containers_have_it(tmp_path):
    model, backend = _tls_cluster(tmp_path)
    assert model["problems"] == []
    pd0 = [item for item in model["tls"]["certificates"] if item["name"] == model["members"]["pd"][0]][0]
    assert {"tidb-pd", "tidb-pd.tidb-test", "tidb-pd.tidb-test.svc", "tidb-pd-0.tidb-pd-peer",
            "tidb-pd-0.tidb-pd-peer.tidb-test.svc", "localhost", "127.0.0.1"} == set(pd0["sans"])
    objects = []
    for kind in ("pd", "tikv", "tidb", "ticdc", "tiflash"):
        objects += km.k8s_manifests(model, backend, kind)
    for obj in objects:
        kubernetes_validate.validate(obj, "1.30.0", strict=True)
    secret = _find(objects, "Secret", "tidb-pd-secret")["stringData"]
    config = _find(objects, "ConfigMap", "tidb-pd-config")["data"]
    assert secret["tidb-pd-0.pd.pem"] == "PEM of the test" and "tidb-pd-0.pd.pem" not in config
    assert "tidb-pd-0.pd.crt" in config and "tidb-pd-0.ca.crt" in config
    for name, role in (("tidb-pd", "pd"), ("tidb-tikv", "tikv"), ("tidb-tidb", "tidb"), ("tidb-ticdc", "cdc"), ("tidb-tiflash", "tiflash")):
        container = _container(objects, name)
        mounts = _mounts(container)
        assert mounts["/etc/tidbops/tls/%s.pem" % role]["subPathExpr"] == "$(POD_NAME).%s.pem" % role
        assert mounts["/etc/tidbops/tls/%s.pem" % role]["name"] == "secret"
        assert "/etc/tidbops/tls/ca.crt" in mounts
        # The kubelet's HTTPS probe presents no client certificate, which every component requires.
        assert "tcpSocket" in container["readinessProbe"] and "httpGet" not in container["readinessProbe"], name
    assert "--client-urls=https://0.0.0.0:2379" in _container(objects, "tidb-pd")["args"]
    assert any(arg.startswith("--initial-cluster=") and "https://tidb-pd-0.tidb-pd-peer" in arg for arg in _container(objects, "tidb-pd")["args"])


def test_tls_on_a_live_kubernetes_cluster_is_refused(tmp_path):
    model, _backend = _tls_cluster(tmp_path, render_dir="")
    assert any("only to render manifests" in problem for problem in model["problems"])
