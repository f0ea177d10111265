# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""The inventory plugin tidbops.cluster.tiup: TiUP's own example topologies through `ansible-inventory`, and
the topologies TiUP refuses refused here with the field's path."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest
import yaml

from ansible_collections.tidbops.cluster.plugins.module_utils import _tiup, _topology

TIUP_EXAMPLES = pathlib.Path(__file__).parent / 'tiup_examples'
TOP = pathlib.Path(__file__).resolve().parents[4]


def inventory(tmp_path, source):
    """`ansible-inventory --list` of an inventory source (a dict written as tiup.yml): (data, stderr)."""
    path = tmp_path / 'tiup.yml'
    path.write_text(yaml.safe_dump(source), encoding='utf-8')
    env = dict(os.environ, ANSIBLE_CONFIG=str(TOP / 'ansible.cfg'), ANSIBLE_NOCOLOR='1')
    run = subprocess.run([str(pathlib.Path(sys.executable).parent / 'ansible-inventory'), '-i', str(path), '--list'],
                         cwd=TOP, env=env, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    return plain(json.loads(run.stdout)), run.stderr


def plain(value):
    """The JSON without Ansible's unsafe markers (strings from inventory plugins are never templated)."""
    if isinstance(value, dict):
        if set(value) == {'__ansible_unsafe'}:
            return value['__ansible_unsafe']
        return dict((key, plain(item)) for key, item in value.items())
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def hosts_of(data, group):
    return sorted(data.get(group, {}).get('hosts', []))


def test_tiup_port_defaults_are_the_registrys():
    """TiUP's `default:` tags (pingcap/tiup pkg/cluster/spec pd.go, tikv.go, tidb.go, tiflash.go, cdc.go;
    tici_meta.go and tici_worker.go on feature/fts): the ports an absent field gets."""
    tiup = {'pd': {'client_port': 2379, 'peer_port': 2380}, 'tikv': {'port': 20160, 'status_port': 20180},
            'tidb': {'port': 4000, 'status_port': 10080}, 'ticdc': {'port': 8300},
            'tiflash': {'flash_service_port': 3930, 'flash_proxy_port': 20170, 'flash_proxy_status_port': 20292,
                        'metrics_port': 8234, 'tici_reader_node_port': 8520},
            'tici_meta': {'port': 8500, 'status_port': 8501}, 'tici_worker': {'port': 8510, 'status_port': 8511}}
    for kind, ports in tiup.items():
        assert dict((_tiup._tiup_port(kind, p.name), p.default) for p in _topology.kind(kind).ports) == ports, kind
    assert [_topology.tiup_role(k) for k in tiup] == ['pd', 'tikv', 'tidb', 'cdc', 'tiflash', 'tici-meta', 'tici-worker']


def test_topology_example_through_ansible_inventory(tmp_path):
    (tmp_path / 'topology.yaml').write_bytes((TIUP_EXAMPLES / 'topology.example.yaml.txt').read_bytes())
    data, stderr = inventory(tmp_path, {'plugin': 'tidbops.cluster.tiup', 'topology': 'topology.yaml', 'cluster_name': 'prod'})
    assert hosts_of(data, 'pd_servers') == ['pd-10.0.1.11-2379', 'pd-10.0.1.12-2379', 'pd-10.0.1.13-2379']
    assert hosts_of(data, 'tidb_servers') == ['tidb-10.0.1.14-4000', 'tidb-10.0.1.14-4001', 'tidb-10.0.1.15-4000', 'tidb-10.0.1.15-4001']
    assert hosts_of(data, 'tikv_servers') == ['tikv-10.0.1.%d-%d' % (h, p) for h in (16, 17, 18) for p in (20160, 20161)]
    assert hosts_of(data, 'tiflash_servers') == ['tiflash-10.0.1.%d-%d' % (h, p) for h in (19, 20) for p in (3930, 3931)]
    assert 'kvcdc_servers' not in data and 'monitoring_servers' not in data
    hostvars = data['_meta']['hostvars']
    second_tikv = hostvars['tikv-10.0.1.16-20161']
    assert (second_tikv['ansible_host'], second_tikv['tikv_port'], second_tikv['status_port']) == ('10.0.1.16', 20161, 20181)
    assert second_tikv['tidb_cluster_name'] == 'prod' and second_tikv['tici_enabled'] is False
    flash = hostvars['tiflash-10.0.1.19-3931']
    assert (flash['flash_proxy_port'], flash['flash_proxy_status_port'], flash['metrics_port']) == (20171, 20293, 8235)
    assert hostvars['pd-10.0.1.11-2379']['peer_port'] == 2380 and 'pd_name' not in hostvars['pd-10.0.1.11-2379']
    assert 'data_dir' not in flash and 'deploy_dir' not in flash  # the host layout stays TiUP's
    assert 'left out: kvcdc_servers, monitoring_servers, grafana_servers, alertmanager_servers, monitored' in stderr
    assert 'fields accepted but not applied: tcp_port' in ' '.join(stderr.split())


def _hosts(role, port, *last_octets):
    return ['%s-10.0.1.%d-%d' % (role, octet, port) for octet in last_octets]


# Read off each file: every server entry's host and main port (TiUP's default where the entry has none).
EXPECTED = {
    'minimal.yaml.txt': {'pd_servers': _hosts('pd', 2379, 11, 12, 13), 'tidb_servers': _hosts('tidb', 4000, 14, 15, 16),
                         'tikv_servers': _hosts('tikv', 20160, 17, 18, 19), 'tiflash_servers': _hosts('tiflash', 3930, 20, 21)},
    'multi-dc.yaml.txt': {'pd_servers': _hosts('pd', 2379, 11, 13, 15), 'tidb_servers': _hosts('tidb', 4000, 16, 17, 18),
                          'tikv_servers': _hosts('tikv', 20160, 19, 20, 21, 22, 23), 'tiflash_servers': _hosts('tiflash', 3930, 24, 25)},
    'tici.topology.example.yaml.txt': {
        'pd_servers': _hosts('pd', 2379, 11, 12, 13),
        'tidb_servers': sorted(_hosts('tidb', 4000, 14, 15) + _hosts('tidb', 4001, 14, 15)),
        'tikv_servers': sorted(_hosts('tikv', 20160, 16, 17, 18) + _hosts('tikv', 20161, 16, 17, 18)),
        'tiflash_servers': sorted(_hosts('tiflash', 3930, 19, 20) + _hosts('tiflash', 3931, 19, 20)),
        'cdc_servers': _hosts('cdc', 8300, 20), 'tici_meta_servers': _hosts('tici-meta', 8500, 21),
        'tici_worker_servers': _hosts('tici-worker', 8510, 23)},
    'tici.topology.minimal.yaml.txt': {
        'pd_servers': ['pd-127.0.0.1-2379'], 'tidb_servers': ['tidb-127.0.0.1-4000'], 'tikv_servers': ['tikv-127.0.0.1-20160'],
        'tiflash_servers': ['tiflash-127.0.0.1-3930'], 'cdc_servers': ['cdc-127.0.0.1-8300'],
        'tici_meta_servers': ['tici-meta-127.0.0.1-8500'], 'tici_worker_servers': ['tici-worker-127.0.0.1-8510']},
}


@pytest.mark.parametrize('example', sorted(EXPECTED))
def test_every_tiup_example_through_ansible_inventory(tmp_path, example):
    (tmp_path / 'topology.yaml').write_bytes((TIUP_EXAMPLES / example).read_bytes())
    data, stderr = inventory(tmp_path, {'plugin': 'tidbops.cluster.tiup', 'topology': 'topology.yaml'})
    groups = dict((group, hosts_of(data, group)) for group in _topology.GROUPS if hosts_of(data, group))
    assert groups == EXPECTED[example]
    flash = data['_meta']['hostvars'][EXPECTED[example]['tiflash_servers'][-1]]
    assert flash['flash_service_port'] == int(EXPECTED[example]['tiflash_servers'][-1].rsplit('-', 1)[1])
    assert flash['tici_enabled'] is ('tici' in example)
    assert 'not deployed by tidbops.cluster, left out: ' in ' '.join(stderr.split()) and 'monitoring_servers' in stderr


def test_multi_dc_server_configs_and_labels_pass_through():
    found = _tiup.convert(yaml.safe_load((TIUP_EXAMPLES / 'multi-dc.yaml.txt').read_text(encoding='utf-8')))
    assert found['vars']['server_configs']['pd']['replication.max-replicas'] == 5
    assert found['vars']['server_configs']['pd']['replication.location-labels'] == ['zone', 'dc', 'rack', 'host']
    labelled = [v for v in found['groups']['tikv_servers'].values() if v.get('config', {}).get('server.labels')]
    assert len(labelled) == 5


def test_tici_minimal_keeps_newarch_and_versions(tmp_path):
    (tmp_path / 'topology.yaml').write_bytes((TIUP_EXAMPLES / 'tici.topology.minimal.yaml.txt').read_bytes())
    data, stderr = inventory(tmp_path, {'plugin': 'tidbops.cluster.tiup', 'topology': 'topology.yaml'})
    assert hosts_of(data, 'tici_meta_servers') == ['tici-meta-127.0.0.1-8500']
    assert hosts_of(data, 'tici_worker_servers') == ['tici-worker-127.0.0.1-8510']
    assert hosts_of(data, 'cdc_servers') == ['cdc-127.0.0.1-8300']
    meta = data['_meta']['hostvars']['tici-meta-127.0.0.1-8500']
    assert (meta['tici_port'], meta['status_port'], meta['tici_enabled']) == (8500, 8501, True)
    assert meta['server_configs'] == {'cdc': {'newarch': True}}
    assert meta['component_versions'] == {'tidb': 'v9.0.0-feature.fts', 'tiflash': 'v9.0.0-feature.fts',
                                          'tici_meta': 'nightly', 'tici_worker': 'nightly'}
    assert data['_meta']['hostvars']['tiflash-127.0.0.1-3930']['tici_reader_port'] == 8520
    assert 'left out: monitoring_servers, grafana_servers' in stderr


def test_an_inline_topology_and_tiup_settings(tmp_path):
    data, _stderr = inventory(tmp_path, {'plugin': 'tidbops.cluster.tiup', 'topology': {
        'global': {'enable_tls': True, 'ssh_port': 2222},
        'pd_servers': [{'host': 'pd.example', 'name': 'pd-a', 'client_port': 12379}],
        'tikv_servers': [{'host': 'fd00::1', 'port': 20161}],
        'tidb_servers': [{'host': 'tidb.example', 'config': {'log.level': 'warn'}}]}})
    hostvars = data['_meta']['hostvars']
    assert hosts_of(data, 'pd_servers') == ['pd-pd.example-12379'] and hostvars['pd-pd.example-12379']['pd_name'] == 'pd-a'
    assert hosts_of(data, 'tikv_servers') == ['tikv-fd00--1-20161']
    tidb = hostvars['tidb-tidb.example-4000']
    assert tidb['config'] == {'log.level': 'warn'} and tidb['tidb_tls_enabled'] is True and tidb['ansible_port'] == 2222


@pytest.mark.parametrize('topology, message', [
    ({'pd_servers': [{'host': 'a', 'clientport': 1}]},
     r"pd_servers\[0\]: unknown field clientport \(TiUP refuses it too\); expected some of: .*client_port"),
    ({'pd_servers': [{'host': 'a'}], 'tidb_servers': [{'host': 'b', 'data_dir': '/d'}]},
     r'tidb_servers\[0\]: unknown field data_dir'),  # TiDBSpec has no data_dir (pingcap/tiup tidb.go)
    ({'pd_servers': [{'client_port': 2379}]}, r'pd_servers\[0\]\.host: expected the address of the machine, got None'),
    ({'pd_servers': [{'host': 'a', 'peer_port': 70000}]}, r'pd_servers\[0\]\.peer_port: expected a port in \[1, 65535\], got 70000'),
    ({'pd_servers': [{'host': 'a', 'client_port': '2379'}]}, r"pd_servers\[0\]\.client_port: expected a port .*got '2379'"),
    ({'pd_servers': [{'host': 'a'}], 'tidb_servers': [{'host': 'a', 'port': 2379}]},
     r'port conflict for 2379 on a between pd_servers\[0\]\.client_port \(default\) and tidb_servers\[0\]\.port'),
    ({'pd_servers': [{'host': 'a'}], 'tikv_servers': [{'host': 'b'}, {'host': 'b', 'port': 20161}]},
     r'port conflict for 20180 on b between tikv_servers\[0\]\.status_port \(default\) and tikv_servers\[1\]\.status_port \(default\)'),
    ({'pd_servers': [{'host': 'a', 'name': 'p'}, {'host': 'b', 'name': 'p'}]}, r'pd_servers\[1\]\.name: p is the name of pd_servers\[0\] too'),
    ({'pd_servers': [{'host': 'a'}], 'pump': []}, r'topology: unknown field pump'),
    ({'pd_servers': [{'host': 'a'}], 'server_configs': {'tikvv': {}}}, r'server_configs: unknown field tikvv'),
    ({'pd_servers': [{'host': 'a'}], 'global': {'enable_tls': 'yes'}}, r"global\.enable_tls: expected true or false, got 'yes'"),
    ({'pd_servers': {'host': 'a'}}, r'pd_servers: expected a list of server entries, got dict'),
    ({'tidb_servers': [{'host': 'a'}]}, r'pd_servers: expected at least one PD server entry'),
])
def test_what_tiup_refuses_is_refused_with_the_field_path(topology, message):
    with pytest.raises(_tiup.TopologyError, match=message):
        _tiup.convert(topology)


def test_a_refused_topology_fails_the_inventory_source(tmp_path):
    path = tmp_path / 'tiup.yml'
    path.write_text(yaml.safe_dump({'plugin': 'tidbops.cluster.tiup', 'topology': {'pd_servers': [{'host': 'a', 'port': 1}]}}),
                    encoding='utf-8')
    env = dict(os.environ, ANSIBLE_CONFIG=str(TOP / 'ansible.cfg'), ANSIBLE_NOCOLOR='1', ANSIBLE_INVENTORY_UNPARSED_FAILED='1')
    run = subprocess.run([str(pathlib.Path(sys.executable).parent / 'ansible-inventory'), '-i', str(path), '--list'],
                         cwd=TOP, env=env, capture_output=True, text=True, check=False)
    assert run.returncode != 0
    assert r'pd_servers[0]: unknown field port' in ' '.join(run.stderr.split())
