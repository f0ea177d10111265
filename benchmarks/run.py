# Copyright (c) tidbops.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""make bench: how fast site.yml converges, against the dependency floor and a docker-compose peer.

    .venv/bin/python benchmarks/run.py [--reps 3] [--topologies local,local-ha] [--no-compose]

For each topology (a private copy of inventories/<name>, ports shifted, own cluster name): cold
converge, no-op re-run, readiness detection latency and the changefeed's request count, --reps times;
then the same containers as a docker-compose file, --reps times. Each cold converge and each compose
run waits for a 1-minute load average below 1 first. The boot floor replaces each component's
configured start delay with the boot time its containers showed (Docker's start to the simulator's
ready line). Writes benchmarks/results/latest.json,
latest.md and latest.png. Budgets are printed and written; with --strict a missed one makes the exit code 1.
"""

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compose  # noqa: E402  pylint: disable=wrong-import-position
import graph  # noqa: E402  pylint: disable=wrong-import-position
import harness  # noqa: E402  pylint: disable=wrong-import-position
import rolling  # noqa: E402  pylint: disable=wrong-import-position

RESULTS = harness.REPO / "benchmarks" / "results"
GATE_TIMEOUT = 300

# Budgets of issue 15: (key, description, check(result) -> (value, limit, passed)). The no-op limit
# depends on the topology (NOOP_LIMITS_S).
NOOP_LIMITS_S = {"local": 10, "local-ha": 12}
BUDGETS = [
    ("converge_vs_floor", "converge <= floor + 10 s",
     lambda r: (r["converge_s"], r["floor_s"] + 10, r["converge_s"] <= r["floor_s"] + 10)),
    ("converge_vs_boot_floor", "converge <= boot floor + 10 s (the simulator's measured boot times)",
     lambda r: (r["converge_s"], r["boot_floor_s"] + 10, r["converge_s"] <= r["boot_floor_s"] + 10)),
    ("converge_vs_compose", "converge <= 1.1 x compose (healthchecks polled as often as the gates)",
     lambda r: (r["converge_s"], None if r["compose_s"] is None else 1.1 * r["compose_s"],
                r["compose_s"] is not None and r["converge_s"] <= 1.1 * r["compose_s"])),
    ("noop", "no-op re-run <= 10 s (local), 12 s (local-ha), changed=0",
     lambda r: (r["noop_s"], r["noop_limit_s"], r["noop_s"] <= r["noop_limit_s"] and r["noop_changed"] == 0)),
    ("detect", "detection latency median <= 0.3 s",
     lambda r: (r["detect_latency_median_s"], 0.3,
                r["detect_latency_median_s"] is not None and r["detect_latency_median_s"] <= 0.3)),
    ("upgrade_vs_floor", "rolling upgrade <= floor + 30 s (local-ha)",
     lambda r: (r["upgrade_s"], r["upgrade_floor_s"] + 30, r["upgrade_s"] <= r["upgrade_floor_s"] + 30
                and not any(r["samples"]["upgrade_verdicts"]))
     if "upgrade_s" in r else (None, None, True)),
    ("scale_kept_promises", "scale-out and scale-in keep the rolling promises (local-ha)",
     lambda r: (None, None, not any(r["samples"].get(k) for k in ("scale_out_verdicts", "scale_in_verdicts", "scale_in_converge_verdicts")))),
    ("changefeed", "idempotent changefeed run = 1 request",
     lambda r: (r["changefeed_idempotent_requests"], 1, r["changefeed_idempotent_requests"] == 1)),
]


def log(message):
    print(f"bench: {message}", file=sys.stderr, flush=True)


QUIET_WAIT_S = 300  # main() sets it from --quiet-wait


def wait_for_quiet():
    """Figures taken on a busy machine measure the machine: wait (one deadline) for the 1-minute load
    average to fall below 1, and say so when it does not. Called before each cold converge and each
    run of the compose peer, so that no figure is taken in the wake of the one before (a compose peer
    of 14 containers leaves the load above 10). Returns the 1-minute load average it measures under."""
    seconds = QUIET_WAIT_S
    deadline = time.monotonic() + seconds
    while os.getloadavg()[0] >= 1 and time.monotonic() < deadline:
        time.sleep(5)
    load = os.getloadavg()[0]
    if load >= 1:
        log(f"load average still {load:.2f} after {seconds:.0f} s: the next figure is taken under load")
    return round(load, 2)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def p95(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    return values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]


def ensure_docker_compose():
    """Debian's docker-compose 1.29 (it understands condition: service_healthy); installed when missing."""
    if shutil.which("docker-compose") is None:
        log("installing docker-compose from apt")
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "docker-compose"], check=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"), stdout=subprocess.DEVNULL)
    return subprocess.run(["docker-compose", "version", "--short"], check=True, capture_output=True, text=True).stdout.strip()


