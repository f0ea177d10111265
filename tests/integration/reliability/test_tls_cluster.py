"""TLS between components (tidb_tls_enabled): a cluster deployed with it converges and re-runs with
nothing changed; every HTTP port of PD, TiKV, TiDB, TiFlash and TiCDC refuses plain HTTP and answers
HTTPS with the client certificate the controller made; PD refuses HTTPS without one; curl with the
client certificate gets 200 from PD; switching TLS off with site.yml is refused before anything
changes; playbooks/tls.yml switches it off and on again, keeping the data (last, it restarts the cluster).

The cluster has no TiCI (nor MinIO, which only runs with it): TiCI has no TLS settings and the model
refuses the combination (test_tls_certificates.py in the unit tests).
"""

import base64
import http.client
import json
import os
import socket
import ssl
import stat
import subprocess
import urllib.error
import urllib.request

import pytest

import harness  # pylint: disable=import-error  # benchmarks/, put on sys.path by conftest.py

pytestmark = pytest.mark.integration

GROUPS = ("pd_servers", "tikv_servers", "tidb_servers", "tiflash_servers", "cdc_servers")
TLS_VARS = {"tidb_tls_enabled": True, "tici_enabled": False}
# (kind, port variable, path): the HTTP API each gate reads.
HTTP_PORTS = (("pd", "client_port", "/pd/api/v1/health"), ("tikv", "status_port", "/status"), ("tidb", "status_port", "/status"),
              ("tiflash", "flash_proxy_status_port", "/tiflash/readyz"), ("ticdc", "port", "/status"))


@pytest.fixture(scope="module")
def tls_cluster(make_module_cluster):
    cluster = make_module_cluster("local", groups=GROUPS, group_vars=TLS_VARS)
    first = cluster.site()
    second = cluster.site() if first.rc == 0 else None
    return cluster, first, second


def _tls_dir(cluster):
    return cluster.state_dir / "tls"


def _ports(cluster):
    return [(kind, harness_vars[port], path) for kind, port, path in HTTP_PORTS for _host, _kind, harness_vars in cluster.instances(kind)]


def test_tls_cluster_converges_and_reruns_unchanged(tls_cluster):
    _cluster, first, second = tls_cluster
    assert first.rc == 0, f"site.yml failed with TLS:\n{first.stdout[-4000:]}"
    assert set(first.gate_ends()) == {"pd", "tikv", "tidb", "tiflash", "ticdc"}, sorted(first.gate_ends())
    assert second.rc == 0 and second.changed == 0, f"the second run changed {second.changed}:\n{second.stdout[-3000:]}"


def test_certificates_on_the_controller(tls_cluster):
    cluster, first, _second = tls_cluster
    assert first.rc == 0
    tls = _tls_dir(cluster)
    assert stat.S_IMODE(os.stat(tls).st_mode) == 0o700
    for name in ("ca.pem", "client.pem") + tuple("instances/%s.pem" % host for host, _k, _v in cluster.instances()):
        assert stat.S_IMODE(os.stat(tls / name).st_mode) == 0o600, name
    subject = subprocess.run(["openssl", "x509", "-in", str(tls / "client.crt"), "-noout", "-subject"], check=True,
                             capture_output=True, text=True).stdout
    assert f"CN = {cluster.name}-client" in subject


