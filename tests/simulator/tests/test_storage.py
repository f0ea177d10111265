"""TiKV and the TiFlash proxy at start: the open-files check and the reserved space, as the real ones do them."""

import os
import resource

import pytest

from tidbsim import common, storage
from tidbsim.testing import DEFAULT_TIKV_CONFIG, free_ports, http_get, http_json, wait_until

MIB = 1 << 20


# ---------------------------------------------------------------- formulas, in process

@pytest.mark.parametrize("config, titan_default, expect", [
    ({}, True, 1000 + 2 * 40960 + 40960),                                    # a new TiKV: Titan on
    ({"rocksdb": {"titan": {"enabled": False}}}, True, 1000 + 40960 + 40960),
    ({"rocksdb": {"max-open-files": 256}, "raftdb": {"max-open-files": 256}}, True, 1768),  # tidb-operator's TiCI example
    ({}, False, 82920),                                                      # the proxy: Titan only when set
    ({"rocksdb": {"titan": {"enabled": True}}}, False, 1000 + 2 * 40960 + 40960),
])
def test_expected_open_files(config, titan_default, expect):
    assert storage.expected_open_fds(config, titan_default) == expect


def test_titan_stays_off_for_tikv_with_ttl():
    assert storage.tikv_titan_default({"storage": {"enable-ttl": True}}) is False
    assert storage.tikv_titan_default({}) is True


def test_check_max_open_fds_sets_exactly_the_expectation(monkeypatch):
    calls = []
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (1024, 4096))
    monkeypatch.setattr(resource, "setrlimit", lambda _which, limits: calls.append(limits))
    storage.check_max_open_fds(1000, print)
    assert not calls  # enough already
    storage.check_max_open_fds(2000, print)
    storage.check_max_open_fds(5000, print)
    assert calls == [(2000, 4096), (5000, 5000)]

    def refuse(_which, _limits):
        raise ValueError("not allowed to raise maximum limit")
    monkeypatch.setattr(resource, "setrlimit", refuse)
    with pytest.raises(common.UsageError) as error:
        storage.check_max_open_fds(123880, print)
    assert str(error.value).endswith("the maximum number of open file descriptors is too small, got 1024,"
                                     " expect greater or equal to 123880")
    assert error.value.code != 0


def test_reserved_space_and_disk_status():
    gib = 1 << 30
    assert storage.reserved_space(1000 * gib, 0) == 0
    assert storage.reserved_space(1000 * gib, 5 * gib) == 50 * gib       # 5% of the disk wins
    assert storage.reserved_space(20 * gib, 5 * gib) == 5 * gib          # the setting wins
    assert storage.disk_status(10, 0) == "Normal"
    assert [storage.disk_status(a, 100) for a in (101, 100, 51, 50, 0)] == [
        "Normal", "AlmostFull", "AlmostFull", "AlreadyFull", "AlreadyFull"]


def test_sizes_read_and_written_like_tikv_and_pd():
    assert [storage.parse_size(v, "x") for v in ("5GB", "0MB", "1KB", "512MiB", "1.5K", 42)] == [
        5 << 30, 0, 1024, 512 * MIB, 1536, 42]
    with pytest.raises(common.UsageError):
        storage.parse_size("5 parsecs", "storage.reserve-space")
    assert [storage.bytes_size(v) for v in (0, 1023, 100 * MIB, 300 << 30, int(49.0899 * (1 << 30)))] == [
        "0B", "1023B", "100MiB", "300GiB", "49.09GiB"]


# ---------------------------------------------------------------- processes

def tikv_config(reserve, extra=""):
    return DEFAULT_TIKV_CONFIG.replace('reserve-space = "0MB"', f'reserve-space = "{reserve}"') + extra


def soft_nofile(pid):
    with open(f"/proc/{pid}/limits", encoding="utf-8") as handle:
        line = next(line for line in handle if line.startswith("Max open files"))
    return int(line.split()[3])


def test_tikv_refuses_to_start_when_the_limit_cannot_be_raised(sim):
    # 1000 + 2 x 600000 + 256 is above the kernel's nr_open: setrlimit fails even for root.
    pd = sim.pd()
    tikv = sim.tikv(pd, config_text=DEFAULT_TIKV_CONFIG.replace("[rocksdb]\nmax-open-files = 256", "[rocksdb]\nmax-open-files = 600000"))
    assert tikv.wait_exit(20) != 0
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert (f"the maximum number of open file descriptors is too small, got {soft}, expect greater or equal to 1201256"
            in tikv.output)


def test_tikv_raises_its_soft_limit_to_exactly_the_expectation(sim):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    expect = 1000 + 2 * 5000 + 256  # Titan on by default for a new TiKV
    if hard != resource.RLIM_INFINITY and hard < expect:
        pytest.skip(f"needs a hard limit of {expect} open files")
    pd = sim.pd()
    config = DEFAULT_TIKV_CONFIG.replace("[rocksdb]\nmax-open-files = 256", "[rocksdb]\nmax-open-files = 5000")
    resource.setrlimit(resource.RLIMIT_NOFILE, (2000, hard))  # inherited by the child
    try:
        tikv = sim.tikv(pd, config_text=config)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    sim.wait_ready(pd, tikv)
    assert soft_nofile(tikv.popen.pid) == expect
    assert any(f"raised the open files limit from 2000 to {expect}" in line for line in tikv.stderr_lines)


