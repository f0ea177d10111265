"""What PD does on scale-in and scale-out: store states (Up, Offline, Tombstone), the replica
checker moving peers off an Offline store, remove-tombstone, a buried TiKV/TiFlash, PD member
removal and --join, placement rules (tikv/pd server/api/store.go, member.go, rule.go,
server/cluster/cluster.go; tikv/tikv src/server/raft_server.rs)."""

import os
import time

import pytest

from tidbsim.pd import build_rule_list_error, tombstones_to_remove
from tidbsim.regions import RegionModel
from tidbsim.testing import free_ports, http_json, wait_for_status, wait_until

REGIONS = 12
# Slow enough to see an Offline store drain, fast enough for a short test; PD checks its stores
# (Preparing -> Serving, burial) every half second instead of every 10 s.
FAST = {"TIDBSIM_REGIONS": str(REGIONS), "TIDBSIM_REGION_MOVE_PER_S": "4", "TIDBSIM_STORE_CHECK_INTERVAL": "0.5",
        "TIDBSIM_RAFT_ELECTION_S": "1"}
NOT_ENOUGH = "[PD:core:ErrStoresNotEnough]can not remove store {} since the number of up stores would be {} while need {}"
OFFLINE = "The store is set as Offline."
TIFLASH_RULE = {"key": "engine", "op": "in", "values": ["tiflash"]}


def stores(pd, query=""):
    """{store id: store meta + status + state} from PD's /stores (with an optional ?state= query)."""
    status, body = http_json("GET", pd.url("/pd/api/v1/stores" + query))
    assert status == 200, body
    assert body["count"] == len(body["stores"])
    return {s["store"]["id"]: dict(s["store"], status=s["status"]) for s in body["stores"]}


def store(pd, store_id):
    status, body = http_json("GET", pd.url(f"/pd/api/v1/store/{store_id}"))
    assert status == 200, body
    return dict(body["store"], status=body["status"])


def store_of(pd, proc, port=None):
    address = f"127.0.0.1:{port or proc.port}"
    return next(sid for sid, s in stores(pd, "?state=0&state=1&state=2").items() if s["address"] == address)


def regions(entry):
    return entry["status"].get("region_count", 0)


def leaders(entry):
    return entry["status"].get("leader_count", 0)


def delete_store(pd, store_id, query=""):
    return http_json("DELETE", pd.url(f"/pd/api/v1/store/{store_id}{query}"))


def encode_key(raw):
    """TiDB's codec.EncodeBytes (memcomparable: groups of 8 bytes, each followed by 0xFF - padding)."""
    out = b""
    for index in range(0, len(raw) + 1, 8):
        group = raw[index:index + 8]
        out += group + b"\x00" * (8 - len(group)) + bytes([0xFF - (8 - len(group))])
    return out.hex()


def table_range(table_id):
    """The rule key range TiDB writes for a table's TiFlash replica: t<id> .. t<id+1>, encoded."""
    def prefix(tid):
        return b"t" + (tid ^ (1 << 63)).to_bytes(8, "big")
    return encode_key(prefix(table_id)), encode_key(prefix(table_id + 1))


def tiflash_rule(table_id, count):
    start, end = table_range(table_id)
    return {"group_id": "tiflash", "id": f"table-{table_id}-r", "index": 120, "start_key": start, "end_key": end,
            "role": "learner", "count": count, "label_constraints": [TIFLASH_RULE]}


def tiflash_config(pd, ports):
    service, proxy, status = ports
    return (f'listen_host = "127.0.0.1"\npath = "{{data_dir}}"\n[flash]\nservice_addr = "127.0.0.1:{service}"\n'
            f'[flash.proxy]\naddr = "127.0.0.1:{proxy}"\nadvertise-addr = "127.0.0.1:{proxy}"\n'
            f'status-addr = "127.0.0.1:{status}"\nadvertise-status-addr = "127.0.0.1:{status}"\n'
            f'[raft]\npd_addr = "127.0.0.1:{pd.port}"\n')


def balanced(pd, count):
    """Every peer placed and spread by balance-region (within one) over `count` TiKV stores."""
    peers = [regions(s) for s in stores(pd).values()]
    return len(peers) == count and sum(peers) == REGIONS * 3 and max(peers) - min(peers) <= 1


