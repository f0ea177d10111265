"""tiflash server --config-file F [-- --key=value ...]

Registers an engine=tiflash store in PD (address = flash.service_addr, peer_address = the proxy
advertise address, status_address = the proxy advertise status address) only while PD's placement
rules are on. /tiflash/store-status on the proxy status address answers Idle, then Running.
Binds what the real one binds (pingcap/tiflash dbms/src/Server/FlashGrpcServerHolder.cpp,
MetricsPrometheus.cpp; pingcap/tidb-engine-ext proxy_components/proxy_server/src/setup.rs): the
flash service on exactly flash.service_addr, the proxy on flash.proxy.addr and status-addr, the
metrics on listen_host:status.metrics_port (8234 by default). The embedded proxy runs TiKV's
open-files check and reserved-space logic on its own TOML (flash.proxy.config).
The proxy registers the store as TiKV does (see tikv.py): its store ident in the proxy's data dir,
`[FATAL] failed to start node: StoreTombstone("store is tombstone")` (exit 1) when PD has buried the
store, `store heartbeat failed` logged while a buried store keeps running
(tidb-engine-ext proxy_components/proxy_server/src/run.rs, components/raftstore/src/store/worker/pd.rs).
With [tici.*]: needs the reader-node address (kebab or snake spelling, or `port`) and tici.s3 keys,
checks the bucket with those keys, then listens on the reader address.
"""

import json
import os
import tomllib

from . import common, s3check, storage
from . import tls as tlsmod
from .common import Flag, text_response
from .storage import get_path
from .tikv import PROXY_FATALS, KvSecurity, StoreClient

DEFAULT_METRICS_PORT = 8234
PROXY_RESERVE_SPACE = "1GB"  # tidb-engine-ext proxy_components/proxy_server/src/config.rs

FLAGS = [Flag("config-file", default="")]


def parse_override(item):
    """`--a.b.c=value` -> (['a','b','c'], value as TOML if it parses, else the string)."""
    if not item.startswith("--") or "=" not in item:
        raise common.UsageError(f"unrecognised option '{item}': arguments after -- must look like --key=value", 1)
    key, _eq, raw = item[2:].partition("=")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.split("."), value


def set_path(config, path, value):
    for part in path[:-1]:
        config = config.setdefault(part, {})
    config[path[-1]] = value


def load(path):
    return common.load_toml(path, "Code: 76. DB::ErrnoException: Cannot open file {path}, errno: {errno}, strerror: {reason}",
                            "Code: 1004. DB::Exception: Failed to parse TOML config {path}: {reason}")


def pd_addresses(value, secure=False):
    """raft.pd_addr split on "," without trimming. client-c (tikv/client-c src/pd/Client.cc
    addrsToUrls) adds http:// where there is no scheme (https:// with a CA), and its PDConnClient
    dials the URL's authority with SslCredentials exactly when the TLS config is set, whatever the
    scheme: so https with [security], else http."""
    scheme = "https" if secure else "http"
    return [f"{scheme}://{item.split('://', 1)[1] if '://' in item else item}" for item in value.split(",") if item]


class FlashSecurity:
    """tiflash.toml's [security] (pingcap/tiflash dbms/src/Common/TiFlashSecurity.h): ca_path,
    cert_path, key_path (trimmed; empty counts as missing) all set or none ("ca_path, cert_path,
    key_path must be set at the same time.", INVALID_CONFIG_PARAMETER, code 318); cert_allowed_cn
    read only with TLS. TiFlash's own PD client (client-c) uses them; the metrics port
    (dbms/src/Server/MetricsPrometheus.cpp getHTTPServer) serves HTTPS with them unless
    status.disable_metrics_tls, with VERIFY_STRICT (a client certificate signed by the CA required;
    VERIFY_RELAXED only in next-gen builds) and the CN, when cert_allowed_cn is set, one of the list."""

    def __init__(self, config):
        section = config.get("security")
        section = section if isinstance(section, dict) else {}
        self.ca, self.cert, self.key = (str(section.get(name) or "").strip() for name in ("ca_path", "cert_path", "key_path"))
        present = [bool(self.ca), bool(self.cert), bool(self.key)]
        if any(present) and not all(present):
            raise common.UsageError("Code: 318. DB::Exception: ca_path, cert_path, key_path must be set at the same time.", 1)
        self.enabled = all(present)
        self.allowed_cn = self._allowed_cn(section.get("cert_allowed_cn")) if self.enabled else []

    @staticmethod
    def _allowed_cn(value):
        """parseAllowedCN: a TOML list, or a string "[a, b]" / "a,b" with optional quotes."""
        if value is None:
            return []
        if isinstance(value, list):
            return [str(item).strip() for item in value]
        text = str(value)
        if len(text) > 2 and text[0] == "[" and text[-1] == "]":
            text = text[1:-1]
        names = []
        for token in text.split(","):
            token = token.strip()
            if len(token) > 2 and token[0] == token[-1] == '"':
                token = token[1:-1]
            names.append(token)
        return names

    def check(self):
        """The files, read at start (the PD client and the metrics server's Poco context load them)."""
        if not self.enabled:
            return
        for path in (self.ca, self.cert, self.key):
            try:
                tlsmod.read_file(path)
            except tlsmod.TLSFileError as exc:
                error = exc.os_error
                raise common.UsageError(f"Code: 76. DB::ErrnoException: Cannot open file {path}, errno: {error.errno},"
                                        f" strerror: {error.strerror}", 1) from None
        try:
            tlsmod.check_ca(self.ca)
            tlsmod.check_pair(self.cert, self.key)
        except tlsmod.TLSFileError as exc:
            raise common.UsageError(f"DB::Exception: SSL context exception: {exc}", 1) from None

    def client(self):
        return tlsmod.client_context(self.ca, self.cert, self.key) if self.enabled else None

    def metrics_server(self):
        return tlsmod.ServerTLS(self.cert, self.key, self.ca, "require", allowed_cns=self.allowed_cn or None)


