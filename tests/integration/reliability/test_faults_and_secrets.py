"""Converges under transient faults; one of them also run with -vvv --diff and distinctive secrets.

Transient faults: every component answers its first HTTP requests with 500 or 503
(TIDBSIM_FAIL_FIRST), refuses connections for its first seconds (TIDBSIM_LISTEN_DELAY), and TiCDC
says "coordinator is not fully initialized" for a while (TIDBSIM_CDC_INIT_DELAY). site.yml must
converge anyway. MinIO's 5xx answers are tested on their own cluster, because the bucket step does
not survive them yet (reported), and the secrets checks need a converged cluster.

Secrets (MinIO root password = S3 secret key, TiCI's TiDB password), each holding '+', '/' and '=':
in no output line, no diff, no command line of a container; only in files of the instances that
need them, with mode 0600. Whether they reach a container's Env is checked separately, so a defect
there is reported on its own.
"""

import json
import os
import re
import stat
from urllib.parse import quote, quote_plus

import pymysql
import pytest

import harness  # pylint: disable=import-error  # benchmarks/, put on sys.path by conftest.py

pytestmark = pytest.mark.integration

MINIO_PASSWORD = "Mn+Pw/9x=Sec+ret/Q="
TIDB_PASSWORD = "Td+Pw/7y=Sec+ret/Z="
SECRETS = {"minio_root_password (S3 secret key)": MINIO_PASSWORD, "tici_tidb_password": TIDB_PASSWORD}
# Instances whose rendered files may hold a secret: MinIO itself, and the S3/TiDB clients.
NEED_SECRETS = ("minio", "tici_meta", "tici_worker", "tiflash")


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
    assert "ESTABLISH LOCAL CONNECTION" in run.stdout, "the run was not verbose (-vvv)"
    for label, secret in SECRETS.items():
        for spelling in _spellings(secret):
            lines = [line for line in run.stdout.splitlines() if spelling in line]
            assert not lines, f"{label} appears in the -vvv --diff output: {lines[:3]}"


def test_secrets_only_in_private_files(converged):
    cluster, run = converged
    assert run.rc == 0, "the converge failed; see test_transient_faults_converge"
    holders = {}
    for root, _dirs, files in os.walk(cluster.config_root):
        for name in files:
            path = os.path.join(root, name)
            with open(path, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
            found = [label for label, secret in SECRETS.items() if any(s in text for s in _spellings(secret))]
            if found:
                holders[path] = (found, stat.S_IMODE(os.stat(path).st_mode))
    assert holders, "no rendered file holds a secret: the secrets did not reach the services that need them"
    loose = {path: oct(mode) for path, (_labels, mode) in holders.items() if mode != 0o600}
    assert not loose, f"files holding secrets without mode 0600: {loose}"
    kinds = {host: kind for host, kind, _vars in cluster.instances()}
    for path in holders:
        instance = os.path.relpath(path, cluster.config_root).split(os.sep)[1]
        assert kinds.get(instance) in NEED_SECRETS, f"{path} holds a secret its instance does not need"


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
        assert [row[0] for row in cursor.fetchall()] == ["GRANT USAGE ON *.* TO 'tici'@'%'",
                                                          "GRANT ALL PRIVILEGES ON `tici`.* TO 'tici'@'%'"]
    root.close()
    tici = pymysql.connect(host=host, port=port, user="tici", password=TIDB_PASSWORD)
    with tici.cursor() as cursor:
        with pytest.raises(pymysql.err.MySQLError) as denied:
            cursor.execute("CREATE DATABASE IF NOT EXISTS other")
        assert denied.value.args[0] == 1044
    tici.close()
