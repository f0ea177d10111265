"""tici-server meta|worker.

/status answers 200 as soon as the process serves (what the real one means by it is undocumented),
except while a fault switch holds the component "not ready" (TIDBSIM_NEVER_READY, START_DELAY): 503.
meta: needs PD and a TiDB DSN whose account may create TiCI's metadata database `tici` and its tables
(tici.md: meta keeps index and shard metadata in TiDB, database `tici`); then campaigns for
`/tici/metaservice/election/<lease>` in PD's etcd (value = advertise host:port, on a lease it keeps
alive).
worker: reads the elected meta from the election key and checks its S3 bucket with the [s3] keys
(problems are logged and shown in the /status body).
--pd-addr (and [server] pd-addr) take host:port entries without a scheme, as TiUP and tidb-operator
pass them; a URL is refused. TiCI has no public TLS settings: it dials PD in clear text, so a PD
that serves TLS closes its connections; each new failure is logged (and shown in /status), and
TiCI keeps serving and retrying.
Config keys are read in both spellings (kebab-case, and the older snake_case).
"""

import urllib.parse

from . import common, fts, s3check
from .common import Flag, json_response, text_response
from .etcd import Etcd

ELECTION_PREFIX = "/tici/metaservice/election/"
ROLE_DEFAULTS = {"meta": (8500, 8501), "worker": (8510, 8511)}


def flags_for(role):
    flags = [Flag("config", default=""), Flag("host", default=""), Flag("port", "P", default=""),
             Flag("status-port", default=""), Flag("advertise-host", default=""), Flag("pd-addr", default=""),
             Flag("log-file", default="")]
    if role == "meta":
        flags.append(Flag("tidb-addr", default=""))
    else:
        flags.append(Flag("data-dir", default=""))
    return flags


def pick(table, *names, default=None):
    """The first present key among spellings (kebab first, then snake)."""
    for name in names:
        if isinstance(table, dict) and table.get(name) not in (None, ""):
            return table[name]
    return default


def load_config(path):
    if not path:
        return {}
    return common.load_toml(path, "Error: failed to read config file {path}: {reason}",
                            "Error: failed to parse config file {path}: {reason}")


def s3_settings(config):
    s3 = config.get("s3") or {}
    return {"endpoint": pick(s3, "endpoint"), "bucket": pick(s3, "bucket"), "prefix": pick(s3, "prefix", default=""),
            "region": pick(s3, "region", default="us-east-1"), "access_key": pick(s3, "access-key", "access_key"),
            "secret_key": pick(s3, "secret-key", "secret_key"),
            "path_style": pick(s3, "use-path-style", "use_path_style", default=True)}


# What meta runs in TiDB before it serves. The real statements are not public; these need what the
# tables need (CREATE on database tici), so an account granted less fails here as it would there.
META_DDL = ("CREATE DATABASE IF NOT EXISTS tici",
            "CREATE TABLE IF NOT EXISTS tici.tici_index_meta (id BIGINT PRIMARY KEY, meta JSON)",
            "CREATE TABLE IF NOT EXISTS tici.tici_shard_meta (id BIGINT PRIMARY KEY, meta JSON)")


def select_one(dsn, timeout=3):
    """Connect through a mysql:// DSN, run SELECT 1 and META_DDL; raises on failure."""
    import pymysql  # pylint: disable=import-outside-toplevel
    parts = urllib.parse.urlsplit(dsn)
    connection = pymysql.connect(host=parts.hostname, port=parts.port or 4000, user=urllib.parse.unquote(parts.username or "root"),
                                 password=urllib.parse.unquote(parts.password or ""), connect_timeout=timeout,
                                 read_timeout=timeout, write_timeout=timeout)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchall()
            for statement in META_DDL:
                cursor.execute(statement)
    finally:
        connection.close()


def pd_addresses(value):
    """host:port[,host:port]: the real binary's parsing is unknown, so a scheme is refused (the stricter reading)."""
    entries = [item for item in (value or "").split(",") if item]
    if not entries:
        raise common.UsageError("Error: PD address is missing: pass --pd-addr or set [server] pd-addr", 1)
    for item in entries:
        if "://" in item:
            raise common.UsageError(f"Error: invalid PD address {item!r} in --pd-addr: give host:port without a scheme"
                                    " (tidbsim refuses URLs: TiUP and tidb-operator pass host:port)", 1)
        try:
            common.split_hostport(item)
        except ValueError:
            raise common.UsageError(f"Error: invalid PD address {item!r} in --pd-addr: want host:port", 1) from None
    return [f"http://{item}" for item in entries]


