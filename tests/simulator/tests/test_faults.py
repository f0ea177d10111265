"""Fault switches, the ready line, the data marker and SIGTERM, shown on PD and TiKV (all share common.py)."""

import signal
import socket
import time

from tidbsim.testing import free_ports, http_get, http_json, wait_until


def test_ready_line_is_one_json_object_with_both_clocks(sim):
    before_wall, before_mono = time.time(), time.monotonic()
    pd = sim.pd()
    line = pd.wait_ready()
    assert set(line) == {"tidbsim", "component", "name", "monotonic", "wall"}
    assert line["tidbsim"] == "ready" and line["component"] == "pd" and line["name"] == "pd0"
    assert before_mono <= line["monotonic"] <= time.monotonic()
    assert before_wall <= line["wall"] <= time.time()


def test_start_delay_postpones_readiness(sim):
    start = time.monotonic()
    pd = sim.pd(env={"TIDBSIM_PD_START_DELAY": "1.5"})
    wait_until(lambda: http_get(pd.url("/pd/api/v1/health"))[0] == 200, 10, "health answers")
    assert http_get(pd.url("/pd/api/v1/members"))[0] == 503
    line = pd.wait_ready()
    assert line["monotonic"] - start >= 1.5
    assert http_get(pd.url("/pd/api/v1/members"))[0] == 200


def test_never_ready(sim):
    pd = sim.pd()
    pd.wait_ready()
    tikv = sim.tikv(pd, env={"TIDBSIM_NEVER_READY": "1"})
    wait_until(lambda: http_get(tikv.url("/status", tikv.status_port))[0] == 200, 10, "status server")
    assert http_get(tikv.url("/ready", tikv.status_port))[0] == 500
    time.sleep(0.5)
    assert tikv.ready_line is None


def test_crash_after_exits_non_zero(sim):
    pd = sim.pd(env={"TIDBSIM_CRASH_AFTER": "0.5"})
    assert pd.wait_exit(10) != 0
    assert "crashing on purpose" in pd.output


def test_fail_first_n_requests_with_a_chosen_status(sim):
    pd = sim.pd(env={"TIDBSIM_FAIL_FIRST": "2", "TIDBSIM_FAIL_STATUS": "503"})
    pd.wait_ready()
    statuses = [http_get(pd.url("/pd/api/v1/health"))[0] for _attempt in range(3)]
    assert statuses == [503, 503, 200]
    pd500 = sim.pd(env={"TIDBSIM_FAIL_FIRST": "1"})
    pd500.wait_ready()
    assert [http_get(pd500.url("/pd/api/v1/ping"))[0] for _attempt in range(2)] == [500, 200]


def test_listen_delay_refuses_connections_first(sim):
    pd = sim.pd(env={"TIDBSIM_LISTEN_DELAY": "1"})
    time.sleep(0.6)
    refused = False
    try:
        socket.create_connection(("127.0.0.1", pd.port), timeout=1).close()
    except ConnectionRefusedError:
        refused = True
    assert refused
    pd.wait_ready()
    assert http_get(pd.url("/pd/api/v1/health"))[0] == 200


def test_listen_delay_on_tidb_opens_mysql_once_and_becomes_ready(sim):
    """TiDB's bootstrap tick runs again while its status server is held back: it must not open the
    MySQL port a second time (a second bind is fatal)."""
    pd, tikv = sim.pd_tikv()
    tidb = sim.tidb(pd, env={"TIDBSIM_LISTEN_DELAY": "1.5"})
    tidb.wait_ready()
    assert http_get(tidb.url("/status", tidb.status_port))[0] == 200
    assert tidb.output.count("MySQL protocol listening") == 1 and "FATAL" not in tidb.output
    assert tikv.ready_line is not None


def test_sigterm_exits_zero_quickly_and_marker_survives(sim):
    pd, tikv = sim.pd_tikv()
    first = http_json("GET", tikv.url("/sim/marker", tikv.status_port))[1]
    assert first["restarted"] is False and first["starts"] == 1 and first["component"] == "tikv"
    start = time.monotonic()
    tikv.popen.send_signal(signal.SIGTERM)
    assert tikv.wait_exit(5) == 0
    assert time.monotonic() - start < 2
    tikv.start()
    tikv.wait_ready()
    again = http_json("GET", tikv.url("/sim/marker", tikv.status_port))[1]
    assert again["id"] == first["id"] and again["restarted"] is True and again["starts"] == 2
    assert any(first["id"] in line and "kept marker" in line for line in tikv.stderr_lines)
    assert http_json("GET", pd.url("/pd/api/v1/stores"))[1]["count"] == 1


def test_harness_ports_are_distinct():
    ports = free_ports(20)
    assert len(set(ports)) == 20


def test_never_ready_pd_elects_no_leader(sim):
    pd = sim.pd(env={"TIDBSIM_NEVER_READY": "1"})
    wait_until(lambda: http_get(pd.url("/pd/api/v1/health"))[0] == 200, 10, "health answers")
    time.sleep(0.5)
    assert http_get(pd.url("/pd/api/v1/members"))[0] == 503
    assert pd.ready_line is None
