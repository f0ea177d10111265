"""tidb-server: /status 500 until PD has an Up TiKV store, then 200 JSON; MySQL protocol on -P.

Accounts: root with an empty password at bootstrap, the accounts made with CREATE USER (kept in PD's
etcd, see accounts.py), plus `TIDBSIM_TIDB_USERS="user:password,..."` (test setup).
SQL: SELECT 1, SELECT VERSION(), SELECT tidb_version(), the account statements of accounts.py, the
tables, full-text indexes and FTS_MATCH_WORD queries of fts.py, and what mysql-mimic answers on its own
(session variables, SET, SHOW VARIABLES, USE); anything else is an error 1105 like an unsupported statement.

SIGTERM starts TiDB's shutdown: /status answers 500 at once, the process waits
`graceful-wait-before-shutdown` seconds (from --config, default 0) and then exits.
"""

import asyncio
from asyncio import sslproto
import json
import os
import threading
import time

from . import common
from . import tls as tlsmod
from .accounts import USER_TABLE_COLUMNS, Accounts, SQLError
from .fts import Tables
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


# pingcap/tidb pkg/errno ErrSecureTransportRequired (3159) and its message.
SECURE_TRANSPORT_REQUIRED = (3159, "Connections using insecure transport are prohibited while --require_secure_transport=ON.")


def fatal(message):
    """tidb-server's start-up failures (terror.MustNil: log.Fatal, exit 1)."""
    return common.UsageError(f'[FATAL] ["unexpected error"] [error="{message}"]', 1)


class TiDBSecurity:  # pylint: disable=too-many-instance-attributes
    """TiDB's [security].

    Cluster side (cluster-ssl-ca, cluster-ssl-cert, cluster-ssl-key, cluster-verify-cn): client-go
    config/security.go Security.ToTLSConfig: TLS only when cluster-ssl-ca is set (CA read, "could
    not read ca certificate: ...", "failed to append ca certs"; the key pair pre-loaded, "could not
    load client key pair: ..."). The status server (pkg/server/http_status.go listenStatusHTTPServer)
    then listens with tls.Listen under cmux and asks for no client certificate, except with
    cluster-verify-cn (SetCNChecker: RequireAndVerifyClientCert and the leaf's CN in the list).
    PD is dialled over TLS with the same files.

    MySQL side (ssl-ca, ssl-cert, ssl-key, require-secure-transport; pkg/util/misc.go
    LoadTLSCertificates, pkg/server/server.go NewServer): TLS is offered when ssl-cert and ssl-key
    are set; a load error stops the start; ssl-ca makes a client certificate verified if given
    (VerifyClientCertIfGiven), required with require-secure-transport (RequireAndVerifyClientCert);
    with require-secure-transport a connection without TLS gets error 3159. auto-tls is not
    simulated."""

    def __init__(self, config):
        section = config.get("security") or {}

        def get(name):
            return str(section.get(name) or "")
        self.cluster_ca, self.cluster_cert, self.cluster_key = get("cluster-ssl-ca"), get("cluster-ssl-cert"), get("cluster-ssl-key")
        self.verify_cn = [str(cn) for cn in section.get("cluster-verify-cn") or []]
        self.ssl_ca, self.ssl_cert, self.ssl_key = get("ssl-ca"), get("ssl-cert"), get("ssl-key")
        self.require_secure = section.get("require-secure-transport") is True
        self.auto_tls = section.get("auto-tls") is True
        self.mysql_ca_ok = False

    @property
    def cluster_tls(self):
        return bool(self.cluster_ca)

    def check(self):
        """The files, loaded once at start as TiDB does."""
        if self.cluster_ca:
            try:
                tlsmod.check_ca(self.cluster_ca)
            except tlsmod.TLSFileError as exc:
                raise fatal(f"could not read ca certificate: {exc}" if exc.os_error else str(exc)) from None
            if self.cluster_cert and self.cluster_key:
                try:
                    tlsmod.check_pair(self.cluster_cert, self.cluster_key)
                except tlsmod.TLSFileError as exc:
                    raise fatal(f"could not load client key pair: {exc}") from None
        if self.ssl_cert and self.ssl_key:
            try:
                tlsmod.check_pair(self.ssl_cert, self.ssl_key)
                if self.ssl_ca:
                    tlsmod.read_file(self.ssl_ca)
            except tlsmod.TLSFileError as exc:
                raise fatal(str(exc)) from None
            if self.ssl_ca:
                try:
                    tlsmod.check_ca(self.ssl_ca)
                    self.mysql_ca_ok = True
                except tlsmod.TLSFileError:
                    self.mysql_ca_ok = False  # AppendCertsFromPEM false: no client verification, no error
        elif self.require_secure:
            # Not confirmed in the current sources (older NewServer returned ErrSecureTransportRequired
            # here); the simulator takes the stricter reading and refuses to start.
            raise fatal("require-secure-transport is enabled but ssl-cert and ssl-key are not set"
                        + (" (auto-tls is not simulated)" if self.auto_tls else ""))

    def client(self):
        if not self.cluster_tls:
            return None
        cert_ok = self.cluster_cert and self.cluster_key
        return tlsmod.client_context(self.cluster_ca, self.cluster_cert if cert_ok else None, self.cluster_key if cert_ok else None)

    def status_server(self):
        if not self.cluster_tls:
            return None
        cert_ok = bool(self.cluster_cert and self.cluster_key)
        return tlsmod.ServerTLS(self.cluster_cert if cert_ok else None, self.cluster_key if cert_ok else None, self.cluster_ca,
                                "require" if self.verify_cn else "none", allowed_cns=self.verify_cn or None)

    def mysql_context(self):
        """The MySQL port's SSLContext, or None when TLS is not offered."""
        if not (self.ssl_cert and self.ssl_key):
            return None
        # Without a usable CA, Go's RequestClientCert (require-secure-transport) asks for a
        # certificate and verifies nothing; Python's "none" does not ask: the same for a client.
        client_auth = "none"
        if self.mysql_ca_ok:
            client_auth = "require" if self.require_secure else "optional"
        return tlsmod.ServerTLS(self.ssl_cert, self.ssl_key, self.ssl_ca if self.mysql_ca_ok else None, client_auth).context


