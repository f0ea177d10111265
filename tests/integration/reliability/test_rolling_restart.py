"""A TiKV config change restarts the TiKV instances one at a time; nothing else restarts. A hand edit
of a rendered file is undone and restarts only that instance.

HA topology (3 PD, 3 TiKV, TiDB) without TiCI. TiKV starts with a 2 s simulator delay, so an
instance restarted only after the previous one passed its gate starts at least 2 s after it. The same
cluster then shows that playbooks/tls.yml refuses to switch TLS with three PD members.
"""

import pytest

import harness  # pylint: disable=import-error  # benchmarks/, put on sys.path by conftest.py

pytestmark = pytest.mark.integration

TIKV_DELAY = 2.0


def _started_at(cluster):
    """container name -> State.StartedAt as epoch seconds."""
    return {info["Name"].lstrip("/"): harness.started_epoch(info["State"]["StartedAt"])
            for info in harness.docker_inspect(harness.docker_names(cluster.name))}


EXTRA = {"tidb_gate_timeout": 120, "tidb_container_env": harness.sim_env("tikv", start_delay=TIKV_DELAY)}


@pytest.fixture(scope="module")
def ha_cluster(make_module_cluster):
    return make_module_cluster("local-ha", groups=("pd_servers", "tikv_servers", "tidb_servers"), group_vars={"tici_enabled": False})


def test_tikv_config_change_rolls_one_instance_at_a_time(ha_cluster):
    cluster, extra = ha_cluster, EXTRA
    first = cluster.site(extra)
    assert first.rc == 0, f"first converge failed:\n{first.stdout[-4000:]}"
    before = _started_at(cluster)

    second = cluster.site(dict(extra, server_configs={"tikv": {"log": {"level": "warn"}}}))
    assert second.rc == 0, f"converge after the TiKV config change failed:\n{second.stdout[-4000:]}"
    after = _started_at(cluster)

    tikv = cluster.containers_of("tikv")
    others = sorted(set(after) - set(tikv))
    assert [name for name in others if after[name] != before[name]] == [], "a non-TiKV container restarted"
    unchanged = [name for name in tikv if after[name] == before[name]]
    assert not unchanged, f"TiKV instances not restarted after a config change: {unchanged}"
    instants = sorted(after[name] for name in tikv)
    gaps = [b - a for a, b in zip(instants, instants[1:])]
    assert all(gap >= TIKV_DELAY for gap in gaps), (
        f"TiKV restarts overlap: start instants {instants}, gaps {gaps} (each must wait >= {TIKV_DELAY} s for the previous gate)")

    # A rendered file edited by hand on the engine host is rendered again, and only its container
    # restarts (the spec is unchanged, so nothing is replaced).
    config = cluster.config_root / cluster.name / "tikv1" / "tikv.toml"
    rendered = config.read_text(encoding="utf-8")
    config.write_text(rendered + "\n# edited by hand\n[log]\nlevel = \"debug\"\n", encoding="utf-8")
    third = cluster.site(dict(extra, server_configs={"tikv": {"log": {"level": "warn"}}}))
    assert third.rc == 0, f"converge after a hand edit failed:\n{third.stdout[-4000:]}"
    assert config.read_text(encoding="utf-8") == rendered, "the hand-edited file was not rendered again"
    final = _started_at(cluster)
    restarted = sorted(name for name in final if final[name] != after[name])
    assert restarted == [cluster.container("tikv1")], f"expected only tikv1 to restart, restarted: {restarted}"


def test_tls_switch_with_three_pd_members_is_refused_before_anything_stops(ha_cluster):
    """As TiUP's checkTLSEnv: several PD members restarted with the other scheme would dial each
    other's recorded peer URLs with the old one and never regain a quorum."""
    cluster = ha_cluster
    before = {info["Name"]: (info["Id"], info["State"]["StartedAt"]) for info in harness.docker_inspect(harness.docker_names(cluster.name))}
    assert len(before) == len(cluster.instances()), sorted(before)  # deployed by the test above
    run = cluster.run("tls", dict(EXTRA, tidb_tls_enabled=True))
    assert run.rc != 0 and "needs exactly one PD member; the inventory has 3 (pd0, pd1, pd2)" in run.stdout, run.stdout[-3000:]
    # The preflight has issued the certificates on the controller by then; on the engine nothing changed.
    after = {info["Name"]: (info["Id"], info["State"]["StartedAt"]) for info in harness.docker_inspect(harness.docker_names(cluster.name))}
    assert after == before
