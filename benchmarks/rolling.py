# Copyright (c) tidbops.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Watch a rolling restart, an upgrade or a scale operation from outside the collection: an
independent poller of the PD and TiDB APIs, and the engine's own events. Shared by the reliability
suite and the benchmark.

The poller reads, every ``interval`` seconds, the PD leader, every store's state and leader count,
and each TiDB's /status; ``EngineEvents`` streams Docker's container events of the run; ``watched``
runs a playbook under both. ``verdicts`` checks what a rolling procedure promises against both
records, with no help from the collection.
"""

import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request

import harness


def _get(url, timeout=1.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except OSError:
        return None, b""


class Poller(threading.Thread):
    """Samples {t, leader, stores {address: (state, leader_count)}, tidb {host: status}} until stopped."""

    def __init__(self, pd_urls, tidb_status_urls, interval=0.2):
        super().__init__(daemon=True)
        self.pd_urls = list(pd_urls)
        self.tidb = dict(tidb_status_urls)
        self.interval = interval
        self.samples = []
        self._halt = threading.Event()

    def _pd(self, path):
        for url in self.pd_urls:
            status, body = _get(url + path)
            if status == 200:
                try:
                    return json.loads(body)
                except ValueError:
                    continue
        return None

    def sample(self):
        now = time.time()
        leader = self._pd("/pd/api/v1/leader")
        stores = self._pd("/pd/api/v1/stores") or {}
        views = {}
        for entry in stores.get("stores") or []:
            store, status = entry.get("store") or {}, entry.get("status") or {}
            views[store.get("address")] = (store.get("state_name"), int(status.get("leader_count") or 0))
        tidb = {host: _get(url + "/status")[0] for host, url in self.tidb.items()}
        return {"t": now, "leader": (leader or {}).get("name"), "stores": views, "tidb": tidb}

    def run(self):
        while not self._halt.is_set():
            self.samples.append(self.sample())
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join(10)
        return self.samples


def cluster_urls(cluster):
    """PD client URLs and {tidb host: status URL} of a harness cluster (host networking on 127.0.0.1)."""
    pd = [f"http://127.0.0.1:{v.get('client_port')}" for _h, _k, v in cluster.instances("pd")]
    tidb = {h: f"http://127.0.0.1:{v.get('status_port')}" for h, _k, v in cluster.instances("tidb")}
    return pd, tidb


# The hosts a scale-out adds to inventories/local-ha (a 4th TiKV, a 4th and 5th PD, a 3rd TiDB) and
# the ones a scale-in then removes; harness.Cluster(spare=SCALE_OUT) reserves their ports.
SCALE_OUT = {"pd_servers": {"pd3": {"client_port": 2386, "peer_port": 2387}, "pd4": {"client_port": 2388, "peer_port": 2389}},
             "tikv_servers": {"tikv3": {"tikv_port": 20163, "status_port": 20183}},
             "tidb_servers": {"tidb2": {"tidb_port": 4002, "status_port": 10082}}}
SCALE_OUT_HOSTS = ["pd3", "pd4", "tikv3", "tidb2"]
SCALE_IN_HOSTS = ["tikv3", "pd3", "pd4"]


def pd_json(cluster, path, timeout=20.0):
    """GET from the first PD that answers 200; PDs restart, elect, join and leave meanwhile, so retry a while."""
    pd_urls, _tidb = cluster_urls(cluster)
    deadline = time.monotonic() + timeout
    while True:
        for url in pd_urls:
            try:
                with urllib.request.urlopen(url + path, timeout=3) as response:
                    return json.loads(response.read())
            except OSError:
                continue
        if time.monotonic() > deadline:
            raise AssertionError(f"no PD answered {path} within {timeout} s")
        time.sleep(0.2)


def _events_argv(cluster_name):
    return ["docker", "events", "--format", "{{json .}}", "--filter", "type=container", "--filter", f"label=tidbops.cluster={cluster_name}"]


def _parse_events(lines):
    events = []
    for line in lines:
        if not line.strip():
            continue
        event = json.loads(line)
        action = event.get("Action") or event.get("status") or ""
        events.append({"t": event["timeNano"] / 1e9, "name": event["Actor"]["Attributes"]["name"], "action": action.split(":")[0],
                       "id": event.get("id") or event["Actor"].get("ID")})
    return events


class EngineEvents:
    """Docker's container events of one cluster, streamed from start() to stop(), so none is lost to
    dockerd's 256-event memory; stop() adds the query of the last moments (events the stream had
    not delivered yet) and returns [{t, name, action}] in order, each event once."""

    def __init__(self, cluster_name):
        self.cluster_name = cluster_name
        self.lines, self.proc, self.thread, self.since = [], None, None, None

    def start(self):
        self.since = time.time()
        self.proc = subprocess.Popen(_events_argv(self.cluster_name), stdout=subprocess.PIPE,  # pylint: disable=consider-using-with
                                     stderr=subprocess.DEVNULL, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        return self

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def stop(self):
        until = time.time() + 1
        # dockerd answers a query from the last 256 events it keeps (moby daemon/events/events.go
        # eventsLimit): enough for the last minute, which the stream may not have delivered yet.
        argv = _events_argv(self.cluster_name)
        tail = subprocess.run(argv[:2] + ["--since", f"{max(self.since, until - 60):.3f}", "--until", f"{until:.3f}"] + argv[2:],
                              check=True, capture_output=True, text=True, timeout=60).stdout
        self.proc.terminate()
        self.thread.join(5)
        seen, events = set(), []
        for event in sorted(_parse_events(self.lines + tail.splitlines()), key=lambda e: e["t"]):
            key = (event["t"], event["id"], event["action"])
            if key not in seen:
                seen.add(key)
                events.append({k: v for k, v in event.items() if k != "id"})
        return events


def watched(cluster, playbook, extra_vars):
    """Run a playbook under the poller and the engine's event stream: (run, samples, events)."""
    pd_urls, tidb_urls = cluster_urls(cluster)
    poller = Poller(pd_urls, tidb_urls)
    poller.start()
    recorder = EngineEvents(cluster.name).start()
    try:
        run = cluster.run(playbook, extra_vars)
    finally:
        samples = poller.stop()
        events = recorder.stop()
    return run, samples, events


