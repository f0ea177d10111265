"""TLS: each component serves and dials TLS exactly when its real TLS keys are set (see the README)."""

import datetime
import ipaddress
import json
import os
import socket
import ssl
import time

import pytest

from tidbsim.testing import DEFAULT_TIKV_CONFIG, free_ports, http_get, http_json, wait_for_status, wait_until

cryptography = pytest.importorskip("cryptography")
# pylint: disable=wrong-import-position,wrong-import-order
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

ROLES = ("pd", "tikv", "tidb", "cdc", "tiflash", "tidb-client")


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write(path, data):
    with open(path, "wb") as handle:
        handle.write(data)
    return str(path)


def _ca(directory, label):
    key = _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(f"tidbsim {label} CA")).issuer_name(_name(f"tidbsim {label} CA"))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    path = _write(os.path.join(directory, f"{label}-ca.crt"), cert.public_bytes(serialization.Encoding.PEM))
    return key, cert, path


def _leaf(directory, ca_key, ca_cert, common_name, label, *, pkcs8):  # pylint: disable=too-many-arguments
    """A certificate as TiUP makes one (pkg/cluster/task/tls.go): CN = role, SANs localhost and 127.0.0.1."""
    key = _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    key_format = serialization.PrivateFormat.PKCS8 if pkcs8 else serialization.PrivateFormat.TraditionalOpenSSL
    return {"cert": _write(os.path.join(directory, f"{label}.crt"), cert.public_bytes(serialization.Encoding.PEM)),
            "key": _write(os.path.join(directory, f"{label}.pem"),
                          key.private_bytes(serialization.Encoding.PEM, key_format, serialization.NoEncryption()))}


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """The CA, a certificate per role (PKCS#8 keys for PD and TiCDC, PKCS#1 for the others), a client
    certificate with CN tidb-client, and the same client from another CA."""
    directory = str(tmp_path_factory.mktemp("tls"))
    ca_key, ca_cert, ca_path = _ca(directory, "test")
    files = {"dir": directory, "ca": ca_path}
    for role in ROLES:
        files[role] = dict(_leaf(directory, ca_key, ca_cert, role, role, pkcs8=role in ("pd", "cdc")), ca=ca_path)
    other_key, other_cert, other_ca = _ca(directory, "other")
    files["other"] = dict(_leaf(directory, other_key, other_cert, "tidb-client", "other-client", pkcs8=False), ca=other_ca)
    files["stray-key"] = files["other"]["key"]  # a key that matches none of the test CA's certificates
    return files


