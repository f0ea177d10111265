"""TiCI meta and worker gating, and TiFlash registration with placement rules and the TiCI reader."""

import socket
import time

import boto3
import pytest

from tidbsim.testing import free_ports, http_get, http_json, wait_until


@pytest.fixture(scope="module")
def stack(module_sim):
    """PD, TiKV, TiDB and MinIO with the bucket; shared by this module's tests."""
    minio = module_sim.minio(user="tici", password="tici-secret")
    pd, _tikv, tidb = module_sim.pd_tikv_tidb()
    minio.wait_ready()
    boto3.client("s3", endpoint_url=minio.url(), aws_access_key_id="tici", aws_secret_access_key="tici-secret",
                 region_name="us-east-1").create_bucket(Bucket="ticidefaultbucket")
    s3 = (f'endpoint = "{minio.url()}"\nbucket = "ticidefaultbucket"\nprefix = "tici_default_prefix"\n'
          'region = "us-east-1"\naccess-key = "tici"\nsecret-key = "tici-secret"\nuse-path-style = true\n')
    return {"pd": pd, "tidb": tidb, "minio": minio, "s3": s3}


def election_keys(pd):
    import base64  # pylint: disable=import-outside-toplevel
    prefix = "/tici/metaservice/election/"
    body = http_json("POST", pd.url("/v3/kv/range"), {"key": base64.b64encode(prefix.encode()).decode(),
                                                      "range_end": base64.b64encode(b"/tici/metaservice/election0").decode()})[1]
    return [base64.b64decode(kv["value"]).decode() for kv in body.get("kvs", [])]


def test_meta_waits_for_tidb_then_leads_and_worker_follows(module_sim, stack):
    pd = stack["pd"]
    (dead_port,) = free_ports(1)
    worker = module_sim.tici("worker", pd, "[s3]\n" + stack["s3"].replace("access-key", "access_key"))
    meta = module_sim.tici("meta", pd, f'[tidb-server]\ndsns = ["mysql://root@127.0.0.1:{dead_port}"]\n[s3]\n' + stack["s3"],
                           extra=[f"--tidb-addr=mysql://root@127.0.0.1:{dead_port}"])
    # /status answers 200 as soon as the process serves; the election waits for TiDB.
    meta.wait_ready()
    worker.wait_ready()
    assert http_get(meta.url("/status", meta.status_port))[0] == 200
    assert http_get(worker.url("/status", worker.status_port))[0] == 200
    wait_until(lambda: any("TiDB is not reachable" in line for line in meta.stderr_lines), 10, "meta's complaint")
    assert election_keys(pd) == []
    assert http_json("GET", meta.url("/status", meta.status_port))[1]["is_leader"] is False
    meta.stop()
    good = module_sim.tici("meta", pd, f'[tidb_server]\ndsns = ["mysql://root@127.0.0.1:{stack["tidb"].port}"]\n')
    good.wait_ready()
    wait_until(lambda: election_keys(pd) == [f"127.0.0.1:{good.service_port}"], 10, "the election key")
    status, body = http_json("GET", good.url("/status", good.status_port))
    assert status == 200 and body["is_leader"] is True
    socket.create_connection(("127.0.0.1", good.service_port), timeout=2).close()
    wait_until(lambda: http_json("GET", worker.url("/status", worker.status_port))[1]["meta_leader"] == f"127.0.0.1:{good.service_port}",
               10, "the worker to see the leader")


def test_worker_with_wrong_s3_keys_says_so_but_serves(module_sim, stack):
    meta = module_sim.tici("meta", stack["pd"], "", extra=[f"--tidb-addr=mysql://root@127.0.0.1:{stack['tidb'].port}"])
    meta.wait_ready()
    worker = module_sim.tici("worker", stack["pd"], "[s3]\n" + stack["s3"].replace("tici-secret", "bad-secret"),
                             env={"TIDBSIM_TICI_WORKER_START_DELAY": "0"})
    wait_until(lambda: any("S3 is not usable" in line for line in worker.stderr_lines), 10, "S3 complaint")
    status, body = http_json("GET", worker.url("/status", worker.status_port))
    assert status == 200 and "S3 is not usable" in body["problem"]
    assert any("403" in line for line in worker.stderr_lines)


@pytest.mark.parametrize("switch", ["TIDBSIM_NEVER_READY", "TIDBSIM_START_DELAY"])
def test_fault_switches_hold_tici_back(module_sim, stack, switch):
    env = {switch: "1" if switch == "TIDBSIM_NEVER_READY" else "3"}
    extra = [f"--tidb-addr=mysql://root@127.0.0.1:{stack['tidb'].port}", "--advertise-host=meta-held-back"]
    meta = module_sim.tici("meta", stack["pd"], "", env=env, extra=extra)
    worker = module_sim.tici("worker", stack["pd"], "[s3]\n" + stack["s3"], env=env)
    for proc in (meta, worker):
        wait_until(lambda proc=proc: http_get(proc.url("/status", proc.status_port))[0] is not None, 10, "status port")
        assert http_get(proc.url("/status", proc.status_port))[0] == 503
    time.sleep(1.5)
    assert not any(key.startswith("meta-held-back:") for key in election_keys(stack["pd"]))
    assert http_get(worker.url("/status", worker.status_port))[0] == 503 and worker.ready_line is None
    if switch == "TIDBSIM_START_DELAY":
        meta.wait_ready()
        worker.wait_ready()
        assert http_get(worker.url("/status", worker.status_port))[0] == 200
    meta.stop()
    worker.stop()


