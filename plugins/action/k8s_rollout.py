# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""Runs tidbops.cluster.k8s_rollout in the controller's worker process when its task runs on the controller
(plugin_utils/_in_process.py), and as a module elsewhere."""

from __future__ import annotations

from ansible_collections.tidbops.cluster.plugins.modules import k8s_rollout
from ansible_collections.tidbops.cluster.plugins.plugin_utils._in_process import KUBERNETES_IMPORTS, InProcessAction


class ActionModule(InProcessAction):
    MODULE = k8s_rollout
    # Imported by the module when it first runs; tidbops.cluster.linear imports it before the worker forks.
    WORKER_IMPORTS = KUBERNETES_IMPORTS
