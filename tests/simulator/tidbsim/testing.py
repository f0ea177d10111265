"""Harness for tests: free ports, components as subprocesses, tiny clusters.

    from tidbsim.testing import Sim, free_ports

    with Sim(tmp_path) as sim:
        pd = sim.pd()                      # one PD member on free ports
        tikv = sim.tikv(pd)
        cdc = sim.cdc(pd, newarch=True)
        sim.wait_ready(pd, tikv, cdc)      # waits for the JSON ready line of each
        ... http://127.0.0.1:{cdc.port} ...

Every process runs `sys.executable -m tidbsim <binary> ...` on 127.0.0.1 with its own ports and
data dir under the given directory; `Sim.close()` sends SIGTERM and reaps everything it started.
Environment overrides (fault switches, delays) go in `env=` of each starter.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

SIM_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Fast defaults for tests; each can be overridden per component through env=.
TEST_ENV = {
    "TIDBSIM_HEARTBEAT_INTERVAL": "0.2",
    "TIDBSIM_STORE_DISCONNECTED_AFTER": "1",
    "TIDBSIM_STORE_DOWN_AFTER": "2",
    "TIDBSIM_CDC_INIT_DELAY": "0.5",
    "TIDBSIM_CDC_SESSION_TTL": "4",
}

# What tidb-operator's TiCI example gives TiKV (examples/tici/tici-tc.yaml): no reserved space and
# few open files, so no test allocates gigabytes or needs a large open-files limit. The TiFlash
# proxy gets the same unless a test passes its own.
DEFAULT_TIKV_CONFIG = """[storage]
reserve-space = "0MB"
[rocksdb]
max-open-files = 256
[raftdb]
max-open-files = 256
"""
DEFAULT_PROXY_CONFIG = DEFAULT_TIKV_CONFIG


def free_ports(count=1):
    """Ports the kernel just handed out on 127.0.0.1 (bound together, so distinct)."""
    socks = []
    try:
        for _index in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def http_get(url, timeout=2.0, context=None):
    """(status, body bytes), or (None, error text) when nothing answers. context: an ssl.SSLContext for https."""
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:  # nosec: loopback only
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        return None, str(exc).encode()


def http_json(method, url, body=None, timeout=5.0, context=None):
    """(status, parsed JSON or raw text) for one request. context: an ssl.SSLContext for https."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:  # nosec: loopback only
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def wait_until(predicate, timeout=20.0, what="condition"):
    """Poll with backoff on a monotonic deadline; returns the predicate's truthy value."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def wait_for_status(url, status=200, timeout=20.0, method="GET", body=None, *, context=None):  # pylint: disable=too-many-arguments
    """Poll until the URL answers with `status`; returns (status, parsed body)."""
    def attempt():
        try:
            reply = http_json(method, url, body, timeout=2.0, context=context)
        except OSError:
            return None
        return reply if reply[0] == status else None
    return wait_until(attempt, timeout, f"{method} {url} -> {status}")


class Proc:
    """One running component: its ports, data dir, output and ready line."""

    def __init__(self, binary, args, env, data_dir, ports, name):
        self.binary = binary
        self.args = args
        self.env = env
        self.data_dir = data_dir
        self.ports = ports
        self.port = ports[0] if ports else None
        self.name = name
        self.ready_line = None
        self.stdout_lines = []
        self.stderr_lines = []
        self._ready = threading.Event()
        self.popen = None
        self.stop_timed_out = False
        self.metrics_port = None
        self.scheme = "http"

    def start(self):
        self.ready_line = None
        self._ready.clear()
        self.popen = subprocess.Popen(  # pylint: disable=consider-using-with
            [sys.executable, "-m", "tidbsim", self.binary] + self.args, env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        threading.Thread(target=self._pump, args=(self.popen.stdout, self.stdout_lines, True), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.popen.stderr, self.stderr_lines, False), daemon=True).start()
        return self

    def _pump(self, stream, sink, watch_ready):
        for line in stream:
            sink.append(line.rstrip("\n"))
            if watch_ready and line.startswith('{"tidbsim": "ready"'):
                self.ready_line = json.loads(line)
                self._ready.set()

    @property
    def output(self):
        return "\n".join(self.stdout_lines + self.stderr_lines)

    def wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.binary} {self.name} exited with {self.popen.returncode}:\n{self.output}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.binary} {self.name} not ready after {timeout}s:\n{self.output}")
        return self.ready_line

    def wait_exit(self, timeout=10.0):
        self.popen.wait(timeout)
        time.sleep(0.05)  # let the pump threads drain
        return self.popen.returncode

    def stop(self, timeout=10.0):
        """SIGTERM and wait; returns the exit code."""
        if self.popen and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.send_signal(signal.SIGUSR1)  # stack dump into the output, for the failure report
                time.sleep(0.5)
                self.stop_timed_out = True
                sys.stderr.write(f"tidbsim: {self.binary} {self.name} ignored SIGTERM for {timeout}s:\n{self.output}\n")
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode if self.popen else None

    def restart(self):
        self.stop()
        self.stdout_lines.clear()
        self.stderr_lines.clear()
        return self.start()

    def url(self, path="", port=None):
        return f"{self.scheme}://127.0.0.1:{port or self.port}{path}"


def security_toml(keys, files, extra=""):
    """A [security] table naming files["ca"], ["cert"], ["key"] under the component's key names."""
    lines = ["[security]"] + [f'{name} = "{files[kind]}"' for kind, name in zip(("ca", "cert", "key"), keys) if files.get(kind)]
    return "\n".join(lines) + "\n" + extra


