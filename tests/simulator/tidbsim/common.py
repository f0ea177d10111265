"""Pieces every simulated component shares.

Flag parsing in the style of each real binary, a tiny HTTP router on ThreadingHTTPServer,
fault switches read from the environment, the data-dir marker, the JSON "ready" line and
SIGTERM handling.
"""

import faulthandler
import http.client
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import tls as tlsmod

SIM_VERSION = "v8.5.0"
GIT_HASH = "0000000000000000000000000000000000tidbsim"


# ---------------------------------------------------------------- flags

class UsageError(Exception):
    """Bad command line: printed as the real binary would, then exit with `code`."""

    def __init__(self, message, code=2):
        super().__init__(message)
        self.code = code


class Flag:
    """One command-line flag. `names` lists every spelling without dashes."""

    def __init__(self, *names, boolean=False, default=None):
        self.names = names
        self.key = names[0]
        self.boolean = boolean
        self.default = default


def _bare(arg):
    """Go's flag package names a flag with one dash, whatever the user typed."""
    return arg.split("=", 1)[0].lstrip("-")


# How each real binary complains about a flag it does not know.
_UNKNOWN = {
    "go": lambda prog, arg: f"flag provided but not defined: -{_bare(arg)}\nUsage of {prog}:",
    "clap": lambda prog, arg: f"error: unexpected argument '{arg.split('=', 1)[0]}' found\n\nUsage: {prog} [OPTIONS]",
    "cobra": lambda prog, arg: f"Error: unknown flag: {arg.split('=', 1)[0]}\nRun '{prog} --help' for usage.",
    "urfave": lambda prog, arg: f"Incorrect Usage: flag provided but not defined: -{_bare(arg)}",
    "boost": lambda prog, arg: f"unrecognised option '{arg.split('=', 1)[0]}'",
}
_MISSING = {
    "go": lambda prog, arg: f"flag needs an argument: -{_bare(arg)}\nUsage of {prog}:",
    "clap": lambda prog, arg: f"error: a value is required for '{arg} <{arg.lstrip('-').upper()}>' but none was supplied",
    "cobra": lambda prog, arg: f"Error: flag needs an argument: {arg}",
    "urfave": lambda prog, arg: f"Incorrect Usage: flag needs an argument: {arg}",
    "boost": lambda prog, arg: f"the required argument for option '{arg}' is missing",
}
_TRUE = ("1", "t", "true", "yes", "on")
_FALSE = ("0", "f", "false", "no", "off")


def parse_flags(argv, flags, prog, style, max_positional=0):
    """Parse `--flag value`, `--flag=value` (and Go's single-dash forms). Returns (values, positional)."""
    by_name = {}
    for flag in flags:
        for name in flag.names:
            by_name[name] = flag
    values = {flag.key: flag.default for flag in flags}
    positional = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            positional.extend(argv[i:])
            break
        if not arg.startswith("-") or arg == "-":
            positional.append(arg)
            continue
        name, has_value, value = arg.lstrip("-").partition("=")
        dashes = len(arg) - len(arg.lstrip("-"))
        flag = by_name.get(name)
        # Only Go accepts a long name with one dash; clap/cobra take one dash for one letter.
        if flag is not None and style != "go" and len(name) > 1 and dashes == 1:
            flag = None
        if flag is None:
            raise UsageError(_UNKNOWN[style](prog, arg), 1 if style in ("cobra", "urfave", "boost") else 2)
        if flag.boolean:
            if has_value:
                if value.lower() not in _TRUE + _FALSE:
                    raise UsageError(f"invalid boolean value {value!r} for {arg.split('=', 1)[0]}")
                values[flag.key] = value.lower() in _TRUE
            else:
                values[flag.key] = True
            continue
        if not has_value:
            if i >= len(argv):
                raise UsageError(_MISSING[style](prog, arg), 1 if style in ("cobra", "urfave", "boost") else 2)
            value = argv[i]
            i += 1
        values[flag.key] = value
    if len(positional) > max_positional:
        raise UsageError(f"{prog}: unexpected argument '{positional[max_positional]}'")
    return values, positional


def split_hostport(value, default_host="0.0.0.0"):
    """'http://h:1', 'h:1', ':1' -> ('h', 1). The empty host listens everywhere."""
    if "://" in value:
        value = urllib.parse.urlsplit(value).netloc
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address {value!r} is not host:port")
    return (host.strip("[]") or default_host), int(port)


