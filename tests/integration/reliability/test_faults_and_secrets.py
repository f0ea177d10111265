"""Converges under transient faults; one of them also run with -vvv --diff and distinctive secrets.

Transient faults: every component answers its first HTTP requests with 500 or 503
(TIDBSIM_FAIL_FIRST), refuses connections for its first seconds (TIDBSIM_LISTEN_DELAY), and TiCDC
says "coordinator is not fully initialized" for a while (TIDBSIM_CDC_INIT_DELAY). site.yml must
converge anyway. MinIO's 5xx answers are tested on their own cluster, because the bucket step does
not survive them yet (reported), and the secrets checks need a converged cluster.

Secrets (MinIO's root password, TiCI's TiDB password, each holding '+', '/' and '='; TiCI's generated
S3 secret key): in no output line, no diff, no command line or metadata of a container; only in files
of the instances that need each one, with mode 0600. MinIO's root password stays with MinIO: it is in
no changefeed and no key of PD's etcd, and TiCI's S3 user is limited to its bucket. Whether secrets
reach a container's Env is checked separately, so a defect there is reported on its own.
"""

import base64
import json
import os
import re
import stat
import urllib.request
from urllib.parse import quote, quote_plus

import boto3
import botocore
import pymysql
import pytest

import harness  # pylint: disable=import-error  # benchmarks/, put on sys.path by conftest.py

pytestmark = pytest.mark.integration

MINIO_PASSWORD = "Mn+Pw/9x=Sec+ret/Q="
TIDB_PASSWORD = "Td+Pw/7y=Sec+ret/Z="
S3_LABEL = "TiCI's S3 secret key (generated)"
SECRETS = {"minio_root_password": MINIO_PASSWORD, "tici_tidb_password": TIDB_PASSWORD}
# Instances whose rendered files may hold a secret: MinIO itself, and the S3/TiDB clients; and which
# may hold which.
NEED_SECRETS = ("minio", "tici_meta", "tici_worker", "tiflash")
HOLDERS = {"minio_root_password": ("minio",), "tici_tidb_password": ("tici_meta",), S3_LABEL: ("tici_meta", "tici_worker", "tiflash")}


def _tici_s3_secret(cluster):
    """The S3 secret key generated for TiCI's MinIO user (tidb_state_dir/minio_tici_password, 0600)."""
    path = cluster.state_dir / "minio_tici_password"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    return path.read_text(encoding="utf-8").strip()


def _spellings(secret):
    """The raw secret and the encodings it takes in URIs and DSNs."""
    return {secret, quote(secret, safe=""), quote_plus(secret)}


def _fault_env(kinds):
    """Transient faults for the given kinds; every kind refuses connections for its first 2 s."""
    env = {}
    for i, kind in enumerate(harness.KINDS):
        env[kind] = {"TIDBSIM_LISTEN_DELAY": "2"}
        if kind in kinds:
            env[kind].update(TIDBSIM_FAIL_FIRST="3", TIDBSIM_FAIL_STATUS="503" if i % 2 else "500")
    env["ticdc"]["TIDBSIM_CDC_INIT_DELAY"] = "5"
    return env


def _assert_converged_with_faults(cluster, run, kinds):
    assert run.rc == 0, f"site.yml failed under transient faults:\n{run.stdout[-4000:]}"
    assert set(run.gate_ends()) == set(harness.KINDS), f"not every gate passed: {sorted(run.gate_ends())}"
    # The faults were really switched on in the containers.
    for info in harness.docker_inspect(harness.docker_names(cluster.name)):
        env = dict(item.split("=", 1) for item in info["Config"]["Env"])
        kind = info["Config"]["Labels"]["tidbops.component"]
        assert env.get("TIDBSIM_LISTEN_DELAY") == "2", info["Name"]
        assert (env.get("TIDBSIM_FAIL_FIRST") == "3") == (kind in kinds), info["Name"]


SECRET_VARS = {"minio_root_password": MINIO_PASSWORD, "tici_tidb_password": TIDB_PASSWORD}
ALL_BUT_MINIO = set(harness.KINDS) - {"minio"}


@pytest.fixture(scope="module")
def converged(make_module_cluster):
    """Every transient fault except MinIO's 5xx answers, secrets set, -vvv --diff."""
    cluster = make_module_cluster("local", group_vars=SECRET_VARS)
    run = cluster.site({"tidb_gate_timeout": 120, "tidb_container_env": _fault_env(ALL_BUT_MINIO)}, args=("-vvv", "--diff"))
    return cluster, run


def test_transient_faults_converge(converged):
    _assert_converged_with_faults(*converged, ALL_BUT_MINIO)


