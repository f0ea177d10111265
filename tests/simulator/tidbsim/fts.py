"""Tables, full-text indexes, and the path a full-text query's rows take: TiDB, TiCDC's changefeed, S3,
the TiCI worker, and TiFlash.

Facts (../shared/reference/operations.md section 5; tici.md sections 6 and 8):
* DDL: ``ALTER TABLE t ADD FULLTEXT INDEX name (col) WITH PARSER standard`` (or ``CREATE FULLTEXT INDEX
  name ON t (col) WITH PARSER ...``); ``ALTER TABLE t DROP INDEX name``. DROP TABLE is not allowed on a
  table with a full-text index: "Drop the full-text index first" (pingcap/docs full-text-search-index.md).
* ``FTS_MATCH_WORD('q', col)`` in WHERE needs a full-text index on ``col``: "Full text search can only be
  used with a matching fulltext index" (pingcap/tidb pkg/planner/core/fts_resolve_index_test.go). Words
  of the query are ORed.
* TiDB hands TiCI no rows: TiCDC's changefeed writes them as canal-json to ``s3://<bucket>/<prefix>/cdc``
  (use-table-id-as-path), TiCI's worker reads ``<prefix>/cdc/<table_id>/<version>/CDC<20 digits>.json``
  and indexes them, and a query runs on TiFlash, whose reader node asks TiCI.

How the simulator plays it:
* Tables and rows live in PD's etcd, so every TiDB sees them; each insert is a row event.
* ADD FULLTEXT INDEX needs an elected TiCI meta (TiDB registers the index with it); without one it fails.
* The TiCDC coordinator writes, for each changefeed in state normal whose sink is s3://, the row events
  past its checkpoint as canal-json files, with the sink URI's own endpoint and keys (``export``).
* The TiCI worker, while a meta is elected, reads the files under its ``[s3]`` prefix it has not read,
  and keeps the indexed columns of tables that have a full-text index (``index_new_files``).
* A query answers from what the worker indexed, and only while a TiFlash store is Up in PD. When a link
  is broken the rows are simply not found: the real error is unknown, and silence is the less convenient.
"""

import json
import re
import time

from . import s3check
from .accounts import SQLError

ELECTION_PREFIX = "/tici/metaservice/election/"
DB_PREFIX = "/tidbsim/sql/db/"
TABLE_PREFIX = "/tidbsim/sql/table/"
EVENT_PREFIX = "/tidbsim/sql/events/"
NEXT_ID = "/tidbsim/sql/next-table-id"
DOC_PREFIX = "/tidbsim/tici/docs/"
READ_PREFIX = "/tidbsim/tici/read/"
SINK_PREFIX = "/tidbsim/cdc-sink/"
PARSERS = ("standard", "multilingual", "ngram")
FIRST_TABLE_ID = 100

_NAME = r"`?(\w+)`?"
_QNAME = r"(?:`?(\w+)`?\.)?`?(\w+)`?"


def words(text):
    """The standard parser's tokens: runs of letters and digits, lower-cased."""
    return set(re.findall(r"[0-9a-z]+", str(text or "").lower()))


def split_top(text, sep=","):
    """``text`` split at ``sep`` outside parentheses and quotes."""
    parts, depth, quote, start, i = [], 0, None, 0, 0
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == sep and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
        i += 1
    parts.append(text[start:].strip())
    return [part for part in parts if part]


def literal(token):
    """A SQL literal as Python: a quoted string (backslash escapes), a number, or None for NULL."""
    token = token.strip()
    if token.upper() == "NULL":
        return None
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"":
        return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "0": "\0"}.get(m.group(1), m.group(1)), token[1:-1])
    try:
        return int(token)
    except ValueError:
        try:
            return float(token)
        except ValueError as exc:
            raise SQLError(1064, f"You have an error in your SQL syntax near '{token[:40]}'") from exc