def machine_info():
    cpu = ""
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break

    def version(*argv):
        proc = subprocess.run(argv, check=False, capture_output=True, text=True)
        return (proc.stdout or proc.stderr).strip().splitlines()[0] if proc.returncode == 0 else None

    return {
        "cpus": os.cpu_count(), "cpu_model": cpu,
        "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30, 1),
        "loadavg_start": os.getloadavg(), "kernel": platform.release(), "python": platform.python_version(),
        "docker": version("docker", "version", "--format", "{{.Server.Version}}"),
        "ansible_core": version(str(Path(sys.executable).parent / "ansible"), "--version"),
    }


def measure_container_start(image, samples=5):
    """Median wall time of `docker run -d` (create + start) of the simulator image, host network."""
    times = []
    for i in range(samples):
        name = f"tidbops-bench-start-{os.getpid()}-{i}"
        clock = time.monotonic()
        subprocess.run(["docker", "run", "-d", "--name", name, "--network", "host", "--entrypoint", "sleep", image, "30"],
                       check=True, capture_output=True)
        times.append(time.monotonic() - clock)
        subprocess.run(["docker", "rm", "-f", name], check=False, capture_output=True)
    return statistics.median(times)


# ---------------------------------------------------------------- reading one run

def phase_times(run):
    """Play name -> seconds (play start to the next play start, or to the recap)."""
    marks = [(e["t"], e.get("play")) for e in run.events if e["event"] == "play_start"]
    end = next((e["t"] for e in run.events if e["event"] == "recap"), run.started + run.wall_s)
    phases = {}
    for (start, name), (stop, _next) in zip(marks, marks[1:] + [(end, None)]):
        phases[name] = phases.get(name, 0.0) + stop - start
    return phases


def task_profile(run, top=12):
    """Where the time goes: the slowest tasks (start to the next task's start) and task counts per play."""
    starts = [e for e in run.events if e["event"] in ("task_start", "play_start", "recap")]
    per_task, per_play, play = {}, {}, None
    for event, following in zip(starts, starts[1:]):
        if event["event"] == "play_start":
            play = event["play"]
            continue
        if event["event"] == "task_start":
            per_task[event["task"]] = per_task.get(event["task"], 0.0) + following["t"] - event["t"]
            per_play[play] = per_play.get(play, 0) + 1
    slowest = sorted(per_task.items(), key=lambda item: -item[1])[:top]
    return {"slowest_tasks": [{"task": name, "s": round(s, 2)} for name, s in slowest], "tasks_per_play": per_play,
            "tasks_total": sum(per_play.values())}


def detection_latencies(cluster, run):
    """kind -> seconds from the moment the gate could have passed to its return.

    That moment is the last instance's logged ready instant, or the gate's start when everything was
    ready before (MinIO starts early and is gated later).
    """
    latencies = {}
    gate_starts = run.gate_starts()
    for kind, gate_end in run.gate_ends().items():
        instants = []
        for container in cluster.containers_of(kind):
            lines = harness.ready_lines(container)
            if lines:
                instants.append(lines[-1]["wall"])
        if instants:
            latencies[kind] = gate_end - max(*instants, gate_starts[kind])
    return latencies


def boot_times(containers_by_kind):
    """kind -> seconds from Docker starting a container to the simulator's "ready" line, the slowest of the
    kind's instances (they start together). Kinds with no ready line are left out."""
    boots = {}
    for kind, names in containers_by_kind.items():
        seconds = harness.boot_seconds(names)
        if seconds:
            boots[kind] = max(seconds.values())
    return boots


