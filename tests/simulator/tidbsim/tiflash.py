"""tiflash server --config-file F [-- --key=value ...]

Registers an engine=tiflash store in PD (address = flash.service_addr, peer_address = the proxy
advertise address, status_address = the proxy advertise status address) only while PD's placement
rules are on. /tiflash/store-status on the proxy status address answers Idle, then Running.
With [tici.*]: needs the reader-node address (kebab or snake spelling, or `port`) and tici.s3 keys,
checks the bucket with those keys, then listens on the reader port.
"""

import json
import os
import tomllib

from . import common, s3check
from .common import Flag, text_response
from .tikv import StoreClient

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


def get_path(config, dotted, default=None):
    for part in dotted.split("."):
        if not isinstance(config, dict) or part not in config:
            return default
        config = config[part]
    return config


def load(path):
    return common.load_toml(path, "Code: 76. DB::ErrnoException: Cannot open file {path}, errno: {errno}, strerror: {reason}",
                            "Code: 1004. DB::Exception: Failed to parse TOML config {path}: {reason}")


class Settings:
    """Addresses and TiCI settings resolved from tiflash.toml, overrides and the proxy TOML."""

    def __init__(self, config):
        self.listen_host = config.get("listen_host", "0.0.0.0")
        self.service_addr = get_path(config, "flash.service_addr", "0.0.0.0:3930")
        self.pd_addr = get_path(config, "raft.pd_addr", "")
        if not self.pd_addr:
            raise common.UsageError("DB::Exception: raft.pd_addr is empty: TiFlash needs the PD addresses", 1)
        proxy_file = get_path(config, "flash.proxy.config")
        proxy = load(proxy_file) if proxy_file and os.path.exists(proxy_file) else {}
        proxy_server = proxy.get("server", {})
        self.proxy_addr = get_path(config, "flash.proxy.addr") or proxy_server.get("addr", "0.0.0.0:20170")
        self.proxy_advertise = get_path(config, "flash.proxy.advertise-addr") or proxy_server.get("advertise-addr") or self.proxy_addr
        self.status_addr = get_path(config, "flash.proxy.status-addr") or proxy_server.get("status-addr", "0.0.0.0:20292")
        self.status_advertise = (get_path(config, "flash.proxy.advertise-status-addr") or proxy_server.get("advertise-status-addr")
                                 or self.status_addr)
        main_dirs = get_path(config, "storage.main.dir")
        self.data_dir = (main_dirs[0] if main_dirs else str(config.get("path", "./")).split(",", maxsplit=1)[0])
        self.metrics_port = get_path(config, "status.metrics_port")
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
    runtime = common.Runtime("tiflash", settings.service_addr, settings.data_dir)
    client = StoreClient(runtime, common.url_list(settings.pd_addr), {
        "address": settings.service_addr, "peer_address": settings.proxy_advertise, "status_address": settings.status_advertise,
        "version": common.SIM_VERSION.lstrip("v"), "labels": [{"key": "engine", "value": "tiflash"}]})
    state = {"problem": "starting", "reader": False}

    def note(problem):
        if problem != state["problem"] and problem:
            runtime.log(problem)
        state["problem"] = problem

    def store_status(_request):
        return text_response("Running" if runtime.ready else "Idle")

    router = common.Router()
    router.add("GET", "/tiflash/store-status", store_status)
    router.add("GET", "/tiflash/readyz", lambda _r: text_response("ok\n") if runtime.ready else text_response("fail\n", 500))
    router.add("GET", "/tiflash/livez", lambda _r: text_response("ok\n"))
    router.add("GET", "/status", lambda _r: text_response(""))
    common.HttpService(runtime, settings.status_addr, router, "proxy status").start()
    listen_port = common.split_hostport(settings.service_addr)[1]
    common.TcpListener(runtime, f"{settings.listen_host}:{listen_port}", "flash service").start()
    common.TcpListener(runtime, settings.proxy_addr, "proxy").start()
    if settings.metrics_port:
        metrics = common.Router()
        metrics.add("GET", "/metrics", lambda _r: text_response("# tidbsim: no metrics\n"))
        common.HttpService(runtime, f"{settings.listen_host}:{settings.metrics_port}", metrics, "metrics").start()

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
            common.TcpListener(runtime, tici["addr"], "tici reader").start()
            state["reader"] = True
        _status, data = common.first_answer("GET", client.pd_urls, "/pd/api/v1/config/replicate", accept=lambda s: s == 200)
        if json.loads(data).get("enable-placement-rules") != "true":
            note("placement rules are disabled in PD (enable-placement-rules is not \"true\"); TiFlash will not register")
            return
        client.heartbeat()
        note(None)
        runtime.try_ready()
    runtime.every(common.env_float("HEARTBEAT_INTERVAL", 0.5), tick)
    return runtime.wait_forever()
