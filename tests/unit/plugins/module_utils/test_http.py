# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""The HTTP client against a real loopback server, and the kube proxy URL mapping."""

from __future__ import annotations

import socket

import pytest

from ansible_collections.tidbops.cluster.plugins.module_utils._http import (
    REFUSED, HttpClient, KubeProxyError, kube_proxy_path, validate_url)


@pytest.mark.parametrize('url, service, port, path', [
    ('http://tidb-pd:2379/pd/api/v1/health', None, None, '/api/v1/namespaces/ns1/services/tidb-pd:2379/proxy/pd/api/v1/health'),
    ('https://tidb-pd:2379/pd/api/v1/health', None, None, '/api/v1/namespaces/ns1/services/https:tidb-pd:2379/proxy/pd/api/v1/health'),
    ('http://tidb-tikv-0.tidb-tikv-peer:20180/status', None, None, '/api/v1/namespaces/ns1/pods/tidb-tikv-0:20180/proxy/status'),
    ('http://tidb-tikv-0.tidb-tikv-peer.ns1.svc.cluster.local:20180/ready', None, None,
     '/api/v1/namespaces/ns1/pods/tidb-tikv-0:20180/proxy/ready'),
    ('http://tidb-pd:2379/pd/api/v1/stores?state=0&state=1', None, None,
     '/api/v1/namespaces/ns1/services/tidb-pd:2379/proxy/pd/api/v1/stores?state=0&state=1'),
    ('http://tidb-pd', None, None, '/api/v1/namespaces/ns1/services/tidb-pd:80/proxy/'),
    ('http://tidb-tikv-0.tidb-tikv-peer:20180/status', 'tidb-ticdc', 8301, '/api/v1/namespaces/ns1/services/tidb-ticdc:8301/proxy/status'),
    ('http://127.0.0.1:8300/status', 'tidb-ticdc', None, '/api/v1/namespaces/ns1/services/tidb-ticdc:8300/proxy/status'),
])
def test_kube_proxy_path(url, service, port, path):
    assert kube_proxy_path(url, 'ns1', service, port) == path


def test_kube_proxy_path_rejects_ip_hosts():
    with pytest.raises(KubeProxyError, match='no Service or pod DNS name'):
        kube_proxy_path('http://10.0.0.1:2379/', 'ns1')


@pytest.mark.parametrize('url, kube, message', [
    ('pd0:2379', None, "pd_endpoint: expected an http(s) URL like http://host:port, got 'pd0:2379'"),
    ('ftp://pd0:2379', None, 'expected an http(s) URL'),
    ('http://pd0:99999', None, 'expected an http(s) URL'),
    ('http://:2379', None, 'expected an http(s) URL'),
    ('http://10.1.2.3:2379', {'namespace': 'ns'}, 'pd_endpoint: kube_proxy'),
])
def test_validate_url(url, kube, message):
    assert message in validate_url(url, 'pd_endpoint', kube)


@pytest.mark.parametrize('url', ['http://pd0:2379', 'https://pd0', 'http://[::1]:2379/x'])
def test_validate_url_accepts(url):
    assert validate_url(url, 'pd_endpoint') is None


def test_observations_from_a_real_server(httpserver):
    httpserver.expect_request('/ok').respond_with_json({'version': 'v1'})
    httpserver.expect_request('/err').respond_with_data('', status=500)
    httpserver.expect_request('/post', method='POST', json={'a': 'b'}).respond_with_data('"done"')
    client = HttpClient()
    ok = client.get(httpserver.url_for('/ok'))
    assert (ok.status, ok.json, ok.ok) == (200, {'version': 'v1'}, True)
    err = client.get(httpserver.url_for('/err'))
    assert (err.status, err.body, err.ok, err.json) == (500, '', False, None)
    assert client.post(httpserver.url_for('/post'), {'a': 'b'}).json == 'done'
    assert [method for method, _url in client.sent] == ['GET', 'GET', 'POST']


def test_connection_refused_is_classified():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens on the port now
    response = HttpClient().get('http://127.0.0.1:%d/status' % port)
    assert response.status is None and response.error_kind == REFUSED
    assert 'connection refused' in response.describe()


def test_reset_is_classified():
    server = socket.socket()
    server.bind(('127.0.0.1', 0))
    server.listen(1)
    port = server.getsockname()[1]
    import threading

    def accept_and_close():
        conn, _addr = server.accept()
        conn.recv(1024)
        conn.close()  # close without answering

    thread = threading.Thread(target=accept_and_close)
    thread.start()
    response = HttpClient().get('http://127.0.0.1:%d/status' % port)
    thread.join()
    server.close()
    assert response.status is None and response.error_kind == 'reset'
    assert response.error