class Tables:
    """The SQL this module answers, over PD's etcd. ``execute`` returns (rows, columns) or None."""

    def __init__(self, etcd, accounts, tiflash_up):
        self.etcd = etcd
        self.accounts = accounts
        self.tiflash_up = tiflash_up  # () -> bool: a TiFlash store is Up in PD

    # ------------------------------------------------------------ storage

    def _get(self, key):
        value = self.etcd.get(key)
        return json.loads(value) if value else None

    def table(self, db, name):
        return self._get(f"{TABLE_PREFIX}{db}/{name}")

    def _save(self, db, name, record):
        self.etcd.put(f"{TABLE_PREFIX}{db}/{name}", json.dumps(record, sort_keys=True))

    def _new_id(self):
        while True:
            current = self.etcd.get(NEXT_ID)
            nxt = int(current or FIRST_TABLE_ID) + 1
            if current is None and self.etcd.put_if_absent(NEXT_ID, str(nxt)):
                return nxt
            if current is not None and self.etcd.compare_and_put(NEXT_ID, current, str(nxt)):
                return nxt

    # ------------------------------------------------------------ statements

    def execute(self, user, database, sql):
        text = " ".join(sql.split()).rstrip(";").strip()
        for pattern, handler in self._handlers():
            match = re.fullmatch(pattern, text, flags=re.IGNORECASE | re.DOTALL)
            if match:
                return handler(user, database, *match.groups())
        return None

    def _handlers(self):
        return [
            (r"CREATE DATABASE (IF NOT EXISTS )?" + _NAME, self._create_db),
            (r"DROP DATABASE (IF EXISTS )?" + _NAME, self._drop_db),
            (r"CREATE TABLE (IF NOT EXISTS )?" + _QNAME + r" ?\((.*)\)[^()]*", self._create_table),
            (r"ALTER TABLE " + _QNAME + r" ADD FULLTEXT (?:INDEX|KEY) " + _NAME + r" ?\(" + _NAME + r"\) WITH PARSER (\w+)",
             self._add_index),
            (r"CREATE FULLTEXT INDEX " + _NAME + r" ON " + _QNAME + r" ?\(" + _NAME + r"\) WITH PARSER (\w+)",
             lambda u, d, index, db, table, column, parser: self._add_index(u, d, db, table, index, column, parser)),
            (r"ALTER TABLE " + _QNAME + r" DROP (?:INDEX|KEY) " + _NAME, self._drop_index),
            (r"DROP TABLE (IF EXISTS )?" + _QNAME, self._drop_table),
            (r"INSERT INTO " + _QNAME + r" ?(?:\(([^)]*)\) ?)?VALUES ?(.*)", self._insert),
            (r"SELECT (.+?) FROM " + _QNAME + r" WHERE FTS_MATCH_WORD ?\( ?('(?:[^'\\]|\\.)*'|\"[^\"]*\") ?, ?" + _NAME
             + r" ?\)(?: LIMIT (\d+))?", self._search),
        ]

    def _database(self, user, db, current):
        db = db or current
        if not db:
            raise SQLError(1046, "No database selected")
        if not self.accounts.may_use_database(user, db):
            raise SQLError(1044, f"Access denied for user '{user}'@'%' to database '{db}'")
        return db

    def _existing_db(self, db):
        if self.etcd.get(DB_PREFIX + db) is None and db.lower() != "test":
            raise SQLError(1049, f"Unknown database '{db}'")

    def _existing_table(self, db, table):
        self._existing_db(db)
        record = self.table(db, table)
        if record is None:
            raise SQLError(1146, f"Table '{db}.{table}' doesn't exist")
        return record

    def _create_db(self, user, _current, if_not_exists, db):
        db = self._database(user, db, None)
        if not self.etcd.put_if_absent(DB_PREFIX + db, "{}") and not if_not_exists:
            raise SQLError(1007, f"Can't create database '{db}'; database exists")
        return [], []

    def _drop_db(self, user, _current, if_exists, db):
        db = self._database(user, db, None)
        if self.etcd.get(DB_PREFIX + db) is None:
            if if_exists:
                return [], []
            raise SQLError(1008, f"Can't drop database '{db}'; database doesn't exist")
        for key, value, _rev in self.etcd.get_prefix(f"{TABLE_PREFIX}{db}/"):
            if json.loads(value).get("fulltext"):
                raise SQLError(1105, f"table {key.rsplit('/', 1)[1]} has a full-text index: drop the full-text index first")
        for key, value, _rev in self.etcd.get_prefix(f"{TABLE_PREFIX}{db}/"):
            self._forget(json.loads(value))
            self.etcd.delete(key)
        self.etcd.delete(DB_PREFIX + db)
        return [], []

    def _create_table(self, user, current, if_not_exists, db, table, body):
        db = self._database(user, db, current)
        self._existing_db(db)
        columns, pk = [], []
        for part in split_top(body):
            head = part.split()[0].strip("`").upper()
            match = re.match(r"PRIMARY KEY ?\(([^)]*)\)", part, flags=re.IGNORECASE)
            if match:
                pk = [name.strip(" `") for name in match.group(1).split(",")]
            elif head in ("KEY", "INDEX", "UNIQUE", "CONSTRAINT", "FULLTEXT"):
                raise SQLError(1105, f"tidbsim does not implement this table element: {part[:60]}")
            else:
                columns.append(part.split()[0].strip("`"))
                if re.search(r"\bPRIMARY KEY\b", part, flags=re.IGNORECASE):
                    pk = [columns[-1]]
        if self.table(db, table) is not None:
            if if_not_exists:
                return [], []
            raise SQLError(1050, f"Table '{db}.{table}' already exists")
        self._save(db, table, {"id": self._new_id(), "db": db, "name": table, "columns": columns, "pk": pk or columns[:1],
                               "fulltext": {}})
        return [], []

    def _add_index(self, user, current, db, table, index, column, parser):
        db = self._database(user, db, current)
        record = self._existing_table(db, table)
        if column not in record["columns"]:
            raise SQLError(1072, f"Key column '{column}' doesn't exist in table")
        if parser.lower() not in PARSERS:
            raise SQLError(1105, f"unknown full-text parser {parser}")
        if index in record["fulltext"]:
            raise SQLError(1061, f"Duplicate key name '{index}'")
        # TiDB registers a full-text index with TiCI meta, which it finds through the election key.
        if not self.etcd.get_prefix(ELECTION_PREFIX):
            raise SQLError(1105, f"no TiCI meta service is registered under {ELECTION_PREFIX}: cannot add a full-text index")
        record["fulltext"][index] = {"column": column, "parser": parser.lower()}
        self._save(db, table, record)
        return [], []

    def _drop_index(self, user, current, db, table, index):
        db = self._database(user, db, current)
        record = self._existing_table(db, table)
        if index not in record["fulltext"]:
            raise SQLError(1091, f"Can't DROP '{index}'; check that column/key exists")
        del record["fulltext"][index]
        self._save(db, table, record)
        return [], []

    def _drop_table(self, user, current, if_exists, db, table):
        db = self._database(user, db, current)
        record = self.table(db, table)
        if record is None:
            if if_exists:
                return [], []
            raise SQLError(1051, f"Unknown table '{db}.{table}'")
        if record["fulltext"]:
            raise SQLError(1105, f"table {table} has a full-text index: drop the full-text index first")
        self._forget(record)
        self.etcd.delete(f"{TABLE_PREFIX}{db}/{table}")
        return [], []

    def _forget(self, record):
        for prefix in (EVENT_PREFIX, DOC_PREFIX):
            for key, _value, _rev in self.etcd.get_prefix(f"{prefix}{record['id']:010d}/"):
                self.etcd.delete(key)

    def _insert(self, user, current, db, table, names, values):
        db = self._database(user, db, current)
        record = self._existing_table(db, table)
        names = [name.strip(" `") for name in names.split(",")] if names else record["columns"]
        unknown = [name for name in names if name not in record["columns"]]
        if unknown:
            raise SQLError(1054, f"Unknown column '{unknown[0]}' in 'field list'")
        tuples = split_top(values)
        for item in tuples:
            if not (item.startswith("(") and item.endswith(")")):
                raise SQLError(1064, f"You have an error in your SQL syntax near '{item[:40]}'")
            cells = [literal(cell) for cell in split_top(item[1:-1])]
            if len(cells) != len(names):
                raise SQLError(1136, "Column count doesn't match value count at row 1")
            data = dict(zip(names, cells))
            # A row event: the commit ts orders it, as TiCDC reads rows in commit order.
            commit_ts = time.time_ns()
            self.etcd.put(f"{EVENT_PREFIX}{record['id']:010d}/{commit_ts:020d}",
                          json.dumps({"type": "INSERT", "data": {k: None if v is None else str(v) for k, v in data.items()},
                                      "commit_ts": commit_ts}))
        return [], []

    def _search(self, user, current, columns, db, table, query, column, limit):
        db = self._database(user, db, current)
        record = self._existing_table(db, table)
        if not any(index["column"] == column for index in record["fulltext"].values()):
            raise SQLError(1105, "Full text search can only be used with a matching fulltext index")
        wanted = words(literal(query))
        found = []
        if self.tiflash_up():
            for _key, value, _rev in self.etcd.get_prefix(f"{DOC_PREFIX}{record['id']:010d}/"):
                doc = json.loads(value)
                if wanted & words(doc.get(column)):
                    found.append(doc)
        names = record["columns"] if columns.strip() == "*" else [name.strip(" `") for name in columns.split(",")]
        if [name.upper() for name in names] == ["COUNT(*)"]:
            return [[len(found)]], ["count(*)"]
        unknown = [name for name in names if name not in record["columns"]]
        if unknown:
            raise SQLError(1054, f"Unknown column '{unknown[0]}' in 'field list'")
        rows = [[doc.get(name) for name in names] for doc in found]
        return rows[:int(limit)] if limit else rows, names


