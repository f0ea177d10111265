"""TiDB's accounts and privileges, as the SQL that manages them sees them.

Real TiDB keeps accounts in the mysql.user table (in TiKV) and answers the MySQL statements below
(pingcap/tidb pkg/executor/simple.go CREATE/ALTER/DROP USER, grant.go and revoke.go GRANT/REVOKE,
pkg/privilege/privileges/cache.go SHOW GRANTS). The simulator keeps one JSON record per account in PD's
etcd (every TiDB instance sees the same accounts, and they survive restarts) and serves exactly the
statements community.mysql.mysql_user sends (fts.py answers tables and databases, with may_use_database). Any other
account statement is an error, so a client that needs more shows up here, not in production.
The columns of mysql.user that clients look up in information_schema are USER_TABLE_COLUMNS.

Privileges are checked: only an account with ALL PRIVILEGES ON *.* WITH GRANT OPTION (root at
bootstrap) manages accounts, and DDL on a database needs a grant on it (error 1044, as TiDB's
"Access denied for user ... to database ...").
"""

import hashlib
import json
import re

PREFIX = "/tidbsim/tidb/mysql.user/"
# The mysql.user columns clients read here (TiDB has authentication_string and no Password column).
USER_TABLE_COLUMNS = {"Host": "TEXT", "User": "TEXT", "authentication_string": "TEXT", "plugin": "TEXT"}
NATIVE = "mysql_native_password"
ALL = "ALL PRIVILEGES"
# A single-quoted SQL string as PyMySQL escapes it (backslash escapes).
_Q = r"'((?:[^'\\]|\\.)*)'"
_ACCOUNT = _Q + r"@" + _Q
_TARGET = r"((?:\*|`[^`]+`|\w+)\.(?:\*|`[^`]+`|\w+))"


class SQLError(Exception):
    """A MySQL error: (code, message), as TiDB words it."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def _unquote(text):
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "0": "\0", "r": "\r", "Z": "\x1a"}.get(m.group(1), m.group(1)), text)


def native_hash(password):
    """mysql_native_password's stored form: '*' + upper hex SHA1(SHA1(password)); '' for no password."""
    if not password:
        return ""
    return "*" + hashlib.sha1(hashlib.sha1(password.encode()).digest()).hexdigest().upper()


def _target(text):
    """`db`.* or db.* or *.* as (db, table) without backquotes."""
    db, _dot, table = text.partition(".")
    return db.strip("`"), table.strip("`")


def _privileges(text):
    names = [" ".join(part.split()).upper() for part in text.split(",")]
    return [ALL if name in ("ALL", ALL) else name for name in names]


