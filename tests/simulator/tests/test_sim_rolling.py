"""What a rolling restart meets: region leaders and schedulers in PD, TiKV's unsafe stop witness,
TiCDC owner resign and capture drain, TiDB's graceful shutdown."""

import re
import time

import pytest

from tidbsim.regions import RegionModel
from tidbsim.testing import http_get, http_json, wait_for_status, wait_until

REGIONS = 12
# Slow enough that an eviction is seen half-way, fast enough for a short test.
FAST = {"TIDBSIM_REGIONS": str(REGIONS), "TIDBSIM_LEADER_TRANSFER_PER_S": "4", "TIDBSIM_RAFT_ELECTION_S": "1"}
EVICT = "evict-leader-scheduler"


def stores(pd):
    """{store id: status} from PD's /stores."""
    status, body = http_json("GET", pd.url("/pd/api/v1/stores"))
    assert status == 200, body
    return {s["store"]["id"]: dict(s["status"], state=s["store"]["state_name"], address=s["store"]["address"])
            for s in body["stores"]}


def leaders(pd):
    return {sid: st.get("leader_count", 0) for sid, st in stores(pd).items()}


def store_of(pd, tikv):
    return next(sid for sid, st in stores(pd).items() if st["address"] == f"127.0.0.1:{tikv.port}")


def balanced(pd, count):
    counts = leaders(pd)
    return len(counts) == count and sum(counts.values()) == REGIONS and max(counts.values()) - min(counts.values()) <= 1


@pytest.fixture
def cluster(sim):
    """One PD and three TiKV with balanced leaders."""
    env = dict(FAST)
    pd = sim.pd(env=env)
    pd.wait_ready()
    tikvs = [sim.tikv(pd, env=env) for _index in range(3)]
    sim.wait_ready(*tikvs)
    wait_until(lambda: balanced(pd, 3), 15, "balanced leaders")
    return pd, tikvs


def test_leader_counts_sum_to_regions_and_zero_counters_are_left_out(cluster):
    pd, tikvs = cluster
    for sid, st in stores(pd).items():
        assert st["region_count"] == REGIONS  # max-replicas 3 on three stores: a peer of every region
        assert st["leader_weight"] == 1 and st["region_weight"] == 1
        assert st["leader_size"] == st["leader_count"] and st["region_size"] == REGIONS
        single = http_json("GET", pd.url(f"/pd/api/v1/store/{sid}"))[1]["status"]
        assert single["region_count"] == REGIONS
    # TiKV exports its own counts (the metric TiUP reads before an eviction).
    sid = store_of(pd, tikvs[0])

    def metric():
        text = http_get(tikvs[0].url("/metrics", tikvs[0].status_port))[1].decode()
        found = re.search(r'^tikv_raftstore_region_count\{type="leader"\} (\d+)$', text, re.M)
        return found and int(found.group(1)) == leaders(pd)[sid]
    wait_until(metric, 5, "the leader metric")
    # A TiFlash store (engine label) holds no region peer: PD leaves both zero counters out.
    flash = {"address": "127.0.0.1:3930", "peer_address": "127.0.0.1:20170", "status_address": "127.0.0.1:20292",
             "labels": [{"key": "engine", "value": "tiflash"}]}
    flash["id"] = http_json("POST", pd.url("/sim/pd/alloc_id"), {})[1]["id"]
    assert "error" not in http_json("POST", pd.url("/sim/pd/store/put"), flash)[1]["header"]
    assert http_json("POST", pd.url("/sim/pd/store/heartbeat"), {"store_id": flash["id"]})[0] == 200
    time.sleep(0.5)
    flash_status = next(st for st in stores(pd).values() if st["address"] == flash["address"])
    assert "leader_count" not in flash_status and "region_count" not in flash_status
    assert flash_status["leader_weight"] == 1
    assert sum(leaders(pd).values()) == REGIONS