class Settings:  # pylint: disable=too-many-instance-attributes
    """Addresses and TiCI settings resolved from tiflash.toml, overrides and the proxy TOML."""

    def __init__(self, config):
        self.listen_host = config.get("listen_host", "0.0.0.0")
        self.service_addr = get_path(config, "flash.service_addr", "0.0.0.0:3930")
        self.pd_addr = get_path(config, "raft.pd_addr", "")
        if not self.pd_addr:
            raise common.UsageError("DB::Exception: raft.pd_addr is empty: TiFlash needs the PD addresses"
                                    " (TiFlash Proxy will not start because `raft.pd_addr` is not configured.)", 1)
        self.security = FlashSecurity(config)
        self.disable_metrics_tls = get_path(config, "status.disable_metrics_tls", False) is True
        proxy_file = get_path(config, "flash.proxy.config")
        self.proxy = {}
        if proxy_file:
            self.proxy = common.load_toml(proxy_file, "[FATAL] invalid configuration file {path}: {reason}",
                                          "[FATAL] invalid configuration file {path}: {reason}")
        proxy_server = self.proxy.get("server", {})
        # flash.proxy.<key> becomes the proxy's --<key> argument, which wins over its TOML.
        self.proxy_addr = get_path(config, "flash.proxy.addr") or proxy_server.get("addr", "127.0.0.1:20170")
        self.proxy_advertise = get_path(config, "flash.proxy.advertise-addr") or proxy_server.get("advertise-addr") or self.proxy_addr
        self.status_addr = get_path(config, "flash.proxy.status-addr") or proxy_server.get("status-addr", "127.0.0.1:20292")
        self.status_advertise = (get_path(config, "flash.proxy.advertise-status-addr") or proxy_server.get("advertise-status-addr")
                                 or self.status_addr)
        main_dirs = get_path(config, "storage.main.dir")
        self.data_dir = (main_dirs[0] if main_dirs else str(config.get("path", "./")).split(",", maxsplit=1)[0])
        self.proxy_data_dir = (get_path(config, "flash.proxy.data-dir") or get_path(self.proxy, "storage.data-dir")
                               or self.data_dir)
        self.proxy_capacity = storage.parse_size(get_path(config, "flash.proxy.capacity")
                                                 or get_path(self.proxy, "raftstore.capacity", 0), "raftstore.capacity")
        self.proxy_reserve = storage.parse_size(get_path(self.proxy, "storage.reserve-space", PROXY_RESERVE_SPACE),
                                                "storage.reserve-space")
        # The proxy does not adjust Titan by default: only an explicit `true` doubles rocksdb's files.
        self.proxy_open_fds = storage.expected_open_fds(self.proxy, titan_default=False)
        self.proxy_security = KvSecurity(self.proxy)
        self.metrics_port = get_path(config, "status.metrics_port")
        if self.metrics_port is None and get_path(config, "status.metrics_addr") is None:
            self.metrics_port = DEFAULT_METRICS_PORT  # pull mode on the default port
        self.tici = self._tici(config.get("tici"))

    def _tici(self, tici):
        if not tici:
            return None
        reader = tici.get("reader-node") or tici.get("reader_node") or {}
        addr = reader.get("addr")
        advertise = reader.get("advertise-addr") or reader.get("advertise_addr")
        if reader.get("port") and not addr:
            service_host = common.split_hostport(self.service_addr)[0]
            addr, advertise = f"{self.listen_host}:{reader['port']}", advertise or f"{service_host}:{reader['port']}"
        if not addr or not advertise:
            raise common.UsageError("DB::Exception: TiCI is configured but [tici.reader-node] addr and advertise-addr"
                                    " (or port) are missing", 1)
        s3 = tici.get("s3") or {}
        settings = {"addr": addr, "advertise": advertise, "endpoint": s3.get("endpoint"), "bucket": s3.get("bucket"),
                    "access_key": s3.get("access-key") or s3.get("access_key"),
                    "secret_key": s3.get("secret-key") or s3.get("secret_key"), "region": s3.get("region", "us-east-1"),
                    "path_style": s3.get("use-path-style", s3.get("use_path_style", True))}
        missing = [key for key in ("endpoint", "bucket", "access_key", "secret_key") if not settings[key]]
        if missing:
            raise common.UsageError("DB::Exception: TiCI is configured but [tici.s3] lacks "
                                    + ", ".join(m.replace("_", "-") for m in missing), 1)
        return settings


