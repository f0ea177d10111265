"""cdc server: captures in PD's etcd with one owner, and the v2 changefeed API with its error contract.

`--newarch` (or `-x`, `TICDC_NEWARCH=true`, `newarch = true` in --config) picks the new architecture;
otherwise the classic (tiflow) flavour answers. Differences kept: "already exists" is 400 on the
new one and 500 on classic; classic resume needs a JSON body; classic refuses a no-op update;
classic answers 503 ErrServerIsNotReady early, the new one 500 "coordinator is not fully initialized".
Changefeeds live in PD's etcd, so they survive TiCDC restarts.

Rolling restarts (TiUP pkg/cluster/api/cdcapi.go): `POST /api/v1|v2/owner/resign` (the owner
deletes its campaign key and campaigns again a second later), `PUT /api/v1/captures/drain`
(tiflow cdc/api/v1/api.go DrainCapture; ticdc api/v1/api.go drainCapture and
coordinator/controller_drain.go), `GET /api/v1/captures` (a bare array) and `GET /api/v1/status`
(`liveness`). Each running changefeed has TIDBSIM_CDC_TABLES tables spread by the owner over the
alive captures; the owner's table map and drain marks are simulator keys under
`__cdc_meta__/tidbsim/` in PD's etcd, so a new owner continues a drain. Liveness: classic 0 alive,
1 stopping (drained, or SIGTERM); new architecture 0 alive, 1 draining, 2 stopping (drained).
"""

import copy
import datetime
import json
import os
import re
import threading
import time
import urllib.parse
import uuid

from . import common, fts, s3check
from . import tls as tlsmod
from .common import Flag, json_response
from .etcd import Etcd

FLAGS = [
    Flag("pd", default="http://127.0.0.1:2379"),
    Flag("addr", default="127.0.0.1:8300"),
    Flag("advertise-addr", default=""),
    Flag("newarch", "x", boolean=True, default=False),
    Flag("data-dir", default=""),
    Flag("config", default=""),
    Flag("gc-ttl", default="86400"),
    Flag("log-file", default=""),
    Flag("log-level", default="info"),
    Flag("tz", default="System"),
    Flag("cluster-id", default="default"),
    Flag("ca", default=None),
    Flag("cert", default=None),
    Flag("key", default=None),
    Flag("cert-allowed-cn", default=None),
]

ID_RE = re.compile(r"^[a-zA-Z0-9]+(-[a-zA-Z0-9]+)*$")
BAD_REQUEST = {"ErrAPIInvalidParam", "ErrSinkURIInvalid", "ErrStartTsBeforeGC", "ErrChangeFeedNotExists",
               "ErrChangeFeedAlreadyExists", "ErrTargetTsBeforeStartTs", "ErrTableIneligible", "ErrFilterRuleInvalid",
               "ErrChangefeedUpdateRefused", "ErrMySQLConnectionError", "ErrMySQLInvalidConfig", "ErrCaptureNotExist",
               "ErrSchedulerRequestFailed", "ErrActiveActiveTSOIndexIncompatible"}
SINK_SCHEMES = {"mysql", "mysql+ssl", "tidb", "tidb+ssl", "kafka", "kafka+ssl", "pulsar", "pulsar+ssl", "s3", "gcs", "gs",
                "azure", "azblob", "file", "blackhole", "noop"}
LISTED_STATES = ("normal", "stopped", "failed", "warning", "pending")
# Durations are Go nanoseconds, as the real API returns them.
DEFAULT_REPLICA_CONFIG = {
    "memory_quota": 1073741824, "case_sensitive": False, "force_replicate": False, "ignore_ineligible_table": False,
    "check_gc_safe_point": True, "enable_sync_point": False, "bdr_mode": False, "sync_point_interval": 600000000000,
    "sync_point_retention": 86400000000000, "enable_table_monitor": False, "changefeed_error_stuck_duration": 1800000000000,
    "sql_mode": "ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION",
    "filter": {"rules": ["*.*"], "ignore_txn_start_ts": None, "event_filters": None},
    "mounter": {"worker_num": 16},
    "sink": {"protocol": "", "csv": {"delimiter": ",", "quote": "\"", "null": "\\N", "include_commit_ts": False,
                                     "binary_encoding_method": "base64", "output_old_value": False, "output_handle_key": False},
             "encoder_concurrency": 32, "terminator": "\r\n", "date_separator": "day", "enable_partition_separator": True,
             "file_index_width": 20, "enable_kafka_sink_v2": False, "only_output_updated_columns": False,
             "delete_only_output_handle_key_columns": False, "content_compatible": False, "advance_timeout": 150,
             "send_bootstrap_interval_in_sec": 120, "send_bootstrap_in_msg_count": 10000,
             "send_bootstrap_to_all_partition": True, "debezium_disable_schema": False,
             "open": {"output_old_value": True}, "debezium": {"output_old_value": True}},
    "consistent": {"level": "none", "max_log_size": 64, "flush_interval": 2000, "meta_flush_interval": 200,
                   "encoding_worker_num": 16, "flush_worker_num": 8, "storage": "", "use_file_backend": False,
                   "memory_usage": {"memory_quota_percentage": 50}},
    "scheduler": {"enable_table_across_nodes": False, "region_threshold": 100000, "write_key_threshold": 0},
    "integrity": {"integrity_check_level": "none", "corruption_handle_level": "warn"},
    "synced_status": {"synced_check_interval": 300, "checkpoint_interval": 15},
}
DATE_SEPARATORS = ("none", "year", "month", "day")
STORAGE_PROTOCOLS = ("canal-json", "csv", "debezium")


