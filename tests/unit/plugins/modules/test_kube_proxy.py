# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""kube_proxy: pytest-httpserver plays the API server; auth comes from a kubeconfig written here."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import ssl

import pytest
import yaml

from pytest_httpserver import HTTPServer

from ansible_collections.tidbops.cluster.plugins.modules import component_ready, ticdc_changefeed

cryptography = pytest.importorskip('cryptography')
from cryptography import x509  # noqa: E402  pylint: disable=wrong-import-position
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402  pylint: disable=wrong-import-position
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402  pylint: disable=wrong-import-position
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402  pylint: disable=wrong-import-position

TOKEN = 'eyJhbGciOiJSUzI1NiJ9.test-token'
NS = 'tidb-test'


def write_kubeconfig(path, server, user, cluster_extra=None):
    cluster = dict(server=server, **(cluster_extra or {}))
    config = {
        'apiVersion': 'v1', 'kind': 'Config', 'current-context': 'other',
        'clusters': [{'name': 'c1', 'cluster': cluster}, {'name': 'c2', 'cluster': {'server': 'http://127.0.0.1:1'}}],
        'users': [{'name': 'u1', 'user': user}, {'name': 'u2', 'user': {'token': 'wrong'}}],
        'contexts': [{'name': 'test', 'context': {'cluster': 'c1', 'user': 'u1'}}, {'name': 'other', 'context': {'cluster': 'c2', 'user': 'u2'}}],
    }
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_bearer_token_and_service_mapping(httpserver, run_module, tmp_path):
    kubeconfig = write_kubeconfig(tmp_path / 'kubeconfig', httpserver.url_for('').rstrip('/'), {'token': TOKEN})
    httpserver.expect_request('/api/v1/namespaces/%s/services/tidb-tidb:10080/proxy/status' % NS,
                              headers={'Authorization': 'Bearer ' + TOKEN}).respond_with_json({'version': '8.0.11-TiDB-v8.5.0'})
    result = run_module(component_ready, dict(component='tidb', endpoints=['http://tidb-tidb:10080'], timeout=5, interval=0.02,
                                              kube_proxy=dict(namespace=NS, kubeconfig=kubeconfig, context='test')))
    assert result['ready'] is True, result
    assert result['instances'][0]['instance'] == 'http://tidb-tidb:10080'
    assert len(httpserver.log) == 1
    assert TOKEN not in str(result)


def test_pod_mapping_for_statefulset_members(httpserver, run_module, tmp_path):
    kubeconfig = write_kubeconfig(tmp_path / 'kubeconfig', httpserver.url_for('').rstrip('/'), {'token': TOKEN})
    httpserver.expect_request('/api/v1/namespaces/%s/services/tidb-pd:2379/proxy/pd/api/v1/stores' % NS,
                              query_string='state=0&state=1&state=2').respond_with_json(
        {'count': 1, 'stores': [{'store': {'id': 1, 'address': 'tidb-tikv-0.tidb-tikv-peer.tidb-test.svc:20160', 'state_name': 'Up'}}]})
    httpserver.expect_request('/api/v1/namespaces/%s/pods/tidb-tikv-0:20180/proxy/ready' % NS).respond_with_data('')
    result = run_module(component_ready, dict(
        component='tikv', pd_endpoint='http://tidb-pd:2379', store_addresses=['tidb-tikv-0.tidb-tikv-peer.tidb-test.svc:20160'],
        endpoints=['http://tidb-tikv-0.tidb-tikv-peer:20180'], timeout=5, interval=0.02,
        kube_proxy=dict(namespace=NS, kubeconfig=kubeconfig, context='test')))
    assert result['ready'] is True, result
    assert all(request.headers['Authorization'] == 'Bearer ' + TOKEN for request, _response in httpserver.log)