def fresh_copy(sim, proc, data_dir):
    """The same binary and addresses as `proc`, with another data dir (a new store at the same address)."""
    args = list(proc.args)
    args[args.index("--data-dir") + 1] = data_dir
    return sim.spawn(proc.binary, args, proc.ports, data_dir, None, proc.name)


@pytest.fixture
def cluster(sim):
    """One PD (max-replicas 3) and four TiKV, every peer placed."""
    pd = sim.pd(env=FAST)
    pd.wait_ready()
    tikvs = [sim.tikv(pd, env=FAST) for _index in range(4)]
    sim.wait_ready(*tikvs)
    wait_until(lambda: balanced(pd, 4), 15, "peers spread")
    return pd, tikvs


# ---------------------------------------------------------------- stores

def test_store_delete_is_refused_when_too_few_up_stores_would_stay(sim):
    pd = sim.pd(env=FAST)
    pd.wait_ready()
    tikvs = [sim.tikv(pd, env=FAST) for _index in range(3)]
    sim.wait_ready(*tikvs)
    ids = [store_of(pd, t) for t in tikvs]
    assert delete_store(pd, ids[0]) == (400, NOT_ENOUGH.format(ids[0], 2, 3))
    assert delete_store(pd, 999) == (404, "[PD:core:ErrStoreNotFound]store 999 not found")
    assert http_json("GET", pd.url("/pd/api/v1/store/999")) == (404, "[PD:core:ErrStoreNotFound]store 999 not found")
    # A TiFlash store does not count for a TiKV (tikv/pd master), and is checked itself against
    # every Up store (v8.5.7): 3 TiKV + 1 TiFlash, max-replicas 3.
    ports = free_ports(3)
    tiflash = sim.tiflash(tiflash_config(pd, ports), env=FAST)
    tiflash.wait_ready()
    flash_id = store_of(pd, tiflash, ports[0])
    assert delete_store(pd, ids[1]) == (400, NOT_ENOUGH.format(ids[1], 2, 3))
    # A Preparing store is Up too; each store turns Serving (node_state 1) at PD's next store check.
    wait_until(lambda: all(s.get("node_state") == 1 for s in stores(pd).values()), 5, "Serving stores")
    assert all("state" not in s and s["state_name"] == "Up" for s in stores(pd).values())
    # The ?state= filter: numbers only (500 otherwise, as PD's NewStoreStateFilter).
    assert http_json("GET", pd.url("/pd/api/v1/stores?state=x")) == (500, 'strconv.Atoi: parsing "x": invalid syntax')
    assert http_json("GET", pd.url("/pd/api/v1/stores?state=3")) == (500, "unknown StoreState: 3")
    assert set(stores(pd, "?state=0")) == set(ids) | {flash_id}
    assert stores(pd, "?state=1") == {} and stores(pd, "?state=2") == {}
    # A TiFlash store holds no region peer (no learner without a TiFlash rule): Tombstone at the next check.
    assert delete_store(pd, flash_id) == (200, OFFLINE)
    wait_until(lambda: store(pd, flash_id)["state_name"] == "Tombstone", 5, "Tombstone")


