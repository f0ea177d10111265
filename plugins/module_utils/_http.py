# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)

# This module_utils is PRIVATE and must only be used by this collection.
# It may change at any time, without notice.

"""HTTP client for the component APIs, on top of ansible.module_utils.urls (Request.open).

Every request yields a Response observation: HTTP errors are data, not exceptions, and
connection failures are classified so that waiters can retry them. The transport decides
where a request really goes: straight to the URL, or through the Kubernetes API server's
proxy (see KubeProxyTransport).
"""

from __future__ import annotations

import errno
import http.client
import json
import socket
import ssl
import traceback

from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlsplit, urlunsplit

from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.urls import Request, make_context

# Argument specs of the shared option families; documented in plugins/doc_fragments/connection.py.
TLS_ARGSPEC = dict(
    ca_cert=dict(type='path'),
    client_cert=dict(type='path'),
    client_key=dict(type='path', no_log=False),
    validate_certs=dict(type='bool', default=True),
)

KUBE_PROXY_ARGSPEC = dict(
    kube_proxy=dict(
        type='dict',
        options=dict(
            namespace=dict(type='str', required=True),
            kubeconfig=dict(type='path'),
            context=dict(type='str'),
            service=dict(type='str'),
            port=dict(type='int'),
            # Read by the action plugin (plugin_utils/_in_cluster.py), which then runs the module in the cluster.
            in_cluster=dict(type='dict'),
        ),
    ),
)

CONNECTION_ARGSPEC = dict(TLS_ARGSPEC, **KUBE_PROXY_ARGSPEC)

# Kinds of connection error; all of them are worth retrying while a component starts.
REFUSED = 'refused'
RESET = 'reset'
TIMEOUT = 'timeout'
UNREACHABLE = 'unreachable'
TLS = 'tls'

MAX_BODY_CHARS = 65536
MIN_REQUEST_TIMEOUT = 1.0


class Response:
    """One observation of one HTTP request."""

    def __init__(self, method, url, status=None, body='', headers=None, error=None, error_kind=None):
        self.method = method
        self.url = url
        self.status = status
        self.body = body or ''
        self.headers = dict((k.lower(), v) for k, v in (headers or {}).items())
        self.error = error
        self.error_kind = error_kind
        self._json = None
        self._json_parsed = False

    @property
    def ok(self):
        return self.status is not None and 200 <= self.status < 300

    @property
    def json(self):
        """The body parsed as JSON, or None when it is empty or not JSON."""
        if not self._json_parsed:
            self._json_parsed = True
            try:
                self._json = json.loads(self.body) if self.body.strip() else None
            except ValueError:
                self._json = None
        return self._json

    def describe(self):
        """A short human description: 'HTTP 503 <body start>' or the connection error."""
        if self.status is None:
            return 'connection %s: %s' % (self.error_kind or 'error', self.error)
        body = ' '.join(self.body.split())
        if len(body) > 200:
            body = body[:200] + '...'
        return ('HTTP %d %s' % (self.status, body)).strip()


