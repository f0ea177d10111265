# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""pd_replication_config against a PD double that, like PD, keeps booleans as strings."""

from __future__ import annotations

import json

import pytest

from werkzeug import Response

from ansible_collections.tidbops.cluster.plugins.modules import pd_replication_config

PATH = '/pd/api/v1/config/replicate'


class FakePd:
    def __init__(self, server):
        self.url = server.url_for('').rstrip('/')
        self.config = {'max-replicas': 3, 'location-labels': '', 'strictly-match-label': 'false', 'enable-placement-rules': 'false',
                       'enable-placement-rules-cache': 'false', 'isolation-level': ''}
        self.posts = []
        self.failures = 0  # 503 answers before the real ones
        self.stale_gets = 0  # GETs after a POST that still show the old config
        self._stale = None
        server.expect_request(PATH).respond_with_handler(self.handle)

    def handle(self, request):
        if self.failures:
            self.failures -= 1
            return Response('"[PD:apiutil:ErrRedirectNoLeader]redirect finds no leader"', status=503)
        if request.method == 'POST':
            body = json.loads(request.get_data())
            self.posts.append(body)
            for key, value in body.items():
                if isinstance(self.config[key], str) and self.config[key] in ('true', 'false') and not isinstance(value, str):
                    # Go's `json:",string"` on a bool refuses a bare true.
                    return Response('"json: invalid use of ,string struct tag"', status=400)
                self._stale = dict(self.config)
                self.config[key] = value
            return Response('"The config is updated."', status=200)
        shown = self._stale if self._stale is not None and self.stale_gets > 0 else self.config
        if self.stale_gets > 0 and self._stale is not None:
            self.stale_gets -= 1
        return Response(json.dumps(shown), status=200, content_type='application/json')


@pytest.fixture
def pd(httpserver):
    return FakePd(httpserver)


def test_posts_string_boolean_only_on_difference(pd, httpserver, run_module):
    pd.stale_gets = 1
    pd.failures = 1
    result = run_module(pd_replication_config, dict(pd_endpoint=pd.url, settings={'enable-placement-rules': True, 'max-replicas': 3}), diff=True)
    assert result['changed'] is True
    assert pd.posts == [{'enable-placement-rules': 'true'}]
    assert result['changes'] == {'enable-placement-rules': {'before': 'false', 'after': 'true'}}
    assert result['diff'] == {'before': {'enable-placement-rules': 'false'}, 'after': {'enable-placement-rules': 'true'}}
    assert result['config']['enable-placement-rules'] == 'true'
    # 503 retried, GET, POST, a stale GET, then the visible one.
    assert [request.method for request, _response in httpserver.log] == ['GET', 'GET', 'POST', 'GET', 'GET']

    httpserver.clear_log()
    again = run_module(pd_replication_config, dict(pd_endpoint=pd.url, settings={'enable-placement-rules': 'true'}))
    assert again['changed'] is False and len(httpserver.log) == 1 and len(pd.posts) == 1


def test_numbers_stay_numbers(pd, run_module):
    result = run_module(pd_replication_config, dict(pd_endpoint=pd.url, settings={'max-replicas': '5', 'location-labels': ['zone', 'host']}))
    assert result['changed'] is True
    assert pd.posts == [{'max-replicas': 5, 'location-labels': 'zone,host'}]


def test_check_mode_does_not_post(pd, httpserver, run_module):
    result = run_module(pd_replication_config, dict(pd_endpoint=pd.url, settings={'enable-placement-rules': True}), check_mode=True, diff=True)
    assert result['changed'] is True and pd.posts == []
    assert result['diff']['after'] == {'enable-placement-rules': 'true'}
    assert [request.method for request, _response in httpserver.log] == ['GET']


@pytest.mark.parametrize('args, message', [
    (dict(settings={'enable-placement-rule': True}), 'settings: unknown replication key(s) enable-placement-rule'),
    (dict(settings={'max-replicas': 'many'}), "settings.max-replicas: expected a number, got 'many'"),
    (dict(settings={}), 'settings: expected at least one key'),
    (dict(pd_endpoint='pd0:2379', settings={'max-replicas': 3}), 'pd_endpoint: expected an http(s) URL'),
])
def test_bad_input_changes_nothing(pd, httpserver, run_module, args, message):
    result = run_module(pd_replication_config, dict(dict(pd_endpoint=pd.url), **args))
    assert result['failed'] is True and message in result['msg']
    assert pd.posts == []
    assert all(request.method == 'GET' for request, _response in httpserver.log)


def test_check_mode_while_pd_has_no_leader_warns(pd, httpserver, run_module):
    pd.failures = 100
    result = run_module(pd_replication_config, dict(pd_endpoint=pd.url, settings={'enable-placement-rules': True}, timeout=60),
                        check_mode=True)
    assert 'failed' not in result and result['changed'] is True
    assert 'PD cannot answer yet' in json.dumps(result['warnings'])
    assert len(httpserver.log) == 1 and pd.posts == []