def test_store_goes_offline_then_tombstone_as_its_regions_move(cluster, sim):
    pd, tikvs = cluster
    victim = tikvs[0]
    sid = store_of(pd, victim)
    wait_until(lambda: leaders(store(pd, sid)) > 0, 10, "leaders on the victim")
    assert delete_store(pd, sid) == (200, OFFLINE)
    assert delete_store(pd, sid) == (200, OFFLINE)  # already Offline: nothing to do
    entry = store(pd, sid)
    assert (entry["state"], entry["node_state"], entry["state_name"]) == (1, 2, "Offline")
    assert "physically_destroyed" not in entry
    seen = []

    def buried():
        entry = stores(pd, "?state=0&state=1&state=2")[sid]
        seen.append((regions(entry), leaders(entry), entry["state_name"]))
        return entry["state_name"] == "Tombstone"
    wait_until(buried, 20, "Tombstone")
    counts = [n for n, _l, _s in seen]
    assert counts[0] > 0 and any(0 < n < counts[0] for n in counts), seen  # down over time, not at once
    assert all(state == "Offline" for n, _l, state in seen if n)  # buried only once empty
    # A region's leader leaves the store before its peer does: never more leaders than peers.
    assert all(lead <= n for n, lead, _s in seen), seen
    entry = store(pd, sid)
    assert (entry["state"], entry["node_state"], entry["state_name"]) == (2, 3, "Tombstone")
    # Default listing: Up and Offline only. Every peer now lives on the three other stores.
    assert sid not in stores(pd) and sid in stores(pd, "?state=2")
    assert sum(regions(s) for s in stores(pd).values()) == REGIONS * 3
    assert delete_store(pd, sid) == (410, f"[PD:core:ErrStoreRemoved]store {sid} has been removed")
    # The TiKV process keeps running and logs the refused heartbeats (tikv raftstore pd worker).
    assert victim.popen.poll() is None
    wait_until(lambda: any('["store heartbeat failed"] [err="StoreTombstone(\\"store is tombstone\\")"]' in line
                           for line in victim.stderr_lines), 5, "the heartbeat error")
    assert any("store is offlined by pd" in line for line in victim.stderr_lines)
    # Restarted, it is refused at PutStore and exits 1 (tikv components/server/src/server.rs).
    victim.restart()
    assert victim.wait_exit(15) == 1
    assert '[FATAL] failed to start raft_server: StoreTombstone("store is tombstone")' in victim.output
    # remove-tombstone forgets it.
    assert http_json("DELETE", pd.url("/pd/api/v1/stores/remove-tombstone")) == (200, "Remove tombstone successfully.")
    assert stores(pd, "?state=2") == {}
    assert http_json("GET", pd.url(f"/pd/api/v1/store/{sid}"))[0] == 404
    # Its address is free again: a new TiKV (fresh data dir) gets a new store id.
    fresh = fresh_copy(sim, victim, os.path.join(sim.base_dir, "fresh-tikv"))
    fresh.wait_ready()
    assert store_of(pd, fresh) not in (sid, *[store_of(pd, t) for t in tikvs[1:]])


def test_an_offline_store_without_a_target_stays_and_force_skips_the_check(sim):
    pd = sim.pd(env=FAST)
    pd.wait_ready()
    tikvs = [sim.tikv(pd, env=FAST) for _index in range(3)]
    sim.wait_ready(*tikvs)
    wait_until(lambda: sum(regions(s) for s in stores(pd).values()) == REGIONS * 3, 15, "every peer placed")
    sid = store_of(pd, tikvs[2])
    assert delete_store(pd, sid)[0] == 400
    # force (any value: PD looks for the key only) = physically destroyed: no replica check.
    assert delete_store(pd, sid, "?force=false") == (200, OFFLINE)
    entry = store(pd, sid)
    assert (entry["state_name"], entry["node_state"], entry["physically_destroyed"]) == ("Offline", 2, True)
    assert delete_store(pd, sid, "?force") == (200, OFFLINE)
    assert delete_store(pd, sid) == (400, f"[PD:core:ErrStoreDestroyed]store {sid} has been physically destroyed")
    # Every other TiKV holds every region: the peers have nowhere to go, the store stays Offline.
    time.sleep(2)
    entry = store(pd, sid)
    assert entry["state_name"] == "Offline" and regions(entry) == REGIONS
    # The state is in the store meta in etcd: a new PD leader (here the restarted member) has it.
    pd.restart()
    pd.wait_ready()
    _status, entry = wait_for_status(pd.url(f"/pd/api/v1/store/{sid}"), 200, 10)
    assert (entry["store"]["state_name"], entry["store"]["node_state"], entry["store"]["physically_destroyed"]) == ("Offline", 2, True)
    # A stopped Offline store stays "Offline" (only an Up store reads Disconnected or Down).
    tikvs[2].stop()
    time.sleep(2.5)
    assert store(pd, sid)["state_name"] == "Offline"
    # A fourth TiKV is a target: the peers move there, then PD buries the store.
    fourth = sim.tikv(pd, env=FAST)
    fourth.wait_ready()
    wait_until(lambda: store(pd, sid)["state_name"] == "Tombstone", 20, "Tombstone")
    assert regions(store(pd, store_of(pd, fourth))) == REGIONS