# ---------------------------------------------------------------- TiCDC: the S3 sink

def parse_sink(uri):
    """s3://bucket/path?endpoint=..&access-key=..&secret-access-key=..: (endpoint, bucket, path, key, secret, region), or None."""
    from urllib.parse import parse_qs, urlsplit  # pylint: disable=import-outside-toplevel
    parts = urlsplit(uri)
    if parts.scheme != "s3":
        return None
    query = dict((k, v[0]) for k, v in parse_qs(parts.query).items())
    return (query.get("endpoint"), parts.netloc, parts.path.strip("/"), query.get("access-key"), query.get("secret-access-key"),
            query.get("region", "us-east-1"))


def _client(endpoint, key, secret, region):
    return s3check.client(endpoint, key, secret, region, True, 3.0)


def export(etcd, feed_key, sink_uri, log):
    """Write the row events past this changefeed's checkpoint to its S3 sink as canal-json; returns the count."""
    sink = parse_sink(sink_uri)
    if not sink:
        return 0
    endpoint, bucket, path, key, secret, region = sink
    # The checkpoint: the last event key written, per table (keys order the events within a table only).
    checkpoint_key = SINK_PREFIX + feed_key
    done = json.loads(etcd.get(checkpoint_key) or "{}")
    tables = dict((json.loads(v)["id"], json.loads(v)) for _k, v, _r in etcd.get_prefix(TABLE_PREFIX))
    pending = {}
    for event_key, value, _rev in etcd.get_prefix(EVENT_PREFIX):
        table_id = event_key[len(EVENT_PREFIX):].split("/")[0]
        if event_key > done.get(table_id, ""):
            pending.setdefault(table_id, []).append((event_key, json.loads(value)))
    if not pending:
        return 0
    client = _client(endpoint, key, secret, region)
    written = 0
    for table_id, events in sorted(pending.items()):
        record = tables.get(int(table_id))
        done[table_id] = events[-1][0]
        if record is None:  # dropped since: nothing to write
            etcd.put(checkpoint_key, json.dumps(done, sort_keys=True))
            continue
        lines = [json.dumps({"id": 0, "database": record["db"], "table": record["name"], "pkNames": record["pk"], "isDdl": False,
                             "type": event["type"], "es": event["commit_ts"] // 1000000, "ts": int(time.time() * 1000), "sql": "",
                             "data": [event["data"]], "old": None, "_tidb": {"commitTs": event["commit_ts"]}})
                 for _event_key, event in events]
        name = f"{path}/{int(table_id)}/1/CDC{events[0][1]['commit_ts']:020d}.json"
        client.put_object(Bucket=bucket, Key=name, Body=("\n".join(lines) + "\n").encode())
        written += len(events)
        etcd.put(checkpoint_key, json.dumps(done, sort_keys=True))
    log(f"sink: {written} row events to s3://{bucket}/{path}")
    return written


