"""TiDB: /status contract and the MySQL protocol."""

import json

import pymysql
import pytest

from tidbsim.testing import http_get, wait_until


def test_status_is_500_empty_until_an_up_tikv_then_200_json(sim):
    pd = sim.pd()
    tidb = sim.tidb(pd)
    pd.wait_ready()
    wait_until(lambda: http_get(tidb.url("/status", tidb.status_port))[0] is not None, 10, "status port")
    assert http_get(tidb.url("/status", tidb.status_port)) == (500, b"")
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(host="127.0.0.1", port=tidb.port, user="root", connect_timeout=1)
    sim.tikv(pd)
    tidb.wait_ready()
    status, raw = http_get(tidb.url("/status", tidb.status_port))
    body = json.loads(raw)
    assert status == 200 and body["connections"] == 0
    assert body["version"].startswith("8.0.11-TiDB-v") and "tidbsim" in body["version"]
    assert body["status"]["init_stats_percentage"] == 100 and body["git_hash"]


def test_mysql_protocol_queries_and_accounts(sim):
    env = {"TIDBSIM_TIDB_USERS": "tici:p@ss:word"}
    pd, _tikv = sim.pd_tikv(env=env)
    tidb = sim.tidb(pd, env=env)
    tidb.wait_ready()
    conn = pymysql.connect(host="127.0.0.1", port=tidb.port, user="root", password="")
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchall() == ((1,),)
        cursor.execute("SELECT VERSION()")
        assert cursor.fetchone()[0].startswith("8.0.11-TiDB-")
        cursor.execute("SELECT tidb_version()")
        assert cursor.fetchone()[0].startswith("Release Version: v")
        with pytest.raises(pymysql.err.MySQLError):
            cursor.execute("CREATE TABLE t (a INT)")
    conn.close()
    pymysql.connect(host="127.0.0.1", port=tidb.port, user="tici", password="p@ss:word").close()
    with pytest.raises(pymysql.err.OperationalError) as denied:
        pymysql.connect(host="127.0.0.1", port=tidb.port, user="tici", password="wrong")
    assert denied.value.args[0] == 1045
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(host="127.0.0.1", port=tidb.port, user="nobody", password="")


def test_accounts_made_with_sql_are_shared_persist_and_enforce_privileges(sim):
    """CREATE USER / GRANT as community.mysql.mysql_user sends them; the account is seen by every
    TiDB (kept in PD's etcd); only an admin manages accounts; DDL needs a grant on the database."""
    pd, _tikv = sim.pd_tikv()
    first, second = sim.tidb(pd), sim.tidb(pd)
    first.wait_ready()
    second.wait_ready()
    root = pymysql.connect(host="127.0.0.1", port=first.port, user="root", password="")
    with root.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM mysql.user WHERE user = %s AND host = %s", ("tici", "%"))
        assert cursor.fetchone() == (0,)
        cursor.execute("CREATE USER %s@%s IDENTIFIED BY %s", ("tici", "%", "Pw+/=x'1"))
        cursor.execute("GRANT ALL PRIVILEGES ON `tici`.* TO %s@%s", ("tici", "%"))
        cursor.execute("SHOW GRANTS FOR %s@%s", ("tici", "%"))
        assert cursor.fetchall() == (("GRANT USAGE ON *.* TO 'tici'@'%'",), ("GRANT ALL PRIVILEGES ON `tici`.* TO 'tici'@'%'",))
        cursor.execute("select plugin, authentication_string as auth from mysql.user where user=%(u)s and host=%(h)s "
                       "group by plugin, authentication_string", {"u": "tici", "h": "%"})
        stored = cursor.fetchone()
        cursor.execute("SELECT CONCAT('*', UCASE(SHA1(UNHEX(SHA1(%s)))))", ("Pw+/=x'1",))
        assert stored == ("mysql_native_password", cursor.fetchone()[0])
        with pytest.raises(pymysql.err.MySQLError) as exists:
            cursor.execute("CREATE USER %s@%s IDENTIFIED BY %s", ("tici", "%", "other"))
        assert exists.value.args[0] == 1396
    root.close()
    # The other TiDB knows the account; the account manages its own database only.
    tici = pymysql.connect(host="127.0.0.1", port=second.port, user="tici", password="Pw+/=x'1")
    with tici.cursor() as cursor:
        cursor.execute("CREATE DATABASE IF NOT EXISTS tici")
        cursor.execute("CREATE TABLE IF NOT EXISTS tici.tici_index_meta (id BIGINT PRIMARY KEY, meta JSON)")
        with pytest.raises(pymysql.err.MySQLError) as denied:
            cursor.execute("CREATE DATABASE IF NOT EXISTS other")
        assert denied.value.args[0] == 1044
        with pytest.raises(pymysql.err.MySQLError) as denied:
            cursor.execute("CREATE USER %s@%s IDENTIFIED BY %s", ("x", "%", "y"))
        assert denied.value.args[0] == 1227
    tici.close()
    with pytest.raises(pymysql.err.OperationalError) as wrong:
        pymysql.connect(host="127.0.0.1", port=second.port, user="tici", password="wrong")
    assert wrong.value.args[0] == 1045
    # A restarted TiDB still knows it.
    first.restart()
    first.wait_ready()
    pymysql.connect(host="127.0.0.1", port=first.port, user="tici", password="Pw+/=x'1").close()
