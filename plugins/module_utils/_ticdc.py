# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)

# This module_utils is PRIVATE and must only be used by this collection.
# It may change at any time, without notice.

"""TiCDC OpenAPI v2 changefeed client and the converge state machine.

The contract is pingcap/ticdc api/v2 (pingcap/tiflow cdc/api/v2 for the classic architecture).
TiCDC answers "not found" and "already exists" with 400 or 500 depending on the architecture,
and never with 404/409, so decisions key on ``error_code``, never on the HTTP status alone.
"""

from __future__ import annotations

import re

from urllib.parse import parse_qsl, quote, unquote, urlsplit

from ansible_collections.tidbops.cluster.plugins.module_utils._dicts import deep_merge
from ansible_collections.tidbops.cluster.plugins.module_utils._http import join_url, path_of
from ansible_collections.tidbops.cluster.plugins.module_utils._waiter import retry

API = '/api/v2'
NOT_EXISTS = 'CDC:ErrChangeFeedNotExists'
ALREADY_EXISTS = 'CDC:ErrChangeFeedAlreadyExists'
TRANSIENT_CODES = frozenset((
    'CDC:ErrClusterIsUnhealthy', 'CDC:ErrOwnerNotFound', 'CDC:ErrNotOwner', 'CDC:ErrServerIsNotReady',
))

RUNNING_STATES = frozenset(('normal', 'warning', 'pending'))
STOPPED = 'stopped'
RESUMABLE_STATES = frozenset(('stopped', 'failed', 'finished'))
REMOVED = 'removed'

# TiCDC shows a masked userinfo password or sasl-password as this (ticdc pkg/util/uri.go).
SERVER_MASK = 'xxxxx'

CHANGEFEED_ID = re.compile(r'^[a-zA-Z0-9]+(-[a-zA-Z0-9]+)*$')
MAX_ID_LENGTH = 128


class TicdcError(Exception):
    pass


class TicdcUnavailable(TicdcError):
    """TiCDC gave only transient answers (or none) until the deadline."""


def error_code(response):
    data = response.json
    return (data.get('error_code') or '') if isinstance(data, dict) else ''


def error_text(response):
    data = response.json
    if isinstance(data, dict) and (data.get('error_code') or data.get('error_msg')):
        return 'HTTP %s %s: %s' % (response.status, data.get('error_code') or '(no error_code)', data.get('error_msg') or '')
    return response.describe()


def is_transient(response):
    """Retry connection errors, 503, the transient codes, and 5xx without an error_code
    (for example "coordinator is not fully initialized, wait a moment")."""
    if response.status is None or response.status == 503:
        return True
    code = error_code(response)
    if code in TRANSIENT_CODES:
        return True
    return response.status >= 500 and not code


# --- input validation --------------------------------------------------------------------------

def validate(params):
    """Return the error texts for a ticdc_changefeed call; empty when the input is usable."""
    errors = []
    changefeed_id = params.get('changefeed_id') or ''
    if len(changefeed_id) > MAX_ID_LENGTH or not CHANGEFEED_ID.match(changefeed_id):
        errors.append('changefeed_id: expected letters and digits joined by single hyphens (no underscores), '
                      'at most %d characters, got %r' % (MAX_ID_LENGTH, changefeed_id))
    state = params.get('state')
    sink_uri = params.get('sink_uri')
    if state != 'absent':
        if not sink_uri:
            errors.append('sink_uri: required unless state is absent')
        else:
            try:
                scheme = urlsplit(sink_uri).scheme
            except ValueError:
                scheme = ''
            if not scheme or '://' not in sink_uri:
                errors.append('sink_uri: expected a URI with a scheme, like s3://bucket/prefix/cdc?protocol=canal-json')
    if params.get('replica_config') is not None and not isinstance(params['replica_config'], dict):
        errors.append('replica_config: expected a dict in the v2 API snake_case form')
    start_ts, target_ts = params.get('start_ts'), params.get('target_ts')
    for name, value in (('start_ts', start_ts), ('target_ts', target_ts)):
        if value is not None and value < 0:
            errors.append('%s: expected a TSO >= 0, got %d' % (name, value))
    if start_ts and target_ts and target_ts <= start_ts:
        errors.append('target_ts: expected a TSO above start_ts (%d), got %d' % (start_ts, target_ts))
    return errors


# --- comparison ------------------------------------------------------------------------------------

def _scalar_equal(desired, current):
    if isinstance(desired, bool) or isinstance(current, bool):
        return str(desired).lower() == str(current).lower()
    if isinstance(desired, (int, float)) and isinstance(current, (int, float)):
        return desired == current
    return desired == current


def config_differences(desired, current, prefix='replica_config'):
    """Paths under ``desired`` whose values differ in ``current``: only what the user set counts."""
    found = []
    current = current if isinstance(current, dict) else {}
    for key, value in desired.items():
        path = '%s.%s' % (prefix, key)
        if not _value_matches(value, current.get(key), path, found):
            found.append(path)
    return found


