# Copyright (c) tidbops.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drive site.yml/destroy.yml on private copies of the shipped inventories.

Shared by benchmarks/run.py and tests/integration/reliability. Every cluster made here gets its own
name, config root and a port offset, so it never meets another cluster on this machine.
"""

import fcntl
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CALLBACKS = REPO / "benchmarks" / "callback_plugins"


def collections_path():
    """Where tidbops.cluster is resolved: this checkout, unless TIDBOPS_COLLECTIONS_PATH names another tree."""
    return Path(os.environ.get("TIDBOPS_COLLECTIONS_PATH", REPO / ".collections"))


# The collection's topology registry: inventory group -> (component kind, {port variable: default}).
sys.path.insert(0, str(collections_path()))
from ansible_collections.tidbops.cluster.plugins.module_utils import _topology  # noqa: E402  pylint: disable=wrong-import-position

GROUPS = {kind.group: (kind.name, {port.name: port.default for port in kind.ports}) for kind in _topology.KINDS}
KINDS = [kind for kind, _ports in GROUPS.values()]
# Every default port of the shipped inventories, to keep shifted copies clear of them.
_SHIPPED_PORTS = sorted({port for _kind, ports in GROUPS.values() for port in ports.values()}
                        | {2382, 2383, 2384, 2385, 20161, 20162, 20181, 20182})


def collection_root():
    return collections_path() / "ansible_collections" / "tidbops" / "cluster"


def load_yaml(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def write_private(path, text):
    """Files we hand to ansible-playbook may hold test secrets: owner-only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _ephemeral_start():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="utf-8") as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


EPHEMERAL_START = _ephemeral_start()


def ports_free(ports):
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


