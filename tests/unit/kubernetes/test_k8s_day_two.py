"""What a cluster on Kubernetes needs after day one (issue 16): changes reach the pods, a rendered
cluster converges its TiCI changefeed, PD's probe needs no quorum, TiFlash's log files reach
``kubectl logs``, and pods run as a non-root user."""

import os
import re
import subprocess
import sys

import kubernetes_validate
import pytest
import yaml
from k8s_inventory import SECRETS, make_backend, make_cluster

from ansible_collections.tidbops.cluster.plugins.filter import k8s_manifests as km

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
KINDS = ("pd", "tikv", "tidb", "minio", "ticdc", "tici_meta", "tici_worker", "tiflash")
ROTATED_KEY = "another-Secret-Key-5678"


def _objects(model, backend):
    return [obj for kind in KINDS for obj in km.k8s_manifests(model, backend, kind)]


def _templates(objects):
    return {o["metadata"]["name"]: o["spec"]["template"] for o in objects if o["kind"] == "StatefulSet"}


def _by(objects, kind):
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def _rendered(**settings):
    model, backend = make_cluster(backend=make_backend(render_dir="/tmp/rendered"), **settings)
    assert model["problems"] == []
    return _objects(model, backend)


def test_a_changed_server_config_changes_only_its_kinds_pod_template():
    before = _templates(_rendered())
    after = _templates(_rendered(server_configs={"tikv": {"storage.reserve-space": "2GB"}, "tiflash": {"logger.level": "debug"}}))
    assert sorted(name for name in before if before[name] != after[name]) == ["tidb-tikv"]


def test_a_rotated_s3_key_changes_tici_tiflash_and_the_changefeed_job():
    first = _rendered()
    model = make_cluster()[0]
    rotated = _rendered(tici_s3=dict(model["s3"], secret_key=ROTATED_KEY))
    before, after = _templates(first), _templates(rotated)
    assert sorted(name for name in before if before[name] != after[name]) == ["tidb-tici-meta", "tidb-tici-worker", "tidb-tiflash"]
    jobs_before, jobs_after = set(_by(first, "Job")), set(_by(rotated, "Job"))
    # The changefeed Job is a new one (a Job runs once); the others do not carry TiCI's S3 key.
    assert [name for name in jobs_before - jobs_after if "changefeed" in name] and len(jobs_before - jobs_after) == 1
    assert ROTATED_KEY in _by(rotated, "Secret")["tidb-ticdc-changefeed"]["stringData"]["sink-uri"].replace("%2D", "-")