def test_a_new_store_cannot_take_the_address_of_an_offline_one(sim):
    # Slow moves and no Down store while the victim is stopped: it stays Offline throughout.
    env = dict(FAST, TIDBSIM_REGION_MOVE_PER_S="0.05", TIDBSIM_STORE_DOWN_AFTER="120")
    pd = sim.pd(env=env)
    pd.wait_ready()
    tikvs = [sim.tikv(pd, env=env) for _index in range(4)]
    sim.wait_ready(*tikvs)
    wait_until(lambda: balanced(pd, 4), 15, "peers spread")
    victim = tikvs[3]
    sid = store_of(pd, victim)
    assert delete_store(pd, sid) == (200, OFFLINE)
    victim.stop()
    # A fresh data dir at the same address: PutStore's "duplicated store address" (cluster.go
    # putStoreImpl), fatal for TiKV.
    fresh = fresh_copy(sim, victim, os.path.join(sim.base_dir, "fresh-tikv"))
    assert fresh.wait_exit(15) == 1
    assert "[FATAL] failed to start raft_server: Other(" in fresh.output
    assert "duplicated store address: id:" in fresh.output and f"already registered by id:{sid} " in fresh.output
    # Its own data dir (its store ident) brings the Offline store back, still Offline.
    victim.start()
    victim.wait_ready()
    assert store(pd, sid)["state_name"] == "Offline"


def test_tiflash_store_is_buried_once_its_learners_can_leave(sim):
    pd = sim.pd(env=FAST)
    pd.wait_ready()
    tikvs = [sim.tikv(pd, env=FAST) for _index in range(3)]
    ports = free_ports(3)
    tiflash = sim.tiflash(tiflash_config(pd, ports), env=FAST)
    sim.wait_ready(*tikvs, tiflash)
    flash_id = store_of(pd, tiflash, ports[0])
    url = pd.url("/pd/api/v1/config/rule")
    assert http_json("POST", url, tiflash_rule(100, 1)) == (200, "Update rule successfully.")
    # Placement rules cannot go off while a TiFlash store is not Tombstone (server.go SetReplicationConfig).
    assert http_json("POST", pd.url("/pd/api/v1/config/replicate"), {"enable-placement-rules": "false"}) == \
        (500, "cannot disable placement rules with TiFlash nodes")
    assert delete_store(pd, flash_id) == (200, OFFLINE)
    # Its learners (a TiFlash replica of table 100) have no other TiFlash store to go to.
    time.sleep(1.5)
    assert store(pd, flash_id)["state_name"] == "Offline"
    assert http_json("DELETE", pd.url("/pd/api/v1/config/rule/tiflash/table-100-r")) == (200, "Delete rule successfully.")
    wait_until(lambda: store(pd, flash_id)["state_name"] == "Tombstone", 5, "Tombstone at the next check")
    assert tiflash.popen.poll() is None
    tiflash.restart()
    assert tiflash.wait_exit(15) == 1
    assert '[FATAL] failed to start node: StoreTombstone("store is tombstone")' in tiflash.output
    assert http_json("POST", pd.url("/pd/api/v1/config/replicate"), {"enable-placement-rules": "false"})[0] == 200


# ---------------------------------------------------------------- placement rules