def _value_matches(desired, current, path, found):
    if isinstance(desired, dict):
        if not isinstance(current, dict):
            return not desired
        found.extend(config_differences(desired, current, path))
        return True
    if isinstance(desired, list):
        if not isinstance(current, list) or len(current) != len(desired):
            return False
        nested = []
        matches = all(_value_matches(d, c, path, nested) for d, c in zip(desired, current))
        return matches and not nested
    if desired is None:
        return current is None
    return _scalar_equal(desired, current)


def sink_uri_equal(desired, current):
    """Compare parsed sink URIs: query order does not matter, parts the server masks are ignored."""
    if not isinstance(current, str):
        return False
    try:
        want, have = urlsplit(desired), urlsplit(current)
        want_host, have_host = (want.hostname or '', want.port), (have.hostname or '', have.port)
    except ValueError:
        return False
    # Paths and user names compare decoded: the server may percent-encode what we sent plain, or not.
    if (want.scheme.lower(), want_host, unquote(want.path).rstrip('/')) != (have.scheme.lower(), have_host, unquote(have.path).rstrip('/')):
        return False
    if unquote(want.username or '') != unquote(have.username or '') or (have.password != SERVER_MASK and want.password != have.password):
        return False
    have_query = parse_qsl(have.query, keep_blank_values=True)
    masked = set(key for key, value in have_query if value == SERVER_MASK)
    want_query = [(key, SERVER_MASK if key in masked else value) for key, value in parse_qsl(want.query, keep_blank_values=True)]
    return sorted(want_query) == sorted(have_query)


def project(current, desired):
    """The part of ``current`` that ``desired`` manages (same keys, recursively), for diffs."""
    current = current if isinstance(current, dict) else {}
    view = {}
    for key, value in desired.items():
        if isinstance(value, dict) and isinstance(current.get(key), dict):
            view[key] = project(current[key], value)
        else:
            view[key] = current.get(key)
    return view


# --- client ----------------------------------------------------------------------------------------

class ChangefeedApi:
    """The v2 changefeed routes for one changefeed ID, with transient retries under one deadline."""

    def __init__(self, client, server, changefeed_id, deadline, keyspace=None, redact=str):
        self.client = client
        self.server = server
        self.changefeed_id = changefeed_id
        self.deadline = deadline
        self.query = '?keyspace=%s' % quote(keyspace, safe='') if keyspace else ''
        self.redact = redact

    def url(self, suffix=''):
        name = '/changefeeds' + ('/' + quote(self.changefeed_id, safe='') + suffix if suffix is not None else '')
        return join_url(self.server, API + name + self.query)

    def path(self, suffix=''):
        return path_of(self.url(suffix))

    def send(self, method, suffix='', body=None):
        url = self.url(suffix)
        return retry(lambda: self.client.request(method, url, body, timeout=self.deadline.remaining()), is_transient, self.deadline)

    def fail(self, method, suffix, response):
        error = TicdcUnavailable if is_transient(response) else TicdcError
        raise error('%s %s failed: %s' % (method, self.path(suffix), self.redact(error_text(response))))

    def get(self):
        """The ChangeFeedInfo, or None when TiCDC says it does not exist."""
        response = self.send('GET')
        if response.ok and isinstance(response.json, dict):
            return response.json
        if error_code(response) == NOT_EXISTS:
            return None
        return self.fail('GET', '', response)

    def create(self, body):
        """POST the changefeed; False when it already exists (400 new architecture, 500 classic)."""
        response = self.send('POST', None, body)
        if response.ok:
            return True
        if error_code(response) == ALREADY_EXISTS:
            return False
        return self.fail('POST', None, response)

    def mutate(self, method, suffix='', body=None):
        response = self.send(method, suffix, body)
        if not response.ok:
            self.fail(method, suffix, response)
        return response

    def wait_until(self, wanted, what):
        """GET until ``wanted(info)`` holds (info is None when absent); return the last info."""
        self.deadline.restart_backoff()
        while True:
            info = self.get()
            if wanted(info):
                return info
            if not self.deadline.pause():
                state = 'absent' if info is None else 'state %s' % info.get('state')
                raise TicdcError('changefeed %s did not become %s before the timeout; last seen: %s' % (self.changefeed_id, what, state))


# --- converge --------------------------------------------------------------------------------------