def shortest_boots(samples):
    """kind -> the shortest boot seen in samples ([kind -> seconds])."""
    shortest = {}
    for sample in samples:
        for kind, seconds in sample.items():
            shortest[kind] = min(seconds, shortest.get(kind, seconds))
    return shortest


def boot_floor(container_start_s, samples):
    """(floor, path): the critical path with each kind's shortest boot seen (samples: [kind -> seconds])
    in place of its configured start delay. A component's own start-up in its container (the simulator
    is a Python process) comes on top of the delay, and a 3-member PD elects a leader, so the delay floor
    is lower than any deployer can reach; this one is what the same containers really took."""
    shortest = shortest_boots(samples)
    if set(graph.START_DELAYS) - set(shortest):
        return None, []
    floor_s, path = graph.critical_path(container_start_s, delays=shortest)
    return floor_s, path


def changefeed_requests(run):
    counts = [e["request_count"] for e in run.tasks("ok") if "request_count" in e]
    return counts[-1] if counts else None


# ---------------------------------------------------------------- the peer

# What the MinIO role and the tici role do for TiCI's credentials, with the clients in the simulator
# image's venv (minio-py, PyMySQL), so the peer does the same work.
_MINIO_USER = """import json, sys
from minio.credentials import StaticProvider
from minio.minioadmin import MinioAdmin
endpoint, root, password, user, secret, policy, name = sys.argv[1:8]
admin = MinioAdmin(endpoint=endpoint, credentials=StaticProvider(root, password), region='us-east-1', secure=False)
admin.policy_add(name, policy=json.loads(policy))
admin.user_add(user, secret)
if name not in (json.loads(admin.user_info(user)).get('policyName') or '').split(','):
    admin.attach_policy([name], user=user)
"""
_TIDB_ACCOUNT = """import sys, pymysql
port, user, password = sys.argv[1:4]
cursor = pymysql.connect(host='127.0.0.1', port=int(port), user='root', password='', autocommit=True).cursor()
cursor.execute("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (user, password))
cursor.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (user, password))
cursor.execute("GRANT ALL PRIVILEGES ON `tici`.* TO %s@'%%'", (user,))
"""


SIM_PYTHON = "/opt/tidbsim/venv/bin/python"


def _argv(args):
    return " ".join(shlex.quote(arg) for arg in args)


def compose_commands(cluster):
    """Shell commands of the one-shots (bucket and TiCI's MinIO user, TiCI's TiDB account, changefeed),
    with the settings and generated secrets site.yml used."""
    sys.path.insert(0, str(harness.collections_path()))
    from ansible_collections.tidbops.cluster.plugins.filter.tidb_config import tici_sink_uri  # pylint: disable=import-outside-toplevel
    from ansible_collections.tidbops.cluster.plugins.module_utils._minio import bucket_policy  # pylint: disable=import-outside-toplevel

    minio = cluster.instances("minio")[0][2]
    cdc = cluster.instances("ticdc")[0][2]
    tidb = cluster.instances("tidb")[0][2]
    user = cluster.group_vars["minio_root_user"]
    password = cluster.group_vars["minio_root_password"]
    s3_user = cluster.group_vars.get("minio_tici_user", "tici")
    s3_secret = (cluster.state_dir / "minio_tici_password").read_text(encoding="utf-8").strip()
    tidb_user = cluster.group_vars.get("tici_tidb_user", "tici")
    tidb_password = (cluster.state_dir / "tici_tidb_password").read_text(encoding="utf-8").strip()
    bucket = "ticidefaultbucket"
    endpoint = f"http://127.0.0.1:{minio['port']}"
    s3 = {"endpoint": endpoint, "bucket": bucket, "prefix": "tici_default_prefix", "region": "us-east-1",
          "access_key": s3_user, "secret_key": s3_secret, "use_path_style": True}
    # $$: compose would otherwise interpolate the shell variable.
    bucket_cmd = (f"code=$$(curl -sS -o /dev/null -w '%{{http_code}}' -X PUT --user {shlex.quote(user + ':' + password)}"
                  f" --aws-sigv4 aws:amz:us-east-1:s3 {endpoint}/{bucket}) && [ $$code = 200 -o $$code = 409 ] && "
                  + _argv([SIM_PYTHON, "-c", _MINIO_USER, f"127.0.0.1:{minio['port']}", user, password, s3_user, s3_secret,
                           json.dumps(bucket_policy(bucket)), f"tidbops-tici-{bucket}"]))
    account_cmd = _argv([SIM_PYTHON, "-c", _TIDB_ACCOUNT, str(tidb["port"]), tidb_user, tidb_password])
    body = json.dumps({"changefeed_id": cluster.group_vars.get("tici_changefeed_id", "tici-replication-task"),
                       "sink_uri": tici_sink_uri(s3),
                       "replica_config": {"sink": {"protocol": "canal-json", "date_separator": "none"}}})
    changefeed_cmd = (f"curl -fsS -X POST -H 'Content-Type: application/json' -d {shlex.quote(body.replace('$', '$$'))}"
                      f" http://127.0.0.1:{cdc['port']}/api/v2/changefeeds")
    return {"bucket": bucket_cmd, "account": account_cmd.replace("$", "$$"), "changefeed": changefeed_cmd}


