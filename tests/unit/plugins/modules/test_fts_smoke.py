# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""Full-text search through the simulated TiCI path (tests/simulator/tidbsim/fts.py, as local processes): rows
inserted in TiDB are found by fts_match_word only after TiCDC's changefeed wrote them to S3 and the TiCI worker
indexed them, while TiFlash is Up; the module tidbops.cluster.fts_smoke passes on it, and fails naming the
changefeed when it is paused."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from ansible_collections.tidbops.cluster.plugins.modules import fts_smoke

boto3 = pytest.importorskip('boto3')
pymysql = pytest.importorskip('pymysql')
testing = pytest.importorskip('tidbsim.testing')

S3_USER, S3_SECRET = "tici", "tici-secret"
FEED = "tici"


@pytest.fixture(scope="module")
def module_sim(tmp_path_factory):
    with testing.Sim(tmp_path_factory.mktemp("sim")) as sim:
        yield sim


@pytest.fixture(scope="module")
def fts(module_sim):
    minio = module_sim.minio(user=S3_USER, password=S3_SECRET)
    pd, _tikv, tidb = module_sim.pd_tikv_tidb()
    cdc = module_sim.cdc(pd, newarch=True)
    minio.wait_ready()
    boto3.client("s3", endpoint_url=minio.url(), aws_access_key_id=S3_USER, aws_secret_access_key=S3_SECRET,
                 region_name="us-east-1").create_bucket(Bucket="ticidefaultbucket")
    s3 = (f'[s3]\nendpoint = "{minio.url()}"\nbucket = "ticidefaultbucket"\nprefix = "tici_default_prefix"\n'
          f'region = "us-east-1"\naccess-key = "{S3_USER}"\nsecret-key = "{S3_SECRET}"\nuse-path-style = true\n')
    meta = module_sim.tici("meta", pd, f'[tidb-server]\ndsns = ["mysql://root@127.0.0.1:{tidb.port}"]\n' + s3)
    worker = module_sim.tici("worker", pd, s3)
    assert testing.http_json("POST", pd.url("/pd/api/v1/config/replicate"), {"enable-placement-rules": "true"})[0] == 200
    service, proxy, status = testing.free_ports(3)
    flash = module_sim.tiflash(f'listen_host = "127.0.0.1"\npath = "{{data_dir}}"\n[flash]\nservice_addr = "127.0.0.1:{service}"\n'
                               f'[flash.proxy]\naddr = "127.0.0.1:{proxy}"\nstatus-addr = "127.0.0.1:{status}"\n'
                               f'[raft]\npd_addr = "127.0.0.1:{pd.port}"\n')
    module_sim.wait_ready(cdc, meta, worker, flash)
    sink = (f"s3://ticidefaultbucket/tici_default_prefix/cdc?protocol=canal-json&enable-tidb-extension=true"
            f"&endpoint={quote(minio.url(), safe='')}&access-key={S3_USER}&secret-access-key={S3_SECRET}&force-path-style=true")
    create = {"changefeed_id": FEED, "sink_uri": sink}
    testing.wait_until(lambda: testing.http_json("POST", cdc.url("/api/v2/changefeeds"), create)[0] == 200, 30, "the changefeed")
    return {"pd": pd, "tidb": tidb, "cdc": cdc, "worker": worker, "flash": flash}


def sql(tidb, *statements):
    connection = pymysql.connect(host="127.0.0.1", port=tidb.port, user="root", password="", autocommit=True)
    try:
        with connection.cursor() as cursor:
            rows = None
            for statement in statements:
                cursor.execute(statement)
                rows = cursor.fetchall()
            return rows
    finally:
        connection.close()


def found(tidb, word):
    return sorted(row[0] for row in sql(tidb, f"SELECT id FROM fts.t WHERE fts_match_word('{word}', body)"))


