"""minio server DIR: moto's S3 behind SigV4 checks and IAM policies, the admin API of minio_iam, /minio/health/*.

Every S3 request must be signed (Authorization header or presigned query) with the root keys
(MINIO_ROOT_USER/MINIO_ROOT_PASSWORD) or a user's (minio_iam); the signature is recomputed, so a wrong
secret fails like a wrong key id (403). A user's request must be allowed by its policies. moto keeps
objects in memory: only bucket names persist in DIR (.tidbsim/buckets.json), users and policies in
.tidbsim/iam.json, and they come back after a restart.
"""

import hashlib
import hmac
import io
import json
import logging
import os
import re
import threading
import urllib.parse

from . import common, minio_iam
from .common import Flag

FLAGS = [
    Flag("address", default=":9000"),
    Flag("console-address", default=""),
    Flag("certs-dir", "S", default=""),
    Flag("quiet", boolean=True, default=False),
    Flag("json", boolean=True, default=False),
]
AUTH_RE = re.compile(r"AWS4-HMAC-SHA256\s+Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request,\s*"
                     r"SignedHeaders=([^,]+),\s*Signature=([0-9a-f]+)")
UNSIGNED = "UNSIGNED-PAYLOAD"


def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _canonical_query(raw_query, drop=()):
    pairs = []
    for item in filter(None, raw_query.split("&")):
        key, _eq, value = item.partition("=")
        key, value = urllib.parse.unquote_plus(key), urllib.parse.unquote_plus(value)
        if key not in drop:
            pairs.append((urllib.parse.quote(key, safe="-_.~"), urllib.parse.quote(value, safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def _header(environ, name):
    key = name.upper().replace("-", "_")
    if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        return environ.get(key, "")
    return environ.get("HTTP_" + key, "")


def sigv4_error(environ, body, secret_of):
    """(None, access key) when the request carries a valid SigV4 signature of a known access key
    (``secret_of(access key)`` gives its secret, None when unknown), else ((S3 code, message), None)."""
    raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
    path, _mark, raw_query = raw_uri.partition("?")
    query = urllib.parse.parse_qs(raw_query)
    auth = environ.get("HTTP_AUTHORIZATION", "")
    if auth:
        match = AUTH_RE.match(auth)
        if not match:
            return ("AccessDenied", "Access Denied."), None
        key_id, date, region, service, signed, signature = match.groups()
        amz_date = _header(environ, "x-amz-date") or _header(environ, "date")
        payload = _header(environ, "x-amz-content-sha256") or hashlib.sha256(body).hexdigest()
        canonical_query = _canonical_query(raw_query)
    elif "X-Amz-Signature" in query:
        try:
            key_id, date, region, service, _terminator = query["X-Amz-Credential"][0].split("/")
            signed, signature, amz_date = query["X-Amz-SignedHeaders"][0], query["X-Amz-Signature"][0], query["X-Amz-Date"][0]
        except (KeyError, ValueError):
            return ("AuthorizationQueryParametersError", "Error parsing the X-Amz-Credential parameter."), None
        payload = UNSIGNED
        canonical_query = _canonical_query(raw_query, drop=("X-Amz-Signature",))
    else:
        return ("AccessDenied", "Access Denied."), None
    secret_key = secret_of(key_id)
    if secret_key is None:
        return ("InvalidAccessKeyId", "The Access Key Id you provided does not exist in our records."), None
    headers = "".join(f"{name}:{' '.join(_header(environ, name).split())}\n" for name in signed.split(";"))
    canonical = "\n".join([environ["REQUEST_METHOD"], path or "/", canonical_query, headers, signed, payload])
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret_key}".encode(), date), region), service), "aws4_request")
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return ("SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided."), None
    return None, key_id


def _xml_error(code, message, resource):
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
            f"<Resource>{resource}</Resource><RequestId>tidbsim</RequestId></Error>").encode()


class MinioApp:
    """WSGI: health endpoints, faults and SigV4 in front of moto's S3 application."""

    def __init__(self, runtime, data_dir, access_key, secret_key):
        from moto.moto_server.werkzeug_app import create_backend_app  # pylint: disable=import-outside-toplevel
        from moto.s3.models import s3_backends  # pylint: disable=import-outside-toplevel
        from moto.core.models import DEFAULT_ACCOUNT_ID  # pylint: disable=import-outside-toplevel
        self.rt = runtime
        self.s3 = create_backend_app("s3")
        self.backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
        self.state_dir = os.path.join(data_dir, ".tidbsim")
        os.makedirs(self.state_dir, exist_ok=True)
        self.iam = minio_iam.IAM(self.state_dir, access_key, secret_key)
        self.buckets_path = os.path.join(self.state_dir, "buckets.json")
        self.lock = threading.Lock()
        for name in common.load_json(self.buckets_path, []):
            self.backend.create_bucket(name, "us-east-1")
        if self.backend.buckets:
            runtime.log(f"restored buckets from {self.buckets_path}: {', '.join(sorted(self.backend.buckets))}")

    def _save_buckets(self):
        with self.lock:
            common.save_json(self.buckets_path, sorted(self.backend.buckets))

    @staticmethod
    def _reply(start_response, status, body=b"", headers=None, content_type="application/xml"):
        reason = {200: "OK", 201: "Created", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 412: "Precondition Failed",
                  500: "Internal Server Error", 503: "Service Unavailable"}.get(status, "Status")
        start_response(f"{status} {reason}", [("Content-Type", content_type), ("Content-Length", str(len(body)))] + list((headers or {}).items()))
        return [body]

    def health(self, environ, start_response):
        path = environ["PATH_INFO"].rstrip("/")
        if path in ("/minio/health/live", "/minio/health/ready"):
            return self._reply(start_response, 200)
        if path in ("/minio/health/cluster", "/minio/health/cluster/read"):
            query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
            if query.get("maintenance") == ["true"]:
                return self._reply(start_response, 412)
            if not self.rt.ready:
                return self._reply(start_response, 503, headers={"x-minio-server-status": "offline"})
            return self._reply(start_response, 200, headers={"x-minio-write-quorum": "1", "x-minio-read-quorum": "1"})
        return self._reply(start_response, 404)

    def admin(self, start_response, problem, access_key, environ, command, body):
        """One admin API call: JSON errors as MinIO's admin API gives them."""
        try:
            if problem:
                raise minio_iam.AdminError(403, problem[0], problem[1])
            status, reply = self.iam.admin(access_key, environ["REQUEST_METHOD"], command, minio_iam.parse_query(environ), body)
        except minio_iam.AdminError as error:
            status, reply = error.status, {"Code": error.code, "Message": error.message, "Resource": environ.get("PATH_INFO")}
        if isinstance(reply, minio_iam.Encrypted):
            data, kind = minio_iam.encrypt_answer(dict(reply), self.iam.root[1]), "application/octet-stream"
        else:
            data, kind = (b"" if reply is None else json.dumps(reply).encode()), "application/json"
        return self._reply(start_response, status, data, content_type=kind)

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "/")
        if path.startswith("/minio/health/"):
            return self.health(environ, start_response)
        if path == "/sim/marker":
            body = common.json_response(self.rt.marker.as_dict()).body
            return self._reply(start_response, 200, body, content_type="application/json")
        resource = path
        if self.rt.faults.take_failure():
            return self._reply(start_response, self.rt.faults.fail_status, _xml_error("InternalError", "TIDBSIM_FAIL_FIRST", resource))
        if not self.rt.ready:
            return self._reply(start_response, 503, _xml_error("XMinioServerNotInitialized", "Server not initialized, please try again.", resource))
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        problem, access_key = sigv4_error(environ, body, self.iam.secret_of)
        command = minio_iam.admin_command(path)
        if command is not None:
            return self.admin(start_response, problem, access_key, environ, command, body)
        if problem:
            return self._reply(start_response, 403, _xml_error(problem[0], problem[1], resource))
        action, arn = minio_iam.s3_action(environ["REQUEST_METHOD"], path, minio_iam.parse_query(environ))
        if not self.iam.allows(access_key, action, arn):
            return self._reply(start_response, 403, _xml_error("AccessDenied", "Access Denied.", resource))
        environ["wsgi.input"] = io.BytesIO(body)
        result = []

        def capture(status, headers, exc_info=None):
            result.append(int(status.split()[0]))
            return start_response(status, headers, exc_info)
        response = self.s3(environ, capture)
        segments = [s for s in path.split("/") if s]
        if environ["REQUEST_METHOD"] in ("PUT", "DELETE") and len(segments) == 1 and result and result[0] < 300:
            self._save_buckets()
        return response