def test_placement_rules_round_trip(sim):
    pd, _tikv = sim.pd_tikv(env=FAST)
    rules_url = pd.url("/pd/api/v1/config/rules")
    status, rules = http_json("GET", rules_url)
    assert status == 200 and rules == [{"group_id": "pd", "id": "default", "start_key": "", "end_key": "", "role": "voter",
                                        "is_witness": False, "count": 3}]
    assert http_json("GET", pd.url("/pd/api/v1/config/rule/pd/default")) == (200, rules[0])
    assert http_json("GET", pd.url("/pd/api/v1/config/rule/pd/nope")) == (404, "[PD:placement:ErrRuleNotFound]rule not found")
    assert http_json("GET", pd.url("/pd/api/v1/config/rules/group/tiflash")) == (200, None)
    post = pd.url("/pd/api/v1/config/rule")
    start, end = table_range(100)
    content = "[PD:placement:ErrRuleContent]invalid rule content, "
    voter = {"group_id": "test", "id": "r1", "start_key": start, "end_key": end, "role": "voter", "count": 1}
    for bad, message in [
            (dict(voter, role="witness"), content + "invalid role witness"),
            (dict(voter, count=0), content + "invalid count 0"),
            (dict(voter, role="leader", count=2), content + "define multiple leaders by count 2"),
            (dict(voter, group_id=""), content + "group ID should not be empty"),
            (dict(voter, start_key="zz"), "[PD:hex:ErrHexDecodingString]decode string zz error"),
            (dict(voter, start_key="7480"), content + "start key should be encoded in table mode: insufficient bytes to decode value"),
            (dict(voter, start_key=end, end_key=start), content + "endKey should be greater than startKey"),
            (dict(voter, label_constraints=[{"key": "zone", "op": "is", "values": ["a"]}]), content + "invalid op is"),
            (tiflash_rule(100, 1), content + "rule 'table-100-r' from rule group 'tiflash' can not match any store")]:
        assert http_json("POST", post, bad) == (400, message), bad
    status, body = http_json("POST", post, dict(voter, count="1"))
    assert status == 400 and "Rule.count" in body["msg"]
    assert http_json("POST", post, voter) == (200, "Update rule successfully.")
    learner = dict(voter, id="r2", role="learner", start_key="", end_key="")
    assert http_json("POST", post, learner) == (200, "Update rule successfully.")
    group = http_json("GET", pd.url("/pd/api/v1/config/rules/group/test"))[1]
    assert [r["id"] for r in group] == ["r1", "r2"] and "version" not in group[0] and group[0]["create_timestamp"] > 0
    assert http_json("POST", post, dict(voter, count=2))[0] == 200
    again = http_json("GET", pd.url("/pd/api/v1/config/rule/test/r1"))[1]
    assert (again["count"], again["version"], again["create_timestamp"]) == (2, 1, group[0]["create_timestamp"])
    assert [r["group_id"] for r in http_json("GET", rules_url)[1]] == ["pd", "test", "test"]
    # Without pd/default, the range before table 100 would have the learner alone: the rule list
    # cannot be built (500), nothing changes.
    assert http_json("DELETE", pd.url("/pd/api/v1/config/rule/pd/default")) == \
        (500, f"[PD:placement:ErrBuildRuleList]build rule list failed, needs at least one leader or voter for range {{, {start.upper()}}}")
    # pd/default's count is max-replicas, both ways (rule.go syncReplicateConfigWithDefaultRule,
    # server.go SetReplicationConfig).
    replicate = pd.url("/pd/api/v1/config/replicate")
    assert http_json("POST", replicate, {"max-replicas": 1}) == (200, "The config is updated.")
    assert http_json("GET", pd.url("/pd/api/v1/config/rule/pd/default"))[1]["count"] == 1
    for rule_id in ("r1", "r2", "r1"):  # deleting a rule that is not there is fine too
        assert http_json("DELETE", pd.url(f"/pd/api/v1/config/rule/test/{rule_id}")) == (200, "Delete rule successfully.")
    assert http_json("GET", pd.url("/pd/api/v1/config/rules/group/test")) == (200, None)
    assert http_json("DELETE", pd.url("/pd/api/v1/config/rule/pd/default")) == \
        (500, "[PD:placement:ErrBuildRuleList]build rule list failed, no rule left")
    assert http_json("POST", post, dict(rules[0], count=3)) == (200, "Update rule successfully.")
    assert http_json("GET", replicate)[1]["max-replicas"] == 3
    # Each write of a rule adds one to its version: the max-replicas POST, then this one's sync and the rule itself.
    assert http_json("GET", pd.url("/pd/api/v1/config/rule/pd/default"))[1]["version"] == 3
    # The rules live in PD's etcd: a restarted PD (a new leader) has them.
    assert http_json("POST", post, dict(voter, start_key="", end_key="")) == (200, "Update rule successfully.")
    pd.restart()
    pd.wait_ready()
    status, rules = http_json("GET", rules_url)
    assert status == 200 and [(r["group_id"], r["id"], r["count"]) for r in rules] == [("pd", "default", 3), ("test", "r1", 1)]
    # Unmodelled rule paths are refused rather than faked.
    assert http_json("POST", pd.url("/pd/api/v1/config/rules/batch"), [])[0] == 501


# ---------------------------------------------------------------- PD members

def pd_args(name, client, peer, data_dir, join_urls=None, initial=None):
    args = [f"--name={name}", f"--client-urls=http://127.0.0.1:{client}", f"--peer-urls=http://127.0.0.1:{peer}",
            f"--advertise-client-urls=http://127.0.0.1:{client}", f"--advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--data-dir={data_dir}"]
    return args + ([f"--join={join_urls}"] if join_urls else []) + ([f"--initial-cluster={initial}"] if initial else [])


def members(pd):
    status, body = http_json("GET", pd.url("/pd/api/v1/members"))
    return sorted(m["name"] for m in body["members"]) if status == 200 else None


