# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)

# This module_utils is PRIVATE and must only be used by this collection.
# It may change at any time, without notice.

"""PD replication config: read, compare, post the differences, wait until visible.

PD answers booleans of ``/pd/api/v1/config/replicate`` as JSON strings (``"true"``) and only
decodes strings for them on POST; numbers stay numbers, and ``location-labels`` is a
comma-joined string (tikv/pd server/api/config.go).
"""

from __future__ import annotations

from ansible_collections.tidbops.cluster.plugins.module_utils._http import join_url
from ansible_collections.tidbops.cluster.plugins.module_utils._waiter import retry

REPLICATE_PATH = '/pd/api/v1/config/replicate'


class PdError(Exception):
    pass


class PdUnavailable(PdError):
    """PD gave only transient answers (or none) until the deadline."""


def is_transient(response):
    return response.status is None or response.status >= 500


def canonical(value):
    """A comparable text form: booleans lowercased, lists comma-joined, numbers as digits."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (list, tuple)):
        return ','.join(canonical(item) for item in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return text.lower() if text.lower() in ('true', 'false') else text


_TRUE = ('true', 'yes', 'on')
_FALSE = ('false', 'no', 'off')


def _is_boolean(value):
    return isinstance(value, bool) or (isinstance(value, str) and value.lower() in ('true', 'false'))


def wire_value(desired, current):
    """Encode ``desired`` the way PD expects for a key whose current value is ``current``; ValueError if it cannot be."""
    if _is_boolean(current):
        text = canonical(desired).lower()
        if text not in _TRUE + _FALSE:
            raise ValueError('expected a boolean, got %r' % (desired,))
        return 'true' if text in _TRUE else 'false'
    if isinstance(current, (int, float)):
        try:
            number = float(desired)
        except (TypeError, ValueError):
            raise ValueError('expected a number, got %r' % (desired,)) from None
        return int(number) if number.is_integer() else number
    if isinstance(desired, (list, tuple)):
        return ','.join(str(item) for item in desired)
    return canonical(desired) if isinstance(desired, bool) else str(desired)


def differences(current, settings):
    """Return {key: (current value, value to POST)} for the settings that differ; PdError on bad keys or values."""
    unknown = sorted(key for key in settings if key not in current)
    if unknown:
        raise PdError('settings: unknown replication key(s) %s; PD knows %s' % (', '.join(unknown), ', '.join(sorted(current))))
    changes = {}
    for key, desired in settings.items():
        try:
            wanted = wire_value(desired, current[key])
        except ValueError as exc:
            raise PdError('settings.%s: %s' % (key, exc)) from None
        if canonical(wanted) != canonical(current[key]):
            changes[key] = (current[key], wanted)
    return changes


class ReplicationConfig:
    """GET/POST ``/pd/api/v1/config/replicate`` with transient retries under one deadline."""

    def __init__(self, client, pd_endpoint, deadline):
        self.client = client
        self.url = join_url(pd_endpoint, REPLICATE_PATH)
        self.deadline = deadline

    def get(self):
        response = retry(lambda: self.client.get(self.url, timeout=self.deadline.remaining()), is_transient, self.deadline)
        data = response.json
        if is_transient(response):
            raise PdUnavailable('GET %s: %s' % (REPLICATE_PATH, response.describe()))
        if not response.ok or not isinstance(data, dict):
            raise PdError('GET %s: %s' % (REPLICATE_PATH, response.describe()))
        return data

    def post(self, body):
        response = retry(lambda: self.client.post(self.url, body, timeout=self.deadline.remaining()), is_transient, self.deadline)
        if not response.ok:
            raise PdError('POST %s: %s' % (REPLICATE_PATH, response.describe()))

    def wait_visible(self, changes):
        """GET until every posted value reads back; return the last config."""
        self.deadline.restart_backoff()
        while True:
            current = self.get()
            pending = [key for key, (_old, new) in changes.items() if canonical(current.get(key)) != canonical(new)]
            if not pending:
                return current
            if not self.deadline.pause():
                raise PdError('%s not visible in GET %s before the timeout: %s' % (
                    ', '.join(pending), REPLICATE_PATH, ', '.join('%s=%r' % (key, current.get(key)) for key in pending)))