RESERVATIONS = Path(tempfile.gettempdir()) / "tidbops-port-reservations.json"


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pick_offset(hosts, rng=None):
    """A port offset whose shifted ports collide with no shipped default, are free right now, and are
    reserved by no other live process of this machine (pytest workers pick at the same time, before
    either cluster binds its ports; the reservation lasts as long as the process).

    Shifted ports stay below the kernel's ephemeral range (32768 and up by default): a listener
    there can find its port taken by some outgoing connection and fail to bind until that closes.
    """
    rng = rng or random.Random()
    wanted = sorted(set(inventory_ports(load_yaml(hosts) if isinstance(hosts, (str, Path)) else hosts)))
    with open(str(RESERVATIONS) + ".lock", "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            reserved = json.loads(RESERVATIONS.read_text(encoding="utf-8")) if RESERVATIONS.exists() else {}
        except ValueError:
            reserved = {}
        reserved = {pid: ports for pid, ports in reserved.items() if _alive(int(pid))}
        taken = {port for ports in reserved.values() for port in ports}
        for _attempt in range(200):
            offset = rng.randrange(1000, EPHEMERAL_START - max(wanted), 7)
            shifted = [port + offset for port in wanted]
            if set(shifted) & (set(_SHIPPED_PORTS) | taken):
                continue
            if ports_free(shifted):
                reserved.setdefault(str(os.getpid()), []).extend(shifted)
                RESERVATIONS.write_text(json.dumps(reserved), encoding="utf-8")
                return offset
    raise RuntimeError("no free port offset for these hosts")


def _groups(hosts_yml):
    return hosts_yml["all"]["children"]


def _port_vars(group, host_vars):
    """(variable the instance sets or would set, its port) for each port of a host: the Ansible-safe
    alias (tikv_port...) when the inventory uses it, else TiUP's name."""
    for port in _topology.BY_GROUP[group].ports:
        var = port.alias if port.alias and port.alias in host_vars else port.name
        yield var, int(host_vars.get(var, port.default))


def inventory_ports(hosts_yml, offset=0):
    """Every port an inventory's instances use, shifted by offset."""
    ports = []
    for group, body in _groups(hosts_yml).items():
        for host_vars in (body.get("hosts") or {}).values():
            ports += [port + offset for _var, port in _port_vars(group, host_vars or {})]
    return ports


def shift_inventory(hosts_yml, offset):
    """A copy of hosts.yml with every port variable written out explicitly, shifted by offset."""
    out = json.loads(json.dumps(hosts_yml))
    for group, body in _groups(out).items():
        for host, host_vars in (body.get("hosts") or {}).items():
            host_vars = dict(host_vars or {})
            host_vars.update((var, port + offset) for var, port in _port_vars(group, host_vars))
            body["hosts"][host] = host_vars
    return out


def simulator_vars():
    """inventories/simulator.yml; TIDBOPS_SIM_IMAGE swaps the image (e.g. a locally patched build), pinned."""
    sim = load_yaml(REPO / "inventories" / "simulator.yml")
    image = os.environ.get("TIDBOPS_SIM_IMAGE")
    if image:
        sim["tidb_images"] = {component: image for component in sim["tidb_images"]}
    return sim


def sim_image():
    """The simulator image reference the simulator vars select (repository:version, or the pinned swap)."""
    sim = simulator_vars()
    image = sim["tidb_images"]["pd"]
    return image if os.environ.get("TIDBOPS_SIM_IMAGE") else f"{image}:{sim['tidb_version']}"


def sim_env(kind, **switches):
    """tidb_container_env for one component kind: sim_env("tikv", never_ready=1) sets TIDBSIM_NEVER_READY=1."""
    return {kind: {f"TIDBSIM_{key.upper()}": str(value) for key, value in switches.items()}}


class PlaybookRun:
    """One finished ansible-playbook run: rc, output, wall time and the timeline events."""

    def __init__(self, rc, stdout, wall_s, events, started):
        self.rc = rc
        self.stdout = stdout
        self.wall_s = wall_s
        self.events = events
        self.started = started

    def tasks(self, status=None):
        return [e for e in self.events if e["event"] == "task_end" and (status is None or e["status"] == status)]

    @property
    def recap(self):
        for event in self.events:
            if event["event"] == "recap":
                return event["hosts"]
        return {}

    @property
    def changed(self):
        return sum(stats.get("changed", 0) for stats in self.recap.values())

    @property
    def failed(self):
        return self.tasks("failed")

    def gate_ends(self):
        """component kind -> wall time the component's (last) gate task returned ok."""
        ends = {}
        for event in self.tasks("ok"):
            if event.get("component"):
                ends[event["component"]] = event["t"]
        return ends

    def gate_starts(self):
        starts = {}
        for event in self.events:
            if event["event"] == "task_start" and event.get("component"):
                starts.setdefault(event["component"], event["t"])
        return starts


def read_events(path):
    events = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    events.append(json.loads(line))
    return events


class Cluster:
    """A private copy of inventories/<base>: own name, ports, config root and work dir."""

    def __init__(self, base="local", name=None, workdir=None, group_vars=None, groups=None, edit=None, sim=True, spare=None):
        """groups keeps only those inventory groups; edit(hosts) may change the shifted hosts.yml in place;
        spare ({group: {host: vars}}) are hosts whose ports are reserved and shifted with the others but
        which join the inventory only with add_hosts (a scale-out)."""
        self.base = base
        self.name = name or f"bench{os.getpid() % 10000}{random.randrange(100, 1000)}"
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"tidbops-{self.name}-"))
        self.config_root = self.workdir / "configs"
        src = REPO / "inventories" / base
        hosts = load_yaml(src / "hosts.yml")
        spare = spare or {}
        with_spare = json.loads(json.dumps(hosts))
        for group, extra in spare.items():
            _groups(with_spare).setdefault(group, {}).setdefault("hosts", {}).update(extra)
        self.offset = pick_offset(with_spare)
        self.inventory = self.workdir / "inventory"
        (self.inventory / "group_vars").mkdir(parents=True, exist_ok=True)
        shifted = shift_inventory(with_spare, self.offset)
        self.spare = {group: {host: _groups(shifted)[group]["hosts"][host] for host in extra} for group, extra in spare.items()}
        for group, extra in spare.items():
            for host in extra:
                del _groups(shifted)[group]["hosts"][host]
        self.hosts = shifted
        if groups is not None:
            self.hosts["all"]["children"] = {g: body for g, body in _groups(self.hosts).items() if g in groups}
        if edit is not None:
            edit(self.hosts)
        write_private(self.inventory / "hosts.yml", yaml.safe_dump(self.hosts, sort_keys=False))
        all_vars = load_yaml(src / "group_vars" / "all.yml")
        if sim:
            all_vars.update(simulator_vars())
        self.state_dir = self.workdir / "state"
        all_vars.update(tidb_cluster_name=self.name, tidb_config_root=str(self.config_root), tidb_state_dir=str(self.state_dir))
        all_vars.update(group_vars or {})
        self.group_vars = all_vars
        write_private(self.inventory / "group_vars" / "all.yml", yaml.safe_dump(all_vars, sort_keys=False))
        self._runs = 0

    # ------------------------------------------------------------ inventory facts

    def add_hosts(self, names):
        """Put spare hosts into the inventory (a scale-out)."""
        for group, extra in self.spare.items():
            for host in names:
                if host in extra:
                    _groups(self.hosts)[group].setdefault("hosts", {})[host] = extra[host]
        write_private(self.inventory / "hosts.yml", yaml.safe_dump(self.hosts, sort_keys=False))

    def remove_hosts(self, names):
        """Take hosts out of the inventory (after a scale-in)."""
        for body in _groups(self.hosts).values():
            for host in names:
                (body.get("hosts") or {}).pop(host, None)
        write_private(self.inventory / "hosts.yml", yaml.safe_dump(self.hosts, sort_keys=False))

    def instances(self, kind=None):
        """[(inventory host, kind, host vars)] in inventory order; a port set under its Ansible-safe
        alias (tikv_port, ticdc_port...) is also given under its TiUP name (port)."""
        found = []
        for group, body in _groups(self.hosts).items():
            group_kind = GROUPS.get(group, (group,))[0]
            if kind in (None, group_kind):
                aliases = {port.alias: port.name for port in _topology.BY_NAME[group_kind].ports if port.alias} \
                    if group_kind in _topology.BY_NAME else {}
                for host, host_vars in (body.get("hosts") or {}).items():
                    host_vars = dict(host_vars or {})
                    host_vars.update({name: host_vars[alias] for alias, name in aliases.items() if alias in host_vars})
                    found.append((host, group_kind, host_vars))
        return found

    def container(self, host):
        return f"{self.name}-{host}"

    def containers_of(self, kind):
        """Container names of one component kind's instances."""
        return [self.container(host) for host, _kind, _vars in self.instances(kind)]

    # ------------------------------------------------------------ running playbooks

    def env(self, timeline, extra_env=None, profile=False):
        env = dict(os.environ)
        env.update({
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": str(collections_path()),
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
            "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACKS),
            "ANSIBLE_CALLBACKS_ENABLED": "tidbops_timeline" + (",ansible.posix.profile_tasks" if profile else ""),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "TIDBOPS_TIMELINE": str(timeline),
        })
        env.update(extra_env or {})
        return env

    def command(self, playbook, extra_vars=None, args=()):
        """argv for a playbook run; extra vars travel in a 0600 file, never on the command line."""
        self._runs += 1
        argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(self.inventory)]
        if extra_vars:
            vars_file = self.workdir / f"extra-{self._runs}.json"
            write_private(vars_file, json.dumps(extra_vars))
            argv += ["-e", f"@{vars_file}"]
        argv += list(args) + [str(collection_root() / "playbooks" / f"{playbook}.yml")]
        return argv

    def start(self, playbook, extra_vars=None, args=(), extra_env=None, profile=False):
        """Start a run in the background: (Popen with stdout piped, timeline path, start wall time)."""
        timeline = self.workdir / f"timeline-{self._runs + 1}.jsonl"
        argv = self.command(playbook, extra_vars, args)
        started = time.time()
        # Own session: a test may kill the whole run (os.killpg) as an operator's Ctrl-C or a lost SSH would.
        proc = subprocess.Popen(argv, cwd=REPO, env=self.env(timeline, extra_env, profile),  # pylint: disable=consider-using-with
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        return proc, timeline, started

    def run(self, playbook, extra_vars=None, args=(), extra_env=None, profile=False, timeout=900):
        proc, timeline, started = self.start(playbook, extra_vars, args, extra_env, profile)
        clock = time.monotonic()
        try:
            stdout = proc.communicate(timeout=timeout)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout = proc.communicate()[0]
        wall = time.monotonic() - clock
        (self.workdir / f"output-{self._runs}.log").write_text(stdout, encoding="utf-8")
        return PlaybookRun(proc.returncode, stdout, wall, read_events(timeline), started)

    def site(self, extra_vars=None, **kwargs):
        return self.run("site", extra_vars, **kwargs)

    def volumes(self):
        out = subprocess.run(["docker", "volume", "ls", "-q", "--filter", f"name={self.name}-"],
                             check=True, capture_output=True, text=True).stdout
        return [name for name in out.split() if name.startswith(f"{self.name}-")]

    def destroy(self, remove_workdir=False):
        """Remove containers, volumes and rendered files of this cluster (destroy.yml when there is any)."""
        run = None
        if docker_names(self.name) or self.volumes():
            run = self.run("destroy", {"tidb_destroy_data": True})
        leftovers = docker_names(self.name)
        if leftovers:  # destroy.yml is under test too; never leave containers behind for the next test
            subprocess.run(["docker", "rm", "-f", *leftovers], check=False, capture_output=True)
        if self.volumes():
            subprocess.run(["docker", "volume", "rm", "-f", *self.volumes()], check=False, capture_output=True)
        shutil.rmtree(self.config_root, ignore_errors=True)
        if remove_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return run


# ---------------------------------------------------------------- docker facts

def docker_names(cluster_name):
    out = subprocess.run(["docker", "ps", "-a", "--filter", f"label=tidbops.cluster={cluster_name}", "--format", "{{.Names}}"],
                         check=True, capture_output=True, text=True).stdout
    return sorted(name for name in out.split() if name)


def docker_inspect(names):
    if not names:
        return []
    out = subprocess.run(["docker", "inspect", *names], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def sim_marker(port):
    """The simulator's data marker served on an instance's HTTP port (GET /sim/marker)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/sim/marker", timeout=5) as response:
        return json.loads(response.read())


def started_epoch(stamp):
    """Docker's State.StartedAt (RFC 3339, nanoseconds) as epoch seconds; datetime takes microseconds."""
    head, frac = (stamp.rstrip("Z").split(".") + [""])[:2]
    return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00").timestamp()


def boot_seconds(containers):
    """The simulator's own boot time of each container that logged "ready": seconds from the moment
    Docker started its process to its last ready line, whoever started it and however often it is polled."""
    boots = {}
    for info in docker_inspect(containers):
        name = info["Name"].lstrip("/")
        lines = ready_lines(name)
        if lines:
            boots[name] = lines[-1]["wall"] - started_epoch(info["State"]["StartedAt"])
    return boots


def ready_lines(container):
    """The simulator's JSON "ready" lines (stdout) of one container, oldest first."""
    proc = subprocess.run(["docker", "logs", container], check=False, capture_output=True, text=True)
    lines = []
    for line in proc.stdout.splitlines():
        if line.startswith("{") and '"tidbsim": "ready"' in line:
            lines.append(json.loads(line))
    return lines