class TiCI:
    def __init__(self, runtime, role, flags, config):
        self.rt = runtime
        self.role = role
        server = config.get("server") or {}
        self.pd_urls = pd_addresses(flags["pd-addr"] or pick(server, "pd-addr", "pd_addr", default=""))
        self.etcd = Etcd(self.pd_urls)
        self.advertise = None
        self.lease = None
        self.leader = None
        self.s3 = s3_settings(config)
        self.dsns = []
        if role == "meta":
            tidb = config.get("tidb-server") or config.get("tidb_server") or {}
            self.dsns = [d for d in (flags["tidb-addr"].split(",") if flags["tidb-addr"] else tidb.get("dsns") or []) if d]
            if not self.dsns:
                raise common.UsageError("Error: no TiDB to store metadata in: pass --tidb-addr or set [tidb-server] dsns", 1)
        self.problem = "starting"

    def _note(self, problem):
        if problem != self.problem:
            self.rt.log(problem or "ready")
        self.problem = problem

    def _elected(self):
        keys = self.etcd.get_prefix(ELECTION_PREFIX)
        return keys[0][1] if keys else None

    def pd_problem(self, exc):
        """What failed talking to PD, with the likely reason when PD closed the connection."""
        if (isinstance(exc, ConnectionError) and not isinstance(exc, ConnectionRefusedError)) or "closed connection" in str(exc):
            # One text for every way PD ends the connection (a reset, a broken pipe, a close before the answer;
            # a refusal means no PD listens), so it is logged once.
            return (f"PD at {','.join(self.pd_urls)} closed the connection (TiCI talks to PD in clear text; a PD that serves "
                    "TLS closes such connections)")
        return f"PD at {','.join(self.pd_urls)} failed: {exc}"

    def held_back(self):
        """The fault switches keep the component "not ready": no campaign, no 200 on /status."""
        return self.rt.faults.never_ready or not self.rt.start_delay_passed()

    def meta_tick(self):
        if self.held_back():
            return
        self.rt.try_ready()
        errors = []
        for dsn in self.dsns:
            try:
                select_one(dsn)
                break
            except Exception as exc:  # pylint: disable=broad-except
                safe = urllib.parse.urlsplit(dsn)._replace(netloc=urllib.parse.urlsplit(dsn).hostname or "").geturl()
                errors.append(f"{safe}: {exc}")
        else:
            self._note(f"TiDB is not reachable through any DSN: {'; '.join(errors)}")
            return
        try:
            if self.lease and not self.etcd.keepalive(self.lease):
                self.lease = None
            leader = self._elected()
            if leader is None:
                self.lease = self.etcd.grant(int(common.env_float("TICI_LEASE_TTL", 10)))
                self.etcd.put(f"{ELECTION_PREFIX}{int(self.lease):x}", self.advertise, self.lease)
                leader = self._elected()
                if leader == self.advertise:
                    self.rt.log(f"elected: {ELECTION_PREFIX}{int(self.lease):x} = {self.advertise}")
        except OSError as exc:
            self._note(self.pd_problem(exc))
            return
        self.leader = leader
        self._note(None)

    def worker_tick(self):
        if self.held_back():
            return
        self.rt.try_ready()
        try:
            leader = self._elected()
        except OSError as exc:
            self._note(self.pd_problem(exc))
            return
        if leader is None:
            self._note("waiting for an elected TiCI meta (no key under /tici/metaservice/election/ in PD)")
            return
        self.leader = leader
        s3 = self.s3
        reason = s3check.bucket_error(s3["endpoint"], s3["bucket"], s3["access_key"], s3["secret_key"], s3["region"], s3["path_style"])
        if reason:
            self._note(f"S3 is not usable: {reason}")
            return
        self._note(None)
        try:
            fts.index_new_files(self.etcd, s3, self.rt.log)
        except Exception as exc:  # pylint: disable=broad-exception-caught  # read again on the next tick
            self.rt.log(f"reading the changefeed's files failed, retrying: {exc}")

    def status(self, _request):
        if self.held_back():
            return text_response("not ready\n", 503)
        self.rt.try_ready()
        return json_response({"status": "ok", "role": self.role, "version": "v0.1.0-tidbsim", "advertise": self.advertise,
                              "is_leader": self.role == "meta" and self.leader == self.advertise, "meta_leader": self.leader,
                              "problem": self.problem})


def main(argv):
    if not argv or argv[0] not in ROLE_DEFAULTS:
        word = argv[0] if argv else ""
        raise common.UsageError(f"error: unrecognized subcommand '{word}'\n\nUsage: tici-server <COMMAND>\n\nCommands:\n  meta\n  worker", 2)
    role = argv[0]
    flags, _positional = common.parse_flags(argv[1:], flags_for(role), f"tici-server {role}", "clap")
    config = load_config(flags["config"])
    server = config.get("server") or {}
    default_port, default_status = ROLE_DEFAULTS[role]
    listen = pick(server, "addr", default=f"0.0.0.0:{default_port}")
    host = flags["host"] or common.split_hostport(listen)[0]
    port = int(flags["port"] or common.split_hostport(listen)[1])
    status_listen = pick(server, "status-addr", "status_addr", default=f"{host}:{default_status}")
    status_port = int(flags["status-port"] or common.split_hostport(status_listen)[1])
    advertise_host = flags["advertise-host"] or common.split_hostport(pick(server, "advertise-addr", "advertise_addr", default=f"{host}:{port}"))[0]
    storage = config.get("storage") or {}
    data_dir = flags.get("data-dir") or pick(storage, "data-dir") or None
    runtime = common.Runtime(f"tici-{role}", f"{advertise_host}:{port}", data_dir)
    tici = TiCI(runtime, role, flags, config)
    tici.advertise = f"{advertise_host}:{port}"
    router = common.Router()
    router.add("GET", "/status", tici.status)
    router.add("GET", "/metrics", lambda _r: text_response("# tidbsim: no metrics\n"))
    common.HttpService(runtime, f"{host}:{status_port}", router, "status").start()
    common.TcpListener(runtime, f"{host}:{port}", "grpc").start()
    runtime.every(0.5, tici.meta_tick if role == "meta" else tici.worker_tick)
    return runtime.wait_forever()
