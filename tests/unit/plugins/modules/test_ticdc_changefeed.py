# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""ticdc_changefeed end to end against the TiCDC double in conftest.py."""

from __future__ import annotations

import json
import socket

import pytest

from ansible_collections.tidbops.cluster.plugins.modules import ticdc_changefeed

SECRET = 'Sup3r+Secret/Key'
ACCESS = 'AKIAMINIOACCESS'
SINK = ('s3://ticidefaultbucket/tici_default_prefix/cdc?protocol=canal-json&enable-tidb-extension=true'
        '&endpoint=http%%3A%%2F%%2F127.0.0.1%%3A9000&access-key=%s&secret-access-key=%s' % (ACCESS, 'Sup3r%2BSecret%2FKey'))
FEED = 'tici-replication-task'
BASE = '/api/v2/changefeeds'


def args(ticdc, **overrides):
    base = dict(server=ticdc.url, changefeed_id=FEED, sink_uri=SINK, replica_config={'sink': {'protocol': 'canal-json', 'date_separator': 'none'}},
                timeout=15)
    base.update(overrides)
    return base


def assert_no_secret(result):
    text = json.dumps(result)
    for secret in (SECRET, 'Sup3r%2BSecret%2FKey', 'Sup3r', ACCESS):
        assert secret not in text


def test_create_then_idempotent(ticdc, run_module):
    created = run_module(ticdc_changefeed, args(ticdc), diff=True)
    assert created['changed'] is True
    assert ticdc.mutations() == [('POST', BASE)]
    sent = json.loads(ticdc.log[1][2])
    assert sent['changefeed_id'] == FEED and sent['replica_config']['sink']['date_separator'] == 'none'
    assert sent['sink_uri'] == SINK
    assert ticdc.feeds[FEED]['config']['sink']['date_separator'] == 'none'
    assert created['differences'] == ['changefeed']
    assert [r['method'] for r in created['requests']] == ['GET', 'POST', 'GET']
    assert created['diff']['before'] == {} and created['diff']['after']['state'] == 'normal'
    assert created['changefeed']['id'] == FEED
    assert_no_secret(created)

    ticdc.log.clear()
    again = run_module(ticdc_changefeed, args(ticdc), diff=True)
    assert again['changed'] is False
    assert again['request_count'] == 1 and len(ticdc.log) == 1
    assert again['requests'] == [dict(method='GET', path='%s/%s' % (BASE, FEED), sent=True)]
    assert again['diff']['before'] == again['diff']['after']
    assert_no_secret(again)


@pytest.mark.parametrize('status', [400, 500])
def test_create_race_already_exists(ticdc, run_module, status):
    """New architecture answers 400, classic 500: the error_code decides, not the status."""
    ticdc.exists_status = status
    ticdc.add(FEED, SINK, config={'sink': {'protocol': 'canal-json', 'date_separator': 'none'}})
    ticdc.hidden_gets = 1  # our GET misses it, someone else's create wins
    result = run_module(ticdc_changefeed, args(ticdc))
    assert 'failed' not in result
    assert result['changed'] is False
    assert ticdc.mutations() == [('POST', BASE)]
    assert [r['method'] for r in result['requests']] == ['GET', 'POST', 'GET']


def test_update_pauses_puts_full_config_and_resumes(ticdc, run_module):
    ticdc.add(FEED, SINK, config={'sink': {'protocol': 'canal-json'}, 'force_replicate': True})
    result = run_module(ticdc_changefeed, args(ticdc), diff=True)
    assert result['changed'] is True
    assert result['differences'] == ['replica_config.sink.date_separator']
    path = '%s/%s' % (BASE, FEED)
    assert ticdc.mutations() == [('POST', path + '/pause'), ('PUT', path), ('POST', path + '/resume')]
    bodies = dict(((method, p), body) for method, p, body in ticdc.log if method != 'GET')
    assert json.loads(bodies[('POST', path + '/resume')]) == {}
    put = json.loads(bodies[('PUT', path)])
    # The current config is kept where the user said nothing (TiCDC would reset it to defaults).
    assert put['replica_config']['force_replicate'] is True
    assert put['replica_config']['sink'] == dict(ticdc.feeds[FEED]['config']['sink'], date_separator='none')
    assert 'start_ts' not in put
    assert ticdc.feeds[FEED]['state'] == 'normal'
    assert ticdc.feeds[FEED]['config']['force_replicate'] is True
    assert result['diff']['before']['replica_config'] == {'sink': {'protocol': 'canal-json', 'date_separator': 'day'}}
    assert result['diff']['after']['replica_config']['sink']['date_separator'] == 'none'
    assert_no_secret(result)