def _classify(exc):
    """Map a connection-level exception to (kind, text)."""
    reason = getattr(exc, 'reason', exc)
    if isinstance(reason, str):
        return UNREACHABLE, reason
    if isinstance(reason, ssl.SSLError) or isinstance(exc, ssl.SSLError):
        return TLS, to_text(reason)
    if isinstance(reason, ConnectionRefusedError) or getattr(reason, 'errno', None) == errno.ECONNREFUSED:
        return REFUSED, to_text(reason)
    if isinstance(reason, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        return RESET, to_text(reason)
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return TIMEOUT, to_text(reason) or 'timed out'
    if isinstance(reason, (http.client.BadStatusLine, http.client.IncompleteRead)):  # a server that hung up mid-answer
        return RESET, to_text(reason) or type(reason).__name__
    return UNREACHABLE, to_text(reason) or type(reason).__name__


def endpoints_problem(urls, option, kube_proxy=None):
    """Return an error text when ``urls`` (a module's list option) is empty or holds an invalid URL, else None."""
    if not urls:
        return '%s: expected at least one URL' % option
    for url in urls:
        error = validate_url(url, option, kube_proxy)
        if error:
            return error
    return None


def validate_url(value, option, kube_proxy=None):
    """Return an error text when ``value`` is not an http(s) URL with a host, else None.

    With ``kube_proxy`` (the option's dict) the URL must also map onto a proxy path.
    """
    try:
        parts = urlsplit(value)
        parts.port  # pylint: disable=pointless-statement  # raises ValueError on a bad port
    except ValueError as exc:
        return '%s: expected an http(s) URL like http://host:port, got %r (%s)' % (option, value, exc)
    if parts.scheme not in ('http', 'https') or not parts.hostname:
        return '%s: expected an http(s) URL like http://host:port, got %r' % (option, value)
    if kube_proxy:
        try:
            kube_proxy_path(value, kube_proxy['namespace'], kube_proxy.get('service'), kube_proxy.get('port'))
        except KubeProxyError as exc:
            return '%s: %s' % (option, exc)
    return None


def join_url(base, path):
    """Append ``path`` (starting with '/') to a base URL, keeping any base path."""
    return base.rstrip('/') + path


class _TlsContext:
    """Builds the SSL context once: loading the CA store costs tens of milliseconds per request otherwise."""

    tls = None
    _context = None

    @property
    def context(self):
        if self._context is None:
            self._context = make_context(cafile=self.tls['ca_path'], validate_certs=self.tls['validate_certs'],
                                         client_cert=self.tls['client_cert'], client_key=self.tls['client_key'])
        return self._context


class DirectTransport(_TlsContext):
    """Dial every URL as given, with the module's TLS options."""

    def __init__(self, ca_cert=None, client_cert=None, client_key=None, validate_certs=True):
        self.tls = dict(ca_path=ca_cert, client_cert=client_cert, client_key=client_key, validate_certs=validate_certs)

    def prepare(self, url, headers):
        return url, headers


class KubeProxyError(Exception):
    pass


def kube_proxy_path(url, namespace, service=None, port=None):
    """Map a component URL onto the API server's proxy path.

    ``http(s)://NAME:PORT/p`` with a single-label NAME is a Service:
    ``/api/v1/namespaces/NS/services/[https:]NAME:PORT/proxy/p``. A NAME with several labels
    (``pod.headless-svc[.ns.svc...]``) is a StatefulSet pod: ``.../pods/[https:]POD:PORT/proxy/p``.
    ``service``/``port`` force every request to that Service and port.
    """
    parts = urlsplit(url)
    host = parts.hostname or ''
    if service:
        kind, name = 'services', service
    else:
        if not host or host.replace('.', '').isdigit() or ':' in host:
            raise KubeProxyError('kube_proxy: %r has no Service or pod DNS name as host; set kube_proxy.service' % url)
        labels = host.split('.')
        kind, name = ('services', labels[0]) if len(labels) == 1 else ('pods', labels[0])
    target_port = port or parts.port or (443 if parts.scheme == 'https' else 80)
    scheme = 'https:' if parts.scheme == 'https' else ''
    path = '/api/v1/namespaces/%s/%s/%s%s:%d/proxy%s' % (
        quote(namespace, safe=''), kind, scheme, quote(name, safe=''), target_port, parts.path or '/')
    return path + ('?' + parts.query if parts.query else '')


class KubeProxyTransport(_TlsContext):
    """Send every request through the Kubernetes API server's service/pod proxy.

    Server URL, CA, client certificate and bearer token come from the kubeconfig, loaded with
    the ``kubernetes`` package so that every kubeconfig form (inline data, files, exec) works.
    """

    def __init__(self, namespace, kubeconfig=None, context=None, service=None, port=None):
        self.namespace = namespace
        self.service = service
        self.port = port
        self.server, self.tls, self.auth_header = self._load(kubeconfig, context)

    @staticmethod
    def _load(kubeconfig, context):
        # Imported here: only kube_proxy users need the kubernetes package (missing_required_lib).
        from kubernetes.client import Configuration  # pylint: disable=import-outside-toplevel
        from kubernetes.config import kube_config  # pylint: disable=import-outside-toplevel

        configuration = Configuration()
        try:
            kube_config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration,
                                         persist_config=False)
        except Exception as exc:  # the loader raises ConfigException, IOError, YAML errors...
            raise KubeProxyError('kube_proxy: cannot load kubeconfig %s: %s' % (kubeconfig or '(default)', exc))
        tls = dict(ca_path=configuration.ssl_ca_cert, client_cert=configuration.cert_file,
                   client_key=configuration.key_file, validate_certs=configuration.verify_ssl)
        token = configuration.get_api_key_with_prefix('BearerToken') or configuration.get_api_key_with_prefix('authorization')
        return configuration.host.rstrip('/'), tls, token

    def prepare(self, url, headers):
        headers = dict(headers)
        if self.auth_header:
            headers['Authorization'] = self.auth_header
        return self.server + kube_proxy_path(url, self.namespace, self.service, self.port), headers