class Accounts:
    """Accounts in etcd, plus the accounts the environment gives (TIDBSIM_TIDB_USERS, test setup)."""

    def __init__(self, etcd, static=None):
        self.etcd = etcd
        self.static = dict(static or {})

    def _key(self, user, host):
        return f"{PREFIX}{user}@{host}"

    def records(self, user=None):
        found = {"root@%": {"user": "root", "host": "%", "auth": "", "privileges": {"*.*": [ALL]}, "grant_option": ["*.*"]}}
        for name, password in self.static.items():
            found[f"{name}@%"] = {"user": name, "host": "%", "auth": native_hash(password), "privileges": {}, "grant_option": []}
        for key, value, _revision in self.etcd.get_prefix(PREFIX):
            found[key[len(PREFIX):]] = json.loads(value)
        return {k: v for k, v in found.items() if user is None or v["user"] == user}

    def get(self, user, host):
        return self.records(user).get(f"{user}@{host}")

    def save(self, record):
        self.etcd.put(self._key(record["user"], record["host"]), json.dumps(record, sort_keys=True))

    def delete(self, user, host):
        self.etcd.delete(self._key(user, host))

    def login(self, user):
        """The stored hash of the account a client logs in as, in mysql-mimic's form (hex of
        SHA1(SHA1(pw)), None for no password), or False when there is no such account."""
        records = self.records(user)
        record = records.get(f"{user}@%") or next(iter(records.values()), None)
        if record is None:
            return False
        return record["auth"][1:].lower() if record["auth"] else None

    # ------------------------------------------------------------ privilege checks

    def is_admin(self, user):
        record = self.records(user).get(f"{user}@%") if user else None
        return bool(record) and ALL in record["privileges"].get("*.*", []) and "*.*" in record["grant_option"]

    def may_use_database(self, user, database):
        record = self.records(user).get(f"{user}@%") if user else None
        if not record:
            return False
        return any(privs for target, privs in record["privileges"].items()
                   if target == "*.*" or _target(target)[0].lower() == database.lower())

    # ------------------------------------------------------------ statements

    def execute(self, session_user, sql):
        """Rows and columns for an account statement, None when ``sql`` is not one; raises SQLError."""
        text = " ".join(sql.split()).rstrip(";").strip()
        for pattern, handler in self._handlers():
            match = re.fullmatch(pattern, text, flags=re.IGNORECASE)
            if match:
                return handler(session_user, *[_unquote(g) if g is not None else None for g in match.groups()])
        return None

    def _handlers(self):
        return [
            (r"SELECT count\(\*\) FROM mysql\.user WHERE user = " + _Q + r"(?: AND host = " + _Q + ")?", self._count),
            (r"SELECT Host FROM mysql\.user WHERE user = " + _Q, self._hosts),
            (r"select plugin, authentication_string as auth from mysql\.user where user=" + _Q + r"(?: and host=" + _Q + r")?"
             r" group by plugin, authentication_string", self._auth),
            (r"SELECT plugin, authentication_string FROM mysql\.user WHERE user = " + _Q + " AND host = " + _Q, self._auth),
            (r"SELECT COALESCE\( CASE WHEN authentication_string = '' THEN NULL ELSE authentication_string END, "
             r"CASE WHEN authentication_string = '' THEN NULL ELSE authentication_string END \) FROM mysql\.user "
             r"WHERE user = " + _Q + " AND host = " + _Q, self._stored_hash),
            (r"SELECT CONCAT\('\*', UCASE\(SHA1\(UNHEX\(SHA1\(" + _Q + r"\)\)\)\)\)", self._hash),
            (r"SHOW CREATE USER " + _ACCOUNT, self._show_create),
            (r"SHOW GRANTS FOR " + _ACCOUNT, self._show_grants),
            (r"CREATE USER (IF NOT EXISTS )?" + _ACCOUNT + r"(?: IDENTIFIED BY " + _Q + r"| IDENTIFIED WITH '?" + NATIVE
             + r"'? AS " + _Q + r")?", self._create),
            (r"ALTER USER " + _ACCOUNT + r" IDENTIFIED (?:BY " + _Q + r"|WITH '?" + NATIVE + r"'? AS " + _Q + r")", self._alter),
            (r"GRANT (.+?) ON " + _TARGET + r" TO " + _ACCOUNT + r"( WITH GRANT OPTION)?", self._grant),
            (r"REVOKE (.+?) ON " + _TARGET + r" FROM " + _ACCOUNT, self._revoke),
            (r"DROP USER (IF EXISTS )?" + _ACCOUNT, self._drop),
            (r"FLUSH PRIVILEGES", lambda _user: ([], [])),
        ]

    def _require_admin(self, session_user, what):
        if not self.is_admin(session_user):
            raise SQLError(1227, f"Access denied; you need (at least one of) the {what} privilege(s) for this operation")

    def _count(self, _session_user, user, host=None):
        records = self.records(user).values()
        return [[sum(1 for r in records if host is None or r["host"] == host)]], ["count(*)"]

    def _hosts(self, _session_user, user):
        return [[r["host"]] for r in self.records(user).values()], ["Host"]

    def _auth(self, _session_user, user, host=None):
        rows = sorted({(r.get("plugin", NATIVE), r["auth"]) for r in self.records(user).values() if host is None or r["host"] == host})
        return [list(row) for row in rows], ["plugin", "auth"]

    def _stored_hash(self, _session_user, user, host):
        record = self.get(user, host)
        return ([[record["auth"] or None]] if record else []), ["hash"]

    def _hash(self, _session_user, password):
        return [[native_hash(password)]], ["hash"]

    def _existing(self, user, host):
        record = self.get(user, host)
        if record is None:
            raise SQLError(1396, f"Operation SHOW GRANTS failed for '{user}'@'{host}'")
        return record

    def _show_create(self, _session_user, user, host):
        record = self._existing(user, host)
        statement = (f"CREATE USER '{user}'@'{host}' IDENTIFIED WITH '{NATIVE}' AS '{record['auth']}' REQUIRE NONE "
                     "PASSWORD EXPIRE DEFAULT ACCOUNT UNLOCK PASSWORD HISTORY DEFAULT PASSWORD REUSE INTERVAL DEFAULT")
        return [[statement]], [f"CREATE USER for {user}@{host}"]

    def _show_grants(self, _session_user, user, host):
        record = self._existing(user, host)
        rows = []
        global_privs = record["privileges"].get("*.*") or ["USAGE"]
        option = " WITH GRANT OPTION" if "*.*" in record["grant_option"] else ""
        rows.append([f"GRANT {', '.join(global_privs)} ON *.* TO '{user}'@'{host}'{option}"])
        for target, privs in sorted(record["privileges"].items()):
            if target == "*.*" or not privs:
                continue
            db, table = _target(target)
            on = f"`{db}`." + ("*" if table == "*" else f"`{table}`")
            option = " WITH GRANT OPTION" if target in record["grant_option"] else ""
            rows.append([f"GRANT {', '.join(privs)} ON {on} TO '{user}'@'{host}'{option}"])
        return rows, [f"Grants for {user}@{host}"]

    def _create(self, session_user, if_not_exists, user, host, password=None, stored=None):
        self._require_admin(session_user, "CREATE USER")
        if self.get(user, host) is not None:
            if if_not_exists:
                return [], []
            raise SQLError(1396, f"Operation CREATE USER failed for '{user}'@'{host}'")
        auth = stored if stored is not None else native_hash(password or "")
        self.save({"user": user, "host": host, "plugin": NATIVE, "auth": auth, "privileges": {}, "grant_option": []})
        return [], []

    def _alter(self, session_user, user, host, password=None, stored=None):
        self._require_admin(session_user, "CREATE USER")
        record = self.get(user, host)
        if record is None:
            raise SQLError(1396, f"Operation ALTER USER failed for '{user}'@'{host}'")
        record["auth"] = stored if stored is not None else native_hash(password or "")
        self.save(record)
        return [], []

    def _stored(self, user, host, statement):
        record = self.get(user, host)
        if record is None:
            raise SQLError(1410 if statement == "GRANT" else 1141,
                           "You are not allowed to create a user with GRANT" if statement == "GRANT"
                           else f"There is no such grant defined for user '{user}' on host '{host}'")
        return record

    def _grant(self, session_user, privileges, target, user, host, with_option):
        self._require_admin(session_user, "GRANT OPTION")
        record = self._stored(user, host, "GRANT")
        db, table = _target(target)
        key = f"{db}.{table}"
        privs = [p for p in _privileges(privileges) if p != "USAGE"]
        current = record["privileges"].get(key, [])
        record["privileges"][key] = [ALL] if ALL in privs or ALL in current else sorted(set(current) | set(privs))
        if with_option and key not in record["grant_option"]:
            record["grant_option"].append(key)
        self.save(record)
        return [], []

    def _revoke(self, session_user, privileges, target, user, host):
        self._require_admin(session_user, "GRANT OPTION")
        record = self._stored(user, host, "REVOKE")
        db, table = _target(target)
        key = f"{db}.{table}"
        privs = _privileges(privileges)
        if "GRANT OPTION" in privs and key in record["grant_option"]:
            record["grant_option"].remove(key)
        privs = [p for p in privs if p != "GRANT OPTION"]
        current = record["privileges"].get(key, [])
        remaining = [] if ALL in privs else [p for p in current if p not in privs]
        if remaining:
            record["privileges"][key] = remaining
        else:
            record["privileges"].pop(key, None)
        self.save(record)
        return [], []

    def _drop(self, session_user, if_exists, user, host):
        self._require_admin(session_user, "CREATE USER")
        if self.get(user, host) is None:
            if if_exists:
                return [], []
            raise SQLError(1396, f"Operation DROP USER failed for '{user}'@'{host}'")
        self.delete(user, host)
        return [], []