async def _start_tls_keeping_buffered_bytes(stream, ssl_context):
    """MysqlStream.start_tls of mysql-mimic 3.0.5 loses a TLS ClientHello that arrived together with
    the SSLRequest packet (it already sits in the StreamReader's buffer), and the handshake then hangs
    until asyncio's 60 s timeout. This one does what asyncio's loop.start_tls does (Python 3.11
    base_events.py), with those bytes handed to the TLS protocol before the socket is read again."""
    loop = asyncio.get_running_loop()
    transport = stream.writer.transport
    buffered = bytes(stream.reader._buffer)  # pylint: disable=protected-access
    stream.reader._buffer.clear()  # pylint: disable=protected-access
    waiter = loop.create_future()
    tls_protocol = sslproto.SSLProtocol(loop, transport.get_protocol(), ssl_context, waiter, server_side=True,
                                        call_connection_made=False)
    transport.pause_reading()
    transport.set_protocol(tls_protocol)
    tls_protocol.connection_made(transport)
    if buffered:
        asyncio.protocols._feed_data_to_buffered_proto(tls_protocol, buffered)  # pylint: disable=protected-access
    transport.resume_reading()
    try:
        await waiter
    except BaseException:
        transport.close()
        raise
    new_transport = tls_protocol._app_transport  # pylint: disable=protected-access
    stream.writer._transport = new_transport  # pylint: disable=protected-access
    stream.reader._transport = new_transport  # pylint: disable=protected-access


