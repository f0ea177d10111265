"""Bad inventories and variables: site.yml rejects each one before any container exists, naming the variable.

The table runs every case through site.yml (the user's entry point) on its own private cluster, a few
at a time, then checks each: the run failed, its first failure message names the variable (or group)
and what was expected, and no container or volume of that cluster exists.
"""

from concurrent.futures import ThreadPoolExecutor

import pytest

import harness  # pylint: disable=import-error  # benchmarks/, put on sys.path by conftest.py

pytestmark = pytest.mark.integration


def _host(hosts, group, host):
    return hosts["all"]["children"][group]["hosts"][host]


def host_var(group, host, **values):
    def edit(hosts):
        _host(hosts, group, host).update(values)
    return edit


def drop_group(group):
    def edit(hosts):
        del hosts["all"]["children"][group]
    return edit


def add_host(group, host, **values):
    def edit(hosts):
        hosts["all"]["children"][group]["hosts"][host] = dict(values)
    return edit


def duplicate_pd_name(hosts):
    pd0 = _host(hosts, "pd_servers", "pd0")
    hosts["all"]["children"]["pd_servers"]["hosts"]["pd1"] = {
        "name": "pd0", "client_port": pd0["client_port"] + 3, "peer_port": pd0["peer_port"] + 3}


# id -> (group_vars, inventory edit, substrings the failure message must contain).
# tests/integration/test_preflight.py (roles) covers the common cases (no PD/TiKV/TiCDC, unknown backend
# or network mode, images, port range and collisions, advertise 0.0.0.0, a host in two groups, bucket
# and prefix rules, empty S3 keys and MinIO password, an underscore in the changefeed id); this table
# covers the rest.
CASES = {
    "image-pull-unknown": ({"tidb_image_pull": "sometimes"}, None, ["tidb_image_pull"]),
    "images-not-a-dict": ({"tidb_images": "tidbsim"}, None, ["tidb_images"]),
    "gate-timeout-not-a-number": ({"tidb_gate_timeout": "soon"}, None, ["tidb_gate_timeout"]),
    "server-configs-not-a-dict": ({"server_configs": ["log.level", "info"]}, None, ["server_configs"]),
    "ulimits-not-a-dict": ({"tidb_container_ulimits": ["nofile"]}, None, ["tidb_container_ulimits"]),
    "tici-enabled-not-a-bool": ({"tici_enabled": "maybe"}, None, ["tici_enabled"]),
    "tici-s3-not-a-dict": ({"tici_s3": ["bucket"]}, None, ["tici_s3"]),
    "port-not-a-number": ({}, host_var("tikv_servers", "tikv0", port="20160a"), ["port", "tikv0"]),
    "port-zero": ({}, host_var("cdc_servers", "cdc0", port=0), ["port", "cdc0"]),
    "port-negative": ({}, host_var("tici_meta_servers", "tici-meta0", status_port=-1), ["status_port", "tici-meta0"]),
    "pd-name-invalid": ({}, host_var("pd_servers", "pd0", name="pd 0!"), ["name", "pd 0!"]),
    "pd-name-duplicate": ({}, duplicate_pd_name, ["name", "pd0"]),
    "tici-without-meta": ({}, drop_group("tici_meta_servers"), ["tici_meta_servers"]),
    "tici-without-worker": ({}, drop_group("tici_worker_servers"), ["tici_worker_servers"]),
    "two-minio": ({}, add_host("minio_servers", "minio1", port=1, console_port=2), ["minio_servers"]),
    "changefeed-id-leading-hyphen": ({"tici_changefeed_id": "-tici"}, None, ["tici_changefeed_id"]),
    "changefeed-id-too-long": ({"tici_changefeed_id": "t" * 129}, None, ["tici_changefeed_id"]),
    "s3-bucket-ip-address": ({"tici_s3": {"bucket": "10.0.0.1"}}, None, ["tici_s3.bucket"]),
    "s3-bucket-double-dot": ({"tici_s3": {"bucket": "tici..bucket"}}, None, ["tici_s3.bucket"]),
    "s3-endpoint-no-scheme": ({"tici_s3": {"endpoint": "127.0.0.1:9000"}}, None, ["tici_s3.endpoint"]),
    "s3-unknown-key": ({"tici_s3": {"secret": "x"}}, None, ["tici_s3"]),
    "s3-path-style-not-a-bool": ({"tici_s3": {"use_path_style": "sometimes"}}, None, ["use_path_style"]),
    "minio-user-short": ({"minio_root_user": "ab"}, None, ["minio_root_user"]),
    "tidb-store-mocktikv": ({"server_configs": {"tidb": {"store": "unistore"}}}, None, ["store", "tikv"]),
    "tiflash-learner-config-not-a-dict": ({}, host_var("tiflash_servers", "tiflash0", learner_config="x"), ["learner_config"]),
    "tici-tidb-user-empty": ({"tici_tidb_user": ""}, None, ["tici_tidb_user"]),
    "tici-meta-config-not-a-dict": ({"server_configs": {"tici_meta": "x"}}, None, ["server_configs.tici_meta"]),
}


def _run_case(make_cluster, case_id):
    group_vars, edit = CASES[case_id][:2]
    # A short gate (unless the case sets it) ends quickly a case that is wrongly accepted.
    cluster = make_cluster("local", group_vars={"tidb_gate_timeout": 5, **group_vars}, edit=edit)
    return cluster, cluster.site()


@pytest.fixture(scope="module")
def outcomes(make_module_cluster):
    """Every case, four at a time (each is mostly ansible-playbook start-up)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {case: pool.submit(_run_case, make_module_cluster, case) for case in CASES}
        return {case: future.result() for case, future in futures.items()}


def test_table_is_large_enough():
    assert len(CASES) >= 25


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_rejected_before_any_container(outcomes, case_id):
    cluster, run = outcomes[case_id]
    expected = CASES[case_id][2]
    assert run.rc != 0, f"{case_id}: site.yml accepted the bad input:\n{run.stdout[-2000:]}"
    assert not harness.docker_names(cluster.name), f"{case_id}: containers exist although the input was bad"
    volumes = cluster.volumes()
    assert not volumes, f"{case_id}: volumes exist although the input was bad: {volumes}"
    messages = [event.get("msg", "") for event in run.failed]
    # ansible-playbook itself may refuse the inventory (no timeline event): then its output is the message.
    message = messages[0] if messages else run.stdout
    missing = [text for text in expected if text not in message]
    assert not missing, f"{case_id}: message lacks {missing}: {message}"
