"""A deploy killed after TiKV is up converges on the next run, keeping the data written before the kill."""

import json
import os
import signal
import time

import pytest

import harness  # pylint: disable=import-error  # benchmarks/, put on sys.path by conftest.py

pytestmark = pytest.mark.integration

# TiDB takes a few seconds to start, so the kill lands in the middle of the TiDB step.
EXTRA = {"tidb_gate_timeout": 120, "tidb_container_env": harness.sim_env("tidb", start_delay=3)}


def _markers(cluster):
    """PD and TiKV data markers, by inventory host (PD serves it on the client port, TiKV on status)."""
    port_var = {"pd": "client_port", "tikv": "status_port"}
    return {host: harness.sim_marker(host_vars[port_var[kind]])
            for host, kind, host_vars in cluster.instances() if kind in port_var}


def _wait_for_tikv_gate(proc, timeline, timeout=300):
    """Follow the timeline until TiKV's gate returned ok; fail with what was seen last."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    events = []
    while time.monotonic() < deadline:
        events = harness.read_events(timeline)
        if any(e["event"] == "task_end" and e.get("component") == "tikv" and e["status"] == "ok" for e in events):
            return events
        if proc.poll() is not None:
            break
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    raise AssertionError(f"TiKV gate never passed (rc {proc.poll()}); last events: {json.dumps(events[-3:])}")


def test_killed_deploy_resumes_with_its_data(make_cluster):
    cluster = make_cluster("local")
    proc, timeline = cluster.start("site", EXTRA)[:2]
    try:
        _wait_for_tikv_gate(proc, timeline)
        markers = _markers(cluster)
        assert proc.poll() is None, "site.yml ended before it could be killed"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    assert not any(e["event"] == "recap" for e in harness.read_events(timeline)), "the killed run reached its recap"

    run = cluster.site(EXTRA)
    assert run.rc == 0, f"the re-run did not converge:\n{run.stdout[-4000:]}"
    assert set(run.gate_ends()) == set(harness.KINDS), f"not every gate passed: {sorted(run.gate_ends())}"
    after = _markers(cluster)
    for host, marker in markers.items():
        assert after[host]["id"] == marker["id"], f"{host} lost its data: marker {marker['id']} became {after[host]['id']}"
