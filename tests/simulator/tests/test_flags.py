"""Command lines: both flag spellings, unknown flags, missing values, bad config files."""

import subprocess
import sys

import pytest

from tidbsim.testing import SIM_ROOT


def run(*args, env=None, timeout=20):
    full_env = {"PYTHONPATH": SIM_ROOT, "PATH": "/usr/bin:/bin"}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "tidbsim"] + list(args), capture_output=True, text=True,
                          env=full_env, timeout=timeout, check=False)


@pytest.mark.parametrize("args, message", [
    (["pd-server", "--nmae=pd0"], "flag provided but not defined: -nmae"),
    (["pd-server", "-clienturls", "x"], "flag provided but not defined: -clienturls"),
    (["tikv-server", "--pd-endpoint", "127.0.0.1:2379"], "error: unexpected argument '--pd-endpoint' found"),
    (["tidb-server", "--store=tikv", "--statu=10080"], "flag provided but not defined: -statu"),
    (["cdc", "server", "--pd-addr=http://127.0.0.1:2379"], "Error: unknown flag: --pd-addr"),
    (["tici-server", "meta", "--data-dir=/tmp/x"], "error: unexpected argument '--data-dir' found"),
    (["tici-server", "worker", "--tidb-addr=mysql://root@h:4000"], "error: unexpected argument '--tidb-addr' found"),
    (["minio", "server", "--adress", ":9000", "/tmp/x"], "Incorrect Usage: flag provided but not defined: -adress"),
    (["tiflash", "server", "--config", "/tmp/x.toml"], "unrecognised option '--config'"),
])
def test_unknown_flag_exits_non_zero_like_the_real_binary(args, message):
    result = run(*args)
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize("args, message", [
    (["pd-server", "--name"], "flag needs an argument: -name"),
    (["cdc", "server", "--pd"], "Error: flag needs an argument: --pd"),
    (["tikv-server", "--addr"], "a value is required for '--addr"),
])
def test_flag_without_value_is_refused(args, message):
    result = run(*args)
    assert result.returncode != 0
    assert message in result.stderr


def test_unknown_subcommands_and_binaries():
    assert "unknown command" in run("cdc", "serve").stderr
    assert "unrecognized subcommand 'metaa'" in run("tici-server", "metaa").stderr
    assert "is not a minio command" in run("minio", "srv").stderr
    result = run("pd")
    assert result.returncode == 2 and "pd-server" in result.stderr


@pytest.mark.parametrize("store", [None, "unistore", "mocktikv"])
def test_tidb_refuses_the_embedded_store(store):
    args = ["tidb-server", "--path=127.0.0.1:2379"] + ([f"--store={store}"] if store else [])
    result = run(*args)
    assert result.returncode == 1
    assert "pass --store=tikv" in result.stderr


def test_tidb_refuses_a_pd_path_with_scheme():
    result = run("tidb-server", "--store=tikv", "--path=http://127.0.0.1:2379")
    assert result.returncode == 1 and "without a scheme" in result.stderr


def test_tikv_refuses_to_advertise_an_unspecified_address():
    result = run("tikv-server", "--addr=0.0.0.0:20160", "--pd=127.0.0.1:1")
    assert result.returncode != 0 and "advertise-addr" in result.stderr


def test_tiflash_malformed_toml_exits_with_the_parse_error(tmp_path):
    config = tmp_path / "tiflash.toml"
    config.write_text("[flash\nservice_addr = 1\n")
    result = run("tiflash", "server", "--config-file", str(config))
    assert result.returncode != 0
    assert "Failed to parse TOML" in result.stderr and "line 1" in result.stderr


def test_tiflash_requires_tici_keys_when_tici_is_configured(tmp_path):
    config = tmp_path / "tiflash.toml"
    config.write_text('[raft]\npd_addr = "127.0.0.1:1"\n[tici.reader-node]\naddr = "127.0.0.1:8520"\n'
                      'advertise-addr = "127.0.0.1:8520"\n[tici.s3]\nendpoint = "http://127.0.0.1:1"\n')
    result = run("tiflash", "server", f"--config-file={config}")
    assert result.returncode != 0
    assert "[tici.s3] lacks bucket, access-key, secret-key" in result.stderr
    config.write_text('[raft]\npd_addr = "127.0.0.1:1"\n[tici.s3]\nbucket = "b"\n')
    result = run("tiflash", "server", f"--config-file={config}")
    assert result.returncode != 0 and "reader-node" in result.stderr