def bench_compose(cluster, reps, workdir):
    """(seconds, boot times, and the load average at the start, of each repetition)."""
    path = compose.generate(cluster, workdir, compose_commands(cluster))
    cluster.destroy()  # same ports: the peer runs alone
    peer = compose.Compose(path, f"{cluster.name}peer")
    kinds = {kind for _host, kind, _vars in cluster.instances()}
    times, boots, loads = [], [], []
    try:
        for rep in range(reps):
            peer.down()
            loads.append(wait_for_quiet())
            seconds = peer.up_and_wait()
            log(f"{cluster.base} compose rep {rep + 1}: {seconds:.1f} s")
            times.append(seconds)
            boots.append(boot_times({kind: peer.containers_of(host for host, k, _v in cluster.instances(kind)) for kind in kinds}))
    finally:
        peer.down()
    return times, boots, loads


# ---------------------------------------------------------------- one topology

def bench_upgrade(cluster, extra, reps):
    """Rolling upgrades of the running cluster, one per repetition, each to a new simulator image (a
    different image ID): wall time, and the floor from the same run (benchmarks/rolling.py floor)."""
    found = {"upgrade_s": [], "upgrade_floor_s": [], "upgrade_drain_s": [], "upgrade_verdicts": []}
    base = harness.simulator_vars()["tidb_version"]
    for rep in range(reps):
        tag = f"{base}-bench{rep + 1}"
        rolling.derive_sim_image("docker", tag)
        run, samples, events = rolling.watched(cluster, "upgrade", dict(extra, tidb_version=tag))
        if run.rc != 0:
            raise RuntimeError(f"upgrade.yml failed (rc {run.rc}); see {cluster.workdir}:\n{run.stdout[-3000:]}")
        floor_s, _ready, drain_s = rolling.floor(run, events)
        verdicts = rolling.verdicts(cluster, samples, events)
        log(f"upgrade rep {rep + 1}: {run.wall_s:.1f} s, floor {floor_s:.1f} s (drains {drain_s:.1f} s), "
            f"{len(rolling.restarted(events))} containers, problems seen by the poller: {verdicts or 'none'}")
        found["upgrade_s"].append(run.wall_s)
        found["upgrade_floor_s"].append(floor_s)
        found["upgrade_drain_s"].append(drain_s)
        found["upgrade_verdicts"].append(verdicts)
    return found


