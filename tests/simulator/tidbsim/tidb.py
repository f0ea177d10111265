"""tidb-server: /status 500 until PD has an Up TiKV store, then 200 JSON; MySQL protocol on -P.

Accounts: root with an empty password at bootstrap, the accounts made with CREATE USER (kept in PD's
etcd, see accounts.py), plus `TIDBSIM_TIDB_USERS="user:password,..."` (test setup).
SQL: SELECT 1, SELECT VERSION(), SELECT tidb_version(), the account statements of accounts.py, and what
mysql-mimic answers on its own (session variables, SET, SHOW VARIABLES); anything else is an error 1105
like an unsupported statement.

SIGTERM starts TiDB's shutdown: /status answers 500 at once, the process waits
`graceful-wait-before-shutdown` seconds (from --config, default 0) and then exits.
"""

import asyncio
import json
import os
import threading
import time

from . import common
from .accounts import USER_TABLE_COLUMNS, Accounts, SQLError
from .common import Flag, json_response, text_response
from .etcd import Etcd

FLAGS = [
    Flag("store", default="unistore"),
    Flag("path", default="/tmp/tidb"),
    Flag("host", default="0.0.0.0"),
    Flag("P", default="4000"),
    Flag("status", default="10080"),
    Flag("status-host", default="0.0.0.0"),
    Flag("advertise-address", default=""),
    Flag("config", default=""),
    Flag("log-file", default=""),
    Flag("L", default="info"),
    Flag("log-slow-query", default=""),
    Flag("initialize-insecure", boolean=True, default=False),
    Flag("initialize-sql-file", default=""),
    Flag("keyspace-name", default=""),
]

VERSION = f"8.0.11-TiDB-{common.SIM_VERSION}-tidbsim"
TIDB_VERSION_TEXT = (f"Release Version: {common.SIM_VERSION}-tidbsim\nEdition: Community\nGit Commit Hash: {common.GIT_HASH}\n"
                     "Git Branch: tidbsim\nUTC Build Time: 2026-01-01 00:00:00\nGoVersion: none (simulator)\n"
                     "Race Enabled: false\nCheck Table Before Drop: false\nStore: tikv")


def static_accounts():
    users = {}
    for item in filter(None, os.environ.get("TIDBSIM_TIDB_USERS", "").split(",")):
        user, _colon, password = item.partition(":")
        users[user] = password
    return users


def start_mysql(runtime, host, port, pd_urls):
    """Serve the MySQL protocol with mysql-mimic in its own event loop thread."""
    from mysql_mimic import IdentityProvider, MysqlServer, NativePasswordAuthPlugin, Session, User  # pylint: disable=import-outside-toplevel
    from mysql_mimic.errors import ErrorCode, MysqlError  # pylint: disable=import-outside-toplevel
    from mysql_mimic.variables import SYSTEM_VARIABLES, GlobalVariables  # pylint: disable=import-outside-toplevel

    users = Accounts(Etcd(pd_urls), static_accounts())
    schema = dict(SYSTEM_VARIABLES)
    schema["version"] = (str, VERSION, False)
    # TiDB's default (pingcap/tidb pkg/parser/mysql DefaultSQLMode); mysql-mimic's own default has
    # ANSI in it, which makes clients such as community.mysql quote names with double quotes.
    schema["sql_mode"] = (str, "ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,"
                               "ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION", True)
    schema["version_comment"] = (str, "TiDB Server (Apache License 2.0) Community Edition, MySQL 8.0 compatible (tidbsim)", False)
    global_vars = GlobalVariables(schema)

    class Identities(IdentityProvider):
        def get_plugins(self):
            return [NativePasswordAuthPlugin()]

        async def get_user(self, username):
            auth = users.login(username)
            if auth is False:
                return None
            return User(name=username, auth_string=auth, auth_plugin=NativePasswordAuthPlugin.name)

    class TiDBSession(Session):
        def __init__(self):
            from mysql_mimic.variables import SessionVariables  # pylint: disable=import-outside-toplevel
            super().__init__(SessionVariables(global_vars))
            self.middlewares.insert(0, self._tidb_functions)

        async def _tidb_functions(self, q):
            # Ahead of mysql-mimic's own evaluation, which does not know TiDB's functions.
            if " ".join(q.sql.lower().split()).rstrip(";") == "select tidb_version()":
                return [[TIDB_VERSION_TEXT]], ["tidb_version()"]
            return await q.next()

        async def handle_query(self, sql, attrs):
            # Account statements first: sqlglot does not parse all of them (SHOW CREATE USER ...).
            try:
                result = users.execute(self.username, sql)
            except SQLError as exc:
                raise MysqlError(exc.message, exc.code) from None
            if result is not None:
                return result
            return await super().handle_query(sql, attrs)

        async def schema(self):
            return {"mysql": {"user": dict(USER_TABLE_COLUMNS)}}

        async def query(self, expression, sql, attrs):
            raise MysqlError(f"tidbsim does not implement this statement: {sql[:80]}", ErrorCode.NOT_SUPPORTED_YET)

    server = MysqlServer(session_factory=TiDBSession, identity_provider=Identities())
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure = []
    # Like Go's net.Listen: a host name is resolved and its first address bound (not every address).
    address = common.listen_addresses(host, port, "MySQL")[0][1][0]

    async def serve():
        await server.start_server(host=address, port=port)
        started.set()
        await server.serve_forever()

    def run():
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(serve())
        except Exception as exc:  # pylint: disable=broad-except
            failure.append(exc)
            started.set()

    threading.Thread(target=run, daemon=True).start()
    started.wait(10)
    if failure:
        runtime.log(f"[FATAL] cannot listen for MySQL on {host}:{port}: {failure[0]}")
        os._exit(1)  # pylint: disable=protected-access
    runtime.log(f"MySQL protocol listening on {host}:{port}" + ("" if address == host else f" ({address})"))


