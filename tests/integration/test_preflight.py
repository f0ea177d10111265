"""Bad input is rejected by site.yml's preflight, naming the variable, before anything changes.

Each case writes a small inventory (one instance of each component on 127.0.0.1), breaks one
thing, runs playbooks/site.yml and expects a failure whose message names the variable. Images
point at a name that does not exist with pulls disabled, so even a preflight that wrongly passed
could not start anything; afterwards no container of the case's cluster may exist. No engine is
needed: the container check runs only where `docker` answers.
"""

import copy
import os
import pathlib
import shutil
import subprocess

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
MISSING_IMAGE = "localhost/tidbops-preflight-test:absent"

BASE_HOSTS = {
    "pd_servers": {"pd0": {}},
    "tikv_servers": {"tikv0": {}},
    "tidb_servers": {"tidb0": {}},
    "tiflash_servers": {"tiflash0": {}},
    "cdc_servers": {"cdc0": {}},
    "tici_meta_servers": {"tici-meta0": {}},
    "tici_worker_servers": {"tici-worker0": {}},
    "minio_servers": {"minio0": {}},
}
BASE_VARS = {
    "ansible_host": "127.0.0.1",
    "ansible_connection": "local",
    "ansible_python_interpreter": str(REPO / ".venv" / "bin" / "python"),
    "listen_host": "127.0.0.1",
    "minio_root_user": "tidbops",
    "minio_root_password": "preflight-test-pw",
    "tidb_image_pull": "never",
    "tidb_images": {name: MISSING_IMAGE for name in ("pd", "tikv", "tidb", "tiflash", "ticdc", "tici", "minio")},
    "tidb_gate_timeout": 5,
}


def without(group):
    def change(hosts, variables):
        del hosts[group]
    return change


def setting(**values):
    def change(hosts, variables):
        variables.update(values)
    return change


def host_setting(group, host, **values):
    def change(hosts, variables):
        hosts[group][host] = dict(values)
    return change


def image(component, value):
    def change(hosts, variables):
        variables["tidb_images"] = dict(variables["tidb_images"], **{component: value})
    return change


# (case id, change, text the failure must contain)
BAD_INPUTS = [
    ("no-pd", without("pd_servers"), "pd_servers and tikv_servers must each hold at least one instance"),
    ("no-tikv", without("tikv_servers"), "(got 1 PD, 0 TiKV)"),
    ("tici-without-cdc", without("cdc_servers"), "cdc_servers (TiCI needs TiCDC"),
    ("tici-without-s3-endpoint", without("minio_servers"), "tici_s3.endpoint must be"),
    ("tici-without-access-key", setting(tici_s3={"access_key": ""}), "tici_s3.access_key must be set"),
    ("tici-without-secret-key", setting(tici_s3={"secret_key": ""}), "tici_s3.secret_key must be set"),
    ("minio-without-password", setting(minio_root_password=""), "minio_root_password (at least 8 characters)"),
    ("prefix-leading-slash", setting(tici_s3={"prefix": "/tici"}), "tici_s3.prefix must be a non-empty path inside the bucket without a leading '/'"),
    ("bucket-invalid", setting(tici_s3={"bucket": "Not_A_Bucket"}), "tici_s3.bucket must be an S3 bucket name"),
    ("bucket-too-short", setting(tici_s3={"bucket": "ab"}), "tici_s3.bucket must be an S3 bucket name"),
    ("port-collision", host_setting("tidb_servers", "tidb0", port=2379), "127.0.0.1:2379 is pd0.client_port and tidb0.port"),
    ("port-out-of-range", host_setting("tikv_servers", "tikv0", status_port=70000), "tikv0: status_port=70000"),
    ("unknown-backend", setting(tidb_backend="lxc"), "tidb_backend must be one of docker, podman, kubernetes (got lxc)"),
    ("image-not-a-string", image("pd", 123), "tidb_images must map each component to an image reference string; missing or not a string: pd"),
    ("image-missing", lambda hosts, variables: variables["tidb_images"].pop("tici"), "missing or not a string: tici"),
    ("unknown-network-mode", setting(tidb_network_mode="overlay"), "tidb_network_mode must be one of host, bridge (got overlay)"),
    ("unroutable-advertise", host_setting("tidb_servers", "tidb0", advertise_host="0.0.0.0"), "advertise_host must be an address other instances can dial"),
    ("host-in-two-groups", lambda hosts, variables: hosts["tikv_servers"].update({"pd0": {}}), "inventory host pd0 is in pd_servers, tikv_servers"),
    ("changefeed-id-underscore", setting(tici_changefeed_id="tici_task"), "tici_changefeed_id must be letters and digits"),
]


def write_inventory(path, case, change=None):
    hosts = copy.deepcopy(BASE_HOSTS)
    variables = copy.deepcopy(BASE_VARS)
    variables["tidb_cluster_name"] = "pf-" + case
    variables["tidb_config_root"] = str(path / "config")
    if change:
        change(hosts, variables)
    inventory = {"all": {"vars": variables, "children": {group: {"hosts": members} for group, members in hosts.items()}}}
    inventory_file = path / "hosts.yml"
    inventory_file.write_text(yaml.safe_dump(inventory), encoding="utf-8")
    return inventory_file


def run_playbook(inventory, playbook):
    env = dict(os.environ)
    env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_PYTHON_INTERPRETER=str(REPO / ".venv" / "bin" / "python"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    return subprocess.run(
        [str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", str(inventory), str(REPO / "playbooks" / playbook)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)


def cluster_containers(cluster):
    """Names of the cluster's containers on Docker, or None when Docker does not answer."""
    if not shutil.which("docker"):
        return None
    result = subprocess.run(["docker", "ps", "-a", "--filter", "label=tidbops.cluster=" + cluster, "--format", "{{.Names}}"],
                            capture_output=True, text=True, timeout=30, check=False)
    if result.returncode != 0:
        return None
    return result.stdout.split()


@pytest.mark.parametrize("case,change,expected", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_is_rejected_before_anything_changes(tmp_path, case, change, expected):
    inventory = write_inventory(tmp_path, case, change)
    result = run_playbook(inventory, "site.yml")
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, output[-2000:]
    assert expected in output, output[-3000:]
    # Failed in the preflight play: no component play started, no file was rendered.
    assert "PLAY [1. PD]" not in output
    assert not (tmp_path / "config").exists()
    containers = cluster_containers("pf-" + case)
    if containers is not None:
        assert containers == []


def test_good_inventory_passes_preflight(tmp_path):
    result = run_playbook(write_inventory(tmp_path, "good"), "preflight.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "failed=0" in result.stdout


def test_even_pd_count_is_allowed_with_a_warning(tmp_path):
    def two_pd(hosts, variables):
        hosts["pd_servers"]["pd1"] = {"client_port": 2382, "peer_port": 2383}
    result = run_playbook(write_inventory(tmp_path, "even-pd", two_pd), "preflight.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "WARNING: pd_servers holds 2 members" in " ".join(result.stdout.split())