def _env_or_file(*names):
    """MinIO reads each credential from NAME or from the file named by NAME_FILE (Docker secrets)."""
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
        path = os.environ.get(name + "_FILE")
        if path:
            with open(path, encoding="utf-8") as handle:
                return handle.read().strip()
    return None


def credentials():
    user = _env_or_file("MINIO_ROOT_USER", "MINIO_ACCESS_KEY") or "minioadmin"
    password = _env_or_file("MINIO_ROOT_PASSWORD", "MINIO_SECRET_KEY") or "minioadmin"
    if len(user) < 3:
        raise common.UsageError("ERROR Unable to validate credentials inherited from the shell environment:"
                                " Invalid credentials: MINIO_ROOT_USER length should be at least 3", 1)
    if len(password) < 8:
        raise common.UsageError("ERROR Unable to validate credentials inherited from the shell environment:"
                                " Invalid credentials: MINIO_ROOT_PASSWORD length should be at least 8", 1)
    return user, password


def main(argv):
    if not argv or argv[0] != "server":
        word = argv[0] if argv else ""
        raise common.UsageError(f"minio: '{word}' is not a minio command. See 'minio --help'.", 1)
    flags, dirs = common.parse_flags(argv[1:], FLAGS, "minio server", "urfave", max_positional=32)
    if not dirs:
        raise common.UsageError("Incorrect Usage: minio server needs at least one DIR\nUSAGE:\n  minio server [FLAGS] DIR1 [DIR2..]", 1)
    user, password = credentials()
    host, port = common.split_hostport(flags["address"])
    runtime = common.Runtime("minio", f"{host}:{port}", dirs[0])
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = MinioApp(runtime, dirs[0], user, password)

    def serve():
        from werkzeug.serving import make_server  # pylint: disable=import-outside-toplevel
        if runtime.faults.listen_delay and runtime.stop_event.wait(runtime.faults.listen_delay):
            return
        try:
            # A name is resolved and its first address bound; a port in use or a foreign address is fatal.
            server = make_server(common.listen_addresses(host, port, "S3 API")[0][1][0], port, app, threaded=True)
        except (OSError, common.BindError) as exc:
            runtime.log(f"ERROR Unable to start the server: {exc}")
            os._exit(1)  # pylint: disable=protected-access
        runtime.unbound -= 1
        runtime.on_close(server.shutdown)
        runtime.log(f"S3 API listening on {host}:{port}")
        server.serve_forever()
    runtime.unbound += 1  # not ready before the S3 port listens
    threading.Thread(target=serve, daemon=True).start()
    if flags["console-address"]:
        console = common.Router()
        console.add("GET", "/.*", lambda _r: common.text_response("MinIO Console (tidbsim: not implemented)\n"))
        common.HttpService(runtime, flags["console-address"], console, "console").start()
    runtime.every(0.1, runtime.try_ready)
    return runtime.wait_forever()