def test_evict_leader_drains_a_store_over_time_and_leaders_come_back(cluster):
    pd, tikvs = cluster
    sid = store_of(pd, tikvs[1])
    url = pd.url("/pd/api/v1/schedulers")
    assert http_json("POST", url, {"name": EVICT, "store_id": sid}) == (200, "The scheduler is created.")
    seen = []
    started = time.monotonic()

    def drained():
        seen.append(leaders(pd)[sid])
        return seen[-1] == 0
    wait_until(drained, 10, "store drained")
    assert time.monotonic() - started > 0.3 and any(0 < n < REGIONS // 3 + 1 for n in seen[:-1]), seen  # not at once
    status = stores(pd)[sid]
    assert "leader_count" not in status and status["region_count"] == REGIONS  # peers stay, leaders go
    assert sum(leaders(pd).values()) == REGIONS
    # PD's answers: the list, the config, adding again, a second store, errors.
    assert EVICT in http_json("GET", url)[1] and "balance-leader-scheduler" in http_json("GET", url)[1]
    listing = http_json("GET", pd.url(f"/pd/api/v1/scheduler-config/{EVICT}/list"))
    assert listing == (200, {"store-id-ranges": {str(sid): [{"start-key": "", "end-key": ""}]}, "batch": 3})
    assert http_json("POST", url, {"name": EVICT, "store_id": sid}) == (200, "The scheduler has been applied to the store.")
    assert http_json("POST", url, {"name": EVICT, "store_id": 999}) == \
        (500, '"[PD:core:ErrStoreNotFound]store 999 not found"\n')  # the scheduler's own handler's body, quoted
    assert http_json("POST", url, {"name": EVICT}) == (400, "missing store id")
    assert http_json("POST", url, {"name": "no-such-scheduler"}) == (400, "unknown scheduler")
    assert http_json("POST", url, {"store_id": sid}) == (400, "missing scheduler name")
    assert http_json("POST", url, {"name": "balance-leader-scheduler"}) == \
        (500, "[PD:scheduler:ErrSchedulerExisted]scheduler existed")
    # Removing it: a `null` body with the status of the config handler; gone when the last store goes.
    delete = pd.url(f"/pd/api/v1/schedulers/{EVICT}-{sid}")
    assert http_json("DELETE", delete) == (200, None)
    assert http_json("DELETE", delete) == (404, None)
    assert http_json("GET", pd.url(f"/pd/api/v1/scheduler-config/{EVICT}/list")) == (404, "404 page not found\n")
    assert EVICT not in http_json("GET", url)[1]
    assert http_json("DELETE", pd.url(f"/pd/api/v1/schedulers/{EVICT}")) == \
        (404, "[PD:scheduler:ErrSchedulerNotFound]scheduler not found")
    # balance-leader brings leaders back.
    wait_until(lambda: balanced(pd, 3), 10, "leaders back on the store")


def test_unsafe_stop_is_logged_only_for_a_store_that_still_leads(cluster):
    pd, tikvs = cluster
    safe, unsafe, _third = tikvs
    safe_id = store_of(pd, safe)
    assert http_json("POST", pd.url("/pd/api/v1/schedulers"), {"name": EVICT, "store_id": safe_id})[0] == 200
    wait_until(lambda: leaders(pd)[safe_id] == 0, 10, "evicted")
    assert safe.stop() == 0
    assert not any("unsafe stop" in line for line in safe.stderr_lines)
    assert any("stopping with no region leader" in line for line in safe.stderr_lines)
    unsafe_id = store_of(pd, unsafe)
    count = leaders(pd)[unsafe_id]
    assert count > 0
    started = time.monotonic()
    assert unsafe.stop() == 0
    assert time.monotonic() - started < 3
    assert any(f"[WARN] unsafe stop: store {unsafe_id} still leads" in line for line in unsafe.stderr_lines), unsafe.output
    # Raft re-elects its leaders on the one store left with a majority... of three peers, two are
    # gone: no region has a majority, so PD keeps showing the stale leaders.
    time.sleep(1.5)
    assert sum(leaders(pd).values()) == REGIONS


def test_a_stopped_store_loses_its_leaders_after_the_election_timeout_and_regains_them(cluster):
    pd, tikvs = cluster
    victim = tikvs[2]
    sid = store_of(pd, victim)
    assert leaders(pd)[sid] > 0
    victim.stop()
    stopped = time.monotonic()
    wait_until(lambda: leaders(pd)[sid] == 0, 10, "leaders re-elected")
    assert time.monotonic() - stopped >= 0.5  # TIDBSIM_RAFT_ELECTION_S=1 from the last heartbeat
    assert sum(leaders(pd).values()) == REGIONS
    victim.start()
    victim.wait_ready()
    assert store_of(pd, victim) == sid  # the same store id: registered by address
    wait_until(lambda: balanced(pd, 3), 10, "leaders back after the restart")


def test_scheduler_and_leaders_survive_a_pd_leader_change(sim):
    env = dict(FAST)
    pds = sim.pd(3, env=env)
    sim.wait_ready(pds)
    tikvs = [sim.tikv(pds, env=env) for _index in range(3)]
    sim.wait_ready(*tikvs)
    pd = pds[0]
    wait_until(lambda: balanced(pd, 3), 20, "balanced leaders")
    sid = store_of(pd, tikvs[0])
    assert http_json("POST", pd.url("/pd/api/v1/schedulers"), {"name": EVICT, "store_id": sid})[0] == 200
    wait_until(lambda: leaders(pd)[sid] == 0, 10, "evicted")
    before = leaders(pd)
    old = http_json("GET", pd.url("/pd/api/v1/leader"))[1]["name"]
    assert http_json("POST", pd.url("/pd/api/v1/leader/resign"))[0] == 200

    def new_leader():
        reply = http_json("GET", pd.url("/pd/api/v1/leader"))
        return reply[0] == 200 and reply[1] and reply[1]["name"] != old and reply[1]["name"]
    wait_until(new_leader, 20, "another PD leader")
    wait_for_status(pd.url("/pd/api/v1/stores"), 200, 10)
    for member in pds:
        # A follower that still knows the old leader answers 500 "redirect to not leader" for a moment.
        _status, config = wait_for_status(member.url(f"/pd/api/v1/scheduler-config/{EVICT}/list"), 200, 10)
        assert config["store-id-ranges"] == {str(sid): [{"start-key": "", "end-key": ""}]}
        assert EVICT in wait_for_status(member.url("/pd/api/v1/schedulers"), 200, 10)[1]
    # No jump: the new leader continues from the model in etcd (the evicted store stays at 0).
    after = leaders(pd)
    assert after == before and sum(after.values()) == REGIONS


# ---------------------------------------------------------------- TiCDC

def cdc_tables(cdc):
    return {v["address"]: v for v in http_json("GET", cdc.url("/sim/cdc/tables"))[1].values()}


def captures(cdc):
    status, body = http_json("GET", cdc.url("/api/v1/captures"))
    assert status == 200 and isinstance(body, list), body
    return body


@pytest.mark.parametrize("newarch", [True, False], ids=["new", "classic"])
def test_cdc_owner_resign_and_capture_drain(sim, newarch):
    env = {"TIDBSIM_CDC_TABLES": "6", "TIDBSIM_CDC_TABLE_MOVE_PER_S": "4"}
    pd, _tikv = sim.pd_tikv()
    cdcs = [sim.cdc(pd, newarch=newarch, env=env) for _index in range(3)]
    sim.wait_ready(*cdcs)
    by_address = {f"127.0.0.1:{c.port}": c for c in cdcs}
    wait_for_status(cdcs[0].url("/api/v2/changefeeds"), 200, 10)
    for feed in ("f1", "f2"):
        assert http_json("POST", cdcs[0].url("/api/v2/changefeeds"), {"changefeed_id": feed, "sink_uri": "blackhole://"})[0] == 200
    wait_until(lambda: sorted(v["tables"] for v in cdc_tables(cdcs[0]).values()) == [4, 4, 4], 10, "tables spread")

    # Resign through a capture that is not the owner: the request reaches the owner.
    owner = next(c for c in captures(cdcs[0]) if c["is_owner"])
    other = next(c for c in cdcs if f"127.0.0.1:{c.port}" != owner["address"])
    status, body = http_json("POST", other.url("/api/v1/owner/resign"))
    assert status == 202 and body == ({} if newarch else "")

    def new_owner():
        found = [c for c in captures(other) if c["is_owner"]]
        return found and found[0]["id"] != owner["id"] and found[0]
    owner = wait_until(new_owner, 10, "another owner")
    status, body = http_json("POST", other.url("/api/v2/owner/resign"))
    assert (status, body) == (200, {})
    owner = wait_until(new_owner, 10, "yet another owner")

    # Drain one capture that is not the owner: 202 with the tables left, down to 0.
    target = next(c for c in captures(cdcs[0]) if not c["is_owner"])
    drain = cdcs[0].url("/api/v1/captures/drain")
    counts = []

    def drained():
        status, body = http_json("PUT", drain, {"capture_id": target["id"]})
        assert status == 202, body
        counts.append(body["current_table_count"])
        return counts[-1] == 0
    wait_until(drained, 15, "capture drained")
    assert counts[0] > 0 and len(counts) > 1, counts
    assert cdc_tables(cdcs[0])[target["address"]]["tables"] == 0
    assert sum(v["tables"] for v in cdc_tables(cdcs[0]).values()) == 12
    drained_status = http_json("GET", by_address[target["address"]].url("/api/v1/status"))[1]
    assert drained_status["liveness"] == (2 if newarch else 1)  # new: Stopping; classic: Stopping is 1

    # The errors TiUP knows.
    status, body = http_json("PUT", drain, {"capture_id": owner["id"]})
    assert (status, body["error_code"]) == (400, "CDC:ErrSchedulerRequestFailed")
    assert body["error_msg"] == "[CDC:ErrSchedulerRequestFailed]scheduler request failed, cannot drain the owner"
    status, body = http_json("PUT", drain, {"capture_id": "no-such-capture"})
    assert (status, body["error_code"]) == (400, "CDC:ErrCaptureNotExist")
    assert body["error_msg"] == "[CDC:ErrCaptureNotExist]capture not exists, no-such-capture"


def test_classic_cdc_refuses_a_drain_with_one_capture_and_stops_on_sigterm(sim):
    pd, _tikv = sim.pd_tikv()
    cdc = sim.cdc(pd, newarch=False)
    cdc.wait_ready()
    me = captures(cdc)[0]["id"]
    status, body = http_json("PUT", cdc.url("/api/v1/captures/drain"), {"capture_id": me})
    assert (status, body["error_msg"]) == (400, "[CDC:ErrSchedulerRequestFailed]scheduler request failed, only one capture alive")
    assert "liveness" not in http_json("GET", cdc.url("/status"))[1]
    assert http_json("GET", cdc.url("/api/v1/status"))[1]["liveness"] == 0
    assert cdc.stop() == 0
    assert any("liveness 1 (Stopping): received SIGTERM" in line for line in cdc.stderr_lines)


# ---------------------------------------------------------------- TiDB

def test_tidb_reports_500_during_its_graceful_wait(sim, tmp_path):
    config = tmp_path / "tidb.toml"
    config.write_text("graceful-wait-before-shutdown = 2\n")
    pd, _tikv = sim.pd_tikv()
    tidb = sim.tidb(pd, extra=[f"--config={config}"])
    tidb.wait_ready()
    status_url = tidb.url("/status", tidb.status_port)
    assert http_json("GET", status_url)[0] == 200
    tidb.popen.terminate()
    asked = time.monotonic()
    wait_until(lambda: http_get(status_url) == (500, b""), 2, "/status 500")
    assert tidb.popen.poll() is None  # still waiting
    assert tidb.wait_exit(10) == 0
    assert time.monotonic() - asked >= 1.9
    assert any("report unhealthy (shutting-down)" in line for line in tidb.stderr_lines)


def test_tidb_without_graceful_wait_stops_at_once(sim):
    pd, _tikv = sim.pd_tikv()
    tidb = sim.tidb(pd)
    tidb.wait_ready()
    asked = time.monotonic()
    assert tidb.stop() == 0
    assert time.monotonic() - asked < 2


def test_tidb_refuses_a_bad_graceful_wait(sim, tmp_path):
    config = tmp_path / "tidb.toml"
    config.write_text('graceful-wait-before-shutdown = "10s"\n')
    tidb = sim.spawn("tidb-server", ["--store=tikv", "--path=127.0.0.1:1", f"--config={config}"])
    assert tidb.wait_exit(10) == 1
    assert "graceful-wait-before-shutdown" in tidb.output


# ---------------------------------------------------------------- the region model alone

def model_stores(**states):
    """store id -> "up" (serving), "dead" (not alive, still PD-Up), "down", "flash"."""
    info = {"up": (True, True, True, False), "dead": (True, True, False, False), "down": (True, False, False, True),
            "flash": (False, True, True, False)}
    return {int(k[1:]): dict(zip(("tikv", "up", "alive", "down"), info[v])) for k, v in states.items()}


def test_region_model_raft_needs_a_majority_and_the_replica_checker_replaces_down_peers():
    stores = model_stores(s1="up", s2="up", s3="up", s9="flash")
    model = RegionModel.bootstrap(6, stores, 3)
    assert all(sorted(r["peers"]) == [1, 2, 3] for r in model.regions)  # never on TiFlash
    assert model.counts()[0] == {1: 2, 2: 2, 3: 2}
    # One store dead: its leaders move to the alive peers.
    changed, _used, notes = model.step(model_stores(s1="dead", s2="up", s3="up"), 3, 0, set(), set())
    assert changed and model.counts()[0].get(1, 0) == 0 and "store 1 stopped heartbeating" in notes[0]
    # Two of three dead: no majority, leaders stay where PD last saw them.
    before = model.counts()[0]
    model.step(model_stores(s1="dead", s2="dead", s3="up"), 3, 0, set(), set())
    assert model.counts()[0] == before
    # A Down store's peers move to a free Up TiKV store (not its leaders: those need raft first).
    model.step(model_stores(s1="down", s2="up", s3="up", s4="up"), 3, 0, set(), set())
    assert all(sorted(r["peers"]) == [2, 3, 4] for r in model.regions)
    # Evicted stores get no leader; balance-leader spreads the rest within one.
    stores = model_stores(s2="up", s3="up", s4="up")
    for _step in range(10):
        model.step(stores, 3, 8, {"balance-leader-scheduler"}, {4})
    assert model.counts()[0].get(4, 0) == 0 and abs(model.counts()[0][2] - model.counts()[0][3]) <= 1
    for _step in range(10):
        model.step(stores, 3, 8, {"balance-leader-scheduler"}, set())
    assert sorted(model.counts()[0].values()) == [2, 2, 2]