# ---------------------------------------------------------------- TiCI worker: the index

def index_new_files(etcd, s3, log):
    """Read the canal-json files under ``<prefix>/cdc/`` not read yet and index the rows of tables with a
    full-text index; returns how many rows were indexed."""
    client = _client(s3["endpoint"], s3["access_key"], s3["secret_key"], s3["region"])
    prefix = (s3["prefix"].strip("/") + "/cdc/").lstrip("/")
    tables = dict((json.loads(v)["id"], json.loads(v)) for _k, v, _r in etcd.get_prefix(TABLE_PREFIX))
    indexed = 0
    token = None
    while True:
        page = client.list_objects_v2(Bucket=s3["bucket"], Prefix=prefix, **({"ContinuationToken": token} if token else {}))
        for item in page.get("Contents", []):
            marker = READ_PREFIX + item["Key"]
            if etcd.get(marker) is not None:
                continue
            table_id = int(item["Key"][len(prefix):].split("/")[0])
            record = tables.get(table_id)
            if record is None or not record["fulltext"]:
                continue  # read again once the table has an index
            body = client.get_object(Bucket=s3["bucket"], Key=item["Key"])["Body"].read().decode()
            for line in filter(None, body.splitlines()):
                message = json.loads(line)
                for row in message.get("data") or []:
                    pk = "/".join(str(row.get(col)) for col in record["pk"])
                    etcd.put(f"{DOC_PREFIX}{table_id:010d}/{pk}", json.dumps(row))
                    indexed += 1
            etcd.put(marker, "1")
        if not page.get("IsTruncated"):
            break
        token = page.get("NextContinuationToken")
    if indexed:
        log(f"indexed {indexed} rows")
    return indexed