def test_sink_uri_secret_change_is_detected_and_masked(ticdc, run_module):
    ticdc.add(FEED, SINK.replace('Sup3r%2BSecret%2FKey', 'OldSecret'), config={'sink': {'protocol': 'canal-json', 'date_separator': 'none'}})
    result = run_module(ticdc_changefeed, args(ticdc), diff=True)
    assert result['changed'] is True and result['differences'] == ['sink_uri']
    assert 'OldSecret' not in json.dumps(result)
    assert_no_secret(result)
    assert ticdc.feeds[FEED]['sink_uri'] == SINK


def test_paused_and_back(ticdc, run_module):
    ticdc.add(FEED, SINK, config={'sink': {'protocol': 'canal-json', 'date_separator': 'none'}})
    paused = run_module(ticdc_changefeed, args(ticdc, state='paused'))
    assert paused['changed'] is True and ticdc.feeds[FEED]['state'] == 'stopped'
    assert ticdc.mutations() == [('POST', '%s/%s/pause' % (BASE, FEED))]
    ticdc.log.clear()
    assert run_module(ticdc_changefeed, args(ticdc, state='paused'))['request_count'] == 1
    resumed = run_module(ticdc_changefeed, args(ticdc))
    assert resumed['changed'] is True and ticdc.feeds[FEED]['state'] == 'normal'
    assert ticdc.mutations() == [('POST', '%s/%s/resume' % (BASE, FEED))]


def test_failed_changefeed_is_resumed(ticdc, run_module):
    ticdc.add(FEED, SINK, state='failed', config={'sink': {'protocol': 'canal-json', 'date_separator': 'none'}})
    result = run_module(ticdc_changefeed, args(ticdc))
    assert result['changed'] is True and ticdc.feeds[FEED]['state'] == 'normal'


def test_absent_deletes_and_waits_until_gone(ticdc, run_module):
    ticdc.add(FEED, SINK)
    ticdc.linger_gets = 2
    result = run_module(ticdc_changefeed, dict(server=ticdc.url, changefeed_id=FEED, state='absent', timeout=5))
    assert result['changed'] is True and FEED not in ticdc.feeds
    assert [method for method, _p, _b in ticdc.log] == ['GET', 'DELETE', 'GET', 'GET', 'GET']
    assert result['changefeed'] == {}
    ticdc.log.clear()
    again = run_module(ticdc_changefeed, dict(server=ticdc.url, changefeed_id=FEED, state='absent', timeout=5))
    assert again['changed'] is False and again['request_count'] == 1


def test_retries_coordinator_not_initialised_and_503(ticdc, run_module):
    ticdc.inject('GET', '/changefeeds/', 500, {'error_msg': 'coordinator is not fully initialized, wait a moment', 'error_code': ''}, count=2)
    ticdc.inject('POST', '/changefeeds$', 503, {'error_msg': 'server is not ready', 'error_code': 'CDC:ErrServerIsNotReady'})
    result = run_module(ticdc_changefeed, args(ticdc))
    assert result['changed'] is True and FEED in ticdc.feeds
    assert [method for method, _p, _b in ticdc.log] == ['GET', 'GET', 'GET', 'POST', 'POST', 'GET']
    assert result['request_count'] == 6


