"""PD on a real etcd: the etcd child, its unix socket, cluster id and leader key, failover, resign and transfer."""

import base64
import json
import os
import signal
import stat
import subprocess
import sys

import pytest

from tidbsim.etcd import Etcd
from tidbsim.testing import SIM_ROOT, free_ports, http_get, http_json, wait_for_status, wait_until


def etcd_pids(pd):
    """The etcd children of a PD process."""
    pids = []
    for task in os.listdir(f"/proc/{pd.popen.pid}/task"):
        with open(f"/proc/{pd.popen.pid}/task/{task}/children", encoding="utf-8") as handle:
            pids += [int(p) for p in handle.read().split()]
    return [p for p in pids if _comm(p) == "etcd"]


def _comm(pid):
    with open(f"/proc/{pid}/comm", encoding="utf-8") as handle:
        return handle.read().strip()


def alive(pid):
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as handle:
            return "\nState:\tZ" not in handle.read()
    except FileNotFoundError:
        return False


def listening_tcp_ports(pid):
    """TCP ports a process listens on, from its socket inodes and /proc/net/tcp{,6}."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="utf-8") as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def leader_name(pd):
    status, body = http_json("GET", pd.url("/pd/api/v1/leader"), timeout=3)
    return body["name"] if status == 200 and body else None


def test_each_member_runs_a_real_etcd_on_a_unix_socket(sim):
    pd = sim.pd()
    pd.wait_ready()
    (etcd,) = etcd_pids(pd)
    # etcd takes the peer port and no TCP port of its own; PD's HTTP server holds the client port.
    assert listening_tcp_ports(etcd) == {pd.peer_port}
    assert pd.port in listening_tcp_ports(pd.popen.pid)
    assert stat.S_ISSOCK(os.stat(os.path.join(pd.data_dir, f"localhost:{pd.port}")).st_mode)
    assert os.path.isdir(os.path.join(pd.data_dir, "member", "wal"))
    status, version = http_json("GET", pd.url("/version"))
    assert status == 200 and version["etcdserver"] == "3.5.1"
    assert http_json("GET", pd.url("/health")) == (200, {"health": "true", "reason": ""})
    members = http_json("POST", pd.url("/v3/cluster/member/list"), {})[1]["members"]
    assert [(m["name"], m["clientURLs"], m["peerURLs"]) for m in members] == [
        ("pd0", [pd.url()], [f"http://127.0.0.1:{pd.peer_port}"])]
    # etcd's own logs stay out of stdout, which carries only the ready line.
    assert [json.loads(line)["tidbsim"] for line in pd.stdout_lines] == ["ready"]
    assert os.path.getsize(os.path.join(pd.data_dir, "tidbsim-etcd.log")) > 0


def test_cluster_id_and_the_leader_key_live_in_etcd(sim):
    pd = sim.pd()
    pd.wait_ready()
    client = Etcd([pd.url()])
    cluster_id = http_json("GET", pd.url("/pd/api/v1/members"))[1]["header"]["cluster_id"]
    raw = client.get("/pd/cluster_id", raw=True)
    assert len(raw) == 8 and int.from_bytes(raw, "big") == cluster_id
    leader = json.loads(client.get(f"/pd/{cluster_id}/leader"))
    assert leader["name"] == "pd0" and leader["client_urls"] == [pd.url()]
    kv = http_json("POST", pd.url("/v3/kv/range"), {"key": base64.b64encode(f"/pd/{cluster_id}/leader".encode()).decode()})[1]
    assert int(kv["kvs"][0]["lease"]) > 0  # campaigned on a lease
    member = http_json("GET", pd.url("/pd/api/v1/members"))[1]["members"][0]
    assert member["member_id"] == leader["member_id"]


def test_lease_keepalive_and_revoke_through_the_real_gateway(sim):
    pd = sim.pd()
    pd.wait_ready()
    client = Etcd([pd.url()])
    lease = client.grant(6)
    client.put("/sim/leased", "v", lease)
    assert client.keepalive(lease) is True
    client.revoke(lease)
    assert client.keepalive(lease) is False
    assert client.get("/sim/leased") is None
    assert client.put_if_absent("/sim/once", "a") is True and client.put_if_absent("/sim/once", "b") is False
    assert client.get("/sim/once") == "a"


def test_etcd_stops_with_pd_on_sigterm_and_when_pd_is_killed(sim):
    pd = sim.pd()
    pd.wait_ready()
    (etcd,) = etcd_pids(pd)
    assert pd.stop() == 0
    assert not alive(etcd)
    pd.start()
    pd.wait_ready()
    (etcd,) = etcd_pids(pd)
    pd.popen.send_signal(signal.SIGKILL)
    pd.popen.wait()
    wait_until(lambda: not alive(etcd), 10, "etcd to die with its PD")


@pytest.fixture(scope="module")
def three(module_sim):
    pds = module_sim.pd(3)
    module_sim.wait_ready(pds)
    tikv = module_sim.tikv(pds)
    tikv.wait_ready()
    return pds, tikv


def test_transfer_and_resign_move_the_leader_and_the_stores_follow(three):
    pds, tikv = three
    old = wait_until(lambda: leader_name(pds[0]), 10, "a leader")
    target = next(p.name for p in pds if p.name != old)
    status, body = http_json("POST", pds[0].url(f"/pd/api/v1/leader/transfer/{target}"), timeout=20)
    assert (status, body) == (200, "The transfer command is submitted.")
    wait_until(lambda: all(leader_name(p) == target for p in pds), 20, f"{target} to lead")
    # The new leader reads the stores from etcd; heartbeats resume in its memory.
    status, body = wait_for_status(pds[0].url("/pd/api/v1/stores"), 200, 10)
    assert [s["store"]["address"] for s in body["stores"]] == [f"127.0.0.1:{tikv.port}"]
    assert body["stores"][0]["store"]["state_name"] == "Up"
    status, body = http_json("POST", pds[1].url("/pd/api/v1/leader/resign"), timeout=20)
    assert (status, body) == (200, "The resign command is submitted.")
    wait_until(lambda: leader_name(pds[0]) not in (None, target), 20, "another leader after resign")
    status, body = http_json("POST", pds[0].url("/pd/api/v1/leader/transfer/nobody"), timeout=20)
    assert (status, body) == (500, "no valid pd to transfer etcd leader")


def test_a_killed_leader_is_replaced_after_its_lease(sim):
    pds = sim.pd(3, env={"TIDBSIM_PD_LEADER_LEASE": "3"})
    sim.wait_ready(pds)
    old = wait_until(lambda: leader_name(pds[0]), 10, "a leader")
    victim = next(p for p in pds if p.name == old)
    victim.popen.send_signal(signal.SIGKILL)
    survivor = next(p for p in pds if p is not victim)
    wait_until(lambda: leader_name(survivor) not in (None, old), 25, "a new leader")
    assert http_json("GET", survivor.url("/pd/api/v1/members"))[0] == 200


def test_single_member_resign_is_accepted_and_changes_nothing(sim):
    pd = sim.pd()
    pd.wait_ready()
    assert http_json("POST", pd.url("/pd/api/v1/leader/resign")) == (200, "The resign command is submitted.")
    assert leader_name(pd) == "pd0"


def run_pd(*args):
    env = {"PYTHONPATH": SIM_ROOT, "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "tidbsim", "pd-server"] + list(args), capture_output=True, text=True,
                          env=env, timeout=30, check=False)


@pytest.mark.parametrize("flag, message", [
    ("--client-urls=http://pd0:2379", "expected IP in URL for binding (http://pd0:2379)"),
    ("--peer-urls=http://pd0:2380", "expected IP in URL for binding (http://pd0:2380)"),
    ("--client-urls=127.0.0.1:2379", "URL scheme must be http, https, unix, or unixs"),
    ("--client-urls=https://127.0.0.1:2379", "TLS key/cert"),
])
def test_pd_refuses_urls_etcd_cannot_bind(tmp_path, flag, message):
    result = run_pd("--name=pd0", f"--data-dir={tmp_path / 'pd'}", flag)
    assert result.returncode != 0 and message in result.stderr


def test_pd_refuses_join_with_initial_cluster_and_joining_itself(tmp_path):
    client, peer = free_ports(2)
    result = run_pd("--initial-cluster=pd=http://127.0.0.1:1", "--join=http://127.0.0.1:2", f"--data-dir={tmp_path / 'a'}")
    assert result.returncode != 0 and "can not be provided at the same time" in result.stderr
    result = run_pd(f"--client-urls=http://127.0.0.1:{client}", f"--peer-urls=http://127.0.0.1:{peer}",
                    f"--join=http://127.0.0.1:{client}", f"--data-dir={tmp_path / 'b'}")
    assert result.returncode != 0 and "join self is forbidden" in result.stderr
    assert http_get(f"http://127.0.0.1:{client}/")[0] is None


def test_a_deep_data_dir_still_reaches_the_etcd_socket(sim, tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    client, peer = free_ports(2)
    pd = sim.spawn("pd-server", ["--name=deep", f"--client-urls=http://127.0.0.1:{client}", f"--peer-urls=http://127.0.0.1:{peer}",
                                 f"--data-dir={deep}"], (client, peer), str(deep))
    pd.wait_ready()
    assert len(str(deep / f"localhost:{client}")) > 108  # longer than a unix socket path may be
    assert http_json("GET", pd.url("/pd/api/v1/members"))[0] == 200