def outages(events):
    """{container name: [(down at, up at or None)]}: from its first kill/stop/die to its next start."""
    found, down = {}, {}
    for event in events:
        name, action = event["name"], event["action"]
        if action in ("kill", "stop", "die") and name not in down:
            down[name] = event["t"]
        elif action == "start":
            found.setdefault(name, []).append((down.pop(name, event["t"]), event["t"]))
    for name, since in down.items():
        found.setdefault(name, []).append((since, None))
    return found


def restarted(events):
    """Names of the containers that were started during the events."""
    return sorted({event["name"] for event in events if event["action"] == "start"})


def _last_before(samples, t):
    before = [sample for sample in samples if sample["t"] < t]
    return before[-1] if before else None


def verdicts(cluster, samples, events):
    """What went wrong, as texts (empty when the procedure kept every promise)."""
    problems = []
    down = outages(events)
    name_of = {cluster.container(host): (host, kind, host_vars) for host, kind, host_vars in cluster.instances()}
    stores = {cluster.container(h): f"127.0.0.1:{v.get('tikv_port', v.get('port'))}" for h, _k, v in cluster.instances("tikv")}
    # Every TiKV stopped only after PD reported its leader count 0.
    for name, address in stores.items():
        for since, _until in down.get(name, []):
            sample = _last_before(samples, since)
            if sample is None or address not in sample["stores"]:
                problems.append(f"{name}: no observation of store {address} before it stopped at {since:.3f}")
            elif sample["stores"][address][1] != 0:
                problems.append(f"{name}: stopped at {since:.3f} while leading {sample['stores'][address][1]} regions")
    # The PD leader went last among PDs and had lost leadership before it stopped.
    pd_names = {cluster.container(h): v.get("name", h) for h, _k, v in cluster.instances("pd")}
    pd_stops = sorted((since, name) for name in pd_names for since, _until in down.get(name, []))
    first_pd = pd_stops[0][0] if pd_stops else None
    leader_at_start = (_last_before(samples, first_pd) or {}).get("leader") if first_pd else None
    if pd_stops and leader_at_start:
        if pd_names[pd_stops[-1][1]] != leader_at_start:
            problems.append(f"PD leader {leader_at_start} was not the last PD to stop (order {[n for _t, n in pd_stops]})")
        for since, name in pd_stops:
            sample = _last_before(samples, since)
            if sample and sample["leader"] == pd_names[name]:
                problems.append(f"{name} stopped at {since:.3f} while it still led PD")
    # At least one TiDB answered /status 200 at every poll.
    for sample in samples:
        if sample["tidb"] and 200 not in sample["tidb"].values():
            problems.append(f"no TiDB answered /status 200 at {sample['t']:.3f}: {sample['tidb']}")
            break
    # No two instances of one component down at once.
    by_kind = {}
    for name, windows in down.items():
        if name in name_of:
            by_kind.setdefault(name_of[name][1], []).extend((a, b if b is not None else float("inf"), name) for a, b in windows)
    for kind, windows in by_kind.items():
        windows.sort()
        for (a1, b1, n1), (a2, _b2, n2) in zip(windows, windows[1:]):
            if a2 < b1 and n1 != n2:
                problems.append(f"{kind}: {n1} and {n2} were down together ({a2:.3f} < {b1:.3f})")
    return problems