def _plain(port, path):
    """What a plain HTTP request gets: ('status', code, body) or ('closed', error)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:  # nosec: loopback
            return ("status", reply.status, reply.read()[:200])
    except urllib.error.HTTPError as error:
        return ("status", error.code, error.read()[:200])
    except (urllib.error.URLError, ConnectionError, socket.timeout, http.client.HTTPException) as error:
        return ("closed", repr(error))


def test_plain_http_is_refused_everywhere(tls_cluster):
    cluster, first, _second = tls_cluster
    assert first.rc == 0
    for kind, port, path in _ports(cluster):
        answer = _plain(port, path)
        # Go's servers answer a plain request on a TLS port with 400 "Client sent an HTTP request to an
        # HTTPS server"; others close the connection. Never a 2xx.
        assert answer[0] == "closed" or answer[1] == 400, f"{kind} on {port} answered plain HTTP: {answer}"


def test_https_with_the_client_certificate_and_pd_refuses_without(tls_cluster):
    """Every HTTP port answers HTTPS with the client certificate. PD requires one whenever its CA is
    set (its etcd's client TLS); TiKV's and TiDB's status ports and TiCDC's API ask for one only when
    allowed common names are configured (cert-allowed-cn, cluster-verify-cn, TiCDC's mtls), as in TiUP,
    so they are not checked for that here."""
    cluster, first, _second = tls_cluster
    assert first.rc == 0
    tls = _tls_dir(cluster)
    no_cert = ssl.create_default_context(cafile=str(tls / "ca.crt"))
    with_cert = ssl.create_default_context(cafile=str(tls / "ca.crt"))
    with_cert.load_cert_chain(str(tls / "client.crt"), str(tls / "client.pem"))
    for kind, port, path in _ports(cluster):
        with urllib.request.urlopen(f"https://localhost:{port}{path}", timeout=5, context=with_cert) as reply:  # nosec: loopback
            assert reply.status == 200, (kind, port)
        if kind == "pd":
            with pytest.raises((ssl.SSLError, ConnectionError, urllib.error.URLError)):
                urllib.request.urlopen(f"https://127.0.0.1:{port}{path}", timeout=5, context=no_cert).read()  # nosec: loopback


def test_curl_with_the_client_certificate(tls_cluster):
    """As a user would, with the files the controller keeps: the issue's own check."""
    cluster, first, _second = tls_cluster
    assert first.rc == 0
    tls = _tls_dir(cluster)
    _host, _kind, pd_vars = cluster.instances("pd")[0]
    url = f"https://127.0.0.1:{pd_vars['client_port']}/pd/api/v1/health"
    base = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "--cacert", str(tls / "ca.crt")]
    good = subprocess.run(base + ["--cert", str(tls / "client.crt"), "--key", str(tls / "client.pem"), url],
                          capture_output=True, text=True, check=False)
    assert good.returncode == 0 and good.stdout == "200", (good.stdout, good.stderr)
    bad = subprocess.run(base + [url], capture_output=True, text=True, check=False)
    assert bad.returncode != 0 or bad.stdout != "200", "PD answered HTTPS without a client certificate"


def test_no_private_key_in_engine_metadata(tls_cluster):
    cluster, first, _second = tls_cluster
    assert first.rc == 0
    keys = [path.read_text() for path in (_tls_dir(cluster) / "instances").glob("*.pem")]
    bodies = [line for key in keys for line in key.splitlines() if line and not line.startswith("-----")]
    infos = harness.docker_inspect(harness.docker_names(cluster.name))
    assert infos and all(info["Config"]["Labels"].get("tidbops.tls") == "on" for info in infos)
    text = repr(infos)
    assert not [line for line in bodies if line in text], "a private key line is in docker inspect"


def test_a_config_change_rolls_over_tls(tls_cluster):
    """The rolling path's modules (roll_plan, instance_drain, the gates) work over TLS: a changed TiKV
    setting replaces TiKV, leaders moved away first, and nothing else."""
    cluster, first, _second = tls_cluster
    assert first.rc == 0
    started = {info["Name"]: info["State"]["StartedAt"] for info in harness.docker_inspect(harness.docker_names(cluster.name))}
    server_configs = dict(cluster.group_vars["server_configs"])
    server_configs["tikv"] = dict(server_configs["tikv"], **{"log.level": "warn"})
    run = cluster.site({"server_configs": server_configs})
    assert run.rc == 0, run.stdout[-3000:]
    assert "Rolling one at a time, in this order: " in run.stdout
    after = {info["Name"]: info["State"]["StartedAt"] for info in harness.docker_inspect(harness.docker_names(cluster.name))}
    assert [name for name in after if after[name] != started[name]] == [f"/{cluster.name}-tikv0"]


def test_switching_tls_off_is_refused_before_any_change(tls_cluster):
    cluster, first, _second = tls_cluster
    assert first.rc == 0
    before = {info["Name"]: (info["Id"], info["State"]["StartedAt"]) for info in harness.docker_inspect(harness.docker_names(cluster.name))}
    run = cluster.site({"tidb_tls_enabled": False})
    assert run.rc != 0 and "Switch it with playbooks/tls.yml" in run.stdout, run.stdout[-3000:]
    assert run.changed == 0, "something changed before the refusal"
    after = {info["Name"]: (info["Id"], info["State"]["StartedAt"]) for info in harness.docker_inspect(harness.docker_names(cluster.name))}
    assert after == before


def _https_json(cluster, port, path, body=None):
    tls = _tls_dir(cluster)
    context = ssl.create_default_context(cafile=str(tls / "ca.crt"))
    context.load_cert_chain(str(tls / "client.crt"), str(tls / "client.pem"))
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(f"https://localhost:{port}{path}", data=data),  # nosec: loopback
                                timeout=10, context=context) as reply:
        return json.loads(reply.read())