def url_list(value, scheme="http"):
    """A comma list of host:port or URLs -> list of base URLs with a scheme."""
    urls = []
    for item in (value or "").split(","):
        item = item.strip().rstrip("/")
        if item:
            urls.append(item if "://" in item else f"{scheme}://{item}")
    return urls


class BindError(UsageError):
    """A listener could not bind its address: the process exits non-zero, as the real binary does."""

    def __init__(self, message):
        super().__init__(message, 1)


def listen_addresses(host, port, label="listener"):
    """[(family, sockaddr)] a listener on host:port binds: a literal IP as is, a name resolved (IPv4 first)."""
    try:
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise BindError(f"{label}: cannot resolve {host!r} to listen on {host}:{port}: {exc}") from None
    result = []
    for family, _type, _proto, _name, sockaddr in sorted(infos, key=lambda info: info[0] != socket.AF_INET):
        if family in (socket.AF_INET, socket.AF_INET6) and (family, sockaddr) not in result:
            result.append((family, sockaddr))
    if not result:
        raise BindError(f"{label}: {host!r} has no IP address to listen on")
    return result


# ---------------------------------------------------------------- environment

def env_float(name, default, component=None):
    """Per-component override TIDBSIM_<COMPONENT>_<NAME> first, then TIDBSIM_<NAME>."""
    names = ([f"TIDBSIM_{component}_{name}"] if component else []) + [f"TIDBSIM_{name}"]
    for key in names:
        raw = os.environ.get(key)
        if raw not in (None, ""):
            try:
                return float(raw)
            except ValueError:
                raise UsageError(f"tidbsim: {key}={raw!r} is not a number") from None
    return default


class Faults:
    """Fault switches from the environment (see README)."""

    def __init__(self, component):
        key = component.upper().replace("-", "_")
        self.start_delay = env_float("START_DELAY", 0.0, key)
        self.never_ready = env_float("NEVER_READY", 0, key) > 0
        self.crash_after = env_float("CRASH_AFTER", 0.0, key)
        self.fail_first = int(env_float("FAIL_FIRST", 0, key))
        self.fail_status = int(env_float("FAIL_STATUS", 500, key))
        self.listen_delay = env_float("LISTEN_DELAY", 0.0, key)
        self._failed = 0
        self._lock = threading.Lock()

    def take_failure(self):
        """True while the first FAIL_FIRST requests are being refused."""
        with self._lock:
            if self._failed < self.fail_first:
                self._failed += 1
                return True
            return False


# ---------------------------------------------------------------- persistence

def load_json(path, default=None):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return default


def save_json(path, data):
    """Write atomically, so a crash never leaves half a file."""
    tmp = f"{path}.tmp.{os.getpid()}.{threading.get_ident()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, sort_keys=True)
    os.replace(tmp, path)


def load_toml(path, read_error, parse_error, code=1):
    """Parse a TOML file; on failure exit like the real binary, with its wording.

    read_error/parse_error are format strings with {path} and {reason}.
    """
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise UsageError(read_error.format(path=path, reason=exc.strerror, errno=exc.errno), code) from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(parse_error.format(path=path, reason=exc), code) from None


class Marker:
    """`tidbsim-marker.json` in the data dir: created on first start, counted on every start."""

    FILE = "tidbsim-marker.json"

    def __init__(self, data_dir, component, name):
        os.makedirs(data_dir, exist_ok=True)
        self.path = os.path.join(data_dir, self.FILE)
        data = load_json(self.path)
        self.restarted = data is not None
        if data is None:
            data = {"id": uuid.uuid4().hex, "component": component, "name": name, "created": time.time(), "starts": 0}
        data["starts"] += 1
        save_json(self.path, data)
        self.data = data

    def as_dict(self):
        return dict(self.data, restarted=self.restarted)


# ---------------------------------------------------------------- process runtime

