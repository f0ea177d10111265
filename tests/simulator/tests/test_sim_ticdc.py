"""TiCDC: captures and owner, readiness, and the v2 changefeed contract in both flavours."""

import boto3
import pytest

from tidbsim.testing import http_json, wait_until

FEED = "/api/v2/changefeeds"


def initialized(cdc, path=FEED):
    """Wait out the 'coordinator is not fully initialized' window."""
    wait_until(lambda: http_json("GET", cdc.url(path))[0] == 200, 10, "coordinator initialized")


@pytest.fixture(scope="module")
def new_cluster(module_sim):
    pd, _tikv = module_sim.pd_tikv()
    first = module_sim.cdc(pd, newarch=True)
    first.wait_ready()
    second = module_sim.cdc(pd, newarch=True)
    second.wait_ready()
    initialized(first)
    return pd, first, second


@pytest.fixture(scope="module")
def upstream(module_sim):
    """PD and TiKV shared by TiCDC clusters that differ by --cluster-id."""
    return module_sim.pd_tikv()[0]


@pytest.fixture(scope="module")
def classic(module_sim, upstream):
    cdc = module_sim.cdc(upstream, newarch=False, extra=["--cluster-id=classic"])
    cdc.wait_ready()
    initialized(cdc)
    return cdc


