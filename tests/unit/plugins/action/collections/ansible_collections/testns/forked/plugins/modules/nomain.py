# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""A test module for tidbops.cluster.run_module: it has no main(), so a fork cannot run it."""

from __future__ import annotations

ANSWER = 42