def join(sim, pds, name, timeout=60):
    """Start a PD with --join (every member's client URL). etcd refuses a MemberAdd within 5 s of
    the last membership change ("etcdserver: unhealthy cluster"), which is fatal for PD's join:
    start it again, as an operator would."""
    client, peer = free_ports(2)
    data_dir = os.path.join(sim.base_dir, name)
    urls = ",".join(p.url() for p in pds)
    deadline = time.monotonic() + timeout
    while True:
        proc = sim.spawn("pd-server", pd_args(name, client, peer, data_dir, join_urls=urls), (client, peer), data_dir, FAST, name)
        proc.peer_port = peer
        try:
            proc.wait_ready(30)
            return proc
        except RuntimeError:
            assert "etcdserver: unhealthy cluster" in proc.output, proc.output
            assert '["join meet error"]' in proc.output
            assert time.monotonic() < deadline, proc.output
            time.sleep(1)


def test_pd_member_delete_and_the_removed_process_exits(sim):
    pds = sim.pd(3, env=FAST)
    sim.wait_ready(pds)
    wait_until(lambda: members(pds[0]) == ["pd0", "pd1", "pd2"], 15, "three members")
    base = "/pd/api/v1/members"
    assert http_json("DELETE", pds[0].url(f"{base}/name/nope")) == (404, "not found, pd: nope")
    assert http_json("DELETE", pds[0].url(f"{base}/id/abc")) == (400, 'strconv.ParseUint: parsing "abc": invalid syntax')
    assert http_json("DELETE", pds[0].url(f"{base}/id/123")) == \
        (500, "[PD:etcd:ErrEtcdMemberRemove]etcdserver: member not found")
    leader = http_json("GET", pds[0].url("/pd/api/v1/leader"))[1]["name"]
    victim = next(p for p in pds if p.name != leader)
    keep = next(p for p in pds if p is not victim)
    replies = []

    def removed():
        replies.append(http_json("DELETE", keep.url(f"{base}/name/{victim.name}")))
        return replies[-1][0] == 200
    wait_until(removed, 20, "member removed")
    assert replies[-1] == (200, f"removed, pd: {victim.name}")
    # Before etcd's 5 s health window passes, MemberRemove says so (a 500 with etcd's error: "unhealthy
    # cluster", or a timeout when the machine is slow).
    assert all(r[0] == 500 and str(r[1]).startswith("[PD:etcd:ErrEtcdMemberRemove]etcdserver: ") for r in replies[:-1]), replies
    assert victim.wait_exit(15) == 1
    assert "this PD member has been removed from the cluster" in victim.output
    wait_until(lambda: members(keep) == sorted(p.name for p in pds if p is not victim), 15, "two members")
    # Restarted with its data dir, the removed member fails again.
    victim.start()
    assert victim.wait_exit(30) == 1


def test_join_a_fourth_and_a_fifth_pd_and_restart_a_joined_one(sim):
    pds = sim.pd(3, env=FAST)
    sim.wait_ready(pds)
    tikv = sim.tikv(pds, env=FAST)
    tikv.wait_ready()
    fourth = join(sim, pds, "pd3")
    wait_until(lambda: members(pds[0]) == ["pd0", "pd1", "pd2", "pd3"], 20, "four members")
    fifth = join(sim, pds + [fourth], "pd4")
    wait_until(lambda: members(fourth) == ["pd0", "pd1", "pd2", "pd3", "pd4"], 20, "five members")
    assert any("joined through" in line for line in fifth.stderr_lines)
    assert os.path.isfile(os.path.join(fifth.data_dir, "join"))  # v8.5.7's join file
    # The same name again, without data: refused (join.go "missing data or join a duplicated pd").
    client, peer = free_ports(2)
    dup_dir = os.path.join(sim.base_dir, "dup")
    dup = sim.spawn("pd-server", pd_args("pd3", client, peer, dup_dir, join_urls=pds[0].url()), (client, peer), dup_dir, FAST, "dup")
    assert dup.wait_exit(20) == 1
    assert '[FATAL] ["join meet error"] [error="missing data or join a duplicated pd"]' in dup.output
    # A joined member restarts with --join and its data dir: no new MemberAdd.
    fourth.restart()
    fourth.wait_ready(40)
    assert any("already holds etcd data" in line or "holds the join file" in line for line in fourth.stderr_lines)
    wait_until(lambda: members(fourth) == ["pd0", "pd1", "pd2", "pd3", "pd4"], 20, "five members after the restart")
    health = http_json("GET", fourth.url("/pd/api/v1/health"))[1]
    wait_until(lambda: all(m["health"] for m in http_json("GET", fourth.url("/pd/api/v1/health"))[1]), 20, "all healthy")
    assert len(health) == 5
    # The stores are still there, seen from the joined members too.
    assert any(s["address"] == f"127.0.0.1:{tikv.port}" for s in stores(fifth).values())
    # One at a time while a quorum stays (all five at once can keep an etcd leader busy handing
    # over its leadership for seconds).
    assert fifth.stop() == 0 and fourth.stop() == 0