def bench_scale(cluster, extra):
    """One scale-out (rolling.SCALE_OUT_HOSTS added, site.yml), one scale-in (scale_in.yml of
    rolling.SCALE_IN_HOSTS) and the converge once they left the inventory, watched by the poller."""
    found = {}
    for step, playbook, run_vars, before, after in (
            ("scale_out", "site", {}, lambda: cluster.add_hosts(rolling.SCALE_OUT_HOSTS), None),
            ("scale_in", "scale_in", {"tidb_scale_in": rolling.SCALE_IN_HOSTS}, None, None),
            ("scale_in_converge", "site", {}, lambda: cluster.remove_hosts(rolling.SCALE_IN_HOSTS), None)):
        if before:
            before()
        # The instances that were serving: running before the step and not the ones it removes (a
        # member that leaves is down for good, and an instance created by the step served nothing).
        leaving = {cluster.container(host) for host in run_vars.get("tidb_scale_in", [])}
        serving = set(harness.docker_names(cluster.name)) - leaving
        run, samples, events = rolling.watched(cluster, playbook, dict(extra, **run_vars))
        if run.rc != 0:
            raise RuntimeError(f"{step} failed (rc {run.rc}); see {cluster.workdir}:\n{run.stdout[-3000:]}")
        verdicts = rolling.verdicts(cluster, samples, [e for e in events if e["name"] in serving])
        restarted = sorted(set(rolling.restarted(events)) & serving)
        log(f"{step}: {run.wall_s:.1f} s, restarted one at a time: {len(restarted)}, problems seen by the poller: {verdicts or 'none'}")
        found[f"{step}_s"] = run.wall_s
        found[f"{step}_restarted"] = len(restarted)
        found[f"{step}_verdicts"] = verdicts
    return found


def bench_topology(base, reps, container_start_s, with_compose, upgrade=False):
    spare = rolling.SCALE_OUT if upgrade else None
    cluster = harness.Cluster(base, name=f"bench{base.replace('local', 'l').replace('-', '')}", spare=spare)
    extra = {"tidb_container_env": graph.container_env(), "tidb_gate_timeout": GATE_TIMEOUT}
    samples = {"converge_s": [], "noop_s": [], "noop_changed": [], "changefeed_requests": [], "latencies": [], "boots": [], "load_before": []}
    phases, profile = [], None
    log(f"{base}: cluster {cluster.name}, ports +{cluster.offset}, work dir {cluster.workdir}")
    try:
        for rep in range(reps):
            cluster.destroy()
            samples["load_before"].append(wait_for_quiet())
            cold = cluster.site(extra, profile=True)
            if cold.rc != 0:
                raise RuntimeError(f"{base}: site.yml failed (rc {cold.rc}); see {cluster.workdir}:\n{cold.stdout[-3000:]}")
            noop = cluster.site(extra)
            latencies = detection_latencies(cluster, cold)
            samples["boots"].append(boot_times({kind: cluster.containers_of(kind) for kind in graph.START_DELAYS}))
            log(f"{base} rep {rep + 1}: converge {cold.wall_s:.1f} s, no-op {noop.wall_s:.1f} s "
                f"(changed {noop.changed}), latencies {json.dumps({k: round(v, 2) for k, v in latencies.items()})}")
            samples["converge_s"].append(cold.wall_s)
            samples["noop_s"].append(noop.wall_s)
            samples["noop_changed"].append(noop.changed)
            samples["changefeed_requests"].append(changefeed_requests(noop))
            samples["latencies"].append(latencies)
            phases.append(phase_times(cold))
            profile = task_profile(cold)
        # The peer copies the containers of the cluster as the converge made them: before the upgrade
        # and the scale operations, whose PD members (joined, or in a five-member initial cluster)
        # cannot bootstrap a fresh peer.
        compose_times, samples["peer_boots"], samples["peer_load_before"] = \
            bench_compose(cluster, reps, cluster.workdir / "compose") if with_compose else ([], [], [])
        if upgrade:
            again = cluster.site(extra)  # the peer ran on the same ports, alone
            if again.rc != 0:
                raise RuntimeError(f"{base}: site.yml after the peer failed (rc {again.rc}):\n{again.stdout[-3000:]}")
            samples.update(bench_upgrade(cluster, extra, reps))
            samples.update(bench_scale(cluster, extra))
    finally:
        cluster.destroy()
    all_latencies = [v for rep in samples["latencies"] for v in rep.values()]
    floor_s, path = graph.critical_path(container_start_s)
    boot_floor_s, boot_path = boot_floor(container_start_s, samples["boots"] + samples["peer_boots"])
    return {
        "converge_s": median(samples["converge_s"]),
        "floor_s": round(floor_s, 2),
        "floor_path": path,
        "boot_floor_s": None if boot_floor_s is None else round(boot_floor_s, 2),
        "boot_floor_path": boot_path,
        "boot_s": shortest_boots(samples["boots"] + samples["peer_boots"]),
        "compose_s": median(compose_times),
        "noop_s": median(samples["noop_s"]),
        "noop_limit_s": NOOP_LIMITS_S.get(base, 10),
        "noop_changed": max(samples["noop_changed"]),
        "detect_latency_median_s": median(all_latencies),
        "detect_latency_p95_s": p95(all_latencies),
        "detect_latency_by_component_s": {kind: median([rep.get(kind) for rep in samples["latencies"]])
                                          for kind in graph.START_DELAYS},
        **({"upgrade_s": median(samples["upgrade_s"]), "upgrade_floor_s": median(samples["upgrade_floor_s"]),
            "upgrade_drain_s": median(samples["upgrade_drain_s"])} if samples.get("upgrade_s") else {}),
        **{key: samples[key] for key in ("scale_out_s", "scale_out_restarted", "scale_in_s", "scale_in_converge_s",
                                         "scale_in_converge_restarted") if key in samples},
        "changefeed_idempotent_requests": max((c for c in samples["changefeed_requests"] if c is not None), default=None),
        "phases_s": {name: median([p.get(name) for p in phases]) for name in phases[0]} if phases else {},
        "profile": profile,
        "samples": dict(samples, compose_s=compose_times),
        "repetitions": reps,
        "instances": len(cluster.instances()),
    }


