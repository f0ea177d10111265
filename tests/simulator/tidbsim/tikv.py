"""tikv-server: registers its advertise address as a PD store and heartbeats; /status once registered.

Registration as real TiKV does it (tikv/tikv src/server/raft_server.rs try_bootstrap_store,
check_store, start): the store ident (cluster id, store id) lives in the data dir
(`tidbsim-store-ident.json` here, a key in the kv engine there); without one, TiKV allocates a store
id from PD and writes it; with one from another cluster it exits (`cluster ID mismatch`). Then
PutStore: PD refuses a Tombstone store (STORE_TOMBSTONE) and an address another live store uses
(`duplicated store address`); TiKV exits 1 with `[FATAL] failed to start raft_server: ...`
(components/server/src/server.rs; the fatal! macro exits 1). Once running, a heartbeat that PD
answers with an error is only logged, `store heartbeat failed` (components/raftstore/src/store/
worker/pd.rs, error level in v8.5.7): a store that PD buries while the process runs keeps running
until it is stopped, and fails on its next start. A node state of Removing or Removed in PD's
answer logs `store is offlined by pd` once.

At start, as real TiKV: the open-files check (1000 + rocksdb.max-open-files, doubled with Titan,
+ raftdb.max-open-files) and the reserved space (storage.reserve-space, default 5GB, with its
space_placeholder_file); the disk status (Normal, AlmostFull, AlreadyFull) and the capacity,
available and used sizes go to PD with every heartbeat. PD answers a heartbeat with the store's
leader and region counts (its region model, see regions.py), exported on /metrics as
tikv_raftstore_region_count; on SIGTERM a store that PD says still leads regions logs
`[WARN] unsafe stop: store N still leads M regions`.
"""

import errno
import json
import os
import time

from . import common, storage
from . import tls as tlsmod
from .common import Flag, json_response, text_response

FLAGS = [
    Flag("pd-endpoints", "pd", default=None),
    Flag("addr", "A", default="127.0.0.1:20160"),
    Flag("advertise-addr", default=""),
    Flag("status-addr", default="127.0.0.1:20180"),
    Flag("advertise-status-addr", default=""),
    Flag("data-dir", "s", default="./"),
    Flag("config", "C", default=""),
    Flag("labels", default=""),
    Flag("capacity", default=""),
    Flag("log-file", "f", default=""),
    Flag("log-level", "L", default="info"),
]


def advertise(listen, advertised, flag):
    """TiKV refuses to advertise an unspecified address."""
    address = advertised or listen
    host, _port = common.split_hostport(address)
    if host in ("0.0.0.0", "::", ""):
        raise common.UsageError(f"[FATAL] invalid configuration: {flag} {address!r} is an unspecified address;"
                                f" set --{flag.replace('server.', '')} to a routable address", 1)
    return address


