"""Rolling upgrade and restart on inventories/local-ha (3 PD, 3 TiKV, 2 TiDB, 2 TiCDC and one of each
other component), watched from outside: an independent poller of the PD and TiDB APIs, and Docker's
own container events (benchmarks/rolling.py).

One cluster, in order: bad input fails before any change; an upgrade from one simulator image to
another (a different image ID) replaces every container while the cluster keeps serving; a rolling
restart of TiKV restarts the three TiKVs and nothing else; an upgrade killed mid-way (SIGKILL) and
run again completes and leaves no evict-leader scheduler behind.
"""

import base64
import json
import os
import signal
import subprocess
import time
import urllib.request

import pytest

import harness  # pylint: disable=import-error  # benchmarks/, put on sys.path by conftest.py
import rolling  # pylint: disable=import-error

pytestmark = pytest.mark.integration


def _tags():
    base = harness.simulator_vars()["tidb_version"]
    return f"{base}-up1", f"{base}-up2"


def _evictions(cluster):
    """The stores PD's evict-leader-scheduler holds, and this collection's records of them in PD's etcd."""
    schedulers = rolling.pd_json(cluster, "/pd/api/v1/schedulers")
    pd_urls, _tidb = rolling.cluster_urls(cluster)
    prefix = b"/tidbops/evict-leader/"
    body = json.dumps({"key": base64.b64encode(prefix).decode(), "range_end": base64.b64encode(prefix[:-1] + b"0").decode()}).encode()
    marked = None
    for url in pd_urls:  # one PD may be restarting
        try:
            with urllib.request.urlopen(urllib.request.Request(url + "/v3/kv/range", data=body, method="POST"), timeout=5) as response:
                marked = json.loads(response.read()).get("kvs") or []
            break
        except OSError:
            continue
    assert marked is not None, "no PD answered /v3/kv/range"
    return [name for name in schedulers if name.startswith("evict-leader")], marked


def _image_ids(cluster):
    return {info["Name"].lstrip("/"): info["Image"] for info in harness.docker_inspect(harness.docker_names(cluster.name))}


@pytest.fixture(scope="module")
def ha_cluster(make_module_cluster):
    up1, up2 = _tags()
    images = {tag: rolling.derive_sim_image("docker", tag) for tag in (up1, up2)}
    cluster = make_module_cluster("local-ha")
    first = cluster.site({"tidb_leader_transfer_timeout": 120})
    assert first.rc == 0, f"first converge failed:\n{first.stdout[-4000:]}"
    yield cluster, images
    for reference in images.values():
        subprocess.run(["docker", "rmi", reference], check=False, capture_output=True)


def test_bad_input_fails_before_any_change(ha_cluster):
    cluster, _images = ha_cluster
    before = _image_ids(cluster)
    recorder = rolling.EngineEvents(cluster.name).start()
    unknown = cluster.run("restart", {"tidb_restart_components": ["tikv", "tikvv"]})
    assert unknown.rc != 0 and "tidb_restart_components: unknown component 'tikvv'" in unknown.stdout, unknown.stdout[-3000:]
    missing = cluster.run("upgrade", {"tidb_version": "no-such-version"})
    assert missing.rc != 0, missing.stdout[-3000:]
    assert "Images not found" in missing.stdout and "localhost/tidbsim:no-such-version (from tidb_images.pd with tidb_version)" \
        in missing.stdout, missing.stdout[-3000:]
    assert rolling.restarted(recorder.stop()) == []
    # A PD down: one more restarting PD would lose the quorum.
    pd2 = cluster.container("pd2")
    subprocess.run(["docker", "stop", "-t", "30", pd2], check=True, capture_output=True)
    try:
        recorder = rolling.EngineEvents(cluster.name).start()
        up1, _up2 = _tags()
        blocked = cluster.run("upgrade", {"tidb_version": up1})
        assert blocked.rc != 0, blocked.stdout[-3000:]
        assert "PD pd2 unhealthy: with one more member restarting, 1 of 3 would be healthy" in blocked.stdout, blocked.stdout[-3000:]
        assert rolling.restarted(recorder.stop()) == []
        assert _image_ids(cluster) == before
    finally:
        subprocess.run(["docker", "start", pd2], check=True, capture_output=True)
    healed = cluster.site()
    assert healed.rc == 0, healed.stdout[-3000:]


def test_upgrade_replaces_every_container_while_the_cluster_serves(ha_cluster):
    cluster, images = ha_cluster
    up1, _up2 = _tags()
    run, samples, events = rolling.watched(cluster, "upgrade", {"tidb_version": up1, "tidb_leader_transfer_timeout": 120})
    assert run.rc == 0, f"upgrade failed:\n{run.stdout[-5000:]}"
    target = rolling.image_id("docker", images[up1])
    assert set(_image_ids(cluster).values()) == {target}, _image_ids(cluster)
    assert rolling.restarted(events) == harness.docker_names(cluster.name)
    assert len(samples) > 50, f"the poller saw too little: {len(samples)} samples"
    assert rolling.verdicts(cluster, samples, events) == []
    assert _evictions(cluster) == ([], [])
    # Again: nothing to replace.
    again = cluster.run("upgrade", {"tidb_version": up1})
    assert again.rc == 0 and again.changed == 0, again.stdout[-3000:]


def test_rolling_restart_of_tikv_restarts_only_tikv(ha_cluster):
    cluster, _images = ha_cluster
    up1, _up2 = _tags()
    run, samples, events = rolling.watched(cluster, "restart", {"tidb_version": up1, "tidb_restart_components": ["tikv"]})
    assert run.rc == 0, f"restart failed:\n{run.stdout[-5000:]}"
    assert rolling.restarted(events) == sorted(cluster.containers_of("tikv"))
    assert rolling.verdicts(cluster, samples, events) == []
    assert _evictions(cluster) == ([], [])


def test_a_killed_upgrade_completes_when_run_again(ha_cluster):
    cluster, images = ha_cluster
    _up1, up2 = _tags()
    extra = {"tidb_version": up2, "tidb_leader_transfer_timeout": 120}
    proc, _timeline, _started = cluster.start("upgrade", extra)
    deadline = time.monotonic() + 300
    # Kill it while a TiKV is being drained: PD holds an eviction this collection recorded.
    while time.monotonic() < deadline and proc.poll() is None:
        schedulers, marked = _evictions(cluster)
        if schedulers and marked:
            break
        time.sleep(0.1)
    assert proc.poll() is None, "the upgrade ended before it evicted a TiKV's leaders"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert _evictions(cluster)[1], "the killed run left no record of its eviction"
    again = cluster.run("upgrade", extra)
    assert again.rc == 0, f"re-run failed:\n{again.stdout[-5000:]}"
    assert _evictions(cluster) == ([], [])
    assert set(_image_ids(cluster).values()) == {rolling.image_id("docker", images[up2])}
