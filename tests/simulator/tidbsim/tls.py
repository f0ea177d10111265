"""TLS for the simulated components, with the standard library's ssl module only.

- `ServerTLS` wraps an HttpService's accepted sockets: the handshake runs in the connection's own
  thread (like etcd's tlsListener and cmux over crypto/tls, which handshake per connection), and a
  failed handshake, a plain-HTTP request or a refused client certificate just closes the connection.
  None of the real servers hands a raw *tls.Conn to Go's http.Server (PD: etcd's tlsListener; TiDB,
  TiCDC: cmux over tls.Listen/tls.NewListener; TiKV, the TiFlash proxy: tokio-openssl; TiFlash
  metrics: Poco's SecureServerSocket), so none answers "400 Client sent an HTTP request to an HTTPS
  server": they close. OpenSSL detects the plain request itself (SSL_R_HTTP_REQUEST) and closes
  without an alert, as Go's "first record does not look like a TLS handshake" does.
- `client_context` builds (once per process per file set) what a component dials `https://` URLs
  with: the server verified against the CA (system roots when there is none, as Go's nil RootCAs),
  host name checked, the component's certificate presented. `set_default_client` makes one the
  process default of common.http_call.
- `check_pair`, `check_ca`, `read_file` load the files once at start, so an unreadable file or a key
  that does not match its certificate fails start-up; each component words the failure as its real
  binary does.
"""

import errno
import ssl
import threading

HANDSHAKE_TIMEOUT = 10.0

# Go's syscall errno strings (os.PathError prints "open <path>: <text>").
_GO_ERRNO = {errno.ENOENT: "no such file or directory", errno.EACCES: "permission denied", errno.EISDIR: "is a directory",
             errno.ENOTDIR: "not a directory", errno.ELOOP: "too many levels of symbolic links"}


class TLSFileError(Exception):
    """A TLS file that cannot be used: message in Go's wording; `os_error` kept for other wordings."""

    def __init__(self, message, os_error=None, path=None):
        super().__init__(message)
        self.os_error = os_error
        self.path = path


def go_open_error(path, exc):
    """os.Open's error as Go prints it."""
    return f"open {path}: {_GO_ERRNO.get(exc.errno, (exc.strerror or str(exc)).lower())}"


def read_file(path):
    """The file's bytes, or TLSFileError("open <path>: ...")."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise TLSFileError(go_open_error(path, exc), exc, path) from None


def _no_password():
    return b""  # an encrypted key fails (Go's tls.X509KeyPair cannot read one either), never a prompt


def check_pair(cert, key):
    """tls.LoadX509KeyPair: both files readable, PEM, and the key matching the certificate.
    Raises TLSFileError with Go's text."""
    cert_pem, key_pem = read_file(cert), read_file(key)
    if b"-----BEGIN CERTIFICATE-----" not in cert_pem:
        raise TLSFileError("tls: failed to find any PEM data in certificate input")
    if b"PRIVATE KEY-----" not in key_pem:
        raise TLSFileError("tls: failed to find any PEM data in key input")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key, password=_no_password)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc) or exc.reason == "KEY_VALUES_MISMATCH":
            raise TLSFileError("tls: private key does not match public key") from None
        raise TLSFileError(f"tls: failed to load the key pair: {exc.reason or exc}") from None
    except OSError as exc:
        raise TLSFileError(go_open_error(cert, exc), exc, cert) from None


def check_ca(path, unparsable="failed to append ca certs"):
    """x509.CertPool.AppendCertsFromPEM on the file: readable and holding at least one certificate."""
    data = read_file(path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cadata=data.decode("ascii", errors="replace"))
    except (ssl.SSLError, ValueError):
        raise TLSFileError(unparsable) from None
    if not context.get_ca_certs():
        raise TLSFileError(unparsable)


def cert_common_name(cert):
    """The subject CN of a decoded certificate (SSLSocket.getpeercert() / get_ca_certs() form)."""
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None


def decode_cert_file(path):
    """The first certificate of a PEM file, decoded like SSLSocket.getpeercert() (subject, issuer, SANs)."""
    return ssl._ssl._test_decode_cert(path)  # pylint: disable=protected-access  # stdlib, public since 3.2 in all but name


def cert_alt_names(cert):
    return [value for _kind, value in (cert or {}).get("subjectAltName", ())]


