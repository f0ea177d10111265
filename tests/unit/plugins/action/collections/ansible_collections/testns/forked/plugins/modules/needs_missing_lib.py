# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""A test module for tidbops.cluster.run_module: it imports a library the controller does not have."""

from __future__ import annotations

import tidbops_no_such_library  # noqa: F401  # pylint: disable=import-error,unused-import


def main():
    raise AssertionError('not reached')
