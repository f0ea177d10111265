# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)

# This module_utils is PRIVATE and must only be used by this collection.
# It may change at any time, without notice.

"""Dictionary helpers shared by the modules (changefeed config) and the filters (server configs)."""

from __future__ import annotations

import copy


def deep_merge(base, override):
    """``override`` on top of ``base``, recursively for dicts; lists and scalars replace."""
    merged = copy.deepcopy(base) if isinstance(base, dict) else {}
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