def graceful_wait_seconds(config):
    """`graceful-wait-before-shutdown` (top level of the TiDB config, seconds, default 0; pkg/config)."""
    value = config.get("graceful-wait-before-shutdown", 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise common.UsageError(f"load config file: graceful-wait-before-shutdown: invalid value {value!r}"
                                " (an integer number of seconds)", 1)
    return value


def main(argv):
    flags, _positional = common.parse_flags(argv, FLAGS, "tidb-server", "go")
    config = {}
    if flags["config"]:
        config = common.load_toml(flags["config"], "load config file: {path}: open {path}: {reason}",
                                  "load config file: {path}: toml: {reason}")
    graceful_wait = graceful_wait_seconds(config)
    if flags["store"] != "tikv":
        raise common.UsageError(
            f"tidbsim: --store={flags['store']} would run TiDB on its embedded mock store ({flags['store']}), not on TiKV;"
            " this simulator only plays a TiDB that joins a cluster: pass --store=tikv --path=<pd-host>:2379[,...]", 1)
    if "://" in flags["path"]:
        # Real TiDB builds tikv://<path>, so the scheme's name becomes the PD address ("http:") and
        # start-up fails connecting to it; the simulator fails at once, naming the flag.
        raise common.UsageError(f"tidbsim: --path {flags['path']!r}: give PD addresses as host:port without a scheme"
                                f" (real TiDB would try to reach PD at {flags['path'].split('/', 1)[0]!r} and fail to start)", 1)
    port = int(flags["P"])
    status_port = int(flags["status"])
    host = flags["host"]
    runtime = common.Runtime("tidb", f"{flags['advertise-address'] or host}:{port}")
    pd_urls = common.url_list(flags["path"])

    shutdown = {"mode": False}

    def status(_request):
        # pkg/server/http_status.go handleStatus: 500 with an empty body until healthy, and again
        # from the moment a shutdown starts.
        if not runtime.ready or shutdown["mode"]:
            return common.Response(500, b"", "application/json")
        return json_response({"connections": 0, "version": VERSION, "git_hash": common.GIT_HASH,
                              "status": {"init_stats_percentage": 100}})

    router = common.Router()
    router.add("GET", "/status", status)
    router.add("GET", "/metrics", lambda _r: text_response("# tidbsim: no metrics\n"))
    info = {"version": VERSION, "git_hash": common.GIT_HASH, "ip": flags["advertise-address"] or host,
            "listening_port": port, "status_port": status_port}
    router.add("GET", "/info", lambda _r: json_response(info))
    common.HttpService(runtime, f"{flags['status-host']}:{status_port}", router, "status").start()

    def start_shutdown():
        """pkg/server/server.go startShutdown: report unhealthy, wait graceful-wait-before-shutdown
        seconds (connections are still accepted), then close. Registered after the status server,
        so it runs before the status server closes."""
        shutdown["mode"] = True
        runtime.log("setting tidb-server to report unhealthy (shutting-down)")
        if graceful_wait > 0:
            runtime.log(f"waiting for stray connections before starting shutdown process (waitTime {graceful_wait:g}s)")
            time.sleep(graceful_wait)
    runtime.on_close(start_shutdown)

    problem = {"text": None}
    mysql = {"open": False}

    def note(text):
        if text and text != problem["text"]:
            runtime.log(text)
        problem["text"] = text

    def bootstrap():
        if runtime.ready:
            return
        _status, data = common.first_answer("GET", pd_urls, "/pd/api/v1/stores", accept=lambda s: s == 200)
        stores = [s for s in json.loads(data)["stores"] if common.is_up_tikv(s)]
        if not stores:
            return
        # A TiKV whose disk is AlreadyFull rejects writes, so the bootstrap transaction cannot commit.
        _status, data = common.first_answer("GET", pd_urls, "/sim/pd/stores", accept=lambda s: s == 200)
        disk = json.loads(data)
        if all(disk.get(str(s["store"]["id"])) == "AlreadyFull" for s in stores):
            note("cannot bootstrap: every Up TiKV store is AlreadyFull (disk full), so TiKV rejects writes")
            return
        note(None)
        if not runtime.start_delay_passed() or runtime.faults.never_ready:
            return
        # The real server opens the MySQL port before it reports healthy. Once: a tick that finds
        # the status server still held back (TIDBSIM_LISTEN_DELAY) comes back here.
        if not mysql["open"]:
            start_mysql(runtime, host, port, pd_urls)
            mysql["open"] = True
        runtime.try_ready()
    runtime.every(common.env_float("HEARTBEAT_INTERVAL", 0.5), bootstrap)
    return runtime.wait_forever()
