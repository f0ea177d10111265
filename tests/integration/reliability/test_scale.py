"""Scale out and scale in on inventories/local-ha (3 PD, 3 TiKV, 2 TiDB, 2 TiCDC, one of each other
component), watched from outside: PD's own API, an independent poller, and Docker's container events.

One cluster, in order: four hosts are added (a 4th TiKV, a 4th and 5th PD, a third TiDB) and site.yml
converges with no instance that existed restarted except one at a time; every unsafe scale-in is
refused before anything changes; a scale-in killed while its store is Offline completes when run
again, the store going Offline -> Tombstone -> gone, the removed containers gone and their volumes
kept. (The converge once the hosts left the inventory is measured by make bench.)
"""

import json
import os
import signal
import threading
import time
import urllib.request

import pytest

import harness  # pylint: disable=import-error  # benchmarks/, put on sys.path by conftest.py
import rolling  # pylint: disable=import-error

pytestmark = pytest.mark.integration

SPARE, ADDED, REMOVED = rolling.SCALE_OUT, rolling.SCALE_OUT_HOSTS, rolling.SCALE_IN_HOSTS
# Regions leave an Offline store slowly enough for the test to see (and kill) the Offline state.
PD_ENV = {"TIDBSIM_REGIONS": "24", "TIDBSIM_REGION_MOVE_PER_S": "2", "TIDBSIM_STORE_CHECK_INTERVAL": "1"}


def _stores(cluster):
    """{address: state} of every store PD keeps, Tombstones included."""
    body = rolling.pd_json(cluster, "/pd/api/v1/stores?state=0&state=1&state=2")
    return {s["store"]["address"]: s["store"]["state_name"] for s in body.get("stores") or []}


def _address(cluster, host):
    return next(f"127.0.0.1:{v['port']}" for h, _k, v in cluster.instances() if h == host)


def _health(cluster):
    return {m["name"]: m["health"] for m in rolling.pd_json(cluster, "/pd/api/v1/health")}


def _markers(cluster, hosts):
    """The simulator's data marker of each instance (on its HTTP port), which lives on its data volume."""
    ports = {h: v.get("status_port", v.get("client_port")) for h, _k, v in cluster.instances() if h in hosts}
    return {host: harness.sim_marker(port) for host, port in ports.items()}


def _snapshot(cluster):
    """What a refused scale-in must leave as it was: store states, PD members, containers."""
    return _stores(cluster), sorted(_health(cluster)), harness.docker_names(cluster.name)


class StoreWatch(threading.Thread):
    """The states PD reports for one store address over time, in order, without repeats."""

    def __init__(self, cluster, address):
        super().__init__(daemon=True)
        self.cluster, self.address = cluster, address
        self.states, self.halt = [], threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                state = _stores(self.cluster).get(self.address, "gone")
            except AssertionError:
                state = None
            if state and (not self.states or self.states[-1] != state):
                self.states.append(state)
            self.halt.wait(0.2)

    def stop(self):
        self.halt.set()
        self.join()
        return self.states


@pytest.fixture(scope="module")
def cluster(make_module_cluster):
    made = make_module_cluster("local-ha", spare=SPARE, group_vars={"tidb_container_env": {"pd": PD_ENV}})
    first = made.site({"tidb_leader_transfer_timeout": 120})
    assert first.rc == 0, f"first converge failed:\n{first.stdout[-4000:]}"
    return made


def test_scale_out_adds_members_and_stores_without_restarting_them_together(cluster):
    existing = harness.docker_names(cluster.name)
    pd_before = [cluster.container(h) for h, _k, _v in cluster.instances("pd")]
    cluster.add_hosts(ADDED)
    run, samples, events = rolling.watched(cluster, "site", {"tidb_leader_transfer_timeout": 120})
    assert run.rc == 0, f"scale-out failed:\n{run.stdout[-5000:]}"
    assert "Start a new member with --join, pd3" in run.stdout and "Start a new member with --join, pd4" in run.stdout
    health = _health(cluster)
    assert sorted(health) == ["pd0", "pd1", "pd2", "pd3", "pd4"] and all(health.values()), health
    tikv = {_address(cluster, h) for h, _k, _v in cluster.instances("tikv")}
    stores = _stores(cluster)
    assert {a for a, state in stores.items() if state == "Up"} >= tikv and len(tikv) == 4, stores
    # No PD that existed restarted: adding members changes none of their specs. The new members
    # joined one at a time and never failed (a join too soon after another one exits).
    assert not set(pd_before) & set(rolling.restarted(events)), rolling.restarted(events)
    new = {cluster.container(h) for h in ADDED}
    assert [e for e in events if e["name"] in new and e["action"] == "die"] == [], events
    # Others whose PD or TiDB list changed were rolled one at a time, each named in the run's output.
    rolled = sorted(set(rolling.restarted(events)) & set(existing))
    assert "Rolling one at a time, in this order: " in run.stdout
    for name in rolled:
        assert f"Replace or restart {name[len(cluster.name) + 1:]}" in run.stdout, name
    # The promises of a rolling restart hold for the instances that were serving.
    verdicts = rolling.verdicts(cluster, samples, [e for e in events if e["name"] in existing])
    assert verdicts == [], (verdicts, [line for line in run.stdout.splitlines() if "Rolling one at a time" in line], events)
    again = cluster.site()
    assert again.rc == 0 and again.changed == 0, again.stdout[-3000:]