def test_rows_are_found_only_through_the_whole_path(fts):
    tidb, cdc = fts["tidb"], fts["cdc"]
    sql(tidb, "CREATE DATABASE fts", "CREATE TABLE fts.t (id VARCHAR(10), body TEXT, PRIMARY KEY (id) CLUSTERED)")
    with pytest.raises(pymysql.MySQLError, match="Full text search can only be used with a matching fulltext index"):
        found(tidb, "apple")
    sql(tidb, "ALTER TABLE fts.t ADD FULLTEXT INDEX ft (body) WITH PARSER standard",
        "INSERT INTO fts.t VALUES ('1', 'An apple a day'), ('2', 'pears only'), ('3', 'APPLE pie')")
    testing.wait_until(lambda: found(tidb, "apple") == ["1", "3"], 20, "the rows through changefeed, S3 and TiCI")
    assert found(tidb, "pears apple") == ["1", "2", "3"]  # words are ORed

    # A paused changefeed carries nothing: the new row is not found until it resumes.
    assert testing.http_json("POST", cdc.url(f"/api/v2/changefeeds/{FEED}/pause"), {})[0] == 200
    sql(tidb, "INSERT INTO fts.t VALUES ('4', 'apple again')")
    with pytest.raises(TimeoutError):
        testing.wait_until(lambda: found(tidb, "apple") == ["1", "3", "4"], 3, "a row while paused")
    assert testing.http_json("POST", cdc.url(f"/api/v2/changefeeds/{FEED}/resume"), {})[0] == 200
    testing.wait_until(lambda: found(tidb, "apple") == ["1", "3", "4"], 20, "the row after resume")

    with pytest.raises(pymysql.MySQLError, match="drop the full-text index first"):
        sql(tidb, "DROP TABLE fts.t")
    sql(tidb, "ALTER TABLE fts.t DROP INDEX ft", "DROP TABLE fts.t", "DROP DATABASE fts")
    with pytest.raises(pymysql.MySQLError, match="Unknown database 'fts'"):
        sql(tidb, "INSERT INTO fts.t VALUES ('5', 'x')")


def test_each_table_keeps_its_own_place_in_the_changefeed(fts):
    """Rows of an older table, inserted after a newer table's, still travel."""
    tidb = fts["tidb"]
    sql(tidb, "CREATE DATABASE two", "CREATE TABLE two.a (id VARCHAR(10), body TEXT, PRIMARY KEY (id))",
        "CREATE TABLE two.b (id VARCHAR(10), body TEXT, PRIMARY KEY (id))",
        "ALTER TABLE two.a ADD FULLTEXT INDEX fa (body) WITH PARSER standard",
        "ALTER TABLE two.b ADD FULLTEXT INDEX fb (body) WITH PARSER standard")

    def search(table):
        return sorted(row[0] for row in sql(tidb, f"SELECT id FROM two.{table} WHERE fts_match_word('kiwi', body)"))
    sql(tidb, "INSERT INTO two.b VALUES ('1', 'kiwi')")
    testing.wait_until(lambda: search("b") == ["1"], 20, "table b's row")
    sql(tidb, "INSERT INTO two.a VALUES ('1', 'kiwi')")
    testing.wait_until(lambda: search("a") == ["1"], 20, "table a's row, written after b's")
    sql(tidb, "ALTER TABLE two.a DROP INDEX fa", "ALTER TABLE two.b DROP INDEX fb", "DROP DATABASE two")


def test_the_smoke_module_passes_and_names_a_paused_changefeed(fts, run_module):
    links = {"changefeed": {"endpoints": [fts["cdc"].url()], "id": FEED},
             "tici_worker_endpoints": [fts["worker"].url(port=fts["worker"].status_port)], "pd_endpoint": fts["pd"].url()}
    args = {"login_host": "127.0.0.1", "login_port": fts["tidb"].port, "timeout": 30, "links": links}
    passed = run_module(fts_smoke, args)
    assert passed.get("failed") is not True, passed.get("msg")
    assert passed["changed"] is False and passed["found"] == ["1", "2"] and passed["word"].startswith("tidbops")
    assert run_module(fts_smoke, args, check_mode=True)["skipped"] is True
    assert testing.http_json("POST", fts["cdc"].url(f"/api/v2/changefeeds/{FEED}/pause"), {})[0] == 200
    try:
        failed = run_module(fts_smoke, dict(args, timeout=4))
    finally:
        assert testing.http_json("POST", fts["cdc"].url(f"/api/v2/changefeeds/{FEED}/resume"), {})[0] == 200
    assert failed["failed"] is True
    assert f"Broken: changefeed {FEED} is stopped, not normal" in failed["msg"], failed["msg"]
    assert "the last query found []" in failed["msg"]
    # It cleaned up after itself: the scratch database is gone, and a new run passes.
    with pytest.raises(pymysql.MySQLError, match="Unknown database"):
        sql(fts["tidb"], "INSERT INTO tidbops_smoke.fts_smoke VALUES ('1', 'x')")
    assert run_module(fts_smoke, args).get("failed") is not True