def check_budgets(result):
    rows = []
    for key, text, check in BUDGETS:
        try:
            value, limit, passed = check(result)
        except TypeError:  # a measurement is missing
            value, limit, passed = None, None, False
        rows.append({"budget": key, "text": text, "value": value, "limit": limit, "pass": bool(passed)})
    return rows


# ---------------------------------------------------------------- output

def _fmt(value, unit=" s"):
    if value is None:
        return "n/a"
    return f"{value:.2f}{unit}" if isinstance(value, float) else f"{value}"


def write_markdown(results, path):
    lines = [f"Measured {results['measured_at']} on {results['machine']['cpus']} CPUs ({results['machine']['cpu_model']}), "
             f"load average at start {', '.join(f'{x:.2f}' for x in results['machine']['loadavg_start'])}, "
             f"at the end {', '.join(f'{x:.2f}' for x in results['machine'].get('loadavg_end', ()))}; "
             f"median of {results['repetitions']} repetitions.", ""]
    topologies = [t for t in ("local", "local_ha") if t in results]
    lines += ["| Measure | " + " | ".join(topologies) + " |", "|---|" + "---|" * len(topologies)]
    for key, label in [("converge_s", "cold converge (site.yml)"), ("floor_s", "floor (critical path, configured start delays)"),
                       ("boot_floor_s", "boot floor (critical path, measured boot times)"),
                       ("compose_s", "docker-compose peer"), ("noop_s", "no-op re-run"), ("noop_changed", "no-op changed tasks"),
                       ("detect_latency_median_s", "readiness detection, median"), ("detect_latency_p95_s", "readiness detection, p95"),
                       ("changefeed_idempotent_requests", "requests, idempotent changefeed run"),
                       ("upgrade_s", "rolling upgrade (upgrade.yml)"), ("upgrade_floor_s", "rolling upgrade floor"),
                       ("upgrade_drain_s", "of which leader transfers"),
                       ("scale_out_s", "scale-out: +1 TiKV, +2 PD, +1 TiDB (site.yml, once)"),
                       ("scale_out_restarted", "instances rolled by the scale-out"),
                       ("scale_in_s", "scale-in: -1 TiKV, -2 PD (scale_in.yml, once)"),
                       ("scale_in_converge_s", "converge after the hosts left the inventory (once)")]:
        lines.append(f"| {label} | " + " | ".join(_fmt(results[t].get(key)) for t in topologies) + " |")
    lines += ["", "| Budget | " + " | ".join(topologies) + " |", "|---|" + "---|" * len(topologies)]
    for i, (_key, text, _check) in enumerate(BUDGETS):
        cells = []
        for t in topologies:
            row = results[t]["budgets"][i]
            cells.append(f"{'pass' if row['pass'] else 'FAIL'} ({_fmt(row['value'], '')} vs {_fmt(row['limit'], '')})")
        lines.append(f"| {text} | " + " | ".join(cells) + " |")
    if "ha_growth" in results:
        growth = results["ha_growth"]
        lines += ["", f"Converge grows {growth['converge_ratio']:.2f}x from one instance of each component "
                      f"({results['local']['instances']} instances) to the HA topology ({results['local_ha']['instances']} instances): "
                      f"{growth['budget']}: {'pass' if growth['pass'] else 'FAIL'}."]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_chart(results, path):
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    topologies = [t for t in ("local", "local_ha") if t in results]
    fig, axes = plt.subplots(1, len(topologies), figsize=(6 * len(topologies), 4.5), squeeze=False)
    for ax, topo in zip(axes[0], topologies):
        res = results[topo]
        bottom = 0.0
        for name, seconds in res["phases_s"].items():
            ax.bar("site.yml", seconds, bottom=bottom, label=name)
            bottom += seconds
        ax.bar("floor", res["floor_s"], color="grey")
        if res.get("boot_floor_s") is not None:
            ax.bar("boot floor", res["boot_floor_s"], color="silver")
        if res["compose_s"] is not None:
            ax.bar("compose", res["compose_s"], color="black")
        ax.bar("no-op", res["noop_s"], color="tab:green")
        ax.set_title(f"{topo}: seconds (median of {res['repetitions']})")
        ax.set_ylabel("s")
        ax.legend(fontsize=6, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3, help="repetitions per measurement (default 3)")
    parser.add_argument("--topologies", default="local,local-ha", help="inventories to copy (default local,local-ha)")
    parser.add_argument("--no-compose", action="store_true", help="skip the docker-compose peer")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory (default benchmarks/results)")
    parser.add_argument("--no-upgrade", action="store_true", help="skip the rolling upgrade of local-ha")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a budget is missed")
    parser.add_argument("--quiet-wait", type=float, default=300,
                        help="seconds to wait for a 1-minute load average below 1 before each cold converge and "
                             "each compose run (default 300)")
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error("--reps must be at least 1")

    global QUIET_WAIT_S  # pylint: disable=global-statement
    QUIET_WAIT_S = args.quiet_wait
    results = {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "repetitions": args.reps,
               "machine": machine_info(), "start_delays_s": graph.START_DELAYS, "graph": graph.DEPENDS}
    if not args.no_compose:
        results["machine"]["docker_compose"] = ensure_docker_compose()
    image = harness.sim_image()
    results.update(sim_image=image, collections_path=str(harness.collections_path()))
    results["container_start_s"] = measure_container_start(image)
    log(f"container create+start: {results['container_start_s']:.2f} s")
    for base in args.topologies.split(","):
        key = base.replace("-", "_")
        results[key] = bench_topology(base, args.reps, results["container_start_s"], not args.no_compose,
                                      upgrade=base == "local-ha" and not args.no_upgrade)
        results[key]["budgets"] = check_budgets(results[key])
    if "local" in results and "local_ha" in results:
        ratio = results["local_ha"]["converge_s"] / results["local"]["converge_s"]
        results["ha_growth"] = {"converge_ratio": ratio,
                                "converge_delta_s": results["local_ha"]["converge_s"] - results["local"]["converge_s"],
                                "budget": "local-ha converge <= 1.15 x local", "pass": ratio <= 1.15}
    results["machine"]["loadavg_end"] = os.getloadavg()

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    write_markdown(results, args.out / "latest.md")
    write_chart(results, args.out / "latest.png")
    print((args.out / "latest.md").read_text(encoding="utf-8"))
    missed = [f"{key}: {row['budget']}" for key in ("local", "local_ha") if key in results
              for row in results[key]["budgets"] if not row["pass"]]
    if "ha_growth" in results and not results["ha_growth"]["pass"]:
        missed.append(results["ha_growth"]["budget"])
    if missed:
        log("budgets missed: " + ", ".join(missed))
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
