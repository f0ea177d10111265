# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)

# This module_utils is PRIVATE and must only be used by this collection.
# It may change at any time, without notice.

"""The peer URLs PD's etcd keeps for its members, rewritten to another scheme after a TLS switch.

An etcd member publishes its client URLs itself each time it starts, but its peer URLs stay what the
membership recorded when it joined: a PD restarted with TLS still has ``http://`` peer URLs, and the
next member that joins would dial them in clear text. TiUP's ``tiup cluster tls`` therefore rewrites
every member's peer URLs after the restart (pingcap/tiup pkg/cluster/operation/pd_member.go,
UpdatePDMember: MemberList, then MemberUpdate per member). Here the same calls go through PD's etcd
gateway on its client URLs (``POST /v3/cluster/member/list`` and ``/v3/cluster/member/update``;
../shared/reference/operations.md section 1). The gateway writes etcd's uint64 member IDs as JSON
strings and takes them back the same way.
"""

from __future__ import annotations

from ansible_collections.tidbops.cluster.plugins.module_utils._rolling import RollError

SCHEMES = ('http', 'https')
LIST_PATH = '/v3/cluster/member/list'
UPDATE_PATH = '/v3/cluster/member/update'


def with_scheme(url, scheme):
    """``url`` with its scheme replaced; a URL without one is returned as it is (never guessed)."""
    head, sep, rest = url.partition('://')
    return '%s://%s' % (scheme, rest) if sep and head in SCHEMES else url


def members_of(payload):
    """``/v3/cluster/member/list``: [{'id', 'name', 'peer_urls'}], sorted by name."""
    members = (payload or {}).get('members') if isinstance(payload, dict) else None
    if not isinstance(members, list):
        raise RollError('PD etcd member list: expected {"members": [...]}, got %r' % (payload,))
    view = [dict(id=str(member.get('ID', '')), name=member.get('name') or '', peer_urls=list(member.get('peerURLs') or []))
            for member in members if isinstance(member, dict)]
    return sorted(view, key=lambda member: member['name'])


def updates(members, scheme):
    """The members whose peer URLs use another scheme than ``scheme``: [(member, new peer URLs)]."""
    if scheme not in SCHEMES:
        raise ValueError('scheme: expected one of %s, got %r' % (', '.join(SCHEMES), scheme))
    planned = []
    for member in members:
        wanted = [with_scheme(url, scheme) for url in member['peer_urls']]
        if wanted != member['peer_urls']:
            planned.append((member, wanted))
    return planned


class PeerUrls:
    """List PD's etcd members and rewrite the scheme of their peer URLs, under the Api's deadline."""

    def __init__(self, api):
        self.api = api

    def members(self):
        return members_of(self.api.json('POST', LIST_PATH, {}))

    def ensure(self, scheme, check_mode):
        """(changed, members before, members after); in check mode ``after`` is what would be."""
        before = self.members()
        planned = updates(before, scheme)
        if not planned:
            return False, before, before
        if check_mode:
            wanted = dict((member['id'], urls) for member, urls in planned)
            return True, before, [dict(member, peer_urls=wanted.get(member['id'], member['peer_urls'])) for member in before]
        for member, urls in planned:
            response = self.api.send('POST', UPDATE_PATH, {'ID': member['id'], 'peerURLs': urls})
            if not response.ok:
                raise RollError('PD etcd refused to update the peer URLs of member %s to %s: %s'
                                % (member['name'], ', '.join(urls), response.describe()))
        after = self.members()
        left = updates(after, scheme)
        if left:
            raise RollError('PD etcd still lists %s peer URLs after the update: %s'
                            % ('non-' + scheme, ', '.join('%s %s' % (m['name'], ' '.join(m['peer_urls'])) for m, _urls in left)))
        return True, before, after