def parse_labels(text):
    labels = []
    for item in filter(None, (text or "").split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise common.UsageError(f"error: invalid value '{text}' for '--labels <KEY=VALUE>': expect key=value", 2)
        labels.append({"key": key.strip(), "value": value.strip()})
    return labels


def pd_endpoints(value, secure=False):
    """TiKV's --pd-endpoints: host:port or http(s)://host:port (the scheme is trimmed), no duplicates.
    TiKV dials them with TLS exactly when security.ca-path is set (components/security
    SecurityManager::connect), whatever scheme they were given with: https then, else http."""
    endpoints = []
    for item in (value or "").split(","):
        if not item:
            continue
        address = item.removeprefix("http://").removeprefix("https://")  # trim_http_prefix
        if address in endpoints:
            raise common.UsageError(f"[FATAL] failed to create pd client: duplicate PD endpoint {item}", 1)
        try:
            common.split_hostport(address)
        except ValueError:
            raise common.UsageError(f"[FATAL] failed to create pd client: invalid PD endpoint {item!r}", 1) from None
        endpoints.append(address)
    if not endpoints:
        raise common.UsageError("[FATAL] invalid configuration: please specify pd.endpoints.", 1)
    scheme = "https" if secure else "http"
    return [f"{scheme}://{address}" for address in endpoints]


# Rust's io::ErrorKind for the errno values a file open gives.
_IO_KINDS = {errno.ENOENT: "NotFound", errno.EACCES: "PermissionDenied", errno.EPERM: "PermissionDenied",
             errno.EISDIR: "IsADirectory", errno.ENOTDIR: "NotADirectory"}
# src/server/status_server/mod.rs start_serve: the requests that skip check_cert.
CERT_CHECK_EXEMPT = (("GET", "/metrics"), ("GET", "/status"), ("GET", "/config"), ("GET", "/debug/pprof/profile"))


def rust_io_error(exc):
    """An io::Error from an OS error, as Rust's {:?} prints it."""
    return f'Os {{ code: {exc.errno}, kind: {_IO_KINDS.get(exc.errno, "Other")}, message: "{os.strerror(exc.errno)}" }}'


class KvSecurity:
    """TiKV's [security] (tikv/tikv components/security/src/lib.rs SecurityConfig: ca-path, cert-path,
    key-path, cert-allowed-cn, cert-allowed-san), also the TiFlash proxy's (tidb-engine-ext is TiKV's
    code). `validate` is SecurityConfig::validate (each file opened, then all three or none), fatal
    as TiKV's config validation is (`[FATAL] invalid configuration: ...`, exit 1).

    The status server (src/server/status_server/mod.rs start, tls_acceptor, check_cert; the same in
    tidb-engine-ext proxy_server/src/status_server/mod.rs) serves HTTPS when ca, cert and key are all
    set; it asks for a client certificate (SslVerifyMode PEER | FAIL_IF_NO_PEER_CERT, verified
    against the CA) only when cert-allowed-cn is set (v8.5.7; master also for cert-allowed-san),
    and then answers 403 "certificate role error" to any request but GET /metrics, /status, /config
    and /debug/pprof/profile whose certificate CN (SAN) does not contain an allowed name
    (security::match_peer_names is a substring match). Without them no client certificate is
    asked for."""

    def __init__(self, config):
        section = config.get("security") or {}
        self.ca, self.cert, self.key = (str(section.get(name) or "") for name in ("ca-path", "cert-path", "key-path"))
        self.allowed_cn = [str(cn) for cn in section.get("cert-allowed-cn") or []]
        self.allowed_san = [str(san) for san in section.get("cert-allowed-san") or []]

    @property
    def enabled(self):
        return bool(self.ca)

    def validate(self):
        for tag, path in (("ca key", self.ca), ("cert key", self.cert), ("private key", self.key)):
            if not path:
                continue
            try:
                with open(path, "rb"):
                    pass
            except OSError as exc:
                raise common.UsageError(f"[FATAL] invalid configuration: failed to open {path} to load {tag}: {rust_io_error(exc)}", 1) \
                    from None
        configured = [bool(self.ca), bool(self.cert), bool(self.key)]
        if any(configured) and not all(configured):
            raise common.UsageError("[FATAL] invalid configuration: ca, cert and private key should be all configured.", 1)
        if all(configured):
            # Not checked by real TiKV ("TODO: validate whether ca, cert and private key match"): it
            # starts, its status server fails to start and every TLS connection (PD included) fails,
            # while it retries PD forever. The simulator refuses at once.
            try:
                tlsmod.check_ca(self.ca)
                tlsmod.check_pair(self.cert, self.key)
            except tlsmod.TLSFileError as exc:
                raise common.UsageError(f"[FATAL] tidbsim: unusable TLS files in [security]: {exc} (real TiKV starts, then"
                                        " fails every TLS connection and retries PD forever)", 1) from None

    def client(self):
        return tlsmod.client_context(self.ca, self.cert, self.key) if self.enabled else None

    def _path_check(self, method, path, peer):
        if (method, path) in CERT_CHECK_EXEMPT:
            return None
        ok = bool(peer)
        if ok and self.allowed_cn:
            common_name = tlsmod.cert_common_name(peer) or ""
            ok = any(allowed in common_name for allowed in self.allowed_cn)
        if ok and self.allowed_san:
            ok = any(allowed in name for name in tlsmod.cert_alt_names(peer) for allowed in self.allowed_san)
        return None if ok else common.Response(403, b"certificate role error")

    def status_server(self):
        """The status server's TLS, or None (plain HTTP) unless ca, cert and key are all set."""
        if not (self.ca and self.cert and self.key):
            return None
        restricted = bool(self.allowed_cn or self.allowed_san)
        return tlsmod.ServerTLS(self.cert, self.key, self.ca, "require" if restricted else "none",
                                path_check=self._path_check if restricted else None)


# How the start-up failures read (TiKV's components/server/src/server.rs; the TiFlash proxy's
# proxy_components/proxy_server/src/run.rs says "node" instead).
TIKV_FATALS = {"bootstrap": "failed to bootstrap raft_server id", "start": "failed to start raft_server",
               "ident_source": "src/server/raft_server.rs:264"}
PROXY_FATALS = {"bootstrap": "failed to bootstrap node id", "start": "failed to start node",
                "ident_source": "src/server/raft_server.rs:260"}
# components/pd_client/src/util.rs check_resp_header: an Unknown error becomes box_err!(message).
PD_CLIENT_SOURCE = "components/pd_client/src/util.rs:953"
IDENT_FILE = "tidbsim-store-ident.json"
HEARTBEAT_ERROR_EVERY = 10.0  # TiKV heartbeats PD every 10 s, so it logs a failed heartbeat that often


def pd_client_error(error):
    """A pdpb error header as TiKV's pd_client::Error prints with {:?}."""
    kind, message = error.get("type"), error.get("message", "")
    if kind == "STORE_TOMBSTONE":
        return f"StoreTombstone({json.dumps(message)})"
    if kind == "NOT_BOOTSTRAPPED":
        return "ClusterNotBootstrapped(0)"
    return f"Other({json.dumps(f'[{PD_CLIENT_SOURCE}]: {message}')})"


class StoreClient:
    """Registers a store in PD and heartbeats it (TiKV and TiFlash share it), with its disk statistics.

    ident_dir: where the store ident lives (TiKV's data dir, the TiFlash proxy's data dir);
    fatals: the start-up failure wording (TIKV_FATALS or PROXY_FATALS)."""

    def __init__(self, runtime, pd_urls, store, disk=None, ident_dir=None, fatals=None, *, tls=None):  # pylint: disable=too-many-arguments
        self.rt = runtime
        self.pd_urls = pd_urls
        self.tls = tls  # the client SSLContext for https PD URLs (the store's own [security])
        self.store = dict(store, start=time.time())
        self.disk = disk
        self.ident_path = os.path.join(ident_dir, IDENT_FILE) if ident_dir else None
        self.fatals = fatals or TIKV_FATALS
        self.store_id = None
        self.leader_count = 0
        self.region_count = 0
        self.node_state = None
        self.last_error = (None, 0.0)

    def _call(self, path, body):
        _status, data = common.first_answer("POST", self.pd_urls, path, body, accept=lambda status: status == 200, tls=self.tls)
        return json.loads(data)

    def _fatal(self, message):
        self.rt.log(f"[FATAL] {message}")
        os._exit(1)  # pylint: disable=protected-access

    def _legacy_ident(self, cluster_id):
        """A data dir from a simulator that kept no store ident (it has a marker from an earlier
        start but no ident file): adopt the store PD has at this address, as that simulator did.
        Not something real TiKV needs: its ident is written with its data."""
        if not self.ident_path or self.rt.marker is None or not self.rt.marker.restarted:
            return None
        status, data = common.first_answer("GET", self.pd_urls, "/pd/api/v1/stores?state=0&state=1&state=2",
                                           accept=lambda status: status in (200, 500), tls=self.tls)
        if status != 200:  # not bootstrapped: no store to adopt
            return None
        found = [s["store"] for s in json.loads(data).get("stores", []) if s["store"]["address"] == self.store["address"]]
        if not found:
            return None
        store = min(found, key=lambda s: (s.get("state_name") == "Tombstone", -s["id"]))
        ident = {"cluster_id": cluster_id, "store_id": store["id"]}
        os.makedirs(os.path.dirname(self.ident_path), exist_ok=True)
        common.save_json(self.ident_path, ident)
        self.rt.log(f"the data dir has no store ident (an older simulator): adopting store {store['id']} at {self.store['address']}")
        return ident

    def register(self):
        """try_bootstrap_store then PutStore, once at start; any refusal is fatal (exit 1)."""
        _status, data = common.first_answer("GET", self.pd_urls, "/pd/api/v1/members", accept=lambda status: status == 200, tls=self.tls)
        cluster_id = int(json.loads(data)["header"]["cluster_id"])
        ident = common.load_json(self.ident_path) if self.ident_path else None
        if ident and int(ident["cluster_id"]) != cluster_id:
            detail = (f"[{self.fatals['ident_source']}]: cluster ID mismatch, local {ident['cluster_id']} != remote {cluster_id},"
                      " you are trying to connect to another cluster, please reconnect to the correct PD")
            self._fatal(f"{self.fatals['bootstrap']}: {json.dumps(detail)}")
        if not ident:
            ident = self._legacy_ident(cluster_id)
        if not ident:
            reply = self._call("/sim/pd/alloc_id", {})
            ident = {"cluster_id": cluster_id, "store_id": int(reply["id"])}
            if self.ident_path:
                os.makedirs(os.path.dirname(self.ident_path), exist_ok=True)
                common.save_json(self.ident_path, ident)
            self.rt.log(f"alloc store id {ident['store_id']}")
        reply = self._call("/sim/pd/store/put", dict(self.store, id=ident["store_id"]))
        error = (reply.get("header") or {}).get("error")
        if error:
            self._fatal(f"{self.fatals['start']}: {pd_client_error(error)}")
        self.store_id = ident["store_id"]
        self.rt.log(f"registered in PD as store {self.store_id} ({self.store['address']})")

    def heartbeat(self):
        if self.store_id is None:
            self.register()
        body = {"store_id": self.store_id}
        if self.disk is not None:
            body.update(self.disk.inspect())
        reply = self._call("/sim/pd/store/heartbeat", body)
        error = (reply.get("header") or {}).get("error")
        if error:
            text, now = pd_client_error(error), time.monotonic()
            if text != self.last_error[0] or now - self.last_error[1] >= HEARTBEAT_ERROR_EVERY:
                self.rt.log(f'[ERROR] ["store heartbeat failed"] [err={json.dumps(text)}]')
                self.last_error = (text, now)
            return False
        self.last_error = (None, 0.0)
        state = reply.get("state", 1)
        if state in (2, 3) and self.node_state not in (2, 3):
            self.rt.log("store is offlined by pd")
        elif state in (0, 1) and self.node_state in (2, 3):
            self.rt.log("store is remarked with serving state by pd")
        self.node_state = state
        self.leader_count = reply.get("leader_count", 0)
        self.region_count = reply.get("region_count", 0)
        return True

    def pd_leader_count(self, timeout=1.0):
        """This store's leader_count as PD reports it (absent means 0), or None when PD does not answer in time."""
        deadline = time.monotonic() + timeout
        for base in self.pd_urls:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                status, data = common.http_call("GET", f"{base}/pd/api/v1/store/{self.store_id}", timeout=left, tls=self.tls)
            except OSError:
                continue
            if status == 200:
                return int((json.loads(data).get("status") or {}).get("leader_count") or 0)
        return None


def metrics_text(client):
    """The leader and region counts as TiKV exports them (components/raftstore/src/store/metrics.rs
    REGION_COUNT_GAUGE_VEC, the metric TiUP's genLeaderCounter reads before and after an eviction)."""
    return ("# HELP tikv_raftstore_region_count Number of regions collected in region_collector\n"
            "# TYPE tikv_raftstore_region_count gauge\n"
            f'tikv_raftstore_region_count{{type="leader"}} {client.leader_count}\n'
            f'tikv_raftstore_region_count{{type="region"}} {client.region_count}\n')


def unsafe_stop_check(runtime, client, log_file):
    """On SIGTERM: ask PD (briefly) whether this store still leads regions, and say so if it does.

    Not something real TiKV prints: it is the simulator's witness that a store was stopped while
    leading regions (a rolling restart must evict the leaders first). The line goes to stderr and,
    with --log-file, to that file too."""
    if client.store_id is None:
        return
    count = client.pd_leader_count()
    source = "PD"
    if count is None:
        count, source = client.leader_count, "the last heartbeat (PD did not answer)"
    if count <= 0:
        runtime.log(f"stopping with no region leader on store {client.store_id}")
        return
    line = f"[WARN] unsafe stop: store {client.store_id} still leads {count} regions (per {source})"
    runtime.log(line)
    if log_file:
        try:
            with open(log_file, "a", encoding="utf-8") as handle:
                handle.write(f"[{time.strftime('%Y/%m/%d %H:%M:%S')}] [tidbsim] {line}\n")
        except OSError as exc:
            runtime.log(f"cannot write {log_file}: {exc}")


def main(argv):
    flags, _positional = common.parse_flags(argv, FLAGS, "tikv-server", "clap")
    config = {}
    if flags["config"]:
        config = common.load_toml(flags["config"], "[FATAL] invalid configuration file {path}: {reason}",
                                  "[FATAL] invalid configuration file {path}: {reason}")
    address = advertise(flags["addr"], flags["advertise-addr"], "advertise-addr")
    status_address = advertise(flags["status-addr"], flags["advertise-status-addr"], "advertise-status-addr")
    security = KvSecurity(config)
    security.validate()
    pd_urls = pd_endpoints(flags["pd-endpoints"] if flags["pd-endpoints"] is not None else "127.0.0.1:2379", security.enabled)
    data_dir = flags["data-dir"]
    capacity = storage.parse_size(flags["capacity"] or storage.get_path(config, "raftstore.capacity", 0), "raftstore.capacity")
    reserve = storage.parse_size(storage.get_path(config, "storage.reserve-space", "5GB"), "storage.reserve-space")
    runtime = common.Runtime("tikv", address, data_dir)
    # TikvServerCore::init_config (check_system_config), then init_fs.
    storage.check_max_open_fds(storage.expected_open_fds(config, storage.tikv_titan_default(config)), runtime.log)
    disk = storage.Disk(runtime, os.path.abspath(data_dir), reserve, capacity)
    disk.init()
    client = StoreClient(runtime, pd_urls, {"address": address, "peer_address": address, "status_address": status_address,
                                            "version": common.SIM_VERSION.lstrip("v"), "labels": parse_labels(flags["labels"])},
                         disk, ident_dir=os.path.abspath(data_dir), fatals=TIKV_FATALS, tls=security.client())
    interval = common.env_float("HEARTBEAT_INTERVAL", 0.5)

    def ready_verbose(request):
        ready = runtime.ready
        if request.arg("verbose") is not None:
            return json_response({"connected_to_pd": client.store_id is not None, "raft_peers_caught_up": ready}, 200 if ready else 500)
        return text_response("", 200 if ready else 500)

    router = common.Router()
    router.add("GET", "/status", lambda _r: text_response(""))
    router.add("GET", "/ready", ready_verbose)
    router.add("GET", "/metrics", lambda _r: text_response(metrics_text(client)))
    status_server = common.HttpService(runtime, flags["status-addr"], router, "status", tls=security.status_server())
    common.TcpListener(runtime, flags["addr"], "grpc").start()

    serving = {"status": False}

    def heartbeat():
        if not runtime.start_delay_passed():  # a slow start registers late
            return
        if client.store_id is None:
            client.register()
        # The real status server starts only after PD registration.
        if not serving["status"]:
            try:
                status_server.start()
            except common.BindError as exc:
                runtime.log(f"[FATAL] failed to start the status server: {exc}")
                os._exit(1)  # pylint: disable=protected-access
            serving["status"] = True
        client.heartbeat()
        runtime.try_ready()
    runtime.every(interval, heartbeat)
    # Registered last, so it runs first on SIGTERM, while PD still counts this store's leaders.
    runtime.on_close(lambda: unsafe_stop_check(runtime, client, flags["log-file"]))
    return runtime.wait_forever()
