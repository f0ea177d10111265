"""PD: a real etcd per member, leader on top of it, forwarding, health, stores, replication config."""

import base64
import json
import time

import pytest

from tidbsim.testing import free_ports, http_get, http_json, wait_for_status, wait_until


def b64(text):
    return base64.b64encode(text.encode()).decode()


@pytest.fixture(scope="module")
def three(module_sim):
    pds = module_sim.pd(3)
    module_sim.wait_ready(pds)
    return pds


def test_three_members_elect_one_leader_and_all_report_it(three):
    leaders = set()
    for pd in three:
        status, body = http_json("GET", pd.url("/pd/api/v1/members"))
        assert status == 200
        assert len(body["members"]) == 3
        assert body["header"]["cluster_id"] > 0
        leaders.add(body["leader"]["name"])
    assert len(leaders) == 1
    status, health = http_json("GET", three[2].url("/pd/api/v1/health"))
    assert status == 200 and [m["health"] for m in health] == [True] * 3


def test_member_ids_are_integers_beyond_float_precision(three):
    _status, raw = http_get(three[0].url("/pd/api/v1/members"))
    ids = [m["member_id"] for m in json.loads(raw)["members"]]
    assert all(isinstance(i, int) for i in ids)
    assert any(i > 2 ** 53 for i in ids)


def test_one_member_of_three_has_no_leader_and_hangs_a_sequential_start(sim):
    pds = sim.pd(3, start=False)
    pds[0].start()
    time.sleep(1.5)
    status, body = http_json("GET", pds[0].url("/pd/api/v1/members"))
    assert status == 503 and "redirect finds no leader" in body
    assert "PD:apiutil:ErrRedirectNoLeader" in body
    status, health = http_json("GET", pds[0].url("/pd/api/v1/health"))
    assert status == 200 and [m["health"] for m in health] == [False] * 3
    assert http_json("GET", pds[0].url("/pd/api/v1/leader")) == (200, None)
    assert not any('"ready"' in line for line in pds[0].stdout_lines)
    pds[1].start()
    # A majority now: etcd elects a raft leader (PD's 3 s election interval, randomised up to twice
    # that), and that member's PD campaigns for the leader key; allow for both under load.
    _status, body = wait_for_status(pds[0].url("/pd/api/v1/members"), 200, 25)
    assert body["leader"]["name"] in ("pd0", "pd1")


def test_losing_the_majority_loses_the_leader(sim):
    pds = sim.pd(3)
    sim.wait_ready(pds)
    pds[1].stop()
    # Two of three still elect a leader (at once, or after an election if pd1 led).
    wait_for_status(pds[0].url("/pd/api/v1/members"), 200, 15)
    pds[2].stop()
    wait_until(lambda: http_json("GET", pds[0].url("/pd/api/v1/members"))[0] == 503, 10, "leader loss")


def test_stores_refused_before_the_first_tikv(sim):
    pd = sim.pd()
    pd.wait_ready()
    status, body = http_json("GET", pd.url("/pd/api/v1/stores"))
    assert status == 500
    assert body == "[PD:cluster:ErrNotBootstrapped]TiKV cluster not bootstrapped, please start TiKV first"
    assert http_json("GET", pd.url("/pd/api/v1/cluster/status"))[1]["is_initialized"] is False
    # The rules API and a replication POST with placement rules on need a running cluster too
    # (server/api/middleware.go clusterMiddleware; server/server.go SetReplicationConfig).
    assert http_json("GET", pd.url("/pd/api/v1/config/rules")) == (500, body)
    assert http_json("POST", pd.url("/pd/api/v1/config/replicate"), {"enable-placement-rules": "true"}) == (500, body)


def test_store_goes_up_then_disconnected_then_down(sim):
    pd, tikv = sim.pd_tikv()
    status, body = http_json("GET", pd.url("/pd/api/v1/stores"))
    assert status == 200 and body["count"] == 1
    store = body["stores"][0]["store"]
    assert store["address"] == f"127.0.0.1:{tikv.port}"
    assert store["status_address"] == f"127.0.0.1:{tikv.status_port}"
    assert store["state_name"] == "Up" and "labels" not in store
    assert http_get(tikv.url("/status", tikv.status_port)) == (200, b"")
    one = http_json("GET", pd.url(f"/pd/api/v1/store/{store['id']}"))
    assert one[0] == 200 and one[1]["store"]["id"] == store["id"]
    assert http_json("GET", pd.url("/pd/api/v1/store/999"))[0] == 404
    tikv.stop()

    def state():
        return http_json("GET", pd.url("/pd/api/v1/stores"))[1]["stores"][0]["store"]["state_name"]
    wait_until(lambda: state() == "Disconnected", 6, "Disconnected")
    wait_until(lambda: state() == "Down", 6, "Down")
    tikv.start()
    wait_until(lambda: state() == "Up", 6, "Up again")


def test_followers_forward_stores_to_the_leader(three, module_sim):
    tikv = module_sim.tikv(three)
    tikv.wait_ready()
    for pd in three:
        status, body = http_json("GET", pd.url("/pd/api/v1/stores"))
        assert status == 200 and body["stores"][0]["store"]["address"] == f"127.0.0.1:{tikv.port}"


