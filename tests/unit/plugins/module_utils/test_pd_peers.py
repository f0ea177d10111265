# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""PD members' peer URLs after a TLS switch: the pure readers, and the update's failure paths on a
fake etcd gateway (the success path runs on real etcd in tests/unit/plugins/modules/test_simulator_e2e.py)."""

from __future__ import annotations

import json
import re

import pytest

from werkzeug import Response

from ansible_collections.tidbops.cluster.plugins.module_utils import _pd_peers, _rolling
from ansible_collections.tidbops.cluster.plugins.module_utils._http import HttpClient
from ansible_collections.tidbops.cluster.plugins.module_utils._waiter import Deadline

# As the gateway writes them: uint64 IDs as strings, camelCase keys (etcd api/etcdserverpb rpc.proto).
LISTED = {'header': {'cluster_id': '14841639068965178418'}, 'members': [
    {'ID': '10276657743932975437', 'name': 'pd1', 'peerURLs': ['http://10.0.1.2:2380'], 'clientURLs': ['https://10.0.1.2:2379']},
    {'ID': '9372538179322589801', 'name': 'pd0', 'peerURLs': ['https://10.0.1.1:2380'], 'clientURLs': ['https://10.0.1.1:2379']},
]}


def test_with_scheme_changes_the_scheme_only():
    assert _pd_peers.with_scheme('http://pd0:2380', 'https') == 'https://pd0:2380'
    assert _pd_peers.with_scheme('https://[::1]:2380', 'http') == 'http://[::1]:2380'
    assert _pd_peers.with_scheme('unix://sock', 'https') == 'unix://sock'  # never guessed
    assert _pd_peers.with_scheme('pd0:2380', 'https') == 'pd0:2380'


def test_members_are_read_by_name_with_string_ids():
    members = _pd_peers.members_of(LISTED)
    assert [m['name'] for m in members] == ['pd0', 'pd1']
    assert members[1] == {'id': '10276657743932975437', 'name': 'pd1', 'peer_urls': ['http://10.0.1.2:2380']}
    with pytest.raises(_rolling.RollError, match='expected {"members"'):
        _pd_peers.members_of({'error': 'etcdserver: no leader'})


def test_only_the_members_with_another_scheme_are_updated():
    members = _pd_peers.members_of(LISTED)
    assert [(m['name'], urls) for m, urls in _pd_peers.updates(members, 'https')] == [('pd1', ['https://10.0.1.2:2380'])]
    assert [m['name'] for m, _urls in _pd_peers.updates(members, 'http')] == ['pd0']
    with pytest.raises(ValueError, match="scheme: expected one of http, https, got 'tls'"):
        _pd_peers.updates(members, 'tls')


class FakeGateway:
    """The two etcd gateway calls; ``refuse`` answers the update with etcd's 400, ``ignore`` accepts it and changes nothing."""

    def __init__(self, server, refuse=False, ignore=False):
        self.url = server.url_for('').rstrip('/')
        self.members = json.loads(json.dumps(LISTED['members']))
        self.refuse, self.ignore = refuse, ignore
        self.updates = []
        server.expect_request(re.compile('^/v3/.*'), method='POST').respond_with_handler(self.handle)

    def handle(self, request):
        body = json.loads(request.data or b'{}')
        if request.path == _pd_peers.LIST_PATH:
            return Response(json.dumps({'members': self.members}), content_type='application/json')
        if request.path == _pd_peers.UPDATE_PATH:
            self.updates.append(body)
            if self.refuse:
                return Response(json.dumps({'error': 'etcdserver: Peer URLs already exists', 'code': 9}), status=400)
            if not self.ignore:
                for member in self.members:
                    if member['ID'] == body['ID']:
                        member['peerURLs'] = body['peerURLs']
            return Response(json.dumps({'members': self.members}), content_type='application/json')
        return Response('not found', status=404)


def peers(url):
    return _pd_peers.PeerUrls(_rolling.Api(HttpClient(), [url], Deadline(2, 0.01, 0.02), 'PD'))


def test_the_update_rewrites_what_differs_and_then_nothing(httpserver):
    gateway = FakeGateway(httpserver)
    changed, before, after = peers(gateway.url).ensure('https', False)
    assert changed and gateway.updates == [{'ID': '10276657743932975437', 'peerURLs': ['https://10.0.1.2:2380']}]
    assert [m['peer_urls'] for m in before] == [['https://10.0.1.1:2380'], ['http://10.0.1.2:2380']]
    assert [m['peer_urls'] for m in after] == [['https://10.0.1.1:2380'], ['https://10.0.1.2:2380']]
    assert peers(gateway.url).ensure('https', False)[0] is False and len(gateway.updates) == 1


def test_check_mode_sends_no_update(httpserver):
    gateway = FakeGateway(httpserver)
    changed, _before, after = peers(gateway.url).ensure('https', True)
    assert changed and gateway.updates == []
    assert [m['peer_urls'] for m in after] == [['https://10.0.1.1:2380'], ['https://10.0.1.2:2380']]


def test_a_refused_update_names_the_member_and_etcd_answer(httpserver):
    gateway = FakeGateway(httpserver, refuse=True)
    with pytest.raises(_rolling.RollError, match=r'refused to update the peer URLs of member pd1 to https://10.0.1.2:2380: HTTP 400 .*already exists'):
        peers(gateway.url).ensure('https', False)


def test_an_update_that_does_not_show_fails_with_what_is_listed(httpserver):
    gateway = FakeGateway(httpserver, ignore=True)
    with pytest.raises(_rolling.RollError, match=r'still lists non-https peer URLs after the update: pd1 http://10.0.1.2:2380'):
        peers(gateway.url).ensure('https', False)