class ApiError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def deep_merge(base, override):
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def mask_sink_uri(uri):
    """Like TiCDC's MaskSinkURI: the userinfo password and sasl-password only; S3 keys stay in clear."""
    parts = urllib.parse.urlsplit(uri)
    netloc, query = parts.netloc, parts.query
    if ":" not in netloc.rpartition("@")[0] and "sasl-password" not in query:
        return uri
    if "@" in netloc:
        userinfo, _at, hostport = netloc.rpartition("@")
        user, sep, _password = userinfo.partition(":")
        netloc = f"{user}:xxxxx@{hostport}" if sep else netloc
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    if any(key == "sasl-password" for key, _value in pairs):
        pairs = sorted((key, "xxxxx" if key == "sasl-password" else value) for key, value in pairs)
        query = urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote_plus)
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


SENSITIVE = ("password", "passwd", "pwd", "access", "token", "secret", "key", "signature", "credential", "private", "client")


def redact_uri(uri):
    """For error messages and logs: every credential-like query value and the userinfo password hidden."""
    parts = urllib.parse.urlsplit(mask_sink_uri(uri))
    pairs = [(k, "xxxxx" if any(word in k.lower() for word in SENSITIVE) else v)
             for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(pairs)))


# api/middleware/middleware.go (ticdc): how many times a request may be forwarded.
FORWARD_TIMES = "TiCDC-ForwardTimes"
MAX_FORWARD_TIMES = 2
# pkg/liveness/liveness.go (ticdc) and cdc/model/http_model.go (tiflow).
LIVENESS_NAMES = {True: {0: "Alive", 1: "Draining", 2: "Stopping"}, False: {0: "Alive", 1: "Stopping"}}


def tso_time(ts):
    return datetime.datetime.fromtimestamp((ts >> 18) / 1000).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


