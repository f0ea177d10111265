# -*- coding: utf-8 -*-
"""TLS between components: the certificate plan, which certificates must be issued again
(module_utils/_tls.py), and what the model and the process specs do with them (_model, _process)."""

from __future__ import annotations

import datetime
import ipaddress
import tomllib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from ansible_collections.tidbops.cluster.plugins.module_utils import _model
from ansible_collections.tidbops.cluster.plugins.module_utils import _tls

from test_model import build, inventory, settings

NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
PLAIN = {"pd_servers": ["pd0", "pd1", "pd2"], "tikv_servers": ["tikv0"], "tidb_servers": ["tidb0"], "tiflash_servers": ["tiflash0"],
         "cdc_servers": ["cdc0"]}
PORTS = {"pd1": {"client_port": 2381, "peer_port": 2382}, "pd2": {"client_port": 2383, "peer_port": 2384}}


def _key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())


def _ca(name="tidb-ca", days=3650):
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(NOW - datetime.timedelta(days=1))
            .not_valid_after(NOW + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256()))
    return cert, key


def _leaf(ca, common, sans, days=3650, key=None):
    ca_cert, ca_key = ca
    key = key or _key()
    names = [x509.IPAddress(ipaddress.ip_address(n)) if _tls.is_ip(n) else x509.DNSName(n) for n in sans]
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(days=1)).not_valid_after(NOW + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(names), critical=False).sign(ca_key, hashes.SHA256()))
    return cert, key


def _write(path, cert, key):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".pem").write_bytes(_pem_key(key))


def _issue_all(tmp_path, certificates, ca):
    _write(tmp_path / "ca", *ca)
    for item in certificates:
        cert, key = _leaf(ca, item["common_name"], item["sans"])
        _write(tmp_path / (item["cert"][len(str(tmp_path)) + 1:-4]), cert, key)


def tls_settings(tmp_path, material=None, **overrides):
    return dict(tici_enabled=False, tls={"enabled": True, "dir": str(tmp_path), "material": material}, **overrides)


def tls_model(tmp_path, material=None, groups=None, **overrides):
    return build({"groups": groups or PLAIN, "host_vars": PORTS}, **tls_settings(tmp_path, material, **overrides))


# ---------------------------------------------------------------------------------------------
# The model

def test_tls_off_changes_nothing():
    model = build({"groups": PLAIN, "host_vars": PORTS}, tici_enabled=False)
    assert model["problems"] == [] and model["tls"] == {"enabled": False}
    assert model["pd_urls"][0].startswith("http://") and "ca_cert" not in model["transport"]


def test_tls_is_refused_with_tici_and_on_kubernetes(tmp_path):
    model = build(None, tls={"enabled": True, "dir": str(tmp_path)})
    assert any("tidb_tls_enabled cannot be combined with tici_enabled" in p and "clear text" in p for p in model["problems"])
    model = build({"groups": PLAIN}, backend="kubernetes", tici_enabled=False, tls={"enabled": True, "dir": str(tmp_path)},
                  backend_settings={"namespace": "tidb", "image_pull_policy": "IfNotPresent", "storage": {}, "resources": {}})
    assert any("with tidb_backend kubernetes only to render manifests" in p for p in model["problems"])
    model = build({"groups": PLAIN, "host_vars": PORTS}, tici_enabled=False, tls={"enabled": True, "dir": "relative/tls"})
    assert any(p.startswith("tidb_tls_dir must be an absolute path") for p in model["problems"])


def test_the_plan_has_a_client_and_one_certificate_per_instance(tmp_path):
    model = tls_model(tmp_path)
    assert model["problems"] == []
    tls = model["tls"]
    assert tls["enabled"] and not tls["ready"] and model["processes"] == {}  # the specs wait for the certificates
    by_name = dict((item["name"], item) for item in tls["certificates"])
    assert sorted(by_name) == ["cdc0", "client", "pd0", "pd1", "pd2", "tidb0", "tiflash0", "tikv0"]
    assert by_name["client"]["common_name"] == "tidb-client" and by_name["client"]["cert"] == str(tmp_path / "client.crt")
    assert by_name["cdc0"]["common_name"] == "cdc" and by_name["cdc0"]["cert"] == str(tmp_path / "instances" / "cdc0.crt")
    assert by_name["pd1"]["sans"] == ["127.0.0.1", "localhost"] and by_name["pd1"]["subject_alt_name"] == ["IP:127.0.0.1", "DNS:localhost"]
    named = build({"groups": PLAIN, "host_vars": dict(PORTS, pd0={"advertise_host": "pd0.example"})}, **tls_settings(tmp_path))
    pd0 = [item for item in named["tls"]["certificates"] if item["name"] == "pd0"][0]
    assert pd0["sans"] == ["127.0.0.1", "localhost", "pd0.example"]
    assert model["transport"] == {"ca_cert": str(tmp_path / "ca.crt"), "client_cert": str(tmp_path / "client.crt"),
                                  "client_key": str(tmp_path / "client.pem")}