def test_render_mode_writes_the_changefeed_job_and_live_mode_does_not():
    objects = _rendered()
    job = [o for name, o in _by(objects, "Job").items() if name.startswith("tidb-ticdc-changefeed-")]
    assert len(job) == 1
    for obj in [job[0], _by(objects, "ConfigMap")["tidb-ticdc-changefeed"], _by(objects, "Secret")["tidb-ticdc-changefeed"]]:
        for version in ("1.30.0", "1.34.0"):
            kubernetes_validate.validate(obj, version, strict=True)
    container = job[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "example.invalid/tidbops-ee:v1" and container["command"] == ["ansible-playbook"]
    play = yaml.safe_load(_by(objects, "ConfigMap")["tidb-ticdc-changefeed"]["data"]["changefeed.yml"])
    task = play[0]["tasks"][0]["tidbops.cluster.ticdc_changefeed"]
    assert task["server"] == "http://tidb-ticdc:8300" and task["changefeed_id"] == "tici-replication-task"
    assert task["replica_config"]["sink"]["date_separator"] == "none" and task["timeout"] == 300
    # The keys are in the Secret only: not in the playbook, the Job or its environment.
    assert task["sink_uri"].startswith("{{ lookup('ansible.builtin.file', ")
    everything_else = yaml.safe_dump([o for o in objects if o["kind"] != "Secret"])
    assert not any(secret in everything_else for secret in (SECRETS["secret_key"], SECRETS["access_key"], "s3cr3t"))
    # Live, the ticdc role converges it from the controller once the bucket exists.
    live_model, live_backend = make_cluster()
    assert not [o for o in km.k8s_manifests(live_model, live_backend, "ticdc") if o["kind"] == "Job"]


def test_rendering_tici_needs_a_runner_image():
    model, _backend = make_cluster(backend=make_backend(render_dir="/tmp/rendered", runner_image=""))
    assert any(problem.startswith("tidb_k8s_runner_image must be a non-empty image reference") for problem in model["problems"])
    assert make_cluster(backend=make_backend(runner_image=""))[0]["problems"] == []  # live: not needed


def test_pd_readiness_does_not_call_the_health_api():
    probe = _templates(_rendered())["tidb-pd"]["spec"]["containers"][0]["readinessProbe"]
    assert "httpGet" not in probe and probe["tcpSocket"] == {"port": 2379}


def test_tiflash_log_files_reach_kubectl_logs_off_the_data_volume():
    spec = _templates(_rendered())["tidb-tiflash"]["spec"]
    main, tailers = spec["containers"][0], spec["containers"][1:]
    files = {c["name"]: c["args"][-1] for c in tailers}
    assert files == {"log-tiflash": "/data/logs/tiflash.log", "log-tiflash-error": "/data/logs/tiflash_error.log",
                     "log-tici-searchlib": "/data/logs/tici_searchlib.log"}
    assert all(c["command"] == ["tail"] and c["args"][:3] == ["-n", "+1", "-F"] and c["resources"]["requests"] for c in tailers)
    empty_dirs = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
    mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
    # An emptyDir over /data/logs: the PVC at /data keeps the data, not the logs; each sidecar sees the directory.
    assert mounts["/data"] == "data" and mounts["/data/logs"] in empty_dirs
    assert all({m["mountPath"]: m["name"] for m in c["volumeMounts"]} == {"/data/logs": mounts["/data/logs"]} for c in tailers)
    # The TiCI servers log to stdout already: no log file flag, no logger file in their config.
    for name in ("tidb-tici-meta", "tidb-tici-worker"):
        container = _templates(_rendered())[name]["spec"]["containers"]
        assert len(container) == 1 and not any(arg.startswith("--log-file") for arg in container[0]["args"])
    model = make_cluster()[0]
    assert all("filename" not in item["content"] for host in model["members"]["tici_meta"] + model["members"]["tici_worker"]
               for item in model["processes"][host]["files"])


def test_a_user_log_path_is_tailed_where_the_user_put_it():
    objects = _rendered(server_configs={"tiflash": {"logger.log": "/data/mylogs/server.log"}})
    spec = _templates(objects)["tidb-tiflash"]["spec"]
    assert {c["name"]: c["args"][-1] for c in spec["containers"][1:]}["log-server"] == "/data/mylogs/server.log"
    assert {"/data/logs", "/data/mylogs"} <= {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}


def test_a_pod_security_context_reaches_every_pod_and_secrets_are_group_readable():
    context = {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000, "fsGroupChangePolicy": "OnRootMismatch"}
    model, backend = make_cluster(backend=make_backend(render_dir="/tmp/rendered", pod_security_context=context))
    objects = _objects(model, backend)
    pods = [o["spec"]["template"]["spec"] for o in objects if o["kind"] in ("StatefulSet", "Job")]
    assert len(pods) == 8 + 3 and all(pod["securityContext"] == context for pod in pods)
    modes = [v["secret"]["defaultMode"] for pod in pods for v in pod.get("volumes", []) if "secret" in v]
    assert modes and set(modes) == {0o440}
    for obj in objects:
        kubernetes_validate.validate(obj, "1.34.0", strict=True)
    bad, _backend = make_cluster(backend=make_backend(pod_security_context=["fsGroup"]))
    assert any(problem.startswith("tidb_k8s_pod_security_context must be a mapping") for problem in bad["problems"])


def _run_job(job, objects, root, server):
    """Run a Job's container as a kubelet would, here: its volumes as directories under ``root``
    (ConfigMap and Secret keys as files), its env, its command and args, the paths under /etc/tidbops
    mapped to ``root``. The cluster's Service name does not resolve here, so the playbook's server is
    the simulator's TiCDC; everything else is the Job's own."""
    spec = job["spec"]["template"]["spec"]
    container = spec["containers"][0]
    sources = {(o["kind"], o["metadata"]["name"]): o.get("data") or o.get("stringData") for o in objects}
    volumes = {}
    for volume in spec["volumes"]:
        kind, name = ("ConfigMap", volume["configMap"]["name"]) if "configMap" in volume else ("Secret", volume["secret"]["secretName"])
        volumes[volume["name"]] = sources[(kind, name)]
    for mount in container["volumeMounts"]:
        path = root + mount["mountPath"]
        os.makedirs(path, exist_ok=True)
        for key, text in volumes[mount["name"]].items():
            if key.endswith(".yml"):
                text = text.replace(km.RUNNER_DIR, root + km.RUNNER_DIR).replace("http://tidb-ticdc:8300", server)
            with open(os.path.join(path, key), "w", encoding="utf-8") as handle:
                handle.write(text)
    env = {item["name"]: item["value"] for item in container["env"]}
    env.update(PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"], HOME=root, ANSIBLE_LOCAL_TEMP=root + "/tmp",
               # The execution environment has the collection installed; here it is this checkout.
               ANSIBLE_COLLECTIONS_PATH=os.path.join(TOP, ".collections"))
    args = [arg.replace(km.RUNNER_DIR, root + km.RUNNER_DIR) for arg in container["args"]]
    return subprocess.run(container["command"] + args, cwd=root, env=env, capture_output=True, text=True, timeout=180, check=False)


def test_the_changefeed_job_creates_then_changes_nothing_against_the_simulator(tmp_path):
    boto3 = pytest.importorskip("boto3")
    testing = pytest.importorskip("tidbsim.testing")
    with testing.Sim(tmp_path / "sim") as sim:
        pd = sim.pd()
        tikv = sim.tikv(pd)  # TiCDC serves once PD is bootstrapped
        cdc = sim.cdc(pd, newarch=True)
        minio = sim.minio(user=SECRETS["access_key"], password=SECRETS["secret_key"])
        sim.wait_ready(pd, tikv, cdc, minio)
        boto3.client("s3", endpoint_url=minio.url(), aws_access_key_id=SECRETS["access_key"], aws_secret_access_key=SECRETS["secret_key"],
                     region_name="us-east-1").create_bucket(Bucket="ticidefaultbucket")
        s3 = dict(make_cluster()[0]["s3"], endpoint=minio.url())
        model, backend = make_cluster(backend=make_backend(render_dir="/tmp/rendered"), tici_s3=s3)
        assert model["problems"] == []
        objects = km.k8s_manifests(model, backend, "ticdc")
        job = [o for o in objects if o["kind"] == "Job"][0]
        runs = [_run_job(job, objects, str(tmp_path / ("run%d" % attempt)), cdc.url()) for attempt in (1, 2)]
        for run in runs:
            assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
            assert SECRETS["secret_key"] not in run.stdout + run.stderr
        assert re.search(r"localhost\s+: ok=1\s+changed=1 ", runs[0].stdout), runs[0].stdout
        assert re.search(r"localhost\s+: ok=1\s+changed=0 ", runs[1].stdout), runs[1].stdout
        status, feeds = testing.http_json("GET", cdc.url("/api/v2/changefeeds"))
        assert status == 200, feeds
        assert [item["id"] for item in feeds["items"]] == ["tici-replication-task"]


def test_the_playbooks_role_is_namespaced_least_privilege_and_valid():
    model, backend = make_cluster()
    role, cluster_role = km.k8s_rbac(model, backend)
    for obj in (role, cluster_role):
        for version in ("1.30.0", "1.34.0"):
            kubernetes_validate.validate(obj, version, strict=True)
    assert role["kind"] == "Role" and role["metadata"]["namespace"] == "tidb-test"
    verbs = {(resource, verb) for rule in role["rules"] for resource in rule["resources"] for verb in rule["verbs"]}
    assert not any("*" in item for item in verbs) and ("secrets", "list") not in verbs  # secrets are read by name only
    assert {("pods/proxy", "get"), ("services/proxy", "create"), ("statefulsets", "patch"), ("pods", "delete")} <= verbs
    assert cluster_role["rules"][1]["resourceNames"] == ["tidb-test"]
    # Without creating the namespace, no cluster-wide rule at all.
    model, backend = make_cluster(backend=make_backend(create_namespace=False))
    assert [o["kind"] for o in km.k8s_rbac(model, backend)] == ["Role"]


def test_the_fake_api_server_refuses_what_the_role_does_not_grant():
    import urllib.error  # pylint: disable=import-outside-toplevel
    import urllib.request  # pylint: disable=import-outside-toplevel

    from fake_apiserver import FakeApiServer  # pylint: disable=import-outside-toplevel

    def status(method, path):
        try:
            with urllib.request.urlopen(urllib.request.Request(api.url + path, method=method), timeout=5) as reply:
                return reply.status
        except urllib.error.HTTPError as error:
            return error.code

    with FakeApiServer() as api:
        assert status("GET", "/api/v1/namespaces/tidb/configmaps/absent") == 404  # allowed, and not there
        assert status("GET", "/api/v1/namespaces/tidb/secrets") == 403  # listing Secrets is not granted
        assert status("GET", "/api/v1/namespaces/other/configmaps/absent") == 403  # another namespace
        assert status("DELETE", "/api/v1/namespaces/other") == 403  # only the cluster's own namespace
        assert status("GET", "/apis/apps/v1/namespaces/tidb/statefulsets") == 403  # a list the playbooks never make
        assert len(api.forbidden) == 4 and "cannot list resource \"secrets\"" in api.forbidden[0]


def test_the_in_cluster_role_reads_pod_logs_instead_of_proxying():
    model, backend = make_cluster(backend=make_backend(transport="in_cluster"))
    assert model["problems"] == []
    rules = km.k8s_rbac(model, backend)[0]["rules"]
    resources = {resource for rule in rules for resource in rule["resources"]}
    assert "pods/log" in resources and not {"pods/proxy", "services/proxy"} & resources
    settings = model["transport"]["kube_proxy"]["in_cluster"]
    assert settings["image"] == "example.invalid/tidbops-ee:v1" and settings["job_prefix"] == "tidb-run"
    # Without a runner image, or with an unknown transport, the preflight names the variable.
    bad, _backend = make_cluster(backend=make_backend(transport="in_cluster", runner_image=""))
    assert any(problem.startswith("tidb_k8s_transport=in_cluster runs the gates") for problem in bad["problems"])
    bad, _backend = make_cluster(backend=make_backend(transport="tunnel"))
    assert "tidb_k8s_transport must be proxy or in_cluster" in bad["problems"]


def test_the_runner_defaults_match_the_execution_environment():
    """tidb_k8s_runner_python is execution-environment.yml's Python, tidb_k8s_runner_collections_path
    where ansible-builder installs collections."""
    from ansible_builder import constants  # pylint: disable=import-outside-toplevel
    with open(os.path.join(TOP, "execution-environment.yml"), encoding="utf-8") as handle:
        environment = yaml.safe_load(handle)
    with open(os.path.join(TOP, "roles", "_kubernetes", "defaults", "main.yml"), encoding="utf-8") as handle:
        defaults = yaml.safe_load(handle)
    assert defaults["tidb_k8s_runner_python"] == environment["dependencies"]["python_interpreter"]["python_path"]
    assert defaults["tidb_k8s_runner_collections_path"] == constants.base_collections_path
