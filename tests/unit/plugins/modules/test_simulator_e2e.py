# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""The modules against the protocol simulator (tests/simulator/tidbsim) running as local processes.

The simulator is written from the reference independently of the modules, so these tests check
that both readings of the component APIs agree.
"""

from __future__ import annotations

import json

from urllib.parse import quote

import pytest

from ansible_collections.tidbops.cluster.plugins.modules import component_ready, pd_peer_urls, pd_replication_config, ticdc_changefeed

testing = pytest.importorskip('tidbsim.testing')

FEED = 'e2e-feed'
S3_USER = 'tici-e2e'
S3_SECRET = 'e2e+Secret/Key=1'


@pytest.fixture(scope='module')
def cluster(tmp_path_factory):
    with testing.Sim(tmp_path_factory.mktemp('sim')) as sim:
        pd = sim.pd()
        tikv = sim.tikv(pd)
        cdc = sim.cdc(pd, newarch=True)
        tidb = sim.tidb(pd)
        minio = sim.minio(user=S3_USER, password=S3_SECRET)
        # Only the processes' start-up; readiness is what the module under test decides.
        sim.wait_ready(pd, tikv, cdc, tidb, minio)
        yield dict(sim=sim, pd=pd, tikv=tikv, cdc=cdc, tidb=tidb, minio=minio)


def ready(run_module, **args):
    result = run_module(component_ready, dict(args, timeout=20, interval=0.05))
    assert result.get('failed') is not True, result.get('msg')
    assert result['ready'] is True and result['changed'] is False
    return result


def test_gates_in_dependency_order(cluster, run_module):
    pd, tikv, cdc, tidb = cluster['pd'], cluster['tikv'], cluster['cdc'], cluster['tidb']
    ready(run_module, component='pd', endpoints=[pd.url()])
    ready(run_module, component='tikv', pd_endpoint=pd.url(), store_addresses=['127.0.0.1:%d' % tikv.port],
          endpoints=[tikv.url(port=tikv.status_port)])
    ready(run_module, component='tidb', endpoints=[tidb.url(port=tidb.status_port)])
    ready(run_module, component='ticdc', endpoints=[cdc.url()])
    ready(run_module, component='minio', endpoints=[cluster['minio'].url()])


def test_a_store_that_is_not_there_times_out_naming_it(cluster, run_module):
    result = run_module(component_ready, dict(component='tikv', pd_endpoint=cluster['pd'].url(), store_addresses=['127.0.0.1:1'],
                                              timeout=0.3, interval=0.05))
    assert result['failed'] is True and '127.0.0.1:1: not registered in PD yet' in result['msg']


def test_placement_rules(cluster, run_module):
    args = dict(pd_endpoint=cluster['pd'].url(), settings={'enable-placement-rules': True}, timeout=10)
    first = run_module(pd_replication_config, args)
    assert first.get('failed') is not True, first.get('msg')
    assert first['config']['enable-placement-rules'] == 'true'
    assert run_module(pd_replication_config, args)['changed'] is False


def test_changefeed_lifecycle(cluster, run_module):
    ready(run_module, component='ticdc', endpoints=[cluster['cdc'].url()])
    base = dict(server=cluster['cdc'].url(), changefeed_id=FEED, sink_uri='blackhole://?protocol=canal-json',
                replica_config={'sink': {'date_separator': 'none'}}, timeout=20)

    def run(check_mode=False, **overrides):
        result = run_module(ticdc_changefeed, dict(base, **overrides), check_mode=check_mode)
        assert result.get('failed') is not True, result.get('msg')
        return result

    assert run(check_mode=True)['changed'] is True
    created = run()
    assert created['changed'] is True and created['changefeed']['state'] == 'normal'
    again = run()
    assert again['changed'] is False and again['request_count'] == 1

    updated = run(replica_config={'sink': {'date_separator': 'none'}, 'force_replicate': True})
    assert updated['changed'] is True and updated['differences'] == ['replica_config.force_replicate']
    assert [(r['method'], r['path'].rsplit('/', 1)[-1]) for r in updated['requests'] if r['method'] != 'GET'] == [
        ('POST', 'pause'), ('PUT', FEED), ('POST', 'resume')]
    assert updated['changefeed']['state'] == 'normal'
    assert updated['changefeed']['config']['sink']['date_separator'] == 'none'

    paused = run(state='paused', replica_config={'sink': {'date_separator': 'none'}, 'force_replicate': True})
    assert paused['changed'] is True and paused['changefeed']['state'] == 'stopped'
    assert run(state='paused')['changed'] is False

    removed = run(state='absent')
    assert removed['changed'] is True and removed['changefeed'] == {}
    assert run(state='absent')['request_count'] == 1


def test_s3_changefeed_never_shows_the_secret(cluster, run_module):
    boto3 = pytest.importorskip('boto3')
    minio = cluster['minio'].url()
    ready(run_module, component='minio', endpoints=[minio])
    boto3.client('s3', endpoint_url=minio, aws_access_key_id=S3_USER, aws_secret_access_key=S3_SECRET,
                 region_name='us-east-1').create_bucket(Bucket='ticidefaultbucket')
    sink = ('s3://ticidefaultbucket/tici_default_prefix/cdc?protocol=canal-json&enable-tidb-extension=true&endpoint=%s'
            '&access-key=%s&secret-access-key=%s&force-path-style=true' % (quote(minio, safe=''), S3_USER, quote(S3_SECRET, safe='')))
    # One changefeed per way of running the module: the simulator outlives the test.
    feed = 'tici-e2e-' + run_module.mode.replace('_', '-')
    args = dict(server=cluster['cdc'].url(), changefeed_id=feed, sink_uri=sink, timeout=20,
                replica_config={'sink': {'protocol': 'canal-json', 'date_separator': 'none'}})
    results = [run_module(ticdc_changefeed, args, diff=True), run_module(ticdc_changefeed, args, diff=True)]
    assert results[0]['changed'] is True and results[1]['changed'] is False, results[0].get('msg')
    assert results[1]['request_count'] == 1
    wrong = run_module(ticdc_changefeed, dict(args, changefeed_id=feed + '-wrong', sink_uri=sink.replace('ticidefaultbucket', 'nobucket')))
    assert wrong['failed'] is True and 'CDC:ErrSinkURIInvalid' in wrong['msg']
    for result in results + [wrong]:
        text = json.dumps(result)
        assert S3_SECRET not in text and quote(S3_SECRET, safe='') not in text and 'e2e+Secret' not in text


@pytest.mark.skipif(not hasattr(testing.Sim, 'tici') or not hasattr(testing.Sim, 'tiflash'), reason='tidbsim has no TiCI/TiFlash yet')
def test_tici_meta_election_and_tiflash_store(cluster, run_module, tmp_path):
    sim = cluster['sim']
    pd, tidb = cluster['pd'], cluster['tidb']
    meta = sim.tici('meta', pd, '[tidb-server]\ndsns = ["mysql://root@127.0.0.1:%d"]\n' % tidb.port)
    meta.wait_ready()
    ready(run_module, component='tici_meta', endpoints=[meta.url(port=meta.status_port)], pd_endpoint=pd.url())
    service, proxy, status = testing.free_ports(3)
    flash = sim.tiflash('\n'.join([
        'path = "{data_dir}"', '[flash]', 'service_addr = "127.0.0.1:%d"' % service,
        '[flash.proxy]', 'addr = "127.0.0.1:%d"' % proxy, 'status-addr = "127.0.0.1:%d"' % status,
        '[raft]', 'pd_addr = "127.0.0.1:%d"' % pd.port, '']))
    flash.wait_ready()
    run_module(pd_replication_config, dict(pd_endpoint=pd.url(), settings={'enable-placement-rules': True}))
    result = ready(run_module, component='tiflash', pd_endpoint=pd.url(), store_addresses=['127.0.0.1:%d' % service],
                   endpoints=['http://127.0.0.1:%d' % status])
    assert [i['reason'] for i in result['instances']][-1] == 'store-status Running'


def test_pd_peer_urls_on_real_etcd(cluster, run_module):
    """The simulated PD's etcd is a real etcd 3.5 behind PD's gateway, so the member update is etcd's own.
    A single member never dials its own peer URL, so the scheme can be flipped and back."""
    url = cluster['pd'].url()
    dry = run_module(pd_peer_urls, dict(endpoints=[url], scheme='https'), check_mode=True, diff=True)
    assert dry.get('failed') is not True, dry.get('msg')
    assert dry['changed'] is True and dry['updated'] == ['pd0'] and dry['members'][0]['peer_urls'][0].startswith('https://')
    listed = run_module(pd_peer_urls, dict(endpoints=[url], scheme='http'))
    assert listed['changed'] is False, 'the dry run changed the member'
    try:
        done = run_module(pd_peer_urls, dict(endpoints=[url], scheme='https'), diff=True)
        assert done.get('failed') is not True, done.get('msg')
        assert done['changed'] is True and done['members'][0]['peer_urls'][0].startswith('https://')
        assert done['diff']['before']['pd0'][0].startswith('http://') and done['diff']['after']['pd0'][0].startswith('https://')
        assert run_module(pd_peer_urls, dict(endpoints=[url], scheme='https'))['changed'] is False
    finally:
        back = run_module(pd_peer_urls, dict(endpoints=[url], scheme='http'))
    assert back['changed'] is True and back['members'][0]['peer_urls'][0].startswith('http://')