class Capture:
    def __init__(self, runtime, flags, newarch, urls):
        self.rt = runtime
        self.newarch = newarch
        self.id = str(uuid.uuid4())
        self.address = flags["advertise-addr"] or flags["addr"]
        self.cluster = flags["cluster-id"]
        self.gc_ttl = int(flags["gc-ttl"])
        self.etcd = Etcd(urls)
        self.scheme = "http"  # of the other captures' API (api/middleware ForwardToServer: https with a CA)
        self.prefix = f"/tidb/cdc/{self.cluster}/__cdc_meta__/"
        self.feed_prefix = f"/tidb/cdc/{self.cluster}/default/changefeed/info/"
        self.lease = None
        self.registered_at = None
        self.captures = []
        self.owner_id = None
        self.upstream_id = 0
        self.ttl = max(1, int(common.env_float("CDC_SESSION_TTL", 10)))
        self.init_delay = common.env_float("CDC_INIT_DELAY", 3.0)
        self.lock = threading.Lock()
        self.sim_prefix = self.prefix + "tidbsim/"
        self.tick_lock = threading.Lock()
        self.owner_key = None
        self.owner_keys = []
        self.owner_since = None
        self.next_campaign = 0.0
        self.liveness = 0
        self.livenesses = {}
        self.drains = {}
        self.tables = {}
        self.table_count = max(0, int(common.env_float("CDC_TABLES", 6)))
        self.table_rate = common.env_float("CDC_TABLE_MOVE_PER_S", 2.0)
        self.move_budget = 0.0
        self.last_schedule = None

    # ------------------------------------------------------------ session in PD

    def _upstream_ready(self):
        """TiCDC needs PD with a leader and at least one Up TiKV store."""
        _status, data = common.first_answer("GET", self.etcd.pd_urls, "/pd/api/v1/stores", accept=lambda s: s == 200)
        stores = json.loads(data)["stores"]
        if not any(common.is_up_tikv(s) for s in stores):
            raise OSError("no Up TiKV store in PD yet")
        _status, data = common.first_answer("GET", self.etcd.pd_urls, "/pd/api/v1/members", accept=lambda s: s == 200)
        self.upstream_id = json.loads(data)["header"]["cluster_id"]

    def session(self):
        """Keep the capture's lease (and its keys) alive; a new lease re-registers the capture."""
        if not self.rt.start_delay_passed() or self.rt.faults.never_ready:
            return
        if self.lease is None or not self.etcd.keepalive(self.lease):
            self._upstream_ready()
            lease = self.etcd.grant(self.ttl)
            info = {"id": self.id, "address": self.address, "version": common.SIM_VERSION}
            self.etcd.put(self.prefix + "capture/" + self.id, json.dumps(info), lease)
            if self.liveness:
                self.etcd.put(self.sim_prefix + "liveness/" + self.id, str(self.liveness), lease)
            with self.lock:
                self.lease = lease
                self.owner_key = None  # the old campaign key went with the old lease
            if self.registered_at is None:
                self.registered_at = time.monotonic()
            self.rt.log(f"capture {self.id} registered at {self.address}")
        self.tick()

    def tick(self):
        """Every 200 ms: read the cluster's state from PD's etcd, follow a drain request addressed
        to this capture, campaign for (or give up) the ownership, and schedule tables as owner."""
        if self.lease is None or not self.tick_lock.acquire(blocking=False):
            return
        try:
            self._tick()
        finally:
            self.tick_lock.release()

    def _tick(self):
        self.refresh()
        self.follow_drain()
        self.campaign()
        if self.owner_id and any(c["id"] == self.id for c in self.captures):
            self.rt.try_ready()
        if self.initialized():
            self.schedule_tables()
            self.replicate()

    def replicate(self):
        """Owner: each changefeed in state normal writes the row events past its checkpoint to its sink
        (fts.export); a paused or failed changefeed writes nothing."""
        for _key, value, _rev in self.etcd.get_prefix(self.feed_prefix):
            record = json.loads(value)
            if record["state"] != "normal":
                continue
            try:
                fts.export(self.etcd, f"{self.cluster}/{record['id']}", record["sink_uri"], self.rt.log)
            except Exception as exc:  # pylint: disable=broad-exception-caught  # a sink error is retried, as TiCDC does
                self.rt.log(f"changefeed {record['id']}: sink write failed, retrying: {exc}")

    def refresh(self):
        """Read the captures, the owner campaign and the simulator's table state from PD's etcd."""
        captures, owners, liveness, drains, tables = [], [], {}, {}, {}
        for key, value, rev in self.etcd.get_prefix(self.prefix):
            rest = key[len(self.prefix):]
            if rest.startswith("capture/"):
                captures.append(json.loads(value))
            elif rest.startswith("owner/"):
                owners.append((rev, value, key))
            elif rest.startswith("tidbsim/liveness/"):
                liveness[rest.rsplit("/", 1)[1]] = int(value)
            elif rest.startswith("tidbsim/drain/"):
                drains[rest.rsplit("/", 1)[1]] = json.loads(value)
            elif rest == "tidbsim/tables":
                tables = json.loads(value)
        owners.sort()
        with self.lock:
            previous = self.owner_id
            self.captures = captures
            self.owner_id = owners[0][1] if owners else None
            self.owner_keys = [key for _rev, value, key in owners if value == self.id]
            self.livenesses = liveness
            self.drains = drains
            self.tables = tables
            if self.owner_id == self.id and previous != self.id:
                self.owner_since = time.monotonic()
                self.last_schedule = None
                self.rt.log(f"capture {self.id} is the {'coordinator' if self.newarch else 'owner'} now")
            elif previous == self.id and self.owner_id != self.id:
                self.owner_since = None
                self.rt.log(f"capture {self.id} is no longer the {'coordinator' if self.newarch else 'owner'}")

    def campaign(self):
        """Only an alive capture campaigns (server/module_election.go, tiflow capture.campaignOwner);
        one that is draining or stopping resigns actively. A re-campaign waits for the 1/s limiter."""
        if self.liveness != 0:
            for key in list(self.owner_keys):
                self.etcd.delete(key)
                self.rt.log(f"leaves the {'coordinator' if self.newarch else 'owner'} campaign: liveness is {self.liveness}")
            self.owner_key = None
            return
        if self.owner_keys or time.monotonic() < self.next_campaign:
            return
        key = self.prefix + "owner/" + str(self.lease)
        self.etcd.put(key, self.id, self.lease)
        self.owner_key = key
        self.refresh()

    def resign(self, why):
        """Give up the ownership: delete the campaign key, campaign again a second later."""
        with self.lock:
            keys = list(self.owner_keys)
            self.next_campaign = time.monotonic() + 1.0
        for key in keys:
            self.etcd.delete(key)
        self.owner_key = None
        self.rt.log(f"{'coordinator' if self.newarch else 'owner'} resigned ({why})")
        self.refresh()

    def owner(self):
        with self.lock:
            return next((c for c in self.captures if c["id"] == self.owner_id), None)

    def is_owner(self):
        return self.owner_id == self.id

    def initialized(self):
        """The owner's changefeed API waits TIDBSIM_CDC_INIT_DELAY after it became owner (bootstrap)."""
        return (self.is_owner() and self.owner_since is not None and self.registered_at is not None
                and time.monotonic() - self.owner_since >= self.init_delay)

    # ------------------------------------------------------------ liveness, tables and drain

    def set_liveness(self, value, why):
        """Liveness only moves forward (pkg/liveness: Alive -> Draining -> Stopping)."""
        if value <= self.liveness:
            return
        self.liveness = value
        self.rt.log(f"liveness {value} ({LIVENESS_NAMES[self.newarch].get(value)}): {why}")
        if self.lease is not None:
            try:
                self.etcd.put(self.sim_prefix + "liveness/" + self.id, str(value), self.lease)
            except OSError as exc:
                self.rt.log(f"cannot publish the liveness: {exc}")

    def follow_drain(self):
        """The owner marks a drained capture in etcd (its heartbeat to the capture, in TiCDC)."""
        mark = self.drains.get(self.id)
        if mark is None:
            return
        if self.newarch:
            self.set_liveness(2 if mark.get("phase") == "stopping" else 1, f"drain {mark.get('phase')}")
        else:
            self.set_liveness(1, "the owner drains this capture")

    def tables_on(self, capture_id):
        return sum(assigned.count(capture_id) for assigned in self.tables.values())

    def schedule_tables(self):
        """Owner: TIDBSIM_CDC_TABLES tables per running changefeed spread over the alive captures;
        a drained capture's tables move to the others at TIDBSIM_CDC_TABLE_MOVE_PER_S; a vanished
        capture's tables are placed again at once."""
        now = time.monotonic()
        elapsed = now - self.last_schedule if self.last_schedule is not None else 0.0
        self.last_schedule = now
        self.move_budget = min(self.move_budget + elapsed * self.table_rate, max(1.0, self.table_rate * 0.4))
        with self.lock:
            captures = [c["id"] for c in self.captures]
            drains = dict(self.drains)
            liveness = dict(self.livenesses)
            tables = {feed: list(assigned) for feed, assigned in self.tables.items()}
        running = {json.loads(value)["id"] for _key, value, _rev in self.etcd.get_prefix(self.feed_prefix)
                   if json.loads(value)["state"] == "normal"}
        schedulable = [c for c in captures if liveness.get(c, 0) == 0 and c not in drains]
        before = json.dumps(tables, sort_keys=True)
        tables = {feed: assigned for feed, assigned in tables.items() if feed in running}
        for feed in running:
            assigned = tables.setdefault(feed, [])
            assigned.extend([""] * (self.table_count - len(assigned)))
            del assigned[self.table_count:]

        def load(capture):
            return sum(assigned.count(capture) for assigned in tables.values())

        for feed in sorted(tables):
            assigned = tables[feed]
            for index, capture in enumerate(assigned):
                if capture not in captures:
                    assigned[index] = min(schedulable, key=lambda c: (load(c), c)) if schedulable else ""
        for target in sorted(t for t, mark in drains.items() if mark.get("phase") == "draining"):
            for feed in sorted(tables):
                assigned = tables[feed]
                for index, capture in enumerate(assigned):
                    if capture == target and schedulable and self.move_budget >= 1:
                        assigned[index] = min(schedulable, key=lambda c: (load(c), c))
                        self.move_budget -= 1
        if json.dumps(tables, sort_keys=True) != before:
            self.etcd.put(self.sim_prefix + "tables", json.dumps(tables))
            with self.lock:
                self.tables = tables
        for target, mark in drains.items():
            key = self.sim_prefix + "drain/" + target
            if target not in captures:
                self.etcd.delete(key)  # the drained capture stopped: its session is gone
                continue
            if mark.get("phase") != "draining" or load(target):
                continue
            if not self.newarch:
                self.etcd.put(key, json.dumps(dict(mark, phase="drained")))
            elif liveness.get(target, 0) >= 1:
                self.etcd.put(key, json.dumps(dict(mark, phase="stopping")))  # the coordinator sends STOPPING

    def sim_tables(self, _request):
        """Test hook: how many tables each capture replicates, its liveness and drain mark."""
        self.refresh()
        with self.lock:
            return json_response({c["id"]: {"address": c["address"], "tables": self.tables_on(c["id"]),
                                            "liveness": self.livenesses.get(c["id"], 0),
                                            "drain": (self.drains.get(c["id"]) or {}).get("phase")}
                                  for c in self.captures})

    def drain(self, request):
        """`PUT /api/v1/captures/drain` on the owner (tiflow cdc/api/v1/api.go DrainCapture, ticdc
        api/v1/api.go drainCapture and coordinator/controller_drain.go DrainNode): 202
        {"current_table_count": N} while tables remain."""
        body = self._body(request)
        target = body.get("capture_id", "")
        if not isinstance(target, str):
            raise ApiError("ErrAPIInvalidParam", "invalid api parameter: json: cannot unmarshal"
                                                 f" {type(target).__name__} into Go struct field .capture_id of type string")
        self.refresh()
        ids = [c["id"] for c in self.captures]
        if not self.newarch:
            if len(ids) <= 1:
                raise ApiError("ErrSchedulerRequestFailed", "scheduler request failed, only one capture alive")
            if target not in ids:
                raise ApiError("ErrCaptureNotExist", f"capture not exists, {target}")
        if target == self.id:
            raise ApiError("ErrSchedulerRequestFailed", "scheduler request failed, cannot drain the owner")
        if self.newarch and target not in ids:
            raise ApiError("ErrCaptureNotExist", f"capture not exists, {target}")
        count = self.tables_on(target)
        key = self.sim_prefix + "drain/" + target
        mark = self.drains.get(target)
        if not self.newarch:
            # schedulerv3 coordinator.DrainCapture: nothing to do without tables; one target at a time.
            busy = any(t != target and m.get("phase") == "draining" for t, m in self.drains.items())
            if count and mark is None and not busy:
                self.etcd.put(key, json.dumps({"phase": "draining", "since": time.time()}))
                self.rt.log(f"draining capture {target} ({count} tables)")
            return json_response({"current_table_count": count}, 202)
        if not self.initialized() or any(t != target for t in self.drains):
            return json_response({"current_table_count": 1}, 202)  # bootstrap, or another drain still active
        if mark is None:
            self.etcd.put(key, json.dumps({"phase": "draining", "since": time.time()}))
            self.rt.log(f"draining node {target} ({count} tables)")
            return json_response({"current_table_count": max(count, 1)}, 202)
        done = mark.get("phase") == "stopping" and self.livenesses.get(target, 0) == 2 and count == 0
        return json_response({"current_table_count": 0 if done else max(count, 1)}, 202)

    def on_stop(self):
        """SIGTERM: classic TiCDC turns stopping and resigns the ownership (tiflow capture.Drain)."""
        if self.newarch or self.lease is None:
            return
        self.set_liveness(1, "received SIGTERM")
        try:
            self.refresh()
            for key in self.owner_keys:
                self.etcd.delete(key)
        except OSError:
            pass

    # ------------------------------------------------------------ errors

    def error(self, code, message, status=None):
        if status is None:
            status = 400 if code in BAD_REQUEST and (self.newarch or code != "ErrChangeFeedAlreadyExists") else 500
        return json_response({"error_msg": f"[CDC:{code}]{message}", "error_code": f"CDC:{code}"}, status)

    def not_initialized(self):
        if self.newarch:
            return json_response({"error_msg": "coordinator is not fully initialized, wait a moment", "error_code": ""}, 500)
        return self.error("ErrServerIsNotReady", "cdc server is not ready", 503)

    # ------------------------------------------------------------ status, health, captures

    def status(self, request):
        """`/status`; `/api/v1/status` and `/api/v2/status` (ServerStatus). Classic TiCDC's bare
        `/status` (tiflow cdc/api/status) has no cluster_id and no liveness; its API ones do."""
        body = {"version": common.SIM_VERSION + "-tidbsim", "git_hash": common.GIT_HASH, "id": self.id,
                "pid": os.getpid(), "is_owner": self.is_owner()}
        if self.newarch or request.path != "/status":
            body = {"version": body["version"], "git_hash": body["git_hash"], "id": self.id, "cluster_id": self.cluster,
                    "pid": body["pid"], "is_owner": body["is_owner"], "liveness": self.liveness}
        return json_response(body)

    def health(self, request):
        if not self.initialized() or self.liveness != 0:
            return self.error("ErrClusterIsUnhealthy", "TiCDC cluster is unhealthy", 500)
        if request.path.startswith("/api/v1/") and not self.newarch:
            return common.Response(200, b"", "text/plain; charset=utf-8")  # tiflow: c.Status(200)
        return json_response({})

    def captures_api(self, request):
        """`/api/v2/captures` ({total, items}) and `/api/v1/captures` (a bare array), on the owner."""
        try:
            self.refresh()  # answer from etcd, not from the last tick
        except OSError:
            pass
        with self.lock:
            items = [{"id": c["id"], "is_owner": c["id"] == self.owner_id, "address": c["address"], "cluster_id": self.cluster}
                     for c in self.captures]
        if request.path.startswith("/api/v1/"):
            return json_response(items)
        return json_response({"total": len(items), "items": items})

    def resign_api(self, request):
        """`POST /api/{v1,v2}/owner/resign` on the owner: it stops being the owner; another capture
        (when there is one) wins the next campaign. v1: 202 (classic: no body), v2: 200 {}."""
        self.resign(f"{request.path} requested")
        if request.path.startswith("/api/v1/"):
            return json_response({}, 202) if self.newarch else common.Response(202, b"", "text/plain; charset=utf-8")
        return json_response({})

    # ------------------------------------------------------------ changefeed store (owner only)

    def _load(self, feed_id):
        for _key, value, _rev in self.etcd.get_prefix(self.feed_prefix + feed_id):
            record = json.loads(value)
            if record["id"] == feed_id:
                return record
        return None

    def _save(self, record):
        self.etcd.put(self.feed_prefix + record["id"], json.dumps(record))

    def _view(self, record):
        checkpoint = record["checkpoint_ts"]
        if record["state"] in ("normal", "warning"):
            checkpoint = max(record["start_ts"], common.tso(time.time() - 1))
        info = {"upstream_id": self.upstream_id, "id": record["id"], "keyspace": "default",
                "sink_uri": mask_sink_uri(record["sink_uri"]), "create_time": record["create_time"],
                "start_ts": record["start_ts"], "target_ts": record["target_ts"],
                "admin_job_type": {"normal": 0, "stopped": 1, "removed": 2}.get(record["state"], 0),
                "config": record["config"], "state": record["state"], "creator_version": common.SIM_VERSION,
                "resolved_ts": checkpoint, "checkpoint_ts": checkpoint, "checkpoint_time": tso_time(checkpoint),
                "task_status": [], "maintainer_addr": self.address}
        if not self.newarch:
            info["namespace"] = info.pop("keyspace")
        if record.get("error"):
            info["error"] = record["error"]
        return info

    def _record(self, feed_id):
        record = self._load(feed_id)
        if record is None:
            raise ApiError("ErrChangeFeedNotExists", f"changefeed not exists, keyspace: default, changefeed: {feed_id}")
        return record

    def _replica_config(self, body, uri):
        given = body.get("replica_config")
        if given is not None and not isinstance(given, dict):
            raise ApiError("ErrAPIInvalidParam", "invalid api parameter: replica_config must be an object")
        config = deep_merge(DEFAULT_REPLICA_CONFIG, given or {})
        sink = config["sink"]
        if sink.get("date_separator") not in DATE_SEPARATORS:
            raise ApiError("ErrSinkURIInvalid", f"date separator in cloud storage sink is invalid: {sink.get('date_separator')!r}")
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(uri).query))
        if query.get("protocol"):
            if sink.get("protocol") and sink["protocol"] != query["protocol"] and not self.newarch:
                raise ApiError("ErrSinkURIInvalid", f"protocol {query['protocol']} in sink uri is not compatible with"
                                                    f" protocol {sink['protocol']} in changefeed config")
            sink["protocol"] = sink.get("protocol") or query["protocol"]
        return config

    def _verify_sink(self, uri):
        if not uri:
            raise ApiError("ErrSinkURIInvalid", "sink uri is empty")
        try:
            parts = urllib.parse.urlsplit(uri)
        except ValueError as exc:
            raise ApiError("ErrSinkURIInvalid", f"sink uri invalid: {exc}") from None
        if parts.scheme.lower() not in SINK_SCHEMES:
            raise ApiError("ErrSinkURIInvalid", f"sink uri invalid '{redact_uri(uri)}': the sink scheme ({parts.scheme}) is not supported")
        if parts.scheme.lower() != "s3":
            return
        query = dict(urllib.parse.parse_qsl(parts.query))
        protocol = query.get("protocol", "")
        if protocol and protocol not in STORAGE_PROTOCOLS:
            raise ApiError("ErrSinkURIInvalid", f"sink uri invalid '{redact_uri(uri)}': protocol {protocol} is incompatible with cloud storage sink")
        reason = s3check.bucket_error(query.get("endpoint"), parts.netloc, query.get("access-key"), query.get("secret-access-key"),
                                      query.get("region") or "us-east-1", query.get("force-path-style", "true") != "false")
        if reason:
            raise ApiError("ErrSinkURIInvalid", f"sink uri invalid '{redact_uri(uri)}': failed to access the bucket: {reason}")

    def _body(self, request, required=True):
        if not request.body:
            if required:
                raise ApiError("ErrAPIInvalidParam", "invalid api parameter: EOF")
            return {}
        try:
            body = json.loads(request.body)
        except ValueError as exc:
            raise ApiError("ErrAPIInvalidParam", f"invalid api parameter: {exc}") from None
        if not isinstance(body, dict):
            raise ApiError("ErrAPIInvalidParam", "invalid api parameter: body must be a JSON object")
        return body

    # ------------------------------------------------------------ changefeed handlers

    def create(self, request):
        body = self._body(request)
        feed_id = body.get("changefeed_id") or str(uuid.uuid4())
        if not ID_RE.match(feed_id) or len(feed_id) > 128:
            raise ApiError("ErrAPIInvalidParam", f"invalid changefeed_id: {feed_id}")
        if not self.initialized():
            return self.not_initialized()
        if self._load(feed_id) is not None:
            raise ApiError("ErrChangeFeedAlreadyExists", f"changefeed already exists, keyspace: default, changefeedID: {feed_id}")
        uri = body.get("sink_uri") or ""
        if not uri:
            raise ApiError("ErrSinkURIInvalid", "sink uri is empty")
        now_ts = common.tso()
        start_ts = int(body.get("start_ts") or 0) or now_ts
        target_ts = int(body.get("target_ts") or 0)
        if start_ts < common.tso(time.time() - 600) and (body.get("replica_config") or {}).get("check_gc_safe_point", True):
            raise ApiError("ErrStartTsBeforeGC", f"fail to create or maintain changefeed because start-ts {start_ts} is earlier than or equal to GC safepoint")
        if target_ts and target_ts <= start_ts:
            raise ApiError("ErrTargetTsBeforeStartTs", f"fail to create changefeed because target-ts {target_ts} is earlier than start-ts {start_ts}")
        config = self._replica_config(body, uri)
        self._verify_sink(uri)
        record = {"id": feed_id, "sink_uri": uri, "start_ts": start_ts, "target_ts": target_ts, "config": config,
                  "state": "normal", "checkpoint_ts": start_ts, "error": None,
                  "create_time": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]}
        self._save(record)
        self.rt.log(f"changefeed {feed_id} created")
        return json_response(self._view(record))

    def list(self, request):
        if not self.initialized():
            return self.not_initialized()
        state = request.arg("state", "")
        feeds = [json.loads(value) for _key, value, _rev in self.etcd.get_prefix(self.feed_prefix)]
        if state != "all":
            feeds = [f for f in feeds if f["state"] in ((state,) if state else LISTED_STATES)]
        items = []
        for record in feeds:
            view = self._view(record)
            items.append({"upstream_id": view["upstream_id"], "id": view["id"], "keyspace": "default", "state": view["state"],
                          "checkpoint_tso": view["checkpoint_ts"], "checkpoint_time": view["checkpoint_time"],
                          "error": record.get("error")})
        return json_response({"total": len(items), "items": items})

    def get(self, _request, feed_id):
        if not self.initialized():
            return self.not_initialized()
        return json_response(self._view(self._record(feed_id)))

    def feed_status(self, _request, feed_id):
        if not self.initialized():
            return self.not_initialized()
        view = self._view(self._record(feed_id))
        body = {"state": view["state"], "resolved_ts": view["resolved_ts"], "checkpoint_ts": view["checkpoint_ts"]}
        if view.get("error"):
            body["last_error"] = view["error"]
        return json_response(body)

    def update(self, request, feed_id):
        if not self.initialized():
            return self.not_initialized()
        body = self._body(request)
        record = self._record(feed_id)
        if record["state"] not in ("stopped", "failed"):
            raise ApiError("ErrChangefeedUpdateRefused", "can only update changefeed config when it is stopped or failed")
        if int(body.get("start_ts") or 0):
            raise ApiError("ErrAPIInvalidParam", "invalid api parameter: start_ts can not be updated")
        new = dict(record)
        if body.get("sink_uri"):
            new["sink_uri"] = body["sink_uri"]
        if body.get("target_ts"):
            new["target_ts"] = int(body["target_ts"])
            if new["target_ts"] <= new["start_ts"]:
                raise ApiError("ErrTargetTsBeforeStartTs", f"target-ts {new['target_ts']} is earlier than start-ts {new['start_ts']}")
        if "replica_config" in body and body["replica_config"] is not None:
            new["config"] = self._replica_config(body, new["sink_uri"])
        if not self.newarch and all(new[k] == record[k] for k in ("sink_uri", "target_ts", "config")):
            raise ApiError("ErrChangefeedUpdateRefused", "changefeed config is the same with the old one, do nothing")
        if new["sink_uri"] != record["sink_uri"]:
            self._verify_sink(new["sink_uri"])
        self._save(new)
        self.rt.log(f"changefeed {feed_id} updated")
        return json_response(self._view(new))

    def pause(self, _request, feed_id):
        if not self.initialized():
            return self.not_initialized()
        record = self._record(feed_id)
        if record["state"] in ("normal", "warning", "pending"):
            record["checkpoint_ts"] = self._view(record)["checkpoint_ts"]
            record["state"] = "stopped"
            self._save(record)
        return json_response({})

    def resume(self, request, feed_id):
        if not self.initialized():
            return self.not_initialized()
        body = self._body(request, required=not self.newarch)
        record = self._record(feed_id)
        overwrite = int(body.get("overwrite_checkpoint_ts") or 0)
        if overwrite:
            if overwrite > common.tso():
                raise ApiError("ErrAPIInvalidParam", f"invalid api parameter: overwrite_checkpoint_ts {overwrite} is larger than current tso")
            record["checkpoint_ts"] = overwrite
        if record["state"] in ("stopped", "failed", "finished"):
            record["state"] = "normal"
            record["error"] = None
            record["start_ts"] = max(record["start_ts"], record["checkpoint_ts"]) if not overwrite else record["start_ts"]
            self._save(record)
        return json_response({})

    def delete(self, _request, feed_id):
        if not self.initialized():
            return self.not_initialized()
        if self._load(feed_id) is None:
            return json_response(None if self.newarch else {})
        self.etcd.delete(self.feed_prefix + feed_id)
        self.rt.log(f"changefeed {feed_id} removed")
        return json_response({})

    def sim_fail(self, request, feed_id):
        """Test hook: put a changefeed into `failed` (or another state) with an error."""
        body = self._body(request, required=False)
        record = self._record(feed_id)
        record["checkpoint_ts"] = self._view(record)["checkpoint_ts"]
        record["state"] = body.get("state", "failed")
        record["error"] = {"time": datetime.datetime.now().isoformat(), "addr": self.address,
                           "code": body.get("code", "CDC:ErrSnapshotLostByGC"), "message": body.get("message", "injected by tidbsim")}
        self._save(record)
        return json_response({})

    # ------------------------------------------------------------ routing

    def forward(self, request, owner):
        """Forward to the owner (api/middleware ForwardToServer): the header TiCDC-ForwardTimes
        counts the hops; a request that arrives with more than 2 fails, as TiCDC's does."""
        try:
            arrived = int(request.headers.get(FORWARD_TIMES) or 0)
        except ValueError as exc:
            return json_response({"error_msg": str(exc), "error_code": ""}, 500)
        if arrived > MAX_FORWARD_TIMES:
            return json_response({"error_msg": "TiCDC cluster is unavailable, please try again later", "error_code": ""}, 500)
        hops = arrived + 1
        query = urllib.parse.urlencode(request.query, doseq=True)
        url = f"{self.scheme}://{owner['address']}{request.path}" + (f"?{query}" if query else "")
        body = request.body if request.method in ("POST", "PUT", "PATCH", "DELETE") else None
        headers = {FORWARD_TIMES: str(hops)}
        if request.headers.get("Content-Type"):
            headers["Content-Type"] = request.headers["Content-Type"]
        status, data = common.http_call(request.method, url, body if body else (b"" if body is not None else None), 15, headers)
        return common.Response(status, data, "application/json; charset=utf-8")

    def _current_owner(self):
        """The owner as etcd says now (TiCDC reads it from etcd for every forwarded request)."""
        if not self.is_owner():
            try:
                self.refresh()
            except OSError:
                pass
        return self.owner()

    def _on_owner(self, handler):
        """Run on the owner (ForwardToOwnerMiddleware / ForwardToCoordinatorMiddleware); 500
        ErrOwnerNotFound while there is none. Unlike the changefeed API, no bootstrap wait."""
        def wrapped(request, *groups):
            if self.registered_at is None:
                return self.not_initialized()
            owner = self._current_owner()
            if owner is None:
                return self.error("ErrOwnerNotFound", "owner not found", 500)
            try:
                if owner["id"] != self.id:
                    return self.forward(request, owner)
                return handler(request, *groups)
            except ApiError as exc:
                return self.error(exc.code, exc.message)
            except OSError as exc:
                return self.error("ErrPDEtcdAPIError", f"etcd api call error: {exc}", 500)
        return wrapped

    def _changefeed(self, handler):
        """Forward to the owner like the real coordinator; map ApiError to the error body."""
        def wrapped(request, *groups):
            owner = self._current_owner()
            if owner is None or self.registered_at is None:
                return self.not_initialized()
            if owner["id"] != self.id:
                try:
                    return self.forward(request, owner)
                except OSError:
                    return self.not_initialized()
            try:
                return handler(request, *groups)
            except ApiError as exc:
                return self.error(exc.code, exc.message)
            except (TypeError, ValueError) as exc:  # e.g. start_ts that is not a number
                return self.error("ErrAPIInvalidParam", f"invalid api parameter: {exc}")
            except OSError as exc:
                return self.error("ErrPDEtcdAPIError", f"etcd api call error: {exc}", 500)
        return wrapped

    def build_router(self):
        r = common.Router()
        r.add("GET", "/status", self.status)
        r.add("GET", "/api/v2/status", self.status)
        r.add("GET", "/api/v1/status", self.status)
        r.add("GET", "/api/v2/captures", self._on_owner(self.captures_api))
        r.add("GET", "/api/v1/captures", self._on_owner(self.captures_api))
        r.add("PUT", "/api/v1/captures/drain", self._on_owner(self.drain))
        r.add("POST", "/api/v2/owner/resign", self._on_owner(self.resign_api))
        r.add("POST", "/api/v1/owner/resign", self._on_owner(self.resign_api))
        r.add("GET", "/api/v2/health", self._changefeed(self.health))
        r.add("GET", "/api/v1/health", self._changefeed(self.health))
        base = "/api/v2/changefeeds"
        feed = base + r"/([^/]+)"
        r.add("POST", base, self._changefeed(self.create))
        r.add("GET", base, self._changefeed(self.list))
        r.add("GET", feed, self._changefeed(self.get))
        r.add("PUT", feed, self._changefeed(self.update))
        r.add("DELETE", feed, self._changefeed(self.delete))
        r.add("GET", feed + "/status", self._changefeed(self.feed_status))
        r.add("POST", feed + "/pause", self._changefeed(self.pause))
        r.add("POST", feed + "/resume", self._changefeed(self.resume))
        r.add("POST", "/sim" + feed[len("/api/v2"):] + "/fail", self._changefeed(self.sim_fail))
        r.add("GET", "/sim/cdc/tables", self.sim_tables)
        classic_gate = r.dispatch

        def dispatch(request):
            # Classic TiCDC refuses /api/v2 (except status) until its server is up.
            if not self.newarch and request.path.startswith(("/api/v1/", "/api/v2/")) \
                    and request.path not in ("/api/v1/status", "/api/v2/status") and self.registered_at is None:
                return self.error("ErrServerIsNotReady", "cdc server is not ready", 503)
            return classic_gate(request)
        front = common.Router()
        front.fallback = dispatch
        return front