# ---------------------------------------------------------------- the pure parts

def model_stores(**states):
    """store id -> "up", "offline" (Removing, alive), "flash"."""
    info = {"up": (True, True, True, False, False), "offline": (True, True, True, False, True),
            "flash": (False, True, True, False, False)}
    return {int(k[1:]): dict(zip(("tikv", "up", "alive", "down", "offline"), info[v])) for k, v in states.items()}


def test_region_model_moves_peers_off_an_offline_store_at_the_move_rate_leaders_first():
    model = RegionModel.bootstrap(6, model_stores(s1="up", s2="up", s3="up"), 3)
    state = model_stores(s1="offline", s2="up", s3="up")
    model.step(state, 3, 8, set(), set(), move_budget=5)
    assert model.moved == 0 and model.counts()[1][1] == 6  # no store to move to: the peers stay
    state = model_stores(s1="offline", s2="up", s3="up", s4="up", s9="flash")
    model.step(state, 3, 8, set(), set(), move_budget=2)
    assert model.moved == 2 and model.counts()[1][1] == 4 and model.counts()[1][4] == 2
    for _step in range(5):
        model.step(state, 3, 8, set(), set(), move_budget=1)
    lead, peers = model.counts()
    assert peers.get(1, 0) == 0 and lead.get(1, 0) == 0 and peers[4] == 6 and 9 not in peers
    assert all(sorted(r["peers"]) == [2, 3, 4] and r["leader"] in (2, 3, 4) for r in model.regions)
    # A leader on the Offline store needs a peer that may take it: not one in evict-leader-scheduler.
    model = RegionModel([{"id": 1, "peers": [1, 2, 3], "leader": 1}])
    model.step(model_stores(s1="offline", s2="up", s3="up", s4="up"), 3, 0, set(), {2, 3}, move_budget=5)
    assert model.moved == 0 and model.regions[0] == {"id": 1, "peers": [1, 2, 3], "leader": 1}
    model.step(model_stores(s1="offline", s2="up", s3="up", s4="up"), 3, 0, set(), {2}, move_budget=5)
    assert model.moved == 1 and model.regions[0] == {"id": 1, "peers": [4, 2, 3], "leader": 3}


def test_remove_tombstone_refuses_a_tombstone_that_still_holds_regions():
    metas = {1: {"node_state": 1}, 2: {"node_state": 3}, 3: {"node_state": 3}, 4: {"node_state": 2}}
    assert tombstones_to_remove(metas, {1: 5, 3: 1, 4: 2}) == ([2], [3])


def test_rule_list_needs_a_voter_everywhere():
    default = {"group_id": "pd", "id": "default", "start_key": "", "end_key": "", "role": "voter", "count": 3}
    start, end = table_range(100)
    flash = dict(tiflash_rule(100, 1))
    assert build_rule_list_error([default, flash]) is None
    assert build_rule_list_error([]) == "[PD:placement:ErrBuildRuleList]build rule list failed, no rule left"
    assert build_rule_list_error([flash]) == ("[PD:placement:ErrBuildRuleList]build rule list failed, needs at least one leader"
                                              f" or voter for range {{{start.upper()}, {end.upper()}}}")
    voter = dict(flash, role="voter")
    assert build_rule_list_error([voter]) == \
        f"[PD:placement:ErrBuildRuleList]build rule list failed, no rule for range {{{end.upper()}, }}"
    two_leaders = [dict(default, id="a", role="leader", count=1), dict(default, id="b", role="leader", count=1)]
    assert "multiple leader replicas" in build_rule_list_error(two_leaders)
    assert build_rule_list_error([two_leaders[0], dict(two_leaders[1], override=True)]) is None