def test_replicate_config_contract(sim):
    pd, _tikv = sim.pd_tikv()
    url = pd.url("/pd/api/v1/config/replicate")
    status, body = http_json("GET", url)
    assert status == 200 and body["enable-placement-rules"] == "true" and body["max-replicas"] == 3
    assert http_json("GET", pd.url("/pd/api/v1/config/rules"))[0] == 200
    status, body = http_json("POST", url, {"enable-placement-rules": False})
    assert status == 400 and "string" in body
    assert http_json("POST", url, {"no-such-item": "1"})[0] == 400
    assert http_json("POST", url, b"{not json")[0] == 400
    assert http_json("POST", url, {"enable-placement-rules": "false"}) == (200, "The config is updated.")
    assert http_json("GET", url)[1]["enable-placement-rules"] == "false"
    status, body = http_json("GET", pd.url("/pd/api/v1/config/rules"))
    assert status == 412 and body == "[PD:placement:ErrPlacementDisabled]placement rules feature is disabled"
    # State survives a restart in the data dir, next to the marker.
    marker = http_json("GET", pd.url("/sim/marker"))[1]
    pd.restart()
    pd.wait_ready()
    assert http_json("GET", url)[1]["enable-placement-rules"] == "false"
    again = http_json("GET", pd.url("/sim/marker"))[1]
    assert again["id"] == marker["id"] and again["restarted"] is True and again["starts"] == 2
    assert any("kept marker" in line for line in pd.stderr_lines)


def test_etcd_gateway_range_put_prefix_and_leases(sim):
    pd = sim.pd()
    pd.wait_ready()
    for key, value in (("/tici/metaservice/election/1", "meta0:8500"), ("/tici/other", "x"), ("/tici/metaservice/electionX", "y")):
        assert http_json("POST", pd.url("/v3/kv/put"), {"key": b64(key), "value": b64(value)})[0] == 200
    prefix = "/tici/metaservice/election/"
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    status, body = http_json("POST", pd.url("/v3/kv/range"), {"key": b64(prefix), "range_end": b64(end)})
    assert status == 200 and body["count"] == "1"
    assert base64.b64decode(body["kvs"][0]["value"]).decode() == "meta0:8500"
    exact = http_json("POST", pd.url("/v3/kv/range"), {"key": b64("/tici/other")})[1]
    assert exact["count"] == "1"
    everything = http_json("POST", pd.url("/v3/kv/range"), {"key": b64("/tici"), "range_end": b64("/tici\xff")})[1]
    assert everything["count"] == "3"
    # Real etcd leaves zero values out of its JSON: no "count" for an empty range.
    assert "count" not in http_json("POST", pd.url("/v3/kv/range"), {"key": b64("/nothing")})[1]
    lease = http_json("POST", pd.url("/v3/lease/grant"), {"TTL": 1})[1]["ID"]
    http_json("POST", pd.url("/v3/kv/put"), {"key": b64("/leased"), "value": b64("v"), "lease": lease})
    assert http_json("POST", pd.url("/v3/kv/range"), {"key": b64("/leased")})[1]["count"] == "1"
    # etcd raises a TTL of 1 s to its minimum (1.5 election timeouts, 4.5 s rounded up with PD's 3 s).
    wait_until(lambda: "count" not in http_json("POST", pd.url("/v3/kv/range"), {"key": b64("/leased")})[1], 10, "lease expiry")
    status, body = http_json("POST", pd.url("/v3/kv/put"), {"key": b64("/k"), "value": b64("v"), "lease": "12345"})
    assert status == 404 and body["message"] == "etcdserver: requested lease not found"
    pd.restart()
    pd.wait_ready()
    assert http_json("POST", pd.url("/v3/kv/range"), {"key": b64("/tici/other")})[1]["count"] == "1"


def test_join_and_replication_from_the_config_file(sim, tmp_path):
    config = tmp_path / "pd.toml"
    config.write_text("[replication]\nmax-replicas = 1\nenable-placement-rules = false\nlocation-labels = ['zone', 'host']\n")
    first = sim.pd(names=["pd-a"])
    first.wait_ready()
    client, peer = free_ports(2)
    joiner = sim.spawn("pd-server", ["--name=pd-b", f"--client-urls=http://127.0.0.1:{client}", f"--peer-urls=http://127.0.0.1:{peer}",
                                     f"--join={first.url()}", f"--data-dir={tmp_path / 'pd-b'}", f"--config={config}"],
                       (client, peer), str(tmp_path / "pd-b"))
    joiner.wait_ready(40)
    # Adding the member costs the one-member cluster its quorum until pd-b's etcd catches up, as
    # with real PD; the leadership may take a moment to settle.
    _status, body = wait_for_status(joiner.url("/pd/api/v1/members"), 200, 20)
    assert sorted(m["name"] for m in body["members"]) == ["pd-a", "pd-b"]
    assert body["leader"]["name"] in ("pd-a", "pd-b")
    assert any("joined through" in line for line in joiner.stderr_lines)
    # The replication config comes from the leader's state (pd-a had no --config).
    assert http_json("GET", joiner.url("/pd/api/v1/config/replicate"))[1]["max-replicas"] == 3
    solo_client, solo_peer = free_ports(2)
    solo = sim.spawn("pd-server", [f"--client-urls=http://127.0.0.1:{solo_client}", f"--peer-urls=http://127.0.0.1:{solo_peer}",
                                   f"--data-dir={tmp_path / 'solo'}", f"--config={config}"], (solo_client, solo_peer), str(tmp_path / "solo"))
    solo.wait_ready()
    replicate = http_json("GET", solo.url("/pd/api/v1/config/replicate"))[1]
    assert (replicate["max-replicas"], replicate["enable-placement-rules"], replicate["location-labels"]) == (1, "false", "zone,host")
