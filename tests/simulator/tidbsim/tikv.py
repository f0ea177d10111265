"""tikv-server: registers its advertise address as a PD store and heartbeats; /status once registered."""

import json

from . import common
from .common import Flag, json_response, text_response

FLAGS = [
    Flag("pd-endpoints", "pd", default=""),
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


class StoreClient:
    """Heartbeats a store into PD (TiKV and TiFlash share it)."""

    def __init__(self, runtime, pd_urls, store):
        self.rt = runtime
        self.pd_urls = pd_urls
        self.store = store
        self.store_id = None

    def heartbeat(self):
        _status, data = common.first_answer("POST", self.pd_urls, "/sim/pd/store/heartbeat", self.store,
                                            accept=lambda status: status == 200)
        store_id = json.loads(data)["store_id"]
        if self.store_id is None:
            self.rt.log(f"registered in PD as store {store_id} ({self.store['address']})")
        self.store_id = store_id


def main(argv):
    flags, _positional = common.parse_flags(argv, FLAGS, "tikv-server", "clap")
    if flags["config"]:
        common.load_toml(flags["config"], "[FATAL] invalid configuration file {path}: {reason}",
                         "[FATAL] invalid configuration file {path}: {reason}")
    address = advertise(flags["addr"], flags["advertise-addr"], "advertise-addr")
    status_address = advertise(flags["status-addr"], flags["advertise-status-addr"], "advertise-status-addr")
    pd_urls = common.url_list(flags["pd-endpoints"] or "127.0.0.1:2379")
    runtime = common.Runtime("tikv", address, flags["data-dir"])
    client = StoreClient(runtime, pd_urls, {"address": address, "peer_address": address, "status_address": status_address,
                                            "version": common.SIM_VERSION.lstrip("v"), "labels": parse_labels(flags["labels"]),
                                            "capacity": flags["capacity"] or None})
    interval = common.env_float("HEARTBEAT_INTERVAL", 0.5)

    def ready_verbose(request):
        ready = runtime.ready
        if request.arg("verbose") is not None:
            return json_response({"connected_to_pd": client.store_id is not None, "raft_peers_caught_up": ready}, 200 if ready else 500)
        return text_response("", 200 if ready else 500)

    router = common.Router()
    router.add("GET", "/status", lambda _r: text_response(""))
    router.add("GET", "/ready", ready_verbose)
    router.add("GET", "/metrics", lambda _r: text_response("# tidbsim: no metrics\n"))
    status_server = common.HttpService(runtime, flags["status-addr"], router, "status")
    common.TcpListener(runtime, flags["addr"], "grpc").start()

    def heartbeat():
        if not runtime.start_delay_passed():  # a slow start registers late
            return
        first = client.store_id is None
        client.heartbeat()
        # The real status server starts only after PD registration.
        if first:
            status_server.start()
        runtime.try_ready()
    runtime.every(interval, heartbeat)
    return runtime.wait_forever()