class Converge:
    """Bring one changefeed to the desired state; in check mode only plan (GET it; create it, or pause, update and resume it)."""

    def __init__(self, api, params, check_mode):
        self.api = api
        self.params = params
        self.check_mode = check_mode
        self.planned = []  # (method, path) of the mutations made or, in check mode, planned
        self.differences = []
        self.before = None
        self.info = None

    def _do(self, method, suffix='', body=None):
        self.planned.append((method, self.api.path(suffix)))
        if not self.check_mode:
            return self.api.mutate(method, suffix, body)
        return None

    def run(self):
        info = self.api.get()
        if info is not None and info.get('state') == REMOVED:
            # A just-removed ID lingers; creating it again only works once it is gone.
            info = self.api.wait_until(lambda i: i is None, 'gone')
        self.before = info
        state = self.params['state']
        if state == 'absent':
            self._converge_absent(info)
        elif info is None:
            self._create()
        else:
            self._converge_existing(info)
        return bool(self.planned)

    def _converge_absent(self, info):
        if info is None:
            return
        self._do('DELETE')
        if not self.check_mode:
            self.info = self.api.wait_until(lambda i: i is None, 'absent')

    def _create(self):
        body = dict(changefeed_id=self.params['changefeed_id'], sink_uri=self.params['sink_uri'])
        for key in ('replica_config', 'start_ts', 'target_ts'):
            if self.params.get(key) is not None:
                body[key] = self.params[key]
        self.planned.append(('POST', self.api.path(None)))
        self.differences = ['changefeed']
        if self.check_mode:
            if self.params['state'] == 'paused':
                self.planned.append(('POST', self.api.path('/pause')))
            return
        if not self.api.create(body):
            # Someone else created it between our GET and POST: converge what is there.
            self.planned.pop()
            self.differences = []
            info = self.api.get()
            self.before = info
            if info is None:
                raise TicdcError('changefeed %s: create said it exists, but GET says it does not' % self.params['changefeed_id'])
            self._converge_existing(info)
            return
        if self.params['state'] == 'paused':
            self._do('POST', '/pause')
            self.info = self.api.wait_until(lambda i: i is not None and i.get('state') == STOPPED, STOPPED)
        else:
            self.info = self.api.wait_until(lambda i: i is not None, 'visible')

    def desired_differences(self, info):
        found = []
        if not sink_uri_equal(self.params['sink_uri'], info.get('sink_uri')):
            found.append('sink_uri')
        if self.params.get('replica_config'):
            found.extend(config_differences(self.params['replica_config'], info.get('config')))
        if self.params.get('target_ts') is not None and info.get('target_ts') != self.params['target_ts']:
            found.append('target_ts')
        return found

    def _converge_existing(self, info):
        self.info = info
        self.differences = self.desired_differences(info)
        current_state = info.get('state')
        running = current_state in RUNNING_STATES
        want_running = self.params['state'] == 'present'
        if self.differences:
            if running:
                self._do('POST', '/pause')
                if not self.check_mode:
                    self.api.wait_until(lambda i: i is not None and i.get('state') == STOPPED, STOPPED)
            body = dict(sink_uri=self.params['sink_uri'])
            # The server replaces replica_config wholesale: send the current one with the user's keys on top.
            body['replica_config'] = deep_merge(info.get('config') or {}, self.params.get('replica_config') or {})
            if self.params.get('target_ts') is not None:
                body['target_ts'] = self.params['target_ts']
            self._do('PUT', '', body)
            if want_running:
                self._resume()
            elif not self.check_mode:
                self.info = self.api.wait_until(lambda i: i is not None, 'visible')
        elif want_running and current_state in RESUMABLE_STATES:
            self._resume()
        elif not want_running and running:
            self._do('POST', '/pause')
            if not self.check_mode:
                self.info = self.api.wait_until(lambda i: i is not None and i.get('state') == STOPPED, STOPPED)

    def _resume(self):
        # Always a JSON body: classic TiCDC binds JSON on resume and rejects an empty body.
        self._do('POST', '/resume', {})
        if not self.check_mode:
            self.info = self.api.wait_until(lambda i: i is not None and i.get('state') in RUNNING_STATES, 'running')

    def diff_views(self):
        """Before and after of the managed fields (unmasked: the caller masks them)."""
        before = self._view(self.before) if self.before else {}
        if self.params['state'] == 'absent':
            return before, {}
        after = dict(sink_uri=self.params['sink_uri'], state=self._expected_state(before.get('state')))
        if self.params.get('replica_config'):
            after['replica_config'] = self.params['replica_config']
        if self.params.get('target_ts') is not None:
            after['target_ts'] = self.params['target_ts']
        return before, after

    def _expected_state(self, state):
        """The state the changefeed ends in: a state that already fits the wish is kept."""
        running = state in RUNNING_STATES
        if self.params['state'] == 'present':
            return state if running else 'normal'
        return state if state and not running else STOPPED

    def _view(self, info):
        sink_uri = info.get('sink_uri')
        if self.params.get('sink_uri') and sink_uri_equal(self.params['sink_uri'], sink_uri):
            sink_uri = self.params['sink_uri']  # the same URI; the server's re-encoding is no difference
        view = dict(sink_uri=sink_uri, state=info.get('state'))
        if self.params.get('replica_config'):
            view['replica_config'] = project(info.get('config'), self.params['replica_config'])
        if self.params.get('target_ts') is not None:
            view['target_ts'] = info.get('target_ts')
        return view
