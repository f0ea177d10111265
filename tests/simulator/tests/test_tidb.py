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