class Runtime:
    """Process-wide state: faults, marker, readiness and shutdown."""

    def __init__(self, component, name, data_dir=None):
        self.component = component
        self.name = name
        self.started = time.monotonic()
        self.faults = Faults(component)
        self.stop_event = threading.Event()
        self.signalled = None
        self.ready_event = threading.Event()
        self._closers = []
        self.unbound = 0  # HTTP listeners still held back by TIDBSIM_LISTEN_DELAY
        self.marker = None
        if data_dir:
            self.marker = Marker(data_dir, component, name)
            if self.marker.restarted:
                self.log(f"data dir {data_dir} kept marker {self.marker.data['id']} (start #{self.marker.data['starts']})")
            else:
                self.log(f"data dir {data_dir} is new, wrote marker {self.marker.data['id']}")
        faulthandler.register(signal.SIGUSR1)  # `kill -USR1` dumps every thread's stack: for hangs
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        if self.faults.crash_after > 0:
            timer = threading.Timer(self.faults.crash_after, self._crash)
            timer.daemon = True
            timer.start()

    def log(self, message):
        # One write per line, so lines from several threads never interleave.
        sys.stderr.write(f"[tidbsim {self.component} {self.name}] {message}\n")
        sys.stderr.flush()

    def _on_signal(self, signum, _frame):
        # No locks in a signal handler (Event.set could deadlock on a second signal): set a plain flag.
        self.signalled = signum

    def _crash(self):
        self.log(f"TIDBSIM_CRASH_AFTER={self.faults.crash_after:g}: crashing on purpose")
        os._exit(3)  # pylint: disable=protected-access

    def start_delay_passed(self):
        return time.monotonic() - self.started >= self.faults.start_delay

    def try_ready(self):
        """Mark ready once the start delay has passed (never, with TIDBSIM_NEVER_READY). Logs the instant once."""
        if self.ready_event.is_set():
            return True
        if self.faults.never_ready or not self.start_delay_passed() or self.unbound:
            return False
        self.ready_event.set()
        line = {"tidbsim": "ready", "component": self.component, "name": self.name,
                "monotonic": time.monotonic(), "wall": time.time()}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        return True

    @property
    def ready(self):
        return self.ready_event.is_set()

    def on_close(self, closer):
        self._closers.append(closer)

    def every(self, interval, func):
        """Run func every `interval` seconds in a daemon thread until shutdown; errors are logged, not fatal."""
        def loop():
            last_error = None
            while not self.stop_event.is_set():
                try:
                    func()
                    last_error = None
                except Exception as exc:  # pylint: disable=broad-except
                    if str(exc) != last_error:  # log each new problem once, not every tick
                        self.log(f"{func.__name__}: {exc}")
                    last_error = str(exc)
                self.stop_event.wait(interval)
        thread = threading.Thread(target=loop, name=func.__name__, daemon=True)
        thread.start()
        return thread

    def wait_forever(self):
        """Block until SIGTERM/SIGINT, close listeners, exit 0."""
        while self.signalled is None:
            time.sleep(0.05)
        self.log(f"received signal {self.signalled}, shutting down")
        self.stop_event.set()
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception:  # pylint: disable=broad-except
                pass
        return 0


# ---------------------------------------------------------------- HTTP

class Request:
    def __init__(self, method, path, query, headers, body):
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body

    def json(self):
        """The body as JSON; raises ValueError with a readable message."""
        if not self.body:
            raise ValueError("EOF")
        return json.loads(self.body)

    def arg(self, name, default=None):
        return self.query.get(name, [default])[0]


class Response:
    def __init__(self, status=200, body=b"", content_type="text/plain; charset=utf-8", headers=None):
        self.status = status
        self.body = body if isinstance(body, bytes) else body.encode()
        self.content_type = content_type
        self.headers = headers or {}


def json_response(obj, status=200, headers=None):
    return Response(status, json.dumps(obj, indent=2) + "\n", "application/json; charset=utf-8", headers)


def text_response(text, status=200):
    return Response(status, text)


class Router:
    """Routes (method, regex) to handler(request, *groups) -> Response."""

    def __init__(self):
        self.routes = []
        self.fallback = None

    def add(self, method, pattern, handler):
        self.routes.append((method, re.compile(pattern + "$"), handler))

    def dispatch(self, request):
        allowed = False
        for method, regex, handler in self.routes:
            match = regex.match(request.path)
            if match:
                if method in (request.method, "*"):
                    return handler(request, *match.groups())
                allowed = True
        if self.fallback is not None:
            return self.fallback(request)
        if allowed:
            return text_response("405 method not allowed\n", 405)
        return text_response("404 page not found\n", 404)