def test_forced_service_and_port_for_the_changefeed(httpserver, run_module, tmp_path):
    kubeconfig = write_kubeconfig(tmp_path / 'kubeconfig', httpserver.url_for('').rstrip('/'), {'token': TOKEN})
    path = '/api/v1/namespaces/%s/services/tidb-ticdc:8301/proxy/api/v2/changefeeds/feed-1' % NS
    httpserver.expect_request(path).respond_with_json({'error_code': 'CDC:ErrChangeFeedNotExists', 'error_msg': 'not exists'}, status=400)
    result = run_module(ticdc_changefeed, dict(server='http://127.0.0.1:8300', changefeed_id='feed-1', state='absent',
                                               kube_proxy=dict(namespace=NS, kubeconfig=kubeconfig, context='test', service='tidb-ticdc', port=8301)))
    assert result['changed'] is False and result['request_count'] == 1
    assert result['requests'] == [dict(method='GET', path='/api/v2/changefeeds/feed-1', sent=True)]


def test_unreadable_kubeconfig_fails_clearly(run_module, tmp_path):
    result = run_module(component_ready, dict(component='tidb', endpoints=['http://tidb-tidb:10080'],
                                              kube_proxy=dict(namespace=NS, kubeconfig=str(tmp_path / 'missing'))))
    assert result['failed'] is True and 'kube_proxy: cannot load kubeconfig' in result['msg']


# --- client certificate over HTTPS ---------------------------------------------------------------

def _cert(subject, issuer, public_key, signing_key, ca=False, server=False):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
               .public_key(public_key).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(hours=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def _pem(obj):
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


@pytest.fixture
def mtls_server(tmp_path):
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert('test-ca', 'test-ca', ca_key.public_key(), ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    client_key = ec.generate_private_key(ec.SECP256R1())
    files = {}
    for name, data in (('ca.pem', _pem(ca)), ('server.pem', _pem(_cert('apiserver', 'test-ca', server_key.public_key(), ca_key, server=True))),
                       ('server-key.pem', _pem(server_key)), ('client.pem', _pem(_cert('admin', 'test-ca', client_key.public_key(), ca_key))),
                       ('client-key.pem', _pem(client_key))):
        (tmp_path / name).write_bytes(data)
        files[name] = data
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tmp_path / 'server.pem'), str(tmp_path / 'server-key.pem'))
    context.load_verify_locations(str(tmp_path / 'ca.pem'))
    context.verify_mode = ssl.CERT_REQUIRED  # the handshake fails without our client certificate
    server = HTTPServer(host='127.0.0.1', port=0, ssl_context=context)
    server.start()
    try:
        yield server, files
    finally:
        server.clear()
        server.stop()


def b64(data):
    return base64.b64encode(data).decode()


def test_client_certificate_from_inline_kubeconfig_data(mtls_server, run_module, tmp_path):
    server, files = mtls_server
    kubeconfig = write_kubeconfig(tmp_path / 'kubeconfig', 'https://127.0.0.1:%d' % server.port,
                                  {'client-certificate-data': b64(files['client.pem']), 'client-key-data': b64(files['client-key.pem'])},
                                  {'certificate-authority-data': b64(files['ca.pem'])})
    server.expect_request('/api/v1/namespaces/%s/services/https:tidb-minio:9000/proxy/minio/health/cluster' % NS).respond_with_data('')
    result = run_module(component_ready, dict(component='minio', endpoints=['https://tidb-minio:9000'], timeout=5, interval=0.02,
                                              kube_proxy=dict(namespace=NS, kubeconfig=kubeconfig, context='test')))
    assert result['ready'] is True, result
    assert len(server.log) == 1
    assert 'Authorization' not in server.log[0][0].headers


def test_without_client_certificate_the_handshake_fails(mtls_server, run_module, tmp_path):
    server, files = mtls_server
    kubeconfig = write_kubeconfig(tmp_path / 'kubeconfig', 'https://127.0.0.1:%d' % server.port, {'token': TOKEN},
                                  {'certificate-authority-data': base64.b64encode(files['ca.pem']).decode()})
    result = run_module(component_ready, dict(component='minio', endpoints=['http://tidb-minio:9000'], timeout=0.3, interval=0.05,
                                              kube_proxy=dict(namespace=NS, kubeconfig=kubeconfig, context='test')))
    assert result['failed'] is True and result['instances'][0]['status'] is None
    assert server.log == []