def _plain_json(port, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data), timeout=10) as reply:  # nosec: loopback
        return json.loads(reply.read())


def _pd_view(read, port):
    """(peer URL schemes of PD's etcd members, {store id: state}, the marker key's value or None)."""
    members = read(port, "/v3/cluster/member/list", {})["members"]
    stores = {s["store"]["id"]: s["store"]["state_name"] for s in read(port, "/pd/api/v1/stores")["stores"]}
    kvs = read(port, "/v3/kv/range", {"key": base64.b64encode(b"/tidbops-test/tls-marker").decode()}).get("kvs") or []
    marker = base64.b64decode(kvs[0]["value"]).decode() if kvs else None
    return sorted({url.split("://")[0] for m in members for url in m["peerURLs"]}), stores, marker


def _containers(cluster):
    return {info["Name"]: (info["Id"], info["Config"]["Labels"].get("tidbops.tls"))
            for info in harness.docker_inspect(harness.docker_names(cluster.name))}


def test_tls_playbook_switches_tls_off_and_on_keeping_the_data(tls_cluster):
    """TiUP's `tiup cluster tls` as playbooks/tls.yml: a dry run changes nothing; the switch stops the
    cluster, starts it with the other setting and rewrites PD's member peer URLs; PD's etcd data and
    the stores (same IDs) survive both ways; a second run changes nothing. Last in this file: it
    restarts the shared cluster."""
    cluster, first, _second = tls_cluster
    assert first.rc == 0
    pd_port = cluster.instances("pd")[0][2]["client_port"]
    _https_json(cluster, pd_port, "/v3/kv/put", {"key": base64.b64encode(b"/tidbops-test/tls-marker").decode(),
                                                 "value": base64.b64encode(b"kept").decode()})
    schemes, stores, marker = _pd_view(lambda port, path, body=None: _https_json(cluster, port, path, body), pd_port)
    assert schemes == ["https"] and marker == "kept" and set(stores.values()) == {"Up"}, (schemes, stores, marker)
    before = _containers(cluster)

    dry = cluster.run("tls", {"tidb_tls_enabled": False}, args=("--check", "--diff"))
    assert dry.rc == 0 and dry.changed > 0, dry.stdout[-3000:]
    assert _containers(cluster) == before, "the dry run changed a container"

    off = cluster.run("tls", {"tidb_tls_enabled": False})
    assert off.rc == 0, off.stdout[-4000:]
    assert set(off.gate_ends()) >= {"pd", "tikv", "tidb", "tiflash", "ticdc"}, sorted(off.gate_ends())
    assert {label for _id, label in _containers(cluster).values()} == {"off"}
    assert _pd_view(_plain_json, pd_port) == (["http"], stores, "kept")
    for kind, port, path in _ports(cluster):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:  # nosec: loopback
            assert reply.status == 200, (kind, port)

    on = cluster.run("tls", {"tidb_tls_enabled": True})
    assert on.rc == 0, on.stdout[-4000:]
    assert _pd_view(lambda port, path, body=None: _https_json(cluster, port, path, body), pd_port) == (["https"], stores, "kept")
    assert {label for _id, label in _containers(cluster).values()} == {"on"}
    for kind, port, path in _ports(cluster):
        answer = _plain(port, path)
        assert answer[0] == "closed" or answer[1] == 400, (kind, port, answer)

    again = cluster.run("tls", {"tidb_tls_enabled": True})
    assert again.rc == 0 and again.changed == 0, f"a second tls.yml changed {again.changed}:\n{again.stdout[-3000:]}"