def verify_pd_endpoint(endpoint, use_tls=False):
    """pingcap/ticdc cmd/util/util.go VerifyPdEndpoint (tiflow pkg/cmd/util/helper.go alike): None,
    or the error text. use_tls: Credential.IsTLSEnabled (ca, cert and key all set)."""
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):", endpoint)
    if endpoint.startswith(":"):
        return f'parse PD endpoint: parse "{endpoint}": missing protocol scheme'
    if scheme is None and ":" in endpoint.split("/", 1)[0]:
        return f'parse PD endpoint: parse "{endpoint}": first path segment in URL cannot contain colon'
    parts = urllib.parse.urlsplit(endpoint)
    if not scheme or scheme.group(1).lower() not in ("http", "https") or not parts.netloc:
        return "PD endpoint should be a valid http or https URL"
    if use_tls and scheme.group(1).lower() == "http":  # Go's url.Parse lowercases the scheme
        return "PD endpoint scheme should be https"
    if not use_tls and scheme.group(1).lower() == "https":
        return "PD endpoint scheme is https, please provide certificate"
    return None


def pd_urls(value, use_tls=False):
    """--pd: every entry an http URL (https with TLS), as `cdc server` validates them (ErrInvalidServerOption otherwise)."""
    endpoints = [item for item in value.split(",") if item]
    if not endpoints:
        raise common.UsageError("Error: [CDC:ErrInvalidServerOption]invalid server option: empty PD address", 1)
    for endpoint in endpoints:
        reason = verify_pd_endpoint(endpoint, use_tls)
        if reason:
            raise common.UsageError(f"Error: [CDC:ErrInvalidServerOption]invalid server option: {reason}", 1)
    return [endpoint.rstrip("/") for endpoint in endpoints]