def test_captures_see_each_other_with_exactly_one_owner(new_cluster):
    _pd, first, second = new_cluster
    for cdc in (first, second):
        status, body = http_json("GET", cdc.url("/api/v2/captures"))
        assert status == 200 and body["total"] == 2
        assert sum(item["is_owner"] for item in body["items"]) == 1
        assert {item["address"] for item in body["items"]} == {f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"}
        status, info = http_json("GET", cdc.url("/status"))
        assert status == 200 and info["liveness"] == 0 and "cluster_id" in info
        assert http_json("GET", cdc.url("/api/v2/health")) == (200, {})
    owners = [http_json("GET", c.url("/api/v2/status"))[1]["is_owner"] for c in (first, second)]
    assert sorted(owners) == [False, True]


def test_changefeed_lifecycle_through_a_non_owner(new_cluster):
    _pd, first, second = new_cluster
    owner_first = http_json("GET", first.url("/status"))[1]["is_owner"]
    other = second if owner_first else first
    url = other.url(FEED)
    status, info = http_json("POST", url, {"changefeed_id": "life", "sink_uri": "blackhole://",
                                           "replica_config": {"sink": {"date_separator": "none"}}})
    assert status == 200 and info["state"] == "normal" and info["id"] == "life"
    assert info["config"]["sink"]["date_separator"] == "none"
    assert info["config"]["sink"]["file_index_width"] == 20  # omitted fields take defaults
    status, body = http_json("POST", url, {"changefeed_id": "life", "sink_uri": "blackhole://"})
    assert (status, body["error_code"]) == (400, "CDC:ErrChangeFeedAlreadyExists")
    assert body["error_msg"].startswith("[CDC:ErrChangeFeedAlreadyExists]changefeed already exists")
    status, body = http_json("PUT", f"{url}/life", {"sink_uri": "blackhole://"})
    assert (status, body["error_code"]) == (400, "CDC:ErrChangefeedUpdateRefused")
    assert "stopped or failed" in body["error_msg"]
    assert http_json("POST", f"{url}/life/pause") == (200, {})
    assert http_json("GET", f"{url}/life/status")[1]["state"] == "stopped"
    # Update replaces replica_config from the defaults: date_separator falls back to "day".
    status, info = http_json("PUT", f"{url}/life", {"replica_config": {"sink": {"protocol": "canal-json"}}})
    assert status == 200
    assert info["config"]["sink"]["date_separator"] == "day" and info["config"]["sink"]["protocol"] == "canal-json"
    # A no-op update is accepted by the new architecture.
    assert http_json("PUT", f"{url}/life", {"replica_config": {"sink": {"protocol": "canal-json"}}})[0] == 200
    assert http_json("POST", f"{url}/life/resume", b"") == (200, {})
    assert http_json("GET", f"{url}/life")[1]["state"] == "normal"
    listed = http_json("GET", url)[1]
    assert "life" in [item["id"] for item in listed["items"]]
    assert http_json("DELETE", f"{url}/life") == (200, {})
    assert http_json("DELETE", f"{url}/life") == (200, None)
    status, body = http_json("GET", f"{url}/life")
    assert (status, body["error_code"]) == (400, "CDC:ErrChangeFeedNotExists")


@pytest.mark.parametrize("body, code", [
    ({"changefeed_id": "bad_id", "sink_uri": "blackhole://"}, "CDC:ErrAPIInvalidParam"),
    ({"changefeed_id": "x" * 129, "sink_uri": "blackhole://"}, "CDC:ErrAPIInvalidParam"),
    ({"changefeed_id": "nosink"}, "CDC:ErrSinkURIInvalid"),
    ({"changefeed_id": "scheme", "sink_uri": "ftp://host/x"}, "CDC:ErrSinkURIInvalid"),
    ({"changefeed_id": "target", "sink_uri": "blackhole://", "start_ts": 0, "target_ts": 5}, "CDC:ErrTargetTsBeforeStartTs"),
    ({"changefeed_id": "gc", "sink_uri": "blackhole://", "start_ts": 1}, "CDC:ErrStartTsBeforeGC"),
    ({"changefeed_id": "sep", "sink_uri": "blackhole://", "replica_config": {"sink": {"date_separator": "week"}}}, "CDC:ErrSinkURIInvalid"),
    (b"{broken", "CDC:ErrAPIInvalidParam"),
])
def test_create_input_errors_are_400_with_the_code(new_cluster, body, code):
    status, reply = http_json("POST", new_cluster[1].url(FEED), body)
    assert status == 400 and reply["error_code"] == code and reply["error_msg"].startswith(f"[{code}]")


def test_classic_flavour_differences(classic):
    url = classic.url(FEED)
    assert "liveness" not in http_json("GET", classic.url("/status"))[1]
    assert http_json("POST", url, {"changefeed_id": "c1", "sink_uri": "blackhole://"})[0] == 200
    status, body = http_json("POST", url, {"changefeed_id": "c1", "sink_uri": "blackhole://"})
    assert (status, body["error_code"]) == (500, "CDC:ErrChangeFeedAlreadyExists")
    assert http_json("POST", f"{url}/c1/pause")[0] == 200
    status, body = http_json("PUT", f"{url}/c1", {"sink_uri": "blackhole://"})
    assert (status, body["error_code"]) == (400, "CDC:ErrChangefeedUpdateRefused")
    assert "the same with the old one" in body["error_msg"]
    status, body = http_json("POST", f"{url}/c1/resume", b"")
    assert (status, body["error_code"]) == (400, "CDC:ErrAPIInvalidParam")
    assert http_json("POST", f"{url}/c1/resume", {}) == (200, {})
    assert http_json("DELETE", f"{url}/c1") == (200, {})
    assert http_json("DELETE", f"{url}/c1") == (200, {})
    assert "namespace" in http_json("POST", url, {"changefeed_id": "c2", "sink_uri": "blackhole://"})[1]


def test_sink_uri_masking_keeps_s3_keys(new_cluster):
    url = new_cluster[1].url(FEED)
    sink = "kafka://user:hunter2@127.0.0.1:9092/topic?sasl-user=u&sasl-password=p4ss&protocol=canal-json"
    status, info = http_json("POST", url, {"changefeed_id": "masked", "sink_uri": sink})
    assert status == 200
    assert "hunter2" not in info["sink_uri"] and "p4ss" not in info["sink_uri"]
    assert info["sink_uri"] == "kafka://user:xxxxx@127.0.0.1:9092/topic?protocol=canal-json&sasl-password=xxxxx&sasl-user=u"
    http_json("DELETE", f"{url}/masked")


def test_s3_sink_is_verified_against_the_bucket(new_cluster, module_sim):
    minio = module_sim.minio(user="cdcuser", password="cdc-secret")
    minio.wait_ready()
    boto3.client("s3", endpoint_url=minio.url(), aws_access_key_id="cdcuser", aws_secret_access_key="cdc-secret",
                 region_name="us-east-1").create_bucket(Bucket="ticidefaultbucket")
    base = f"s3://ticidefaultbucket/tici_default_prefix/cdc?protocol=canal-json&endpoint={minio.url()}&access-key=cdcuser"
    url = new_cluster[1].url(FEED)
    status, body = http_json("POST", url, {"changefeed_id": "s3-bad", "sink_uri": base + "&secret-access-key=wrong"})
    assert (status, body["error_code"]) == (400, "CDC:ErrSinkURIInvalid") and "403" in body["error_msg"]
    assert "wrong" not in body["error_msg"] and "cdcuser" not in body["error_msg"]  # keys redacted in errors
    missing = base.replace("ticidefaultbucket", "nobucket") + "&secret-access-key=cdc-secret"
    status, body = http_json("POST", url, {"changefeed_id": "s3-none", "sink_uri": missing})
    assert (status, body["error_code"]) == (400, "CDC:ErrSinkURIInvalid") and "404" in body["error_msg"]
    status, info = http_json("POST", url, {"changefeed_id": "s3-ok", "sink_uri": base + "&secret-access-key=cdc-secret"})
    assert status == 200
    assert "secret-access-key=cdc-secret" in info["sink_uri"]  # TiCDC returns S3 keys in clear text


def test_changefeeds_survive_a_cdc_restart_and_failed_state_can_be_resumed(sim):
    pd, _tikv, cdc = sim.pd_tikv_cdc()
    initialized(cdc)
    assert http_json("POST", cdc.url(FEED), {"changefeed_id": "keep", "sink_uri": "blackhole://"})[0] == 200
    cdc.restart()
    cdc.wait_ready()
    initialized(cdc)
    assert http_json("GET", cdc.url(f"{FEED}/keep"))[1]["state"] == "normal"
    assert http_json("POST", cdc.url("/sim/changefeeds/keep/fail"), {})[0] == 200
    info = http_json("GET", cdc.url(f"{FEED}/keep"))[1]
    assert info["state"] == "failed" and info["error"]["code"] == "CDC:ErrSnapshotLostByGC"
    assert http_json("POST", cdc.url(f"{FEED}/keep/resume"), {})[0] == 200
    assert http_json("GET", cdc.url(f"{FEED}/keep"))[1]["state"] == "normal"
    assert pd.port


@pytest.mark.parametrize("newarch, status, code", [(True, 500, ""), (False, 503, "CDC:ErrServerIsNotReady")])
def test_early_requests_get_the_flavour_specific_retry_error(module_sim, upstream, newarch, status, code):
    cdc = module_sim.cdc(upstream, newarch=newarch, env={"TIDBSIM_CDC_INIT_DELAY": "1.5"}, extra=[f"--cluster-id=early-{newarch}"])
    cdc.wait_ready()
    reply = http_json("GET", cdc.url(FEED))
    assert reply[0] == status and reply[1]["error_code"] == code
    if newarch:
        assert reply[1]["error_msg"] == "coordinator is not fully initialized, wait a moment"
    initialized(cdc)


@pytest.mark.parametrize("how", ["flag=true", "short", "env", "config"])
def test_new_architecture_switches(module_sim, upstream, tmp_path, how):
    extra, env = [f"--cluster-id=switch-{how.replace('=', '-')}"], {}
    if how == "flag=true":
        extra.append("--newarch=true")
    elif how == "short":
        extra.append("-x")
    elif how == "env":
        env = {"TICDC_NEWARCH": "true"}
    else:
        config = tmp_path / "cdc.toml"
        config.write_text("newarch = true\n")
        extra.append(f"--config={config}")
    cdc = module_sim.cdc(upstream, newarch=False, env=env, extra=extra)
    cdc.wait_ready()
    assert http_json("GET", cdc.url("/status"))[1]["liveness"] == 0