def test_bridge_certificates_name_the_container_and_the_published_host(tmp_path):
    model = build({"groups": PLAIN, "host_vars": PORTS}, network_mode="bridge", **tls_settings(tmp_path))
    pd0 = [item for item in model["tls"]["certificates"] if item["name"] == "pd0"][0]
    assert pd0["sans"] == ["127.0.0.1", "localhost", "tidb-pd0"]


def _material(tmp_path):
    model = tls_model(tmp_path)
    _issue_all(tmp_path, model["tls"]["certificates"], _ca())
    return _tls.material(model["tls"]["certificates"], str(tmp_path))


def _file(model, host, name):
    return [f for f in model["processes"][host]["files"] if f["name"] == name][0]


def test_every_component_gets_its_keys_and_https(tmp_path):
    model = tls_model(tmp_path, _material(tmp_path))
    assert model["problems"] == [] and model["tls"]["ready"]
    assert model["pd_urls"] == ["https://127.0.0.1:2379", "https://127.0.0.1:2381", "https://127.0.0.1:2383"]
    assert "pd0=https://127.0.0.1:2380" in model["initial_cluster"]
    assert all(url.startswith("https://") for gate in model["gates"].values() for url in gate["endpoints"])
    assert model["gates"]["tikv"]["pd_endpoint"] == "https://127.0.0.1:2379"
    tls_dir = "/etc/tidbops/tls"
    pd = model["processes"]["pd0"]
    assert "--client-urls=https://127.0.0.1:2379" in pd["command"] and "--peer-urls=https://127.0.0.1:2380" in pd["command"]
    assert pd["membership"]["client_url"] == "https://127.0.0.1:2379"
    assert tomllib.loads(_file(model, "pd0", "pd.toml")["content"])["security"] == {
        "cacert-path": tls_dir + "/ca.crt", "cert-path": tls_dir + "/pd.crt", "key-path": tls_dir + "/pd.pem"}
    assert tomllib.loads(_file(model, "tikv0", "tikv.toml")["content"])["security"] == {
        "ca-path": tls_dir + "/ca.crt", "cert-path": tls_dir + "/tikv.crt", "key-path": tls_dir + "/tikv.pem"}
    tidb = tomllib.loads(_file(model, "tidb0", "tidb.toml")["content"])["security"]
    assert tidb["cluster-ssl-ca"] == tidb["ssl-ca"] == tls_dir + "/ca.crt" and tidb["cluster-ssl-key"] == tls_dir + "/tidb.pem"
    assert tomllib.loads(_file(model, "tiflash0", "tiflash.toml")["content"])["security"] == {
        "ca_path": tls_dir + "/ca.crt", "cert_path": tls_dir + "/tiflash.crt", "key_path": tls_dir + "/tiflash.pem"}
    assert tomllib.loads(_file(model, "tiflash0", "proxy.toml")["content"])["security"]["ca-path"] == tls_dir + "/ca.crt"
    cdc = model["processes"]["cdc0"]["command"]
    assert ["--ca=%s/ca.crt" % tls_dir, "--cert=%s/cdc.crt" % tls_dir, "--key=%s/cdc.pem" % tls_dir] == cdc[-3:]
    assert "--pd=https://127.0.0.1:2379,https://127.0.0.1:2381,https://127.0.0.1:2383" in cdc
    # The key is a secret file, the certificates are not; each instance mounts its own.
    assert _file(model, "tikv0", "tikv.pem")["secret"] and not _file(model, "tikv0", "tikv.crt")["secret"]
    assert _tls.common_name(_file(model, "tikv0", "tikv.crt")["content"]) == "tikv"
    assert _file(model, "pd1", "pd.crt")["content"] != _file(model, "pd0", "pd.crt")["content"]


def test_the_users_security_settings_win(tmp_path):
    model = tls_model(tmp_path, _material(tmp_path), server_configs={"pd": {"security.cert-allowed-cn": ["pd", "tidb-client"]},
                                                                     "tikv": {"security": {"ca-path": "/mine/ca.crt"}}})
    assert tomllib.loads(_file(model, "pd0", "pd.toml")["content"])["security"]["cert-allowed-cn"] == ["pd", "tidb-client"]
    assert tomllib.loads(_file(model, "tikv0", "tikv.toml")["content"])["security"]["ca-path"] == "/mine/ca.crt"


def test_material_without_a_certificate_is_a_problem(tmp_path):
    material = _material(tmp_path)
    del material["certificates"]["tikv0"]
    model = tls_model(tmp_path, material)
    assert any(p.startswith("TLS files missing from tidb_tls_dir") and "tikv0" in p for p in model["problems"])


