"""Bridge networking deploys: every container joins one user network of the engine host, listens on
its own addresses, advertises its container name, and publishes its ports on 127.0.0.1.

The test (the controller, the gates, the assertions) dials only the ports published on 127.0.0.1;
the components reach each other by container name on the engine's own bridge network, which never
leaves the machine. The simulator binds exactly what the real binaries bind (TiFlash its
flash.service_addr), so an address that does not exist inside a container fails here.
"""

import json
import subprocess

import pytest

import harness  # pylint: disable=import-error  # benchmarks/, put on sys.path by conftest.py

pytestmark = pytest.mark.integration


def _status_rows(stdout):
    """Instance -> the status table's columns, from status.yml's debug output."""
    rows = {}
    for line in stdout.splitlines():
        cells = line.strip().lstrip("-").split()
        if len(cells) >= 6 and cells[0] in harness.KINDS:
            rows[cells[1]] = cells
    return rows


def test_bridge_mode_converges_idempotently_and_every_instance_is_up(make_cluster):
    cluster = make_cluster("local", group_vars={"tidb_network_mode": "bridge"})
    first = cluster.site()
    assert first.rc == 0, first.stdout[-4000:]
    second = cluster.site()
    assert second.rc == 0 and second.changed == 0, second.stdout[-4000:]

    status = cluster.run("status")
    assert status.rc == 0, status.stdout[-3000:]
    rows = _status_rows(status.stdout)
    hosts = [host for host, _kind, _vars in cluster.instances()]
    assert sorted(rows) == sorted(hosts)
    for host, cells in rows.items():
        assert cells[2] == "%s-%s:%s" % (cluster.name, host, cells[3].split("/")[0]), cells  # the advertised name
        assert cells[4:6] == ["running", "Up"], cells

    containers = harness.docker_inspect(harness.docker_names(cluster.name))
    assert len(containers) == len(hosts)
    for container in containers:
        assert container["HostConfig"]["NetworkMode"] == cluster.name
        published = [binding for bindings in container["NetworkSettings"]["Ports"].values() for binding in bindings or []]
        assert published and {binding["HostIp"] for binding in published} == {"127.0.0.1"}
    networks = subprocess.run(["docker", "network", "ls", "--filter", "name=^%s$" % cluster.name, "--format", "{{.Name}}"],
                              check=True, capture_output=True, text=True).stdout.split()
    assert networks == [cluster.name]  # one network, however many instances created it at once

    tiflash = [c for c in containers if c["Config"]["Labels"]["tidbops.component"] == "tiflash"][0]
    config = subprocess.run(["docker", "exec", tiflash["Name"].lstrip("/"), "cat", "/etc/tiflash/tiflash.toml"],
                            check=True, capture_output=True, text=True).stdout
    assert 'service_addr = "%s:' % tiflash["Name"].lstrip("/") in config

    gone = cluster.destroy()
    assert gone is not None and gone.rc == 0, json.dumps(gone.recap if gone else None)
    assert not harness.docker_names(cluster.name)
    assert subprocess.run(["docker", "network", "inspect", cluster.name], capture_output=True, check=False).returncode != 0