def test_gives_up_at_the_timeout_with_the_last_error(ticdc, run_module):
    ticdc.inject('GET', '/changefeeds/', 500, {'error_msg': 'coordinator is not fully initialized, wait a moment', 'error_code': ''}, count=1000)
    result = run_module(ticdc_changefeed, args(ticdc, timeout=0.5))
    assert result['failed'] is True
    assert 'GET /api/v2/changefeeds/tici-replication-task failed: HTTP 500 (no error_code): coordinator is not fully initialized' in result['msg']
    assert 2 <= result['request_count'] < 10


def test_check_mode_sends_no_mutation(ticdc, run_module):
    ticdc.add(FEED, SINK, config={'sink': {'protocol': 'canal-json'}})
    result = run_module(ticdc_changefeed, args(ticdc), check_mode=True, diff=True)
    assert result['changed'] is True
    assert ticdc.mutations() == [] and result['request_count'] == 1
    path = '%s/%s' % (BASE, FEED)
    assert result['requests'] == [dict(method='GET', path=path, sent=True), dict(method='POST', path=path + '/pause', sent=False),
                                  dict(method='PUT', path=path, sent=False), dict(method='POST', path=path + '/resume', sent=False)]
    assert result['diff']['after']['replica_config']['sink']['date_separator'] == 'none'
    assert_no_secret(result)


def test_check_mode_create_and_delete(ticdc, run_module):
    planned = run_module(ticdc_changefeed, args(ticdc, state='paused'), check_mode=True)
    assert planned['changed'] is True and [(r['method'], r['sent']) for r in planned['requests']] == [
        ('GET', True), ('POST', False), ('POST', False)]
    ticdc.add(FEED, SINK)
    removal = run_module(ticdc_changefeed, dict(server=ticdc.url, changefeed_id=FEED, state='absent'), check_mode=True)
    assert removal['changed'] is True and FEED in ticdc.feeds and ticdc.mutations() == []


def test_error_code_fails_without_leaking_the_sink(ticdc, run_module):
    echoed = 'sink uri invalid: ' + SINK.replace('%2B', '+').replace('%2F', '/')
    ticdc.inject('POST', '/changefeeds$', 400, {'error_msg': echoed, 'error_code': 'CDC:ErrSinkURIInvalid'})
    result = run_module(ticdc_changefeed, args(ticdc), diff=True)
    assert result['failed'] is True
    assert 'POST /api/v2/changefeeds failed: HTTP 400 CDC:ErrSinkURIInvalid' in result['msg']
    assert_no_secret(result)


def test_keyspace_query(ticdc, run_module):
    ticdc.add(FEED, SINK, config={'sink': {'protocol': 'canal-json', 'date_separator': 'none'}})
    result = run_module(ticdc_changefeed, args(ticdc, keyspace='ks1'))
    assert result['changed'] is False and ticdc.log[0][1] == '%s/%s?keyspace=ks1' % (BASE, FEED)


@pytest.mark.parametrize('overrides, message', [
    (dict(changefeed_id='tici_replication'), 'changefeed_id: expected letters and digits'),
    (dict(sink_uri='ticidefaultbucket/prefix'), 'sink_uri: expected a URI with a scheme'),
    (dict(sink_uri=None), 'sink_uri: required unless state is absent'),
    (dict(start_ts=10, target_ts=5), 'target_ts: expected a TSO above start_ts (10), got 5'),
    (dict(replica_config='sink'), 'replica_config'),
    (dict(server='cdc0:8300'), "server: expected an http(s) URL"),
])
def test_bad_input_fails_before_any_request(ticdc, run_module, overrides, message):
    result = run_module(ticdc_changefeed, args(ticdc, **overrides))
    assert result['failed'] is True and message in result['msg']
    assert ticdc.log == []


def test_check_mode_before_ticdc_exists_warns_instead_of_waiting(run_module):
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    result = run_module(ticdc_changefeed, dict(server='http://127.0.0.1:%d' % port, changefeed_id=FEED, sink_uri=SINK, timeout=60),
                        check_mode=True)
    assert 'failed' not in result and result['changed'] is True
    assert result['request_count'] == 1
    warnings = json.dumps(result['warnings'])
    assert 'TiCDC cannot answer yet' in warnings and 'connection refused' in warnings
    assert_no_secret(result)
