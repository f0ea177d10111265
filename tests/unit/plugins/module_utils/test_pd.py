# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""PD replication config comparison and wire encoding (booleans are strings)."""

from __future__ import annotations

import pytest

from ansible_collections.tidbops.cluster.plugins.module_utils._pd import PdError, differences

CURRENT = {'max-replicas': 3, 'location-labels': '', 'strictly-match-label': 'false', 'enable-placement-rules': 'false',
           'enable-placement-rules-cache': 'false', 'isolation-level': ''}


@pytest.mark.parametrize('settings, expected', [
    ({'enable-placement-rules': True}, {'enable-placement-rules': ('false', 'true')}),
    ({'enable-placement-rules': 'true'}, {'enable-placement-rules': ('false', 'true')}),
    ({'enable-placement-rules': 'True'}, {'enable-placement-rules': ('false', 'true')}),
    ({'enable-placement-rules-cache': False, 'strictly-match-label': 'false'}, {}),
    ({'max-replicas': 3}, {}),
    ({'max-replicas': '3'}, {}),
    ({'max-replicas': 5}, {'max-replicas': (3, 5)}),
    ({'max-replicas': '5'}, {'max-replicas': (3, 5)}),
    ({'location-labels': ['zone', 'host']}, {'location-labels': ('', 'zone,host')}),
    ({'location-labels': ''}, {}),
])
def test_differences(settings, expected):
    assert differences(CURRENT, settings) == expected


def test_boolean_is_sent_as_a_string():
    changes = differences(CURRENT, {'enable-placement-rules': True})
    new = changes['enable-placement-rules'][1]
    assert new == 'true' and isinstance(new, str)


@pytest.mark.parametrize('settings, message', [
    ({'enable-placement-rule': True}, 'settings: unknown replication key(s) enable-placement-rule; PD knows'),
    ({'max-replicas': 'three'}, "settings.max-replicas: expected a number, got 'three'"),
    ({'enable-placement-rules': 'maybe'}, "settings.enable-placement-rules: expected a boolean, got 'maybe'"),
])
def test_bad_settings(settings, message):
    with pytest.raises(PdError) as info:
        differences(CURRENT, settings)
    assert message in str(info.value)