def start_mysql(runtime, host, port, pd_urls, security):  # pylint: disable=too-many-locals,too-many-statements
    """Serve the MySQL protocol with mysql-mimic in its own event loop thread."""
    from mysql_mimic import IdentityProvider, MysqlServer, NativePasswordAuthPlugin, Session, User  # pylint: disable=import-outside-toplevel
    from mysql_mimic import context as mimic_context  # pylint: disable=import-outside-toplevel
    from mysql_mimic.errors import ErrorCode, MysqlError  # pylint: disable=import-outside-toplevel
    from mysql_mimic.stream import MysqlStream  # pylint: disable=import-outside-toplevel,no-name-in-module
    from mysql_mimic.variables import SYSTEM_VARIABLES, GlobalVariables  # pylint: disable=import-outside-toplevel

    MysqlStream.start_tls = _start_tls_keeping_buffered_bytes

    users = Accounts(Etcd(pd_urls), static_accounts())

    def tiflash_up():
        try:
            _status, data = common.first_answer("GET", pd_urls, "/pd/api/v1/stores", accept=lambda s: s == 200,
                                                tls=security.client())
        except OSError:
            return False
        return any(common.is_up_tiflash(store) for store in json.loads(data)["stores"])
    tables = Tables(Etcd(pd_urls), users, tiflash_up)
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
            if security.require_secure:
                await refuse_insecure()
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
                result = tables.execute(self.username, self.database, sql)
                if result is None:
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

    ssl_context = security.mysql_context()
    server = MysqlServer(session_factory=TiDBSession, identity_provider=Identities(), ssl=ssl_context)

    async def refuse_insecure():
        """pkg/server/conn.go: with require-secure-transport, a handshake without TLS gets error 3159."""
        connection = server.control._connections.get(mimic_context.connection_id.get())  # pylint: disable=protected-access
        if connection is not None and connection.stream.writer.get_extra_info("ssl_object") is None:
            code, message = SECURE_TRANSPORT_REQUIRED
            await connection.stream.write(connection.error(msg=message, code=code))
            raise ConnectionAbortedError(message)
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
    runtime.log(f"MySQL protocol listening on {host}:{port}" + ("" if address == host else f" ({address})")
                + (" (TLS offered)" if ssl_context is not None else ""))


def graceful_wait_seconds(config):
    """`graceful-wait-before-shutdown` (top level of the TiDB config, seconds, default 0; pkg/config)."""
    value = config.get("graceful-wait-before-shutdown", 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise common.UsageError(f"load config file: graceful-wait-before-shutdown: invalid value {value!r}"
                                " (an integer number of seconds)", 1)
    return value


def main(argv):  # pylint: disable=too-many-statements
    flags, _positional = common.parse_flags(argv, FLAGS, "tidb-server", "go")
    config = {}
    if flags["config"]:
        config = common.load_toml(flags["config"], "load config file: {path}: open {path}: {reason}",
                                  "load config file: {path}: toml: {reason}")
    graceful_wait = graceful_wait_seconds(config)
    security = TiDBSecurity(config)
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
    security.check()
    runtime = common.Runtime("tidb", f"{flags['advertise-address'] or host}:{port}")
    if security.auto_tls and not (security.ssl_cert and security.ssl_key):
        runtime.log("tidbsim: auto-tls is not simulated: the MySQL port offers no TLS")
    # PD over TLS with the cluster files (tikv/pd client tlsutil ModifyURLScheme: https with a TLS config).
    pd_urls = common.url_list(flags["path"], "https" if security.cluster_tls else "http")
    if security.cluster_tls:
        tlsmod.set_default_client(security.client())

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
    common.HttpService(runtime, f"{flags['status-host']}:{status_port}", router, "status", tls=security.status_server()).start()

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
            start_mysql(runtime, host, port, pd_urls, security)
            mysql["open"] = True
        runtime.try_ready()
    runtime.every(common.env_float("HEARTBEAT_INTERVAL", 0.5), bootstrap)
    return runtime.wait_forever()