def test_cdc_malformed_config_and_tici_missing_config(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("newarch = \n")
    result = run("cdc", "server", f"--config={bad}")
    assert result.returncode != 0 and "toml" in result.stderr.lower()
    result = run("tici-server", "meta", f"--config={tmp_path / 'absent.toml'}", "--pd-addr=127.0.0.1:1")
    assert result.returncode != 0 and "failed to read config file" in result.stderr
    result = run("tici-server", "meta", f"--config={bad}", "--pd-addr=127.0.0.1:1")
    assert result.returncode != 0 and "failed to parse config file" in result.stderr


def test_tici_needs_pd_and_meta_needs_a_tidb(tmp_path):
    config = tmp_path / "meta.toml"
    config.write_text("[s3]\nbucket = 'b'\n")
    result = run("tici-server", "meta", "--config", str(config))
    assert result.returncode != 0 and "--pd-addr" in result.stderr
    result = run("tici-server", "meta", "--config", str(config), "--pd-addr", "127.0.0.1:1")
    assert result.returncode != 0 and "--tidb-addr" in result.stderr


def test_minio_refuses_short_credentials(tmp_path):
    result = run("minio", "server", str(tmp_path), env={"MINIO_ROOT_USER": "admin", "MINIO_ROOT_PASSWORD": "short"})
    assert result.returncode != 0 and "MINIO_ROOT_PASSWORD length should be at least 8" in result.stderr
    result = run("minio", "server", env={"MINIO_ROOT_USER": "admin", "MINIO_ROOT_PASSWORD": "long-enough"})
    assert result.returncode != 0 and "needs at least one DIR" in result.stderr


@pytest.mark.parametrize("binary, args", [
    ("pd-server", ["--name=pd0"]),
    ("tikv-server", ["--addr=127.0.0.1:1"]),
    ("tidb-server", ["--store=tikv", "--path=127.0.0.1:1"]),
])
def test_malformed_config_toml_exits_with_the_parse_error(tmp_path, binary, args):
    config = tmp_path / "bad.toml"
    config.write_text("[replication\n")
    result = run(binary, *args, f"--config={config}", f"--data-dir={tmp_path / 'd'}" if binary != "tidb-server" else "-L=info")
    assert result.returncode != 0
    assert "line 1" in result.stderr and str(config) in result.stderr


def test_cdc_gc_ttl_must_be_a_number():
    result = run("cdc", "server", "--gc-ttl=1d")
    assert result.returncode != 0 and 'invalid argument "1d" for "--gc-ttl" flag' in result.stderr


@pytest.mark.parametrize("pd, reason", [
    ("127.0.0.1:2379", 'parse PD endpoint: parse "127.0.0.1:2379": first path segment in URL cannot contain colon'),
    ("pd:2379", "PD endpoint should be a valid http or https URL"),
    ("http://127.0.0.1:2379,pd0:2379", "PD endpoint should be a valid http or https URL"),
    ("http://", "PD endpoint should be a valid http or https URL"),
    ("https://127.0.0.1:2379", "PD endpoint scheme is https, please provide certificate"),
    ("", "empty PD address"),
])
def test_cdc_pd_entries_must_be_http_urls(pd, reason):
    result = run("cdc", "server", f"--pd={pd}", "--addr=127.0.0.1:1")
    assert result.returncode != 0
    assert f"[CDC:ErrInvalidServerOption]invalid server option: {reason}" in result.stderr


@pytest.mark.parametrize("where", ["flag", "config"])
def test_tici_refuses_a_pd_address_with_a_scheme(tmp_path, where):
    config = tmp_path / "meta.toml"
    config.write_text("[server]\npd-addr = 'http://127.0.0.1:2379'\n" if where == "config" else "")
    args = ["tici-server", "meta", f"--config={config}", "--tidb-addr=mysql://root@127.0.0.1:1"]
    if where == "flag":
        args.append("--pd-addr=127.0.0.1:2379,http://127.0.0.1:2379")
    result = run(*args)
    assert result.returncode != 0 and "give host:port without a scheme" in result.stderr


def test_tikv_binds_exactly_its_addr(tmp_path):
    config = tmp_path / "tikv.toml"
    config.write_text('[storage]\nreserve-space = "0MB"\n[rocksdb]\nmax-open-files = 256\n[raftdb]\nmax-open-files = 256\n')
    result = run("tikv-server", "--pd=127.0.0.1:1", "--addr=192.0.2.1:20160", "--advertise-addr=127.0.0.1:20160",
                 f"--config={config}", f"--data-dir={tmp_path / 'kv'}")
    assert result.returncode != 0 and "cannot listen on 192.0.2.1:20160" in result.stderr
