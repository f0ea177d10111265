"""A component that never becomes ready fails site.yml at its own gate, in time, with a useful message.

One cluster walks the deploy order: case k makes only component k never ready (TIDBSIM_NEVER_READY),
so the components before it are already up from earlier cases and the run stops at k's gate. k's
containers are removed before and after its case, so it starts with the fault and later cases
start it healthy.
"""

import re
import subprocess

import pytest

import harness  # pylint: disable=import-error  # benchmarks/, put on sys.path by conftest.py

pytestmark = pytest.mark.integration

GATE_TIMEOUT = 8
SLACK = 5
# The order of site.yml's gates: MinIO starts with TiKV and is gated while TiDB boots; TiCDC starts
# with TiDB and is gated while TiFlash boots.
ORDER = ["pd", "tikv", "minio", "tidb", "tici_meta", "tici_worker", "ticdc", "tiflash"]


@pytest.fixture(scope="module")
def cluster(make_module_cluster):
    return make_module_cluster("local")


def _remove(cluster, kind):
    subprocess.run(["docker", "rm", "-f", *cluster.containers_of(kind)], check=False, capture_output=True)


@pytest.mark.parametrize("kind", ORDER)
def test_never_ready_fails_at_its_gate(cluster, kind):
    _remove(cluster, kind)  # an earlier case may have started it healthy: start it with the fault
    run = cluster.site({"tidb_gate_timeout": GATE_TIMEOUT, "tidb_container_env": harness.sim_env(kind, never_ready=1)})
    try:
        assert run.rc != 0, f"site.yml succeeded although {kind} never became ready:\n{run.stdout[-3000:]}"
        failed = run.failed
        assert failed, f"no failed task recorded:\n{run.stdout[-3000:]}"
        failure = failed[0]
        assert failure.get("component") == kind, f"first failure is not {kind}'s gate: {failure}"
        gate_start = max(e["t"] for e in run.events if e["event"] == "task_start" and e.get("component") == kind)
        took = failure["t"] - gate_start
        assert took <= GATE_TIMEOUT + SLACK, f"{kind} gate failed after {took:.1f} s (timeout {GATE_TIMEOUT} s)"
        # Everything before it passed its gate.
        passed = set(run.gate_ends())
        assert set(ORDER[:ORDER.index(kind)]) <= passed, f"earlier gates did not all pass: {sorted(passed)}"

        msg = failure["msg"]
        print(f"{kind}: failed {took:.1f} s after its gate started: {msg}")  # shown with -rA: the matrix in the README
        names = {kind, kind.replace("_", "-"), kind.replace("_", " ")}
        assert any(name in msg.lower() for name in names), f"message does not name {kind}: {msg}"
        ports = [str(port) for _host, _kind, host_vars in cluster.instances(kind) for port in host_vars.values()]
        named = [port for port in ports if re.search(rf":{port}\b", msg)]
        assert named, f"message names no {kind} instance (ports {ports}): {msg}"
        # The last observation follows the instance: "<instance>: <what was seen>".
        assert re.search(rf":{named[0]}\S*: \S", msg), f"message has no last observation after the instance: {msg}"
    finally:
        _remove(cluster, kind)  # the next cases need it healthy: it starts afresh (data volumes stay)