def newarch_enabled(flags, config):
    """Any of --newarch, TICDC_NEWARCH=true or top-level `newarch = true` in --config."""
    if flags["newarch"] or os.environ.get("TICDC_NEWARCH", "").lower() == "true":
        return True
    return config.get("newarch") is True


def tls_error(reason):
    """errors.WrapError(ErrToTLSConfigFailed, err), as `cdc server` exits with it."""
    return common.UsageError(f"Error: [CDC:ErrToTLSConfigFailed]generate tls config failed: {reason}", 1)


class CdcSecurity:
    """pingcap/ticdc pkg/security/credential.go Credential (tiflow's is the same): [security]
    ca-path, cert-path, key-path, cert-allowed-cn, mtls of --config, the --ca, --cert, --key and
    --cert-allowed-cn flags winning when given (cmd/cdc/server/server.go complete).

    IsTLSEnabled (all three set) decides the PD endpoint scheme (VerifyPdEndpoint) and whether the
    API port serves TLS (pkg/tcpserver NewTCPServer: tls.NewListener under cmux). That server asks
    for a client certificate only with `mtls = true` or a cert-allowed-cn list, to which server.New
    adds the server's own CN (AddSelfCommonName); the CN may be that of any certificate of the
    verified chain (addVerifyPeerCertificate). A CA alone makes the calls TiCDC makes use TLS
    (ToTLSConfigWithVerify is nil only without a CA; api/middleware ForwardToServer picks https)."""

    def __init__(self, flags, config):
        section = config.get("security") or {}

        def pick(flag, key):
            return str(flags[flag] if flags[flag] is not None else section.get(key) or "")
        self.ca, self.cert, self.key = pick("ca", "ca-path"), pick("cert", "cert-path"), pick("key", "key-path")
        if flags["cert-allowed-cn"] is not None:
            self.allowed_cn = flags["cert-allowed-cn"].split(",") if flags["cert-allowed-cn"] else []
        else:
            self.allowed_cn = [str(cn) for cn in section.get("cert-allowed-cn") or []]
        self.mtls = section.get("mtls") is True

    @property
    def tls_enabled(self):
        return bool(self.ca and self.cert and self.key)

    def check(self):
        """server.New: AddSelfCommonName (with a CN list), then the TLS listener's config; the key
        pair, which real TiCDC loads lazily, fails there at the first PD connection of the start."""
        if self.allowed_cn:
            try:
                data = tlsmod.read_file(self.cert)
            except tlsmod.TLSFileError as exc:
                raise tls_error(str(exc)) from None
            if b"-----BEGIN CERTIFICATE-----" not in data:
                raise tls_error("failed to decode PEM block to certificate")
            self.allowed_cn.append(self._own_cn())
        if self.ca:
            try:
                tlsmod.check_ca(self.ca)
            except tlsmod.TLSFileError as exc:
                raise tls_error(f"could not read ca certificate: {exc}" if exc.os_error else str(exc)) from None
            if self.cert and self.key:
                try:
                    tlsmod.check_pair(self.cert, self.key)
                except tlsmod.TLSFileError as exc:
                    raise tls_error(f"could not load client key pair: {exc}") from None

    def _own_cn(self):
        try:
            return tlsmod.cert_common_name(tlsmod.decode_cert_file(self.cert)) or ""
        except (OSError, ValueError) as exc:
            raise tls_error(str(exc)) from None

    def client(self):
        if not self.ca:
            return None
        cert_ok = self.cert and self.key
        return tlsmod.client_context(self.ca, self.cert if cert_ok else None, self.key if cert_ok else None)

    def server(self):
        if not self.tls_enabled:
            return None
        required = self.mtls or bool(self.allowed_cn)
        return tlsmod.ServerTLS(self.cert, self.key, self.ca, "require" if required else "none",
                                allowed_cns=self.allowed_cn or None, cn_in_chain=True)