class Sim:
    """Starts components under one base directory and stops them all on close."""

    def __init__(self, base_dir, env=None):
        self.base_dir = str(base_dir)
        self.procs = []
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = SIM_ROOT + os.pathsep + self.env.get("PYTHONPATH", "")
        self.env.update(TEST_ENV)
        self.env.update(env or {})
        self._count = 0

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        self.close()

    def close(self):
        """SIGTERM everything at once, then reap."""
        for proc in self.procs:
            if proc.popen and proc.popen.poll() is None:
                proc.popen.terminate()
        for proc in reversed(self.procs):
            proc.stop()

    def _dir(self, label):
        self._count += 1
        path = os.path.join(self.base_dir, f"{label}-{self._count}")
        os.makedirs(path, exist_ok=True)
        return path

    def _config_file(self, name, text):
        """Write a config file in the base directory; its path."""
        path = os.path.join(self.base_dir, name)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        return path

    def spawn(self, binary, args, ports=(), data_dir=None, env=None, name=None, start=True):
        """Run any binary with explicit args (for flag tests). Not started twice."""
        full_env = dict(self.env)
        full_env.update(env or {})
        proc = Proc(binary, list(args), full_env, data_dir, list(ports), name or binary)
        self.procs.append(proc)
        return proc.start() if start else proc

    # ---------------------------------------------------------------- component starters

    def pd(self, count=1, env=None, start=True, names=None, *, tls=None, security_extra=""):  # pylint: disable=too-many-arguments,too-many-locals
        """PD member(s) with one --initial-cluster. Returns a Proc, or a list when count > 1.
        Each Proc has .port (client) and .peer_port.

        tls: {"ca", "cert", "key"} paths: a --config with [security] cacert-path, cert-path,
        key-path (plus security_extra lines) and https client and peer URLs."""
        names = names or [f"pd{i}" for i in range(count)]
        ports = [free_ports(2) for _name in names]
        scheme = "https" if tls else "http"
        initial = ",".join(f"{n}={scheme}://127.0.0.1:{p[1]}" for n, p in zip(names, ports))
        procs = []
        for name, (client, peer) in zip(names, ports):
            args = [f"--name={name}", f"--client-urls={scheme}://127.0.0.1:{client}", f"--peer-urls={scheme}://127.0.0.1:{peer}",
                    f"--advertise-client-urls={scheme}://127.0.0.1:{client}", f"--advertise-peer-urls={scheme}://127.0.0.1:{peer}",
                    f"--initial-cluster={initial}", f"--data-dir={self._dir(name)}"]
            if tls:
                args.append("--config=" + self._config_file(f"pd-{name}-{client}.toml",
                                                            security_toml(("cacert-path", "cert-path", "key-path"), tls, security_extra)))
            proc = self.spawn("pd-server", args, (client, peer), args[6].split("=", 1)[1], env, name, start)
            proc.peer_port = peer
            proc.scheme = scheme
            procs.append(proc)
        return procs[0] if count == 1 and len(procs) == 1 else procs

    @staticmethod
    def pd_addrs(pd, scheme=""):
        pds = pd if isinstance(pd, list) else [pd]
        return ",".join(f"{scheme}127.0.0.1:{p.port}" for p in pds)

    def tikv(self, pd, env=None, labels=None, config_text=DEFAULT_TIKV_CONFIG, extra=(), *, tls=None):  # pylint: disable=too-many-arguments
        """config_text: the --config TOML (DEFAULT_TIKV_CONFIG; None passes no --config).
        tls: {"ca", "cert", "key"} paths, added to the config as [security] ca-path, cert-path, key-path."""
        if tls:
            config_text = (config_text or "") + security_toml(("ca-path", "cert-path", "key-path"), tls)
        port, status = free_ports(2)
        data_dir = self._dir("tikv")
        args = ["--pd-endpoints", self.pd_addrs(pd), "--addr", f"127.0.0.1:{port}", "--advertise-addr", f"127.0.0.1:{port}",
                "--status-addr", f"127.0.0.1:{status}", "--advertise-status-addr", f"127.0.0.1:{status}", "--data-dir", data_dir]
        if labels:
            args += ["--labels", labels]
        if config_text is not None:
            config = os.path.join(self.base_dir, f"tikv-{port}.toml")
            with open(config, "w", encoding="utf-8") as handle:
                handle.write(config_text)
            args += ["--config", config]
        args += list(extra)
        proc = self.spawn("tikv-server", args, (port, status), data_dir, env, f"127.0.0.1:{port}")
        proc.status_port = status
        proc.scheme = "https" if tls else "http"
        return proc

    def tidb(self, pd, env=None, extra=(), *, config_text=None, tls=None):  # pylint: disable=too-many-arguments
        """config_text: a --config TOML; tls: {"ca", "cert", "key"} paths as [security] cluster-ssl-*."""
        port, status = free_ports(2)
        args = ["--store=tikv", f"--path={self.pd_addrs(pd)}", "--host=127.0.0.1", "-P", str(port),
                f"--status={status}", "--status-host=127.0.0.1", "--advertise-address=127.0.0.1"]
        if tls:
            config_text = security_toml(("cluster-ssl-ca", "cluster-ssl-cert", "cluster-ssl-key"), tls, config_text or "")
        if config_text is not None:
            args.append("--config=" + self._config_file(f"tidb-{port}.toml", config_text))
        proc = self.spawn("tidb-server", args + list(extra), (port, status), None, env, f"127.0.0.1:{port}")
        proc.status_port = status
        proc.scheme = "https" if tls else "http"
        return proc

    def cdc(self, pd, newarch=True, env=None, extra=(), *, tls=None):  # pylint: disable=too-many-arguments
        """tls: {"ca", "cert", "key"} paths: --ca, --cert, --key and https PD URLs."""
        (port,) = free_ports(1)
        data_dir = self._dir("cdc")
        args = ["server", f"--pd={self.pd_addrs(pd, 'https://' if tls else 'http://')}", f"--addr=127.0.0.1:{port}",
                f"--advertise-addr=127.0.0.1:{port}", f"--data-dir={data_dir}"] + (["--newarch"] if newarch else [])
        if tls:
            args += ["--ca", tls["ca"], "--cert", tls["cert"], "--key", tls["key"]]
        proc = self.spawn("cdc", args + list(extra), (port,), data_dir, env, f"127.0.0.1:{port}")
        proc.scheme = "https" if tls else "http"
        return proc

    def minio(self, user="minioadmin", password="minioadmin", env=None, data_dir=None):
        port, console = free_ports(2)
        data_dir = data_dir or self._dir("minio")
        full_env = {"MINIO_ROOT_USER": user, "MINIO_ROOT_PASSWORD": password}
        full_env.update(env or {})
        proc = self.spawn("minio", ["server", data_dir, "--address", f"127.0.0.1:{port}", "--console-address", f"127.0.0.1:{console}"],
                          (port, console), data_dir, full_env, f"127.0.0.1:{port}")
        proc.user, proc.password = user, password
        return proc

    def tici(self, role, pd, config_text, env=None, extra=()):
        port, status = free_ports(2)
        data_dir = self._dir(f"tici-{role}")
        config = os.path.join(data_dir, f"tici-{role}.toml")
        with open(config, "w", encoding="utf-8") as handle:
            handle.write(config_text)
        args = [role, f"--config={config}", "--host=127.0.0.1", f"--port={port}", f"--status-port={status}",
                "--advertise-host=127.0.0.1", f"--pd-addr={self.pd_addrs(pd)}"] + list(extra)
        if role == "worker":
            args.append(f"--data-dir={data_dir}")
        proc = self.spawn("tici-server", args, (status, port), data_dir, env, f"tici-{role}-{port}")
        proc.status_port, proc.service_port = status, port
        return proc

    def tiflash(self, config_text, env=None, extra=(), proxy_config_text=DEFAULT_PROXY_CONFIG):
        """config_text may hold {data_dir}; returns the Proc (ports are whatever the config says).

        Unless the config sets them: the proxy TOML (proxy_config_text, None for none) goes in
        through `--flash.proxy.config`, and the metrics listen on 127.0.0.1 and a free port (not
        on TiFlash's default 0.0.0.0:8234), as `.metrics_port`."""
        data_dir = self._dir("tiflash")
        config = os.path.join(data_dir, "tiflash.toml")
        with open(config, "w", encoding="utf-8") as handle:
            handle.write(config_text.replace("{data_dir}", data_dir))
        overrides = []
        if proxy_config_text is not None:
            proxy = os.path.join(data_dir, "proxy.toml")
            with open(proxy, "w", encoding="utf-8") as handle:
                handle.write(proxy_config_text.replace("{data_dir}", data_dir))
            overrides.append(f"--flash.proxy.config={proxy}")
        metrics_port = None
        if "metrics_port" not in config_text and "metrics_addr" not in config_text:
            (metrics_port,) = free_ports(1)
            overrides.append(f"--status.metrics_port={metrics_port}")
        if "listen_host" not in config_text:
            overrides.append("--listen_host=127.0.0.1")
        overrides += list(extra)
        args = ["server", "--config-file", config] + (["--"] + overrides if overrides else [])
        proc = self.spawn("tiflash", args, (), data_dir, env, "tiflash")
        proc.metrics_port = metrics_port
        return proc

    def wait_ready(self, *procs, timeout=30.0):
        for proc in procs:
            for item in proc if isinstance(proc, list) else [proc]:
                item.wait_ready(timeout)

    # ---------------------------------------------------------------- tiny clusters

    def pd_tikv(self, env=None):
        pd = self.pd(env=env)
        tikv = self.tikv(pd, env=env)
        self.wait_ready(pd, tikv)
        return pd, tikv

    def pd_tikv_tidb(self, env=None):
        pd, tikv = self.pd_tikv(env)
        tidb = self.tidb(pd, env=env)
        tidb.wait_ready()
        return pd, tikv, tidb

    def pd_tikv_cdc(self, newarch=True, env=None):
        pd, tikv = self.pd_tikv(env)
        cdc = self.cdc(pd, newarch=newarch, env=env)
        cdc.wait_ready()
        return pd, tikv, cdc