def main(argv):
    if not argv or argv[0] != "server":
        raise common.UsageError("Usage: tiflash server --config-file <file> [-- --key=value ...]", 1)
    flags, extra = common.parse_flags(argv[1:], FLAGS, "tiflash server", "boost", max_positional=1000)
    if not flags["config-file"]:
        raise common.UsageError("DB::Exception: --config-file is required", 1)
    config = load(flags["config-file"])
    for item in extra:
        path, value = parse_override(item)
        set_path(config, path, value)
    settings = Settings(config)
    settings.security.check()
    settings.proxy_security.validate()  # the proxy's config validation (tidb-engine-ext proxy_server/src/config.rs)
    runtime = common.Runtime("tiflash", settings.service_addr, settings.data_dir)
    # The embedded proxy's init_config and init_fs (tidb-engine-ext proxy_server/src/run.rs).
    storage.check_max_open_fds(settings.proxy_open_fds, runtime.log)
    disk = storage.Disk(runtime, os.path.abspath(settings.proxy_data_dir), settings.proxy_reserve, settings.proxy_capacity)
    disk.init()
    # The proxy registers the store with its own [security] (TiKV's rules: scheme trimmed, TLS with a CA).
    client = StoreClient(runtime, pd_addresses(settings.pd_addr, settings.proxy_security.enabled), {
        "address": settings.service_addr, "peer_address": settings.proxy_advertise, "status_address": settings.status_advertise,
        "version": common.SIM_VERSION.lstrip("v"), "labels": [{"key": "engine", "value": "tiflash"}]}, disk,
        ident_dir=os.path.abspath(settings.proxy_data_dir), fatals=PROXY_FATALS, tls=settings.proxy_security.client())
    # TiFlash's own PD client (the placement-rules read below) uses tiflash.toml's [security].
    flash_pd_urls = pd_addresses(settings.pd_addr, settings.security.enabled)
    flash_tls = settings.security.client()
    state = {"problem": "starting", "reader": False}

    def note(problem):
        if problem != state["problem"] and problem:
            runtime.log(problem)
        state["problem"] = problem

    def store_status(_request):
        return text_response("Running" if runtime.ready else "Idle")

    try:
        common.TcpListener(runtime, settings.service_addr, "flash service").start()
    except common.BindError as exc:
        raise common.UsageError("DB::Exception: Exception happens when start grpc server, the flash.service_addr may be invalid,"
                                f" flash.service_addr is {settings.service_addr} ({exc})", 1) from None
    router = common.Router()
    router.add("GET", "/tiflash/store-status", store_status)
    router.add("GET", "/tiflash/readyz", lambda _r: text_response("ok\n") if runtime.ready else text_response("fail\n", 500))
    router.add("GET", "/tiflash/livez", lambda _r: text_response("ok\n"))
    router.add("GET", "/status", lambda _r: text_response(""))
    common.TcpListener(runtime, settings.proxy_addr, "proxy").start()
    common.HttpService(runtime, settings.status_addr, router, "proxy status", tls=settings.proxy_security.status_server()).start()
    if settings.metrics_port:
        metrics = common.Router()
        metrics.add("GET", "/metrics", lambda _r: text_response("# tidbsim: no metrics\n"))
        host = settings.listen_host.split(",")[0] if isinstance(settings.listen_host, str) else settings.listen_host[0]
        metrics_tls = settings.security.metrics_server() if settings.security.enabled and not settings.disable_metrics_tls else None
        common.HttpService(runtime, f"[{host}]:{settings.metrics_port}" if ":" in host else f"{host}:{settings.metrics_port}",
                           metrics, "metrics", tls=metrics_tls).start()

    def tick():
        if not runtime.start_delay_passed() or runtime.faults.never_ready:
            return
        tici = settings.tici
        if tici and not state["reader"]:
            reason = s3check.bucket_error(tici["endpoint"], tici["bucket"], tici["access_key"], tici["secret_key"],
                                          tici["region"], tici["path_style"])
            if reason:
                note(f"TiCI reader cannot use S3: {reason}")
                return
            try:
                common.TcpListener(runtime, tici["addr"], "tici reader").start()
            except common.BindError as exc:
                runtime.log(f"TiCI reader cannot start: {exc}")
                os._exit(1)  # pylint: disable=protected-access
            state["reader"] = True
        _status, data = common.first_answer("GET", flash_pd_urls, "/pd/api/v1/config/replicate", accept=lambda s: s == 200, tls=flash_tls)
        if json.loads(data).get("enable-placement-rules") != "true":
            note("placement rules are disabled in PD (enable-placement-rules is not \"true\"); TiFlash will not register")
            return
        client.heartbeat()
        note(None)
        runtime.try_ready()
    runtime.every(common.env_float("HEARTBEAT_INTERVAL", 0.5), tick)
    return runtime.wait_forever()