class HttpService:  # pylint: disable=too-many-instance-attributes
    """A ThreadingHTTPServer with a router, the FAIL_FIRST fault and the /sim/marker endpoint.

    tls: a tls.ServerTLS to serve HTTPS only (see tls.py); None serves plain HTTP."""

    def __init__(self, runtime, listen, router, label="http", tls=None):
        self.runtime = runtime
        self.router = router
        self.label = label
        self.tls = tls
        self.host, self.port = split_hostport(listen)
        self.server = None
        self._rejected = {}  # reason -> [last logged (monotonic), connections not logged since]
        self._rejected_lock = threading.Lock()
        router.add("GET", "/sim/marker", self._marker)

    def log_rejected(self, peer, reason):
        """Log a refused TLS connection; the same reason at most every 10 s, with a count."""
        now = time.monotonic()
        with self._rejected_lock:
            entry = self._rejected.setdefault(reason, [0.0, 0])
            if now - entry[0] < 10.0:
                entry[1] += 1
                return
            more = f" (and {entry[1]} more like it)" if entry[1] else ""
            entry[0], entry[1] = now, 0
        self.runtime.log(f"{self.label}: rejected connection from {peer[0]}:{peer[1]}: {reason}{more}")

    def _marker(self, _request):
        if self.runtime.marker is None:
            return json_response({"error": "no data dir"}, 404)
        return json_response(self.runtime.marker.as_dict())

    def start(self):
        """Bind now, or after TIDBSIM_LISTEN_DELAY seconds in the background."""
        delay = self.runtime.faults.listen_delay
        if delay > 0:
            self.runtime.unbound += 1

            def later():
                if not self.runtime.stop_event.wait(delay):
                    try:
                        self._bind()
                    except BindError as exc:
                        self.runtime.log(str(exc))
                        os._exit(1)  # pylint: disable=protected-access
                    self.runtime.unbound -= 1
            threading.Thread(target=later, daemon=True).start()
        else:
            self._bind()
        return self

    def _bind(self):  # pylint: disable=too-many-statements
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args):  # silence per-request logging
                pass

            def _handle(self):
                parts = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(self.command, parts.path, urllib.parse.parse_qs(parts.query, keep_blank_values=True),
                                  self.headers, body)
                faults = service.runtime.faults
                refused = None
                if service.tls is not None and service.tls.path_check is not None and not parts.path.startswith("/sim/"):
                    refused = service.tls.path_check(self.command, parts.path, self.connection.getpeercert())
                if refused is not None:
                    response = refused
                elif not parts.path.startswith("/sim/") and faults.take_failure():
                    response = text_response("tidbsim: TIDBSIM_FAIL_FIRST injected failure\n", faults.fail_status)
                else:
                    try:
                        response = service.router.dispatch(request)
                    except Exception as exc:  # pylint: disable=broad-except
                        service.runtime.log(f"{self.command} {parts.path} failed: {exc!r}")
                        response = text_response(f"internal error: {exc}\n", 500)
                try:
                    self.send_response(response.status)
                    self.send_header("Content-Type", response.content_type)
                    self.send_header("Content-Length", str(len(response.body)))
                    for key, value in response.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(response.body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up waiting: nothing to answer

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle

        # Like Go's net.Listen: a name is resolved and the first address (IPv4 first) is bound.
        family, address = listen_addresses(self.host, self.port, self.label)[0]
        tls = self.tls

        class Server(ThreadingHTTPServer):
            address_family = family
            allow_reuse_address = True
            daemon_threads = True

            def handle_error(self, request, client_address):
                if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
                    super().handle_error(request, client_address)

            if tls is not None:
                def get_request(self):
                    sock, peer = super().get_request()
                    return tls.wrap(sock), peer

                def finish_request(self, request, client_address):
                    # In the connection's thread: a slow or broken handshake holds up no one else.
                    refused = tls.handshake(request)
                    if refused:
                        service.log_rejected(client_address, refused)
                        return
                    super().finish_request(request, client_address)

        try:
            server = Server(address, Handler)
        except OSError as exc:
            raise BindError(f"{self.label}: cannot listen on {self.host}:{self.port} ({address[0]}): {exc}") from None
        self.server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
        self.runtime.on_close(server.shutdown)
        self.runtime.log(f"{self.label} listening on {self.host}:{self.port}" + ("" if address[0] == self.host else f" ({address[0]})")
                         + (" (HTTPS)" if tls is not None else ""))


class TcpListener:
    """Accepts and closes connections: stands in for a gRPC or binary port, so port checks see it listening.

    Binds like gRPC's AddListeningPort: a name is resolved and every address is bound; it fails
    only when none of them can be bound.
    """

    def __init__(self, runtime, listen, label):
        self.runtime = runtime
        self.host, self.port = split_hostport(listen)
        self.label = label

    def start(self):
        bound, errors = [], []
        for family, address in listen_addresses(self.host, self.port, self.label):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
                sock.listen(64)
            except OSError as exc:
                sock.close()
                errors.append(f"{address[0]}: {exc}")
                continue
            sock.settimeout(0.5)
            bound.append(sock)
            threading.Thread(target=self._accept, args=(sock,), daemon=True).start()
            self.runtime.on_close(sock.close)
        if not bound:
            raise BindError(f"{self.label}: cannot listen on {self.host}:{self.port}: {'; '.join(errors)}")
        addresses = ", ".join(s.getsockname()[0] for s in bound)
        self.runtime.log(f"{self.label} listening on {self.host}:{self.port}" + ("" if addresses == self.host else f" ({addresses})"))
        return self

    def _accept(self, sock):
        while not self.runtime.stop_event.is_set():
            try:
                conn, _addr = sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.close()


def http_call(method, url, body=None, timeout=3.0, headers=None, *, tls=None):  # pylint: disable=too-many-arguments
    """One HTTP request. Returns (status, bytes); raises OSError when nothing answers.

    An https:// URL is dialled with `tls` (an ssl.SSLContext), else with the process default
    (tls.set_default_client), else with system roots and no client certificate."""
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    context = (tls or tlsmod.default_client()) if url.startswith("https://") else None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:  # nosec: loopback test double
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except urllib.error.URLError as exc:
        reason = exc.reason if isinstance(exc.reason, OSError) else OSError(str(exc.reason))
        raise reason from None
    except http.client.HTTPException as exc:  # e.g. a garbled answer: nothing usable answered
        if isinstance(exc, OSError):  # RemoteDisconnected: as before, the caller sees it unchanged
            raise
        raise OSError(f"{url}: {exc!r}") from None


def first_answer(method, base_urls, path, body=None, timeout=3.0, accept=lambda status: status < 500, *, tls=None):  # pylint: disable=too-many-arguments
    """Try each base URL until one answers with an acceptable status. Returns (status, bytes)."""
    last = OSError(f"no endpoint in {base_urls} answered")
    for base in base_urls:
        try:
            status, data = http_call(method, base + path, body, timeout, tls=tls)
        except OSError as exc:
            last = exc
            continue
        if accept(status):
            return status, data
        last = OSError(f"{base}{path} answered {status}: {data[:200]!r}")
    raise last


def proxy(request, base_url, timeout=5.0):
    """Forward a request unchanged to another member (PD leader, TiCDC owner)."""
    query = urllib.parse.urlencode(request.query, doseq=True)
    url = base_url + request.path + (f"?{query}" if query else "")
    body = request.body if request.method in ("POST", "PUT", "PATCH", "DELETE") else None
    headers = {"X-Tidbsim-Forwarded": "1"}
    if request.headers.get("Content-Type"):
        headers["Content-Type"] = request.headers["Content-Type"]
    status, data = http_call(request.method, url, body if body else (b"" if body is not None else None), timeout, headers)
    return Response(status, data, "application/json; charset=utf-8")


def is_up_tikv(store):
    """A PD /stores entry of an Up TiKV (TiFlash carries an engine label)."""
    labels = store["store"].get("labels") or []
    return store["store"]["state_name"] == "Up" and not any(label["key"] == "engine" for label in labels)


def is_up_tiflash(store):
    """A PD /stores entry of an Up TiFlash (its engine label says tiflash)."""
    labels = store["store"].get("labels") or []
    return store["store"]["state_name"] == "Up" and any(label["key"] == "engine" and label["value"] == "tiflash" for label in labels)


def tso(wall=None):
    """A TiDB timestamp: physical milliseconds shifted by 18 logical bits."""
    return int((time.time() if wall is None else wall) * 1000) << 18


def run_main(main):
    """Entry wrapper: usage errors print like the real binary and exit non-zero."""
    try:
        return main()
    except UsageError as exc:
        print(str(exc), file=sys.stderr, flush=True)
        return exc.code
