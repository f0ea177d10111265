"""pd-server: members, leader by majority, stores, replication config, etcd JSON gateway.

Members gossip over their peer URLs (`POST /sim/peer/heartbeat`). A leader exists only while a
majority of the known members answer; it is the live member with the smallest name, and it owns
the cluster state. Followers forward every non-local API call to it. The state (cluster id,
stores, replication config, etcd keys and leases) travels with each heartbeat, so a new leader
starts from the freshest copy, and each member keeps it in its data dir.
"""

import base64
import datetime
import hashlib
import json
import os
import random
import threading
import time

from . import common
from .common import Flag, json_response, text_response

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

HEARTBEAT = 0.25
# Paths PD answers itself; everything else goes to the leader (apiutil localOnlyPaths).
LOCAL_PATHS = ("/pd/api/v1/health", "/pd/api/v1/ping", "/pd/api/v1/status", "/pd/api/v1/leader",
               "/pd/api/v1/config", "/pd/api/v2/readyz", "/sim/marker")
DEFAULT_REPLICATE = {"max-replicas": 3, "location-labels": "", "strictly-match-label": "false",
                     "enable-placement-rules": "true", "enable-placement-rules-cache": "false", "isolation-level": ""}
REPLICATE_BOOLS = ("strictly-match-label", "enable-placement-rules", "enable-placement-rules-cache")
NO_LEADER = "[PD:apiutil:ErrRedirectNoLeader]redirect finds no leader"


def replicate_from_config(path):
    """The initial replication config: defaults, then [replication] of the --config TOML."""
    replicate = dict(DEFAULT_REPLICATE)
    if not path:
        return replicate
    config = common.load_toml(path, "open {path}: {reason}", "[PD:config:ErrConfigItem]parse config file {path}: {reason}")
    for key, value in (config.get("replication") or {}).items():
        if key in REPLICATE_BOOLS and isinstance(value, bool):
            value = "true" if value else "false"
        elif key == "location-labels" and isinstance(value, list):
            value = ",".join(value)
        replicate[key] = value
    return replicate


def member_id(name, peer_url):
    """A stable uint64, often above 2**53 like real member ids."""
    return int.from_bytes(hashlib.sha256(f"{name}@{peer_url}".encode()).digest()[:8], "big")