@pytest.mark.parametrize("hosts, messages", [
    (["tikv9"], ["tidb_scale_in: tikv9 not in the inventory"]),
    (["tikv1", "tikv2"], ["would leave 2 TiKV stores Up"]),
    (["pd2", "pd3", "pd4"], ["removing PD pd2, pd3, pd4 would leave 2 healthy of the 5 current members"]),
    # Three rules in one run: each is reported, all at once.
    (["cdc0", "cdc1", "tici-meta0", "tici-worker0"], ["would leave no TiCDC (cdc_servers)", "would leave no TiCI meta (tici_meta_servers)",
                                                      "would leave no TiCI worker (tici_worker_servers)"]),
    (["tiflash0"], ["would leave 0 TiFlash stores Up (none), fewer than the largest TiFlash replica count in use (1)"]),
])
def test_an_unsafe_scale_in_is_refused_before_anything_changes(cluster, hosts, messages):
    rule = None
    if hosts == ["tiflash0"]:
        # What TiDB writes for ALTER TABLE ... SET TIFLASH REPLICA 1 (group tiflash, learners on engine=tiflash).
        rule = {"group_id": "tiflash", "id": "table-100-r", "start_key": "7480000000000000ff645f720000000000fa",
                "end_key": "7480000000000000ff655f720000000000fa", "role": "learner", "count": 1,
                "label_constraints": [{"key": "engine", "op": "in", "values": ["tiflash"]}]}
        pd_url = rolling.cluster_urls(cluster)[0][0]
        request = urllib.request.Request(pd_url + "/pd/api/v1/config/rule", data=json.dumps(rule).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
    try:
        before = _snapshot(cluster)
        recorder = rolling.EngineEvents(cluster.name).start()
        run = cluster.run("scale_in", {"tidb_scale_in": hosts})
        assert recorder.stop() == []
        assert run.rc != 0 and all(message in run.stdout for message in messages), run.stdout[-3000:]
        assert _snapshot(cluster) == before
    finally:
        if rule:
            pd_url = rolling.cluster_urls(cluster)[0][0]
            request = urllib.request.Request(pd_url + "/pd/api/v1/config/rule/tiflash/table-100-r", method="DELETE")
            urllib.request.urlopen(request, timeout=10).close()  # pylint: disable=consider-using-with


def test_a_killed_scale_in_completes_when_run_again(cluster):
    tikv3 = _address(cluster, "tikv3")
    staying = [h for h, _k, _v in cluster.instances("tikv") if h != "tikv3"]
    markers = _markers(cluster, staying)
    volumes = {cluster.container(h) + "-data" for h in REMOVED}
    assert volumes <= set(cluster.volumes())
    watch = StoreWatch(cluster, tikv3)
    watch.start()
    proc, _timeline, _started = cluster.start("scale_in", {"tidb_scale_in": REMOVED})
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and "Offline" not in watch.states:
        time.sleep(0.1)
    assert proc.poll() is None, f"the scale-in ended before the store went Offline:\n{proc.communicate()[0][-3000:]}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert _stores(cluster)[tikv3] == "Offline"
    recorder = rolling.EngineEvents(cluster.name).start()
    again = cluster.run("scale_in", {"tidb_scale_in": REMOVED})
    events = recorder.stop()
    states = watch.stop()
    assert again.rc == 0, f"re-run failed:\n{again.stdout[-5000:]}"
    assert states[:1] == ["Up"] and states[-1] == "gone" and "Offline" in states and "Tombstone" in states, states
    assert states.index("Offline") < states.index("Tombstone") < states.index("gone"), states
    assert "regions left over time" in again.stdout
    # The containers are gone, their volumes are not; the other stores' data is intact.
    names = harness.docker_names(cluster.name)
    assert not {cluster.container(h) for h in REMOVED} & set(names), names
    assert volumes <= set(cluster.volumes())
    assert _markers(cluster, staying) == markers
    health = _health(cluster)
    assert sorted(health) == ["pd0", "pd1", "pd2"] and all(health.values()), health
    assert rolling.pd_json(cluster, "/pd/api/v1/leader").get("name") in health
    # Only the removed instances stopped.
    stopped = {e["name"] for e in events if e["action"] in ("kill", "stop", "die")}
    assert stopped <= {cluster.container(h) for h in REMOVED}, stopped