def context(certs, role=None, ca=None, tls12=False):
    """A client context trusting the test CA (or `ca`), presenting `role`'s certificate (or none)."""
    ctx = ssl.create_default_context(cafile=ca or certs["ca"])
    if role:
        ctx.load_cert_chain(certs[role]["cert"], certs[role]["key"])
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def handshake_error(port, ctx):
    """The error of a TLS 1.2 handshake (where a refused client certificate fails the handshake
    itself), or None when it succeeds and the server answers a request."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
                sock.sendall(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                if not sock.recv(64):
                    return "closed without an answer"
        except (ssl.SSLError, OSError) as exc:
            return str(exc)
    return None


def refused_plain(url):
    """A plain-HTTP request to a TLS port gets no HTTP answer (the connection is closed)."""
    status, body = http_get(url.replace("https://", "http://"), timeout=5)
    return status is None and body


def fails(url, ctx):
    status, _body = http_get(url, timeout=5, context=ctx)
    return status is None


# ---------------------------------------------------------------- PD


@pytest.fixture(scope="module")
def tls_cluster(module_sim, certs):
    """One TLS PD member and a TLS TiKV registered in it."""
    pd = module_sim.pd(tls=certs["pd"])
    tikv = module_sim.tikv(pd, tls=certs["tikv"])
    module_sim.wait_ready(pd, tikv, timeout=60)
    return pd, tikv


def test_pd_serves_https_with_a_client_certificate(tls_cluster, certs):
    pd, _tikv = tls_cluster
    status, health = http_json("GET", pd.url("/pd/api/v1/health"), context=context(certs, "tidb-client"))
    assert status == 200 and [m["health"] for m in health] == [True]
    assert health[0]["client_urls"] == [pd.url()]
    # The /v3 gateway of its etcd is on the same port, under the same TLS.
    status, members = http_json("POST", pd.url("/v3/cluster/member/list"), {}, context=context(certs, "tidb-client"))
    assert status == 200 and members["members"][0]["peerURLs"][0].startswith("https://")


def test_pd_refuses_plain_http_no_client_certificate_and_another_ca(tls_cluster, certs):
    pd, _tikv = tls_cluster
    assert refused_plain(pd.url("/pd/api/v1/health"))
    assert fails(pd.url("/pd/api/v1/health"), context(certs))  # no client certificate
    assert handshake_error(pd.port, context(certs, tls12=True))
    other = context(certs, "other")  # trusts the test CA, presents a certificate of another CA
    other.load_verify_locations(certs["ca"])
    assert fails(pd.url("/pd/api/v1/health"), other)
    assert handshake_error(pd.port, context(certs, "other", ca=certs["ca"], tls12=True))
    # A client that does not trust PD's CA refuses PD's certificate.
    assert fails(pd.url("/pd/api/v1/health"), context(certs, "other", ca=certs["other"]["ca"]))
    assert any("rejected connection" in line for line in pd.stderr_lines)


def test_pd_three_members_peer_over_tls_and_elect_a_leader(sim, certs):
    pds = sim.pd(3, tls=certs["pd"])
    sim.wait_ready(pds, timeout=60)
    ctx = context(certs, "tidb-client")
    leaders = set()
    for pd in pds:
        status, body = http_json("GET", pd.url("/pd/api/v1/members"), context=ctx)
        assert status == 200 and len(body["members"]) == 3
        assert all(m["peer_urls"][0].startswith("https://") for m in body["members"])
        leaders.add(body["leader"]["name"])
    assert len(leaders) == 1
    # Health asks every member's /health over https (PD's own client certificate).
    status, health = http_json("GET", pds[1].url("/pd/api/v1/health"), context=ctx)
    assert status == 200 and [m["health"] for m in health] == [True] * 3
    # A follower forwards to the leader over https.
    follower = next(pd for pd in pds if pd.name not in leaders)
    status, body = http_json("GET", follower.url("/pd/api/v1/stores"), context=ctx)
    assert status == 500 and "ErrNotBootstrapped" in body
    # etcd's peers really talk TLS.
    with open(os.path.join(pds[0].data_dir, "tidbsim-etcd.log"), encoding="utf-8") as handle:
        assert "starting with peer TLS" in handle.read()


@pytest.mark.parametrize("case, message", [
    ("https-no-certs", "TLS key/cert (--cert-file, --key-file) must be provided for client url https://"),
    ("peer-https-no-certs", "KeyFile and CertFile are not presented"),
    ("missing-key", "open /nonexistent/pd.pem: no such file or directory"),
    ("mismatched-key", "tls: private key does not match public key"),
    ("cert-only", "KeyFile and CertFile must both be present[key: , cert: "),
])
def test_pd_refuses_a_bad_tls_configuration_at_start(sim, certs, case, message):
    client, peer = free_ports(2)
    pd_files = certs["pd"]
    security = {"https-no-certs": "", "peer-https-no-certs": "",
                "missing-key": f'cert-path = "{pd_files["cert"]}"\nkey-path = "/nonexistent/pd.pem"\n',
                "mismatched-key": f'cert-path = "{pd_files["cert"]}"\nkey-path = "{certs["stray-key"]}"\n',
                "cert-only": f'cert-path = "{pd_files["cert"]}"\n'}[case]
    config = os.path.join(sim.base_dir, f"pd-{case}.toml")
    with open(config, "w", encoding="utf-8") as handle:
        handle.write("[security]\n" + security)
    client_scheme = "http" if case == "peer-https-no-certs" else "https"
    proc = sim.spawn("pd-server", [f"--client-urls={client_scheme}://127.0.0.1:{client}", f"--peer-urls=https://127.0.0.1:{peer}"
                                   if case != "https-no-certs" else f"--peer-urls=http://127.0.0.1:{peer}",
                                   f"--data-dir={sim.base_dir}/pd-{case}", f"--config={config}"])
    assert proc.wait_exit(20) == 1
    assert message in proc.output


def test_pd_takes_the_tls_flags(sim, certs):
    """--cacert, --cert and --key (cmd/pd-server/main.go) do what [security] does."""
    client, peer = free_ports(2)
    files = certs["pd"]
    proc = sim.spawn("pd-server", ["--name=pd0", f"--client-urls=https://127.0.0.1:{client}", f"--peer-urls=http://127.0.0.1:{peer}",
                                   f"--data-dir={sim.base_dir}/pd-flags", f"--cacert={files['ca']}", f"--cert={files['cert']}",
                                   f"--key={files['key']}"], ports=(client, peer), name="pd0")
    proc.scheme = "https"
    proc.wait_ready(60)
    assert http_json("GET", proc.url("/pd/api/v1/leader"), context=context(certs, "tidb-client"))[0] == 200
    # An http peer URL with certificates: served in clear text, with etcd's warning.
    assert any("scheme is HTTP while key and cert files are present" in line for line in proc.stderr_lines)


# ---------------------------------------------------------------- TiKV


def test_tikv_registers_with_a_tls_pd_and_serves_https_status(tls_cluster, certs):
    pd, tikv = tls_cluster
    status, stores = http_json("GET", pd.url("/pd/api/v1/stores"), context=context(certs, "tidb-client"))
    assert status == 200 and [s["store"]["address"] for s in stores["stores"]] == [f"127.0.0.1:{tikv.port}"]
    status_url = tikv.url("/status", tikv.status_port)
    assert refused_plain(status_url)
    assert http_get(status_url, context=context(certs, "tidb-client"))[0] == 200
    # Without cert-allowed-cn TiKV's status server asks for no client certificate (tls_acceptor).
    assert http_get(status_url, context=context(certs))[0] == 200
    assert http_get(tikv.url("/metrics", tikv.status_port), context=context(certs))[0] == 200


def test_tikv_cert_allowed_cn_requires_a_certificate_and_checks_its_cn(sim, tls_cluster, certs):
    pd, _tikv = tls_cluster
    files = certs["tikv"]
    text = (DEFAULT_TIKV_CONFIG + f'[security]\nca-path = "{files["ca"]}"\ncert-path = "{files["cert"]}"\nkey-path = "{files["key"]}"\n'
            'cert-allowed-cn = ["tikv", "pd"]\n')
    tikv = sim.tikv(pd, config_text=text)
    tikv.wait_ready(60)
    base = f"https://127.0.0.1:{tikv.status_port}"
    assert fails(base + "/status", context(certs))  # FAIL_IF_NO_PEER_CERT
    assert handshake_error(tikv.status_port, context(certs, tls12=True))
    assert http_get(base + "/status", context=context(certs, "tidb-client"))[0] == 200  # /status skips check_cert
    assert http_get(base + "/ready", context=context(certs, "tidb-client")) == (403, b"certificate role error")
    assert http_get(base + "/ready", context=context(certs, "pd"))[0] == 200


def test_plain_tikv_does_not_register_with_a_tls_pd(sim, tls_cluster, certs):
    pd, _tikv = tls_cluster
    tikv = sim.tikv(pd)  # no [security]: it dials PD in clear text, which PD closes
    wait_until(lambda: any("closed connection" in line or "Connection reset" in line for line in tikv.stderr_lines), 15,
               "the failed registration in TiKV's log")
    assert tikv.ready_line is None and tikv.popen.poll() is None
    _status, stores = http_json("GET", pd.url("/pd/api/v1/stores"), context=context(certs, "tidb-client"))
    assert f"127.0.0.1:{tikv.port}" not in [s["store"]["address"] for s in stores["stores"]]


@pytest.mark.parametrize("security, message", [
    ('ca-path = "{ca}"\n', "[FATAL] invalid configuration: ca, cert and private key should be all configured."),
    ('ca-path = "{ca}"\ncert-path = "{cert}"\nkey-path = "/nonexistent/tikv.pem"\n',
     '[FATAL] invalid configuration: failed to open /nonexistent/tikv.pem to load private key: Os { code: 2, kind: NotFound,'
     ' message: "No such file or directory" }'),
    ('ca-path = "{ca}"\ncert-path = "{cert}"\nkey-path = "{stray}"\n', "tls: private key does not match public key"),
])
def test_tikv_refuses_a_bad_security_section(sim, certs, security, message):
    (pd_port,) = free_ports(1)
    text = DEFAULT_TIKV_CONFIG + "[security]\n" + security.format(ca=certs["ca"], cert=certs["tikv"]["cert"], stray=certs["stray-key"])
    tikv = sim.tikv(type("PD", (), {"port": pd_port})(), config_text=text)
    assert tikv.wait_exit(15) == 1
    assert message in tikv.output


# ---------------------------------------------------------------- TiDB


def test_tidb_over_tls(sim, tls_cluster, certs):
    pd, _tikv = tls_cluster
    tidb = sim.tidb(pd, tls=certs["tidb"])
    tidb.wait_ready(60)
    status_url = tidb.url("/status", tidb.status_port)
    assert refused_plain(status_url)
    status, body = http_json("GET", status_url, context=context(certs, "tidb-client"))
    assert status == 200 and body["version"].startswith("8.0.11-TiDB")
    # No cluster-verify-cn: the status server asks for no client certificate.
    assert http_get(status_url, context=context(certs))[0] == 200


def test_tidb_cluster_verify_cn_requires_a_matching_certificate(sim, tls_cluster, certs):
    pd, _tikv = tls_cluster
    tidb = sim.tidb(pd, tls=certs["tidb"], config_text='cluster-verify-cn = ["tidb-client"]\n')
    tidb.wait_ready(60)
    status_url = tidb.url("/status", tidb.status_port)
    assert http_get(status_url, context=context(certs, "tidb-client"))[0] == 200
    assert fails(status_url, context(certs))
    assert handshake_error(tidb.status_port, context(certs, tls12=True))
    assert fails(status_url, context(certs, "pd"))  # signed by the CA, but CN pd


def test_plain_tidb_cannot_use_a_tls_pd(sim, tls_cluster):
    pd, _tikv = tls_cluster
    tidb = sim.tidb(pd)
    wait_until(lambda: any("bootstrap" in line for line in tidb.stderr_lines), 15, "TiDB's failed PD call in its log")
    assert tidb.ready_line is None


def test_tidb_mysql_port_offers_tls_and_require_secure_transport_refuses_plain(sim, tls_cluster, certs):
    pymysql = pytest.importorskip("pymysql")
    pd, _tikv = tls_cluster
    files = certs["tidb"]
    mysql_tls = (f'ssl-ca = "{files["ca"]}"\nssl-cert = "{files["cert"]}"\nssl-key = "{files["key"]}"\n'
                 "require-secure-transport = true\n")
    tidb = sim.tidb(pd, tls=certs["tidb"], config_text=mysql_tls)
    tidb.wait_ready(60)
    # Several connections: the TLS ClientHello may come in the same read as the SSLRequest packet.
    for _attempt in range(3):
        pymysql.connect(host="127.0.0.1", port=tidb.port, user="root", password="", connect_timeout=10,
                        ssl={"ca": certs["ca"], "cert": certs["tidb-client"]["cert"], "key": certs["tidb-client"]["key"]}).close()
    connection = pymysql.connect(host="127.0.0.1", port=tidb.port, user="root", password="", connect_timeout=10,
                                 ssl={"ca": certs["ca"], "cert": certs["tidb-client"]["cert"], "key": certs["tidb-client"]["key"]})
    try:
        assert isinstance(connection._sock, ssl.SSLSocket)  # pylint: disable=protected-access
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchall() == ((1,),)
    finally:
        connection.close()
    with pytest.raises(pymysql.err.OperationalError) as error:
        pymysql.connect(host="127.0.0.1", port=tidb.port, user="root", password="", connect_timeout=5, ssl_disabled=True)
    assert error.value.args[0] == 3159 and "require_secure_transport=ON" in error.value.args[1]


def test_tidb_refuses_unreadable_cluster_files(sim, certs):
    (pd_port,) = free_ports(1)
    tidb = sim.tidb(type("PD", (), {"port": pd_port})(), config_text=f'[security]\ncluster-ssl-ca = "{certs["dir"]}/missing.crt"\n')
    assert tidb.wait_exit(15) == 1
    assert "could not read ca certificate: open " in tidb.output and "no such file or directory" in tidb.output


# ---------------------------------------------------------------- TiCDC


def test_ticdc_over_tls(sim, tls_cluster, certs):
    pd, _tikv = tls_cluster
    cdc = sim.cdc(pd, tls=certs["cdc"])
    cdc.wait_ready(60)
    url = cdc.url("/api/v2/status")
    assert refused_plain(url)
    status, body = http_json("GET", url, context=context(certs, "tidb-client"))
    assert status == 200 and body["cluster_id"] == "default"
    # Neither mtls nor cert-allowed-cn: no client certificate asked for (ToTLSConfigWithVerify).
    assert http_get(url, context=context(certs))[0] == 200
    status, captures = http_json("GET", cdc.url("/api/v2/captures"), context=context(certs, "tidb-client"))
    assert status == 200 and captures["total"] == 1


def test_ticdc_cert_allowed_cn_and_mtls_require_a_certificate(sim, tls_cluster, certs):
    pd, _tikv = tls_cluster
    cdc = sim.cdc(pd, tls=certs["cdc"], extra=["--cert-allowed-cn", "tidb-client"])
    config = os.path.join(sim.base_dir, "cdc-mtls.toml")
    with open(config, "w", encoding="utf-8") as handle:
        handle.write("[security]\nmtls = true\n")
    mtls = sim.cdc(pd, tls=certs["cdc"], extra=[f"--config={config}"])
    sim.wait_ready(cdc, mtls, timeout=60)
    url = cdc.url("/api/v2/status")
    assert http_get(url, context=context(certs, "tidb-client"))[0] == 200
    assert http_get(url, context=context(certs, "cdc"))[0] == 200  # its own CN is added to the list
    assert fails(url, context(certs))
    assert fails(url, context(certs, "pd"))
    assert fails(mtls.url("/api/v2/status"), context(certs))
    assert http_get(mtls.url("/api/v2/status"), context=context(certs, "pd"))[0] == 200


def test_ticdc_refuses_http_pd_urls_with_tls_flags(sim, certs):
    (pd_port, port) = free_ports(2)
    files = certs["cdc"]
    proc = sim.spawn("cdc", ["server", f"--pd=http://127.0.0.1:{pd_port}", f"--addr=127.0.0.1:{port}",
                             "--ca", files["ca"], "--cert", files["cert"], "--key", files["key"]])
    assert proc.wait_exit(15) == 1
    assert "Error: [CDC:ErrInvalidServerOption]invalid server option: PD endpoint scheme should be https" in proc.output


# ---------------------------------------------------------------- TiFlash

TIFLASH = """path = "{data_dir}"
listen_host = "127.0.0.1"
[flash]
service_addr = "127.0.0.1:%(service)d"
[flash.proxy]
addr = "127.0.0.1:%(proxy)d"
advertise-addr = "127.0.0.1:%(proxy)d"
status-addr = "127.0.0.1:%(status)d"
advertise-status-addr = "127.0.0.1:%(status)d"
[raft]
pd_addr = "127.0.0.1:%(pd)d"
[status]
metrics_port = %(metrics)d
"""


def test_tiflash_proxy_status_and_metrics_over_tls(sim, tls_cluster, certs):  # pylint: disable=too-many-locals
    pd, _tikv = tls_cluster
    service, proxy, status, metrics = free_ports(4)
    files = certs["tiflash"]
    text = (TIFLASH % {"service": service, "proxy": proxy, "status": status, "pd": pd.port, "metrics": metrics}
            + f'[security]\nca_path = "{files["ca"]}"\ncert_path = "{files["cert"]}"\nkey_path = "{files["key"]}"\n')
    proxy_text = DEFAULT_TIKV_CONFIG + f'[security]\nca-path = "{files["ca"]}"\ncert-path = "{files["cert"]}"\nkey-path = "{files["key"]}"\n'
    tiflash = sim.tiflash(text, proxy_config_text=proxy_text)
    tiflash.wait_ready(60)
    status_url = f"https://127.0.0.1:{status}/tiflash/store-status"
    assert refused_plain(status_url)
    assert http_get(status_url, context=context(certs, "tidb-client")) == (200, b"Running")
    assert http_get(status_url, context=context(certs))[0] == 200  # the proxy is TiKV: no cert-allowed-cn, no client cert asked
    metrics_url = f"https://127.0.0.1:{metrics}/metrics"
    assert http_get(metrics_url, context=context(certs, "tidb-client"))[0] == 200
    assert fails(metrics_url, context(certs))  # VERIFY_STRICT
    status_code, stores = http_json("GET", pd.url("/pd/api/v1/stores"), context=context(certs, "tidb-client"))
    assert status_code == 200 and f"127.0.0.1:{service}" in [s["store"]["address"] for s in stores["stores"]]


@pytest.mark.parametrize("where, message", [
    ("tiflash", "Code: 318. DB::Exception: ca_path, cert_path, key_path must be set at the same time."),
    ("proxy", "[FATAL] invalid configuration: ca, cert and private key should be all configured."),
])
def test_tiflash_refuses_a_partial_security_section(sim, certs, where, message):
    service, proxy, status, metrics, pd_port = free_ports(5)
    text = TIFLASH % {"service": service, "proxy": proxy, "status": status, "pd": pd_port, "metrics": metrics}
    proxy_text = DEFAULT_TIKV_CONFIG
    if where == "tiflash":
        text += f'[security]\nca_path = "{certs["ca"]}"\n'
    else:
        proxy_text += f'[security]\nca-path = "{certs["ca"]}"\n'
    tiflash = sim.tiflash(text, proxy_config_text=proxy_text)
    assert tiflash.wait_exit(15) == 1
    assert message in tiflash.output


# ---------------------------------------------------------------- TiCI


def test_tici_logs_that_a_tls_pd_closes_its_connections(sim, tls_cluster):
    pd, _tikv = tls_cluster
    tici = sim.tici("worker", pd, "[s3]\nendpoint = \"http://127.0.0.1:1\"\nbucket = \"b\"\n")
    tici.wait_ready(30)
    wait_until(lambda: any("TiCI talks to PD in clear text" in line for line in tici.stderr_lines), 15, "TiCI's log of the PD failure")
    time.sleep(1.5)
    assert tici.popen.poll() is None
    assert sum("TiCI talks to PD in clear text" in line for line in tici.stderr_lines) == 1  # logged once, not every tick
    status, body = http_json("GET", tici.url("/status"))
    assert status == 200 and "clear text" in body["problem"]
    assert json.dumps(body)  # serializable
    assert wait_for_status(tici.url("/status"))[0] == 200