def rfc3339(wall):
    return datetime.datetime.fromtimestamp(wall, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64(raw):
    return base64.b64encode(raw).decode()


def _unb64(text):
    return base64.b64decode(text or "")


class PD:
    def __init__(self, runtime, flags):
        self.rt = runtime
        self.name = flags["name"]
        self.client_urls = common.url_list(flags["client-urls"])
        self.peer_urls = common.url_list(flags["peer-urls"])
        self.adv_client = common.url_list(flags["advertise-client-urls"]) or self.client_urls
        self.adv_peer = common.url_list(flags["advertise-peer-urls"]) or self.peer_urls
        self.data_dir = flags["data-dir"]
        self.lock = threading.RLock()
        self.last_seen = {}
        self.disconnected_after = common.env_float("STORE_DISCONNECTED_AFTER", 5.0)
        self.down_after = common.env_float("STORE_DOWN_AFTER", 30.0)
        self.peer_timeout = common.env_float("PD_PEER_TIMEOUT", 3.0)
        self.state_path = os.path.join(self.data_dir, "tidbsim-pd-state.json")
        self.members_path = os.path.join(self.data_dir, "tidbsim-pd-members.json")
        self.state = common.load_json(self.state_path) or {
            "revision": 0, "cluster_id": 0, "bootstrapped": False, "next_id": 1, "stores": {},
            "replicate": replicate_from_config(flags["config"]), "kv": {}, "kv_revision": 1, "leases": {}}
        self.members = common.load_json(self.members_path) or {}
        self.members[self.name] = self._self_member()
        for item in filter(None, (flags["initial-cluster"] or "").split(",")):
            name, _eq, url = item.partition("=")
            if not url:
                raise common.UsageError(f"invalid --initial-cluster entry {item!r}, want name=http://host:port")
            self.members.setdefault(name, {"name": name, "peer_urls": [url], "client_urls": [], "member_id": member_id(name, url)})
        self.join_urls = common.url_list(flags["join"])
        self._persist_members()

    # ------------------------------------------------------------ membership and leadership

    def _self_member(self):
        return {"name": self.name, "peer_urls": self.adv_peer, "client_urls": self.adv_client,
                "member_id": member_id(self.name, self.adv_peer[0])}

    def _persist_members(self):
        common.save_json(self.members_path, self.members)

    def alive(self, name):
        if name == self.name:
            return True
        seen = self.last_seen.get(name)
        return seen is not None and time.monotonic() - seen < self.peer_timeout

    def has_quorum(self):
        with self.lock:
            live = [n for n in self.members if self.alive(n)]
            return len(live) * 2 > len(self.members)

    def leader_name(self):
        with self.lock:
            # A member that never becomes ready sees no leader, so /members keeps answering 503.
            if self.rt.faults.never_ready or not self.rt.start_delay_passed() or not self.has_quorum():
                return None
            return min(n for n in self.members if self.alive(n))

    def is_leader(self):
        return self.leader_name() == self.name

    def _merge(self, members, state):
        with self.lock:
            changed = False
            for name, member in (members or {}).items():
                mine = self.members.get(name)
                if name != self.name and (mine is None or (member.get("client_urls") and member != mine)):
                    self.members[name] = member
                    changed = True
            if changed:
                self._persist_members()
            if state and state.get("revision", 0) > self.state.get("revision", 0):
                self.state = state
                common.save_json(self.state_path, self.state)

    def _gossip(self):
        with self.lock:
            payload = {"name": self.name, "members": dict(self.members), "state": self.state}
            targets = [(n, m["peer_urls"][0]) for n, m in self.members.items() if n != self.name]
        for name, url in targets:
            try:
                status, data = common.http_call("POST", url + "/sim/peer/heartbeat", payload, timeout=HEARTBEAT * 2)
            except OSError:
                continue
            if status == 200:
                reply = json.loads(data)
                with self.lock:
                    self.last_seen[name] = time.monotonic()
                self._merge(reply.get("members"), reply.get("state"))

    def peer_heartbeat(self, request):
        payload = request.json()
        with self.lock:
            self.last_seen[payload["name"]] = time.monotonic()
        self._merge(payload.get("members"), payload.get("state"))
        with self.lock:
            return common.json_response({"name": self.name, "members": self.members, "state": self.state})

    def peer_join(self, request):
        """A member started with --join announces itself; gossip spreads it."""
        member = request.json()
        self._merge({member["name"]: member}, None)
        with self.lock:
            return common.json_response({"members": self.members, "state": self.state})

    def join(self):
        status, data = common.first_answer("POST", self.join_urls, "/sim/peer/join", self._self_member())
        reply = json.loads(data)
        self._merge(reply["members"], reply["state"])
        self.rt.log(f"joined the cluster through {self.join_urls} ({status})")

    def tick(self):
        self._gossip()
        if self.is_leader():
            with self.lock:
                if not self.state["cluster_id"]:
                    self.mutate(lambda s: s.update(cluster_id=random.getrandbits(62) | (1 << 62)))
            self.rt.try_ready()
        elif self.leader_name() is not None:
            self.rt.try_ready()

    def mutate(self, change):
        """Apply a change to the state on the leader, bump the revision, persist."""
        with self.lock:
            result = change(self.state)
            self.state["revision"] += 1
            common.save_json(self.state_path, self.state)
            return result

    def member_view(self, name):
        member = self.members[name]
        return {"name": name, "member_id": member["member_id"], "peer_urls": member["peer_urls"],
                "client_urls": member["client_urls"], "deploy_path": "/", "binary_version": common.SIM_VERSION,
                "git_hash": common.GIT_HASH}

    # ------------------------------------------------------------ HTTP API

    def route(self, request):
        """Answer local paths here; forward the rest to the leader."""
        if request.path.startswith("/sim/peer/") or request.path in LOCAL_PATHS \
                or request.headers.get("X-Tidbsim-Forwarded"):
            return self.router.dispatch(request)
        leader = self.leader_name()
        if leader is None:
            return text_response(NO_LEADER + "\n", 503)
        if leader == self.name:
            return self.router.dispatch(request)
        try:
            return common.proxy(request, self.members[leader]["client_urls"][0])
        except OSError as exc:
            return text_response(f"[PD:apiutil:ErrRedirectFailed]redirect failed: {exc}\n", 500)

    def health(self, _request):
        quorum = self.has_quorum()
        with self.lock:
            return json_response([{"name": n, "member_id": m["member_id"], "client_urls": m["client_urls"],
                                   "health": quorum and self.alive(n)} for n, m in sorted(self.members.items())])

    def members_api(self, _request):
        leader = self.member_view(self.name)
        with self.lock:
            members = [self.member_view(n) for n in sorted(self.members)]
            return json_response({"header": {"cluster_id": self.state["cluster_id"]}, "members": members,
                                  "leader": leader, "etcd_leader": leader})

    def leader_api(self, _request):
        leader = self.leader_name()
        return json_response(self.member_view(leader) if leader else None)

    def status_api(self, _request):
        return json_response({"build_ts": "2026-01-01 00:00:00", "version": common.SIM_VERSION,
                              "git_hash": common.GIT_HASH, "start_timestamp": int(time.time() - (time.monotonic() - self.rt.started)),
                              "kernel_type": "Classic"})

    def readyz(self, _request):
        if self.leader_name() is None:
            return text_response("[+]etcd ok\n[-]leader failed\n", 503)
        return text_response("ok\n")

    def cluster_status(self, _request):
        return json_response({"raft_bootstrap_time": "2026-01-01T00:00:00Z" if self.state["bootstrapped"] else "0001-01-01T00:00:00Z",
                              "is_initialized": self.state["bootstrapped"], "replication_status": {"state": "", "state_id": 0}})

    def _store_view(self, store):
        age = time.time() - store["last_heartbeat"]
        state = "Up"
        if age > self.down_after:
            state = "Down"
        elif age > self.disconnected_after:
            state = "Disconnected"
        info = {k: store[k] for k in ("id", "address", "peer_address", "status_address", "version")}
        if store.get("labels"):
            info["labels"] = store["labels"]
        info.update(start_timestamp=int(store["start"]), deploy_path="/", last_heartbeat=int(store["last_heartbeat"] * 1e9),
                    node_state=1, state_name=state)
        capacity = store.get("capacity") or "300GiB"
        status = {"capacity": capacity, "available": capacity, "used_size": "1MiB", "leader_count": 0,
                  "region_count": 0, "start_ts": rfc3339(store["start"]), "last_heartbeat_ts": rfc3339(store["last_heartbeat"]),
                  "uptime": f"{int(store['last_heartbeat'] - store['start'])}s"}
        return {"store": info, "status": status}

    def stores(self, request):
        if not self.state["bootstrapped"]:
            return json_response("TiKV cluster not bootstrapped, please start TiKV first", 500)
        wanted = {int(s) for s in request.query.get("state", []) if s.isdigit()} or {0, 1}
        with self.lock:
            views = [self._store_view(s) for _id, s in sorted(self.state["stores"].items(), key=lambda kv: int(kv[0]))]
        views = [v for v in views if 0 in wanted]  # simulated stores are never Offline or Tombstone
        return json_response({"count": len(views), "stores": views})

    def store(self, _request, store_id):
        with self.lock:
            store = self.state["stores"].get(store_id)
            if store is None:
                return json_response(f"[PD:core:ErrStoreNotFound]store id {store_id} not found", 404)
            return json_response(self._store_view(store))

    def store_heartbeat(self, request):
        """Private: TiKV and TiFlash register and heartbeat here (the real ones use gRPC)."""
        body = request.json()

        def change(state):
            now = time.time()
            for store_id, store in state["stores"].items():
                if store["address"] == body["address"]:
                    break
            else:
                store_id = str(state["next_id"])
                state["next_id"] += 1
                store = {"id": int(store_id), "start": now}
                state["stores"][store_id] = store
            if state["stores"][store_id].get("last_heartbeat", 0) < now - self.disconnected_after:
                store["start"] = now
            store.update(address=body["address"], peer_address=body.get("peer_address") or body["address"],
                         status_address=body.get("status_address", ""), version=body.get("version", common.SIM_VERSION),
                         labels=body.get("labels") or [], capacity=body.get("capacity"), last_heartbeat=now)
            state["bootstrapped"] = True
            return store["id"]
        return json_response({"store_id": self.mutate(change), "cluster_id": self.state["cluster_id"]})

    def replicate_get(self, _request):
        return json_response(self.state["replicate"])

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
        self.mutate(lambda s: s["replicate"].update(body))
        return json_response("The config is updated.")

    def config(self, _request):
        return json_response({"name": self.name, "data-dir": self.data_dir, "client-urls": ",".join(self.client_urls),
                              "replication": self.state["replicate"], "schedule": {"max-store-down-time": f"{self.down_after:g}s"}})

    def rules(self, _request, *_groups):
        if self.state["replicate"]["enable-placement-rules"] != "true":
            return json_response("Placement rules feature is disabled.", 412)
        return json_response([{"group_id": "pd", "id": "default", "start_key": "", "end_key": "", "role": "voter",
                               "count": self.state["replicate"]["max-replicas"]}])

    # ------------------------------------------------------------ etcd v3 JSON gateway (subset)

    def _live_kv(self, state):
        now = time.time()
        expired = [lid for lid, lease in state["leases"].items() if lease["expires"] < now]
        for lid in expired:
            del state["leases"][lid]
        if expired:
            for key in [k for k, v in state["kv"].items() if v.get("lease") and v["lease"] not in state["leases"]]:
                del state["kv"][key]
        return state["kv"]

    def _header(self):
        return {"cluster_id": str(self.state["cluster_id"]), "member_id": str(self.members[self.name]["member_id"]),
                "revision": str(self.state["kv_revision"]), "raft_term": "1"}

    @staticmethod
    def _in_range(key, start, end):
        if not end:
            return key == start
        if end == b"\0":
            return key >= start
        return start <= key < end

    def kv_range(self, request):
        body = request.json()
        start, end = _unb64(body.get("key")), _unb64(body.get("range_end"))

        def read(state):
            kvs = []
            for key_b64, item in sorted(self._live_kv(state).items(), key=lambda kv: _unb64(kv[0])):
                if self._in_range(_unb64(key_b64), start, end):
                    kv = {"key": key_b64, "create_revision": str(item["create"]), "mod_revision": str(item["mod"]),
                          "version": str(item["version"]), "value": item["value"]}
                    if item.get("lease"):
                        kv["lease"] = item["lease"]
                    kvs.append(kv)
            return kvs
        with self.lock:
            if any(lease["expires"] < time.time() for lease in self.state["leases"].values()):
                self.mutate(self._live_kv)  # drop expired leases and their keys (a write)
            kvs = read(self.state)
        reply = {"header": self._header(), "count": str(len(kvs))}
        if kvs:
            reply["kvs"] = kvs
        return json_response(reply)

    def kv_put(self, request):
        body = request.json()
        key_b64 = _b64(_unb64(body.get("key")))
        lease = str(body.get("lease") or "") or None
        if lease == "0":
            lease = None
        if lease and lease not in self.state["leases"]:
            return json_response({"error": "etcdserver: requested lease not found", "code": 5, "message": "etcdserver: requested lease not found"}, 404)

        def change(state):
            kv = self._live_kv(state)
            state["kv_revision"] += 1
            rev = state["kv_revision"]
            old = kv.get(key_b64)
            kv[key_b64] = {"value": body.get("value", ""), "create": old["create"] if old else rev, "mod": rev,
                           "version": (old["version"] + 1) if old else 1, "lease": lease}
        self.mutate(change)
        return json_response({"header": self._header()})

    def kv_delete(self, request):
        body = request.json()
        start, end = _unb64(body.get("key")), _unb64(body.get("range_end"))

        def change(state):
            kv = self._live_kv(state)
            doomed = [k for k in kv if self._in_range(_unb64(k), start, end)]
            for key in doomed:
                del kv[key]
            state["kv_revision"] += 1
            return len(doomed)
        return json_response({"header": self._header(), "deleted": str(self.mutate(change))})

    def lease_grant(self, request):
        body = request.json()
        ttl = int(body.get("TTL") or 5)
        lease_id = str(body.get("ID") or random.getrandbits(62))
        self.mutate(lambda s: s["leases"].__setitem__(lease_id, {"ttl": ttl, "expires": time.time() + ttl}))
        return json_response({"header": self._header(), "ID": lease_id, "TTL": str(ttl)})

    def lease_keepalive(self, request):
        lease_id = str(request.json().get("ID"))

        def change(state):
            self._live_kv(state)
            lease = state["leases"].get(lease_id)
            if lease:
                lease["expires"] = time.time() + lease["ttl"]
            return lease
        lease = self.mutate(change)
        # The gateway streams keepalive replies; an expired lease answers TTL 0 (or absent).
        return json_response({"result": {"header": self._header(), "ID": lease_id, "TTL": str(lease["ttl"] if lease else 0)}})

    def lease_revoke(self, request):
        lease_id = str(request.json().get("ID"))

        def change(state):
            state["leases"].pop(lease_id, None)
            for key in [k for k, v in state["kv"].items() if v.get("lease") == lease_id]:
                del state["kv"][key]
        self.mutate(change)
        return json_response({"header": self._header()})

    def build_router(self):
        r = common.Router()
        v1 = "/pd/api/v1"
        r.add("GET", v1 + "/health", self.health)
        r.add("GET", v1 + "/ping", lambda _r: text_response(""))
        r.add("GET", v1 + "/status", self.status_api)
        r.add("GET", v1 + "/members", self.members_api)
        r.add("GET", v1 + "/leader", self.leader_api)
        r.add("GET", v1 + "/cluster/status", self.cluster_status)
        r.add("GET", v1 + "/stores", self.stores)
        r.add("GET", v1 + r"/store/(\d+)", self.store)
        r.add("GET", v1 + "/config", self.config)
        r.add("GET", v1 + "/config/replicate", self.replicate_get)
        r.add("POST", v1 + "/config/replicate", self.replicate_post)
        r.add("*", v1 + "/config/(rules|rules/batch|rules/group/.*|rule/.*|rule_groups?|placement-rule.*)", self.rules)
        r.add("GET", "/pd/api/v2/readyz", self.readyz)
        r.add("POST", "/v3/kv/range", self.kv_range)
        r.add("POST", "/v3/kv/put", self.kv_put)
        r.add("POST", "/v3/kv/deleterange", self.kv_delete)
        r.add("POST", "/v3/lease/grant", self.lease_grant)
        r.add("POST", "/v3/lease/keepalive", self.lease_keepalive)
        r.add("POST", "/v3/lease/revoke", self.lease_revoke)
        r.add("POST", "/sim/pd/store/heartbeat", self.store_heartbeat)
        r.add("POST", "/sim/peer/heartbeat", self.peer_heartbeat)
        r.add("POST", "/sim/peer/join", self.peer_join)
        self.router = r
        front = common.Router()
        front.fallback = self.route
        return front


def main(argv):
    flags, _positional = common.parse_flags(argv, FLAGS, "pd-server", "go")
    if not flags["data-dir"]:
        flags["data-dir"] = f"default.{flags['name']}"
    runtime = common.Runtime("pd", flags["name"], flags["data-dir"])
    pd = PD(runtime, flags)
    front = pd.build_router()
    for url in pd.client_urls:
        common.HttpService(runtime, url, front, "client").start()
    peer = common.Router()
    peer.fallback = pd.route
    for url in pd.peer_urls:
        common.HttpService(runtime, url, peer, "peer").start()
    # Like real PD, a joining member learns the cluster before it can lead anything.
    while pd.join_urls and len(pd.members) == 1 and runtime.signalled is None:
        try:
            pd.join()
        except OSError as exc:
            runtime.log(f"cannot join through {pd.join_urls} yet: {exc}")
            time.sleep(0.5)
    runtime.every(HEARTBEAT, pd.tick)
    return runtime.wait_forever()