def store_of(pd, address):
    stores = http_json("GET", pd.url("/pd/api/v1/stores"))[1]["stores"]
    return next(s for s in stores if s["store"]["address"] == address)


def test_tikv_creates_the_placeholder_and_reports_its_disk_to_pd(sim):
    pd = sim.pd()
    # reserved = max(5% of 100MB, 10MB) = 10MB; the placeholder holds a fifth of it.
    tikv = sim.tikv(pd, config_text=tikv_config("10MB"), extra=["--capacity", "100MB"])
    sim.wait_ready(pd, tikv)
    placeholder = os.path.join(tikv.data_dir, "space_placeholder_file")
    assert os.path.getsize(placeholder) == 2 * MIB
    assert os.stat(placeholder).st_blocks * 512 >= 2 * MIB  # allocated, not a hole
    status = store_of(pd, f"127.0.0.1:{tikv.port}")["status"]
    assert status["capacity"] == "100MiB"
    assert status["used_size"].endswith(("MiB", "KiB")) and status["available"].endswith("MiB")
    with open(placeholder, "wb") as handle:
        handle.write(b"x")
    tikv.restart()
    tikv.wait_ready()
    assert os.path.getsize(placeholder) == 2 * MIB  # removed and recreated at start
    no_reserve = sim.tikv(pd)
    no_reserve.wait_ready()
    assert not os.path.exists(os.path.join(no_reserve.data_dir, "space_placeholder_file"))


def test_a_full_tikv_keeps_tidb_from_bootstrapping(sim):
    pd = sim.pd()
    full = sim.tikv(pd, config_text=tikv_config("100PB"))  # far more than the disk: AlreadyFull
    sim.wait_ready(pd, full)
    assert any("no enough disk space left to create the place holder file" in line for line in full.stderr_lines)
    assert any("disk usage Normal->AlreadyFull" in line for line in full.stderr_lines)
    assert not os.path.exists(os.path.join(full.data_dir, "space_placeholder_file"))
    tidb = sim.tidb(pd)
    wait_until(lambda: any("every Up TiKV store is AlreadyFull" in line for line in tidb.stderr_lines), 15, "TiDB's reason")
    assert http_get(tidb.url("/status", tidb.status_port)) == (500, b"")
    sim.tikv(pd).wait_ready()
    tidb.wait_ready()


def test_almost_full_when_less_than_the_reserve_is_left(sim, tmp_path):
    _capacity, available = storage.disk_stats(str(tmp_path))
    pd = sim.pd()
    tikv = sim.tikv(pd, config_text=tikv_config(f"{available * 3 // 2 // MIB}MB"))
    sim.wait_ready(pd, tikv)
    assert any("disk usage Normal->AlmostFull" in line for line in tikv.stderr_lines)


def test_tikv_pd_endpoints_take_a_scheme_but_no_duplicates(sim):
    pd = sim.pd()
    port, status = free_ports(2)
    base = ["--addr", f"127.0.0.1:{port}", "--status-addr", f"127.0.0.1:{status}", "--data-dir", str(sim.base_dir)]
    config = os.path.join(sim.base_dir, "tikv.toml")
    with open(config, "w", encoding="utf-8") as handle:
        handle.write(DEFAULT_TIKV_CONFIG)
    dup = sim.spawn("tikv-server", ["--pd", f"http://127.0.0.1:{pd.port},127.0.0.1:{pd.port}", "--config", config] + base)
    assert dup.wait_exit(20) != 0 and f"duplicate PD endpoint 127.0.0.1:{pd.port}" in dup.output
    tikv = sim.spawn("tikv-server", ["--pd", f"http://127.0.0.1:{pd.port}", "--config", config] + base)
    sim.wait_ready(pd, tikv)


# ---------------------------------------------------------------- TiFlash proxy

def tiflash_config(pd, ports):
    service, proxy, status = ports
    return (f'listen_host = "127.0.0.1"\npath = "{{data_dir}}"\n[flash]\nservice_addr = "127.0.0.1:{service}"\n'
            f'[flash.proxy]\naddr = "127.0.0.1:{proxy}"\nstatus-addr = "127.0.0.1:{status}"\n'
            f'[raft]\npd_addr = "http://127.0.0.1:{pd.port}"\n')


def test_the_tiflash_proxy_checks_open_files_and_reserves_space(sim):
    pd = sim.pd()
    pd.wait_ready()
    too_many = sim.tiflash(tiflash_config(pd, free_ports(3)),
                           proxy_config_text="[rocksdb]\nmax-open-files = 600000\ntitan.enabled = true\n[raftdb]\nmax-open-files = 1\n")
    assert too_many.wait_exit(20) != 0
    assert "expect greater or equal to 1201001" in too_many.output
    ports = free_ports(3)
    tiflash = sim.tiflash(tiflash_config(pd, ports), proxy_config_text=(
        '[storage]\nreserve-space = "10MB"\n[raftstore]\ncapacity = "100MB"\n'
        "[rocksdb]\nmax-open-files = 256\n[raftdb]\nmax-open-files = 256\n"))
    tiflash.wait_ready()
    assert os.path.getsize(os.path.join(tiflash.data_dir, "space_placeholder_file")) == 2 * MIB
    assert store_of(pd, f"127.0.0.1:{ports[0]}")["status"]["capacity"] == "100MiB"