class ServerTLS:  # pylint: disable=too-many-instance-attributes
    """A server side: the context, and the checks made after the handshake.

    client_auth: "none" (no certificate requested, Go's NoClientCert), "optional" (VerifyClientCertIfGiven)
    or "require" (RequireAndVerifyClientCert). allowed_cns: a CN list checked right after the
    handshake (the connection is closed when none matches); cn_in_chain: any certificate of the
    verified chain may carry the CN (TiCDC's check), else only the leaf (etcd, TiDB, Poco).
    path_check(method, path, peer_cert) -> Response or None: a per-request check (TiKV's 403)."""

    def __init__(self, cert, key, ca=None, client_auth="none", *, allowed_cns=None, cn_in_chain=False, path_check=None):  # pylint: disable=too-many-arguments
        self.cert, self.key, self.ca = cert, key, ca
        self.allowed_cns = [cn.strip() for cn in allowed_cns or []]
        self.cn_in_chain = cn_in_chain
        self.path_check = path_check
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if cert and key:
            context.load_cert_chain(cert, key, password=_no_password)
        if ca:
            context.load_verify_locations(ca)
        context.verify_mode = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "require": ssl.CERT_REQUIRED}[client_auth]
        context.set_alpn_protocols(["http/1.1"])
        self.context = context
        self._ca_certs = context.get_ca_certs() if ca else []

    def wrap(self, sock):
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)

    def chain_names(self, leaf):
        """CNs along the verified chain: the leaf, then its issuers found among the CA file's
        certificates (Python 3.11 has no SSLSocket.get_verified_chain)."""
        names, issuer, seen = [cert_common_name(leaf)], leaf.get("issuer"), 0
        while issuer and seen < 8:
            parent = next((c for c in self._ca_certs if c.get("subject") == issuer), None)
            if parent is None:
                break
            names.append(cert_common_name(parent))
            issuer = None if parent.get("issuer") == parent.get("subject") else parent.get("issuer")
            seen += 1
        return [name for name in names if name]

    def handshake(self, sock):
        """Finish the handshake and the CN check on an accepted socket: None, or why it was refused."""
        sock.settimeout(HANDSHAKE_TIMEOUT)
        try:
            sock.do_handshake()
        except ssl.SSLError as exc:
            return describe_ssl_error(exc)
        except OSError as exc:
            return f"tls handshake: {exc}"
        sock.settimeout(None)
        if self.allowed_cns:
            peer = sock.getpeercert() or {}
            names = self.chain_names(peer) if self.cn_in_chain else [cert_common_name(peer)]
            if not any(name in self.allowed_cns for name in names if name):
                return f"client certificate authentication failed: CN {names} not in {self.allowed_cns}"
        return None


def describe_ssl_error(exc):
    """An OpenSSL handshake failure in the words Go's crypto/tls uses for it, when there is one."""
    reason = getattr(exc, "reason", None) or ""
    if reason in ("HTTP_REQUEST", "WRONG_VERSION_NUMBER", "HTTPS_PROXY_REQUEST", "UNKNOWN_PROTOCOL"):
        return "tls: first record does not look like a TLS handshake"
    if reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
        return "tls: client didn't provide a certificate"
    if reason == "CERTIFICATE_VERIFY_FAILED":
        return "tls: failed to verify certificate: x509: certificate signed by unknown authority"
    return f"tls: {reason or exc}"


_CLIENTS = {}
_CLIENTS_LOCK = threading.Lock()
_DEFAULT = {"context": None}


def client_context(ca=None, cert=None, key=None):
    """A client SSLContext for (ca, cert, key), built once per process."""
    with _CLIENTS_LOCK:
        context = _CLIENTS.get((ca, cert, key))
        if context is None:
            context = ssl.create_default_context(cafile=ca or None)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            if cert and key:
                context.load_cert_chain(cert, key, password=_no_password)
            _CLIENTS[(ca, cert, key)] = context
        return context


def set_default_client(context):
    """The context common.http_call uses for https:// URLs when the caller names none."""
    _DEFAULT["context"] = context


def default_client():
    """The process default, or Go's zero tls.Config: system roots, no client certificate."""
    if _DEFAULT["context"] is None:
        _DEFAULT["context"] = client_context()
    return _DEFAULT["context"]