def derive_sim_image(engine, tag):
    """localhost/tidbsim:<tag>, a different image ID on top of the simulator image (one label more),
    to upgrade to; built without pulling. Returns the reference."""
    base = harness.sim_image()
    reference = f"localhost/tidbsim:{tag}"
    dockerfile = f"FROM {base}\nLABEL tidbsim.derived-tag=\"{tag}\"\n"
    if engine == "podman":
        argv, env = ["podman", "build", "-q", "--pull=never", "-t", reference, "-"], None
    else:
        argv, env = ["docker", "build", "-q", "-t", reference, "-"], {"DOCKER_BUILDKIT": "0"}
    subprocess.run(argv, input=dockerfile, text=True, check=True, capture_output=True, timeout=300,
                   env=dict(os.environ, **(env or {})))
    return reference


def image_id(engine, reference):
    return subprocess.run([engine, "image", "inspect", "--format", "{{.Id}}", reference],
                          check=True, capture_output=True, text=True).stdout.strip()


def floor(run, events):
    """The least a rolling procedure could take, from its own run: the sum, over every instance it
    replaced, of its restart-to-ready time (its container's kill event to the end of the gate that
    followed it) plus the time spent moving leaders away (the instance_drain steps). Returns
    (floor seconds, {container: restart-to-ready}, drain seconds)."""
    gate_ends = sorted(e["t"] for e in run.events if e["event"] == "task_end"
                       and e.get("action") == "tidbops.cluster.component_ready" and e.get("status") == "ok")
    drain_starts = sorted(e["t"] for e in run.events if e["event"] == "task_start" and e.get("action") == "tidbops.cluster.instance_drain")
    drains = 0.0
    for event in run.events:
        if event["event"] == "task_end" and event.get("action") == "tidbops.cluster.instance_drain" \
                and "Move the leaders away" in event["task"] and event.get("status") == "ok":
            drains += event["t"] - max((t for t in drain_starts if t <= event["t"]), default=event["t"])
    ready = {}
    for name, windows in outages(events).items():
        for down, _up in windows:
            end = next((t for t in gate_ends if t > down), None)
            if end is not None:
                ready[name] = ready.get(name, 0.0) + end - down
    return sum(ready.values()) + drains, ready, drains