def make_transport(module):
    """Build the transport from the module's TLS and kube_proxy options; fail the module on error."""
    params = module.params
    kube = params.get('kube_proxy')
    if not kube:
        return DirectTransport(params.get('ca_cert'), params.get('client_cert'), params.get('client_key'),
                               params.get('validate_certs', True))
    try:
        return KubeProxyTransport(kube['namespace'], kube.get('kubeconfig'), kube.get('context'), kube.get('service'), kube.get('port'))
    except ImportError:
        module.fail_json(msg=missing_required_lib('kubernetes', reason='for the kube_proxy option'), exception=traceback.format_exc())
    except KubeProxyError as exc:
        module.fail_json(msg=str(exc))
    return None  # not reached: fail_json exits


class HttpClient:
    """Send requests through a transport and return Response observations; records what it sent."""

    def __init__(self, transport=None, request_timeout=10.0):
        self.transport = transport or DirectTransport()
        self.request_timeout = request_timeout
        self.sent = []  # (method, url) of every request, in order

    def request(self, method, url, body=None, timeout=None):
        headers = {'Accept': 'application/json'}
        data = None
        if body is not None:
            data = json.dumps(body)
            headers['Content-Type'] = 'application/json'
        target, headers = self.transport.prepare(url, headers)
        self.sent.append((method, url))
        # Bounded by what is left of the caller's deadline, but long enough for one answer.
        timeout = self.request_timeout if timeout is None else max(MIN_REQUEST_TIMEOUT, min(timeout, self.request_timeout))
        try:
            reply = Request().open(method, target, data=data, headers=headers, timeout=timeout, follow_redirects='safe',
                                   http_agent='tidbops.cluster', use_netrc=False, context=self.transport.context)
            with reply:
                return Response(method, url, reply.status, _read(reply), dict(reply.headers))
        except HTTPError as exc:
            try:
                body = _read(exc)
            except Exception:  # pylint: disable=broad-exception-caught  # the error body is best effort
                body = ''
            return Response(method, url, exc.code, body, dict(exc.headers or {}))
        except (URLError, OSError, ssl.SSLError) as exc:
            kind, text = _classify(exc)
            return Response(method, url, error=text, error_kind=kind)
        except Exception as exc:  # pylint: disable=broad-exception-caught  # e.g. http.client.RemoteDisconnected
            kind, text = _classify(exc)
            return Response(method, url, error=text, error_kind=kind)

    def get(self, url, timeout=None):
        return self.request('GET', url, timeout=timeout)

    def post(self, url, body=None, timeout=None):
        return self.request('POST', url, body, timeout=timeout)


def _read(reply):
    raw = reply.read(MAX_BODY_CHARS + 1)
    return to_text(raw[:MAX_BODY_CHARS], errors='surrogate_or_replace')


def path_of(url):
    """The path and query of a URL, for reports that must not repeat hosts or secrets."""
    parts = urlsplit(url)
    return urlunsplit(('', '', parts.path, parts.query, ''))