# ---------------------------------------------------------------------------------------------
# Which certificates to issue

def _plan(tmp_path):
    return tls_model(tmp_path)["tls"]["certificates"]


def test_an_empty_directory_needs_a_ca_and_everything(tmp_path):
    plan = _plan(tmp_path)
    assert _tls.stale(plan, str(tmp_path), NOW) == {"ca": "missing", "certificates": [item["name"] for item in plan], "problems": []}


def test_fitting_certificates_are_kept_and_unfitting_ones_issued_again(tmp_path):
    plan = _plan(tmp_path)
    ca = _ca()
    _issue_all(tmp_path, plan, ca)
    assert _tls.stale(plan, str(tmp_path), NOW) == {"ca": None, "certificates": [], "problems": []}
    by_name = dict((item["name"], item) for item in plan)
    # A name the instance is now dialled by; a certificate of another CA; a key that does not match;
    # one that expires in 10 days; a missing key.
    _write(tmp_path / "instances" / "pd0", *_leaf(ca, "pd", ["localhost"]))
    _write(tmp_path / "instances" / "pd1", *_leaf(_ca("other"), "pd", by_name["pd1"]["sans"]))
    cert, _key_ = _leaf(ca, "pd", by_name["pd2"]["sans"])
    _write(tmp_path / "instances" / "pd2", cert, _key())
    _write(tmp_path / "instances" / "tikv0", *_leaf(ca, "tikv", by_name["tikv0"]["sans"], days=10))
    (tmp_path / "instances" / "tidb0.pem").unlink()
    found = _tls.stale(plan, str(tmp_path), NOW)
    assert found == {"ca": None, "certificates": ["pd0", "pd1", "pd2", "tidb0", "tikv0"], "problems": []}
    reasons = dict((name, _tls.certificate_problem((tmp_path / "instances" / (name + ".crt")).read_bytes(),
                                                   (tmp_path / "instances" / (name + ".pem")).read_bytes(), ca[0], by_name[name]["sans"], NOW))
                   for name in ("pd0", "pd1", "pd2", "tikv0"))
    assert reasons == {"pd0": "its SANs lack 127.0.0.1", "pd1": "not issued by ca.crt", "pd2": "its key does not match it",
                       "tikv0": "it expires on 2026-12-11"}


def test_a_users_ca_without_its_key_cannot_sign(tmp_path):
    plan = _plan(tmp_path)
    ca = _ca()
    _issue_all(tmp_path, plan, ca)
    (tmp_path / "ca.pem").unlink()
    assert _tls.stale(plan, str(tmp_path), NOW)["problems"] == []  # everything fits: nothing to sign
    (tmp_path / "instances" / "cdc0.crt").unlink()
    problems = _tls.stale(plan, str(tmp_path), NOW)["problems"]
    assert len(problems) == 1 and "cdc0.crt: missing, and a new one cannot be signed without the CA key" in problems[0]
    (tmp_path / "ca.crt").unlink()
    (tmp_path / "ca.pem").write_bytes(_pem_key(ca[1]))
    assert "exists but" in _tls.stale(plan, str(tmp_path), NOW)["problems"][0]


@pytest.mark.parametrize("days, expected", [(20, True), (400, False)])
def test_an_expiring_ca_is_reported(tmp_path, days, expected):
    plan = _plan(tmp_path)
    ca = _ca(days=days)
    _issue_all(tmp_path, plan, ca)
    problems = _tls.stale(plan, str(tmp_path), NOW)["problems"]
    assert any("ca.crt expires on" in p for p in problems) is expected


def test_inventory_helper_is_the_models():
    # The TLS tests build their models with test_model's helpers: keep them honest.
    assert _model.build(settings(tici_enabled=False), inventory(groups=PLAIN, host_vars=PORTS))["problems"] == []


def test_check_mode_material_marks_what_a_real_run_would_issue(tmp_path):
    plan = _plan(tmp_path)
    empty = _tls.material(plan, str(tmp_path), "(later)", [item["name"] for item in plan])
    assert empty["ca"] == "(later)" and set(v["cert"] for v in empty["certificates"].values()) == {"(later)"}
    model = tls_model(tmp_path, empty)
    assert model["problems"] == [] and model["processes"]["pd0"]["files"][-1]["content"] == "(later)"
    _issue_all(tmp_path, plan, _ca())
    some = _tls.material(plan, str(tmp_path), "(later)", ["tikv0"])
    assert some["certificates"]["tikv0"] == {"cert": "(later)", "key": "(later)"}
    assert some["ca"].startswith("-----BEGIN CERTIFICATE") and some["certificates"]["pd0"]["key"].startswith("-----BEGIN")
    assert _tls.material(plan, str(tmp_path)) == _tls.material(plan, str(tmp_path), None, ["tikv0"])
