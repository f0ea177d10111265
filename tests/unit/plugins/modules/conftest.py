# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""A small stateful TiCDC OpenAPI v2 double on pytest-httpserver (pingcap/ticdc api/v2/changefeed.go)."""

from __future__ import annotations

import copy
import json
import re

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from werkzeug import Response

from ansible_collections.tidbops.cluster.plugins.modules import pd_replication_config, ticdc_changefeed

DEFAULT_CONFIG = {
    'memory_quota': 1073741824, 'case_sensitive': False, 'force_replicate': False,
    'filter': {'rules': ['*.*']},
    'sink': {'protocol': '', 'date_separator': 'day', 'enable_partition_separator': True, 'file_index_width': 20},
}


def _merge(base, override):
    merged = copy.deepcopy(base)
    for key, value in (override or {}).items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def _reorder(uri):
    """TiCDC re-encodes URIs; return the query in reverse order to prove order does not matter."""
    parts = urlsplit(uri)
    return urlunsplit(parts._replace(query=urlencode(list(reversed(parse_qsl(parts.query))))))


class FakeTicdc:
    """Changefeeds in memory; records every request; can inject answers before the real ones."""

    def __init__(self, server, exists_status=400):
        self.server = server
        self.url = server.url_for('').rstrip('/')
        self.feeds = {}
        self.log = []  # (method, path with query, raw body)
        self.injected = []  # [method, path regex, count, status, body]
        self.exists_status = exists_status  # 400 new architecture, 500 classic
        self.linger_gets = 0  # GETs that still see a deleted changefeed as "removed"
        self.hidden_gets = 0  # GETs that do not see a changefeed yet (a create race)
        self._lingering = {}
        server.expect_request(re.compile('^/api/v2/.*')).respond_with_handler(self.handle)

    def add(self, changefeed_id, sink_uri, state='normal', config=None, target_ts=0):
        self.feeds[changefeed_id] = dict(id=changefeed_id, sink_uri=sink_uri, state=state, config=_merge(DEFAULT_CONFIG, config),
                                         target_ts=target_ts, start_ts=1, upstream_id=1, keyspace='default')

    def inject(self, method, pattern, status, body, count=1):
        self.injected.append([method, re.compile(pattern), count, status, body])

    def mutations(self):
        return [(method, path) for method, path, _body in self.log if method != 'GET']

    @staticmethod
    def reply(status, body):
        return Response(body if isinstance(body, str) else json.dumps(body), status=status, content_type='application/json')

    @staticmethod
    def error(status, code, message):
        return FakeTicdc.reply(status, {'error_msg': message, 'error_code': code})

    def info(self, feed):
        shown = dict(feed, sink_uri=_reorder(feed['sink_uri']), config=copy.deepcopy(feed['config']))
        return shown

    def handle(self, request):
        path = request.path + ('?' + request.query_string.decode() if request.query_string else '')
        self.log.append((request.method, path, request.get_data()))
        for injected in self.injected:
            method, pattern, count, status, body = injected
            if count and method == request.method and pattern.search(request.path):
                injected[2] -= 1
                return self.reply(status, body)
        parts = request.path[len('/api/v2/changefeeds'):].strip('/').split('/')
        feed_id, action = parts[0], (parts[1] if len(parts) > 1 else '')
        body = request.get_json(silent=True)
        feed = self.feeds.get(feed_id)
        if request.method == 'POST' and not feed_id:
            return self.create(body)
        if request.method == 'GET':
            if feed_id in self._lingering and self._lingering[feed_id] > 0:
                self._lingering[feed_id] -= 1
                return self.reply(200, dict(self._lingering_feed(feed_id), state='removed'))
            if feed is None or self.hidden_gets > 0:
                self.hidden_gets = max(0, self.hidden_gets - 1)
                return self.error(400, 'CDC:ErrChangeFeedNotExists', 'changefeed not exists, %s' % feed_id)
            return self.reply(200, self.info(feed))
        if feed is None:
            return self.error(400, 'CDC:ErrChangeFeedNotExists', 'changefeed not exists, %s' % feed_id)
        if request.method == 'DELETE':
            self.feeds.pop(feed_id)
            self._lingering[feed_id] = self.linger_gets
            return self.reply(200, {})
        if action == 'pause':
            feed['state'] = 'stopped'
            return self.reply(200, {})
        if action == 'resume':
            if body is None:  # classic TiCDC binds JSON on resume
                return self.error(400, 'CDC:ErrAPIInvalidParam', 'invalid api parameter')
            if feed['state'] not in ('stopped', 'failed', 'finished'):
                return self.error(400, 'CDC:ErrChangefeedUpdateRefused', 'can only resume a stopped changefeed')
            feed['state'] = 'normal'
            return self.reply(200, {})
        if request.method == 'PUT':
            if feed['state'] not in ('stopped', 'failed'):
                return self.error(400, 'CDC:ErrChangefeedUpdateRefused', 'can only update changefeed config when it is stopped or failed')
            if body.get('start_ts'):
                return self.error(400, 'CDC:ErrAPIInvalidParam', 'start_ts can not be updated')
            feed['sink_uri'] = body.get('sink_uri') or feed['sink_uri']
            feed['config'] = _merge(DEFAULT_CONFIG, body.get('replica_config'))  # wholesale, from the defaults
            if 'target_ts' in body:
                feed['target_ts'] = body['target_ts']
            return self.reply(200, self.info(feed))
        return self.error(400, 'CDC:ErrAPIInvalidParam', 'unexpected request')

    def _lingering_feed(self, feed_id):
        return dict(id=feed_id, sink_uri='', config={}, state='removed')

    def create(self, body):
        feed_id = body['changefeed_id']
        if feed_id in self.feeds:
            return self.error(self.exists_status, 'CDC:ErrChangeFeedAlreadyExists', 'changefeed already exists, %s' % feed_id)
        if '://' not in body.get('sink_uri', ''):
            return self.error(400, 'CDC:ErrSinkURIInvalid', 'sink uri invalid %s' % body.get('sink_uri'))
        self.add(feed_id, body['sink_uri'], config=body.get('replica_config'), target_ts=body.get('target_ts', 0))
        return self.reply(200, self.info(self.feeds[feed_id]))


@pytest.fixture
def ticdc(httpserver):
    return FakeTicdc(httpserver)


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch):
    """Poll the doubles every 20 ms instead of the modules' 200 ms: same logic, shorter suite."""
    monkeypatch.setattr(ticdc_changefeed, 'POLL_INTERVAL', 0.02)
    monkeypatch.setattr(pd_replication_config, 'POLL_INTERVAL', 0.02)