def tiflash_config(pd, ports, tici_s3=None):
    service, proxy, status, reader = ports
    text = (f'listen_host = "127.0.0.1"\npath = "{{data_dir}}"\n[flash]\nservice_addr = "127.0.0.1:{service}"\n'
            f'[flash.proxy]\naddr = "127.0.0.1:{proxy}"\nadvertise-addr = "127.0.0.1:{proxy}"\n'
            f'status-addr = "127.0.0.1:{status}"\nadvertise-status-addr = "127.0.0.1:{status}"\n'
            f'[raft]\npd_addr = "127.0.0.1:{pd.port}"\n')
    if tici_s3:
        text += f'[tici.reader_node]\naddr = "127.0.0.1:{reader}"\nadvertise_addr = "127.0.0.1:{reader}"\n[tici.s3]\n{tici_s3}'
    return text


def test_tiflash_registers_only_with_placement_rules_and_opens_the_reader(module_sim, stack):
    pd = stack["pd"]
    ports = free_ports(4)
    replicate = pd.url("/pd/api/v1/config/replicate")
    assert http_json("POST", replicate, {"enable-placement-rules": "false"})[0] == 200
    tiflash = module_sim.tiflash(tiflash_config(pd, ports, stack["s3"]))
    status_url = f"http://127.0.0.1:{ports[2]}/tiflash/store-status"
    wait_until(lambda: any("placement rules are disabled" in line for line in tiflash.stderr_lines), 10, "refusal")
    assert http_get(status_url) == (200, b"Idle")
    assert http_get(f"http://127.0.0.1:{ports[2]}/tiflash/readyz")[0] == 500
    assert all(s["store"]["address"] != f"127.0.0.1:{ports[0]}" for s in http_json("GET", pd.url("/pd/api/v1/stores"))[1]["stores"])
    assert http_json("POST", replicate, {"enable-placement-rules": "true"})[0] == 200
    tiflash.wait_ready()
    assert http_get(status_url) == (200, b"Running")
    store = next(s["store"] for s in http_json("GET", pd.url("/pd/api/v1/stores"))[1]["stores"]
                 if s["store"]["address"] == f"127.0.0.1:{ports[0]}")
    assert store["labels"] == [{"key": "engine", "value": "tiflash"}] and store["state_name"] == "Up"
    assert store["peer_address"] == f"127.0.0.1:{ports[1]}" and store["status_address"] == f"127.0.0.1:{ports[2]}"
    socket.create_connection(("127.0.0.1", ports[3]), timeout=2).close()
    socket.create_connection(("127.0.0.1", ports[0]), timeout=2).close()


def test_tiflash_overrides_after_double_dash_and_bad_bucket(module_sim, stack):
    pd = stack["pd"]
    ports = free_ports(4)
    config = tiflash_config(pd, ports, stack["s3"].replace('bucket = "ticidefaultbucket"', 'bucket = "missing"'))
    (other,) = free_ports(1)
    tiflash = module_sim.tiflash(config, extra=[f"--flash.proxy.status-addr=127.0.0.1:{other}"])
    wait_until(lambda: any("TiCI reader cannot use S3" in line for line in tiflash.stderr_lines), 10, "bucket complaint")
    assert http_get(f"http://127.0.0.1:{other}/tiflash/store-status") == (200, b"Idle")
    assert http_get(f"http://127.0.0.1:{ports[2]}/tiflash/store-status")[0] is None


def test_tiflash_binds_exactly_its_service_and_metrics_addresses(module_sim, stack):
    pd = stack["pd"]
    ports = free_ports(4)
    # listen_host 0.0.0.0 serves the metrics everywhere, but the flash service binds exactly flash.service_addr.
    tiflash = module_sim.tiflash(tiflash_config(pd, ports).replace('listen_host = "127.0.0.1"', 'listen_host = "0.0.0.0"'))
    tiflash.wait_ready()
    socket.create_connection(("127.0.0.1", ports[0]), timeout=2).close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", ports[0]), timeout=2).close()
    assert http_get(f"http://127.0.0.2:{tiflash.metrics_port}/metrics")[0] == 200
    by_name = module_sim.tiflash(tiflash_config(pd, free_ports(4)).replace('service_addr = "127.0.0.1:', 'service_addr = "localhost:'))
    by_name.wait_ready()


def test_tiflash_exits_when_its_service_address_is_not_local(module_sim, stack):
    ports = free_ports(4)
    config = tiflash_config(stack["pd"], ports).replace(f'service_addr = "127.0.0.1:{ports[0]}"', f'service_addr = "192.0.2.1:{ports[0]}"')
    tiflash = module_sim.tiflash(config)
    assert tiflash.wait_exit(20) != 0
    assert ("Exception happens when start grpc server, the flash.service_addr may be invalid,"
            f" flash.service_addr is 192.0.2.1:{ports[0]}") in tiflash.output