def main(argv):
    if not argv or argv[0] != "server":
        raise common.UsageError("Error: unknown command " + (repr(argv[0]) if argv else "''") + " for \"cdc\"\nRun 'cdc --help' for usage.", 1)
    flags, _positional = common.parse_flags(argv[1:], FLAGS, "cdc server", "cobra")
    if not flags["gc-ttl"].lstrip("-").isdigit():
        raise common.UsageError(f'Error: invalid argument "{flags["gc-ttl"]}" for "--gc-ttl" flag: strconv.ParseInt:'
                                f' parsing "{flags["gc-ttl"]}": invalid syntax', 1)
    config = {}
    if flags["config"]:
        config = common.load_toml(flags["config"], "Error: open {path}: {reason}", "Error: toml: {reason}")
    security = CdcSecurity(flags, config)
    urls = pd_urls(flags["pd"], security.tls_enabled)
    newarch = newarch_enabled(flags, config)
    security.check()
    address = flags["advertise-addr"] or flags["addr"]
    runtime = common.Runtime("cdc", address, flags["data-dir"] or None)
    runtime.log(f"architecture: {'new' if newarch else 'classic'}")
    if security.client() is not None:
        tlsmod.set_default_client(security.client())
    capture = Capture(runtime, flags, newarch, urls)
    capture.scheme = "https" if security.ca else "http"
    common.HttpService(runtime, flags["addr"], capture.build_router(), "api", tls=security.server()).start()
    runtime.every(max(0.2, capture.ttl / 4), capture.session)
    runtime.every(0.2, capture.tick)
    runtime.on_close(capture.on_stop)
    return runtime.wait_forever()