def test_minio_5xx_answers_converge(make_cluster):
    cluster = make_cluster("local", group_vars=SECRET_VARS)
    run = cluster.site({"tidb_gate_timeout": 120, "tidb_container_env": _fault_env({"minio"})})
    _assert_converged_with_faults(cluster, run, {"minio"})


def test_secrets_not_in_output(converged):
    run = converged[1]
    assert run.rc == 0, "the converge failed; see test_transient_faults_converge"
    # At -vvv every result shows its module's arguments (a task run in a fork of the worker, or in process,
    # establishes no connection, so that line is not a sign of verbosity any more).
    assert "module_args:" in run.stdout, "the run was not verbose enough (-vvv) to show the modules' arguments"
    for label, secret in SECRETS.items():
        for spelling in _spellings(secret):
            lines = [line for line in run.stdout.splitlines() if spelling in line]
            assert not lines, f"{label} appears in the -vvv --diff output: {lines[:3]}"


def test_secrets_only_in_private_files(converged):
    cluster, run = converged
    assert run.rc == 0, "the converge failed; see test_transient_faults_converge"
    secrets = dict(SECRETS, **{S3_LABEL: _tici_s3_secret(cluster)})
    holders = {}
    for root, _dirs, files in os.walk(cluster.config_root):
        for name in files:
            path = os.path.join(root, name)
            with open(path, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
            found = [label for label, secret in secrets.items() if any(s in text for s in _spellings(secret))]
            if found:
                holders[path] = (found, stat.S_IMODE(os.stat(path).st_mode))
    assert holders, "no rendered file holds a secret: the secrets did not reach the services that need them"
    loose = {path: oct(mode) for path, (_labels, mode) in holders.items() if mode != 0o600}
    assert not loose, f"files holding secrets without mode 0600: {loose}"
    kinds = {host: kind for host, kind, _vars in cluster.instances()}
    for path, (labels, _mode) in holders.items():
        instance = os.path.relpath(path, cluster.config_root).split(os.sep)[1]
        assert kinds.get(instance) in NEED_SECRETS, f"{path} holds a secret its instance does not need"
        for label in labels:
            assert kinds.get(instance) in HOLDERS[label], f"{path} holds {label}, which its instance does not need"
    # Least privilege: MinIO's root password only in MinIO's files, TiCI's S3 secret in those of its clients.
    s3_holders = {kinds[os.path.relpath(p, cluster.config_root).split(os.sep)[1]] for p, (ls, _m) in holders.items() if S3_LABEL in ls}
    assert s3_holders == {"tici_meta", "tici_worker", "tiflash"}, s3_holders


def test_minio_root_password_is_in_no_changefeed_and_no_pd_key(converged):
    """The changefeed TiCDC stores in PD's etcd (and hands out over its API) carries TiCI's S3 user,
    never MinIO's root password."""
    cluster, run = converged
    assert run.rc == 0, "the converge failed; see test_transient_faults_converge"
    _host, _kind, cdc_vars = cluster.instances("ticdc")[0]
    with urllib.request.urlopen(f"http://127.0.0.1:{cdc_vars['port']}/api/v2/changefeeds/tici-replication-task", timeout=10) as reply:
        feed = reply.read().decode()
    assert "sink_uri" in feed and "s3://" in feed
    assert not any(s in feed for s in _spellings(MINIO_PASSWORD)), "MinIO's root password is in the changefeed TiCDC hands out"
    _host, _kind, pd_vars = cluster.instances("pd")[0]
    everything = json.dumps({"key": base64.b64encode(b"\0").decode(), "range_end": base64.b64encode(b"\0").decode()}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{pd_vars['client_port']}/v3/kv/range", data=everything, method="POST")
    with urllib.request.urlopen(request, timeout=10) as reply:
        kvs = json.loads(reply.read()).get("kvs") or []
    values = [base64.b64decode(kv.get("value") or "").decode(errors="replace") for kv in kvs]
    assert any("s3://" in value for value in values), "no changefeed found under PD's etcd: the scan is not looking"
    leaks = [base64.b64decode(kv["key"]).decode(errors="replace") for kv, value in zip(kvs, values)
             if any(s in value for s in _spellings(MINIO_PASSWORD))]
    assert not leaks, f"MinIO's root password is in PD's etcd under {leaks}"


def test_tici_s3_user_cannot_create_or_read_another_bucket(converged):
    cluster, run = converged
    assert run.rc == 0, "the converge failed; see test_transient_faults_converge"
    _host, _kind, minio_vars = cluster.instances("minio")[0]
    endpoint = f"http://127.0.0.1:{minio_vars['port']}"

    def s3(key, secret):
        return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret, region_name="us-east-1")
    root = s3(cluster.group_vars["minio_root_user"], MINIO_PASSWORD)
    root.create_bucket(Bucket="notforticibucket")
    root.put_object(Bucket="notforticibucket", Key="k", Body=b"root only")
    tici = s3("tici", _tici_s3_secret(cluster))
    assert tici.list_objects_v2(Bucket="ticidefaultbucket")["ResponseMetadata"]["HTTPStatusCode"] == 200
    for call in (lambda: tici.create_bucket(Bucket="anotherbucket"), lambda: tici.list_objects_v2(Bucket="notforticibucket"),
                 lambda: tici.get_object(Bucket="notforticibucket", Key="k")):
        with pytest.raises(botocore.exceptions.ClientError) as denied:
            call()
        assert denied.value.response["Error"]["Code"] == "AccessDenied"


def test_secrets_not_on_container_command_lines(converged):
    cluster, run = converged
    assert run.rc == 0, "the converge failed; see test_transient_faults_converge"
    for info in harness.docker_inspect(harness.docker_names(cluster.name)):
        argv = " ".join([info.get("Path") or ""] + (info.get("Args") or []) + (info["Config"].get("Cmd") or [])
                        + (info["Config"].get("Entrypoint") or []))
        for label, secret in SECRETS.items():
            assert not any(s in argv for s in _spellings(secret)), f"{label} on the command line of {info['Name']}"


def test_secrets_not_in_container_env(converged):
    """Roles pass secrets by file (MINIO_ROOT_PASSWORD_FILE ...), so no Env entry holds one."""
    cluster, run = converged
    assert run.rc == 0, "the converge failed; see test_transient_faults_converge"
    leaks = []
    for info in harness.docker_inspect(harness.docker_names(cluster.name)):
        for item in info["Config"]["Env"]:
            for label, secret in SECRETS.items():
                if any(s in item for s in _spellings(secret)):
                    leaks.append(f"{info['Name'].lstrip('/')}: {re.sub('=.*', '=…', item)} holds {label}")
    assert not leaks, "secrets in container Env: " + "; ".join(leaks)


def test_engine_metadata_holds_no_secret_and_the_digest_key_stays_private(converged):
    """`docker inspect` of every container: no secret in any spelling anywhere, and the spec-hash
    label is a keyed digest (HMAC-SHA256 with the cluster's key, kept 0600 in tidb_state_dir): a plain
    hash over content with a password would let a reader test guesses offline."""
    cluster, run = converged
    assert run.rc == 0, "the converge failed; see test_transient_faults_converge"
    key_file = cluster.state_dir / "digest.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600, "the digest key is not private"
    assert stat.S_IMODE(os.stat(cluster.state_dir).st_mode) == 0o700
    key = key_file.read_text(encoding="utf-8").strip()
    assert len(key) >= 32
    infos = harness.docker_inspect(harness.docker_names(cluster.name))
    assert len(infos) == len(cluster.instances())
    for info in infos:
        document = json.dumps(info)
        for label, secret in SECRETS.items():
            assert not any(s in document for s in _spellings(secret)), f"{label} in the metadata of {info['Name']}"
        digest = info["Config"]["Labels"]["tidbops.spec-hash"]
        assert re.fullmatch(r"[0-9a-f]{64}", digest), info["Name"]
        assert key not in document, f"the digest key itself is in the metadata of {info['Name']}"


def test_tici_logs_in_with_its_own_account_limited_to_database_tici(converged):
    """TiCI meta uses the account the tici role made (tici_tidb_user, default tici): it may use
    database tici, where meta keeps its metadata, and nothing else; TiCI meta is up with it."""
    cluster, run = converged
    assert run.rc == 0, "the converge failed; see test_transient_faults_converge"
    _host, _kind, tidb_vars = cluster.instances("tidb")[0]
    host, port = "127.0.0.1", tidb_vars.get("port", 4000)
    root = pymysql.connect(host=host, port=port, user="root", password="")
    with root.cursor() as cursor:
        cursor.execute("SHOW GRANTS FOR %s@%s", ("tici", "%"))
        grants = [row[0] for row in cursor.fetchall()]
        assert grants == ["GRANT USAGE ON *.* TO 'tici'@'%'", "GRANT ALL PRIVILEGES ON `tici`.* TO 'tici'@'%'"]
    root.close()
    tici = pymysql.connect(host=host, port=port, user="tici", password=TIDB_PASSWORD)
    with tici.cursor() as cursor:
        with pytest.raises(pymysql.err.MySQLError) as denied:
            cursor.execute("CREATE DATABASE IF NOT EXISTS other")
        assert denied.value.args[0] == 1044
    tici.close()
