# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""Rollout waiting for StatefulSets and Jobs.

This is a private module_utils of tidbops.cluster: its interface may change at any time.

The predicates are pure functions over the object the API server returns (a dict as from
``ApiClient.sanitize_for_serialization`` or ``kubectl get -o json``). The waiter takes an
injected ``read`` callable so it can be tested without a cluster.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.tidbops.cluster.plugins.module_utils._waiter import FAILED, READY, WAITING, Check, wait_for


def _int(mapping, key):
    value = (mapping or {}).get(key)
    return value if isinstance(value, int) else 0


def statefulset_status(obj):
    """Return (state, reason) for a StatefulSet rollout.

    Ready means: the controller has seen the current spec (observedGeneration >= generation),
    every desired replica is updated and ready, and the update revision is the current one.
    """
    if not obj:
        return WAITING, "StatefulSet not found yet"
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    desired = spec.get("replicas", 1)
    if not isinstance(desired, int):
        desired = 1
    generation = _int(meta, "generation")
    observed = _int(status, "observedGeneration")
    if observed < generation:
        return WAITING, "observedGeneration %d < generation %d" % (observed, generation)
    ready = _int(status, "readyReplicas")
    updated = _int(status, "updatedReplicas")
    replicas = _int(status, "replicas")
    if updated < desired:
        return WAITING, "updatedReplicas %d/%d" % (updated, desired)
    if ready < desired:
        return WAITING, "readyReplicas %d/%d" % (ready, desired)
    if replicas > desired:
        return WAITING, "%d replicas still running, %d desired" % (replicas, desired)
    current, update = status.get("currentRevision"), status.get("updateRevision")
    if update and current != update:
        return WAITING, "currentRevision %s != updateRevision %s" % (current, update)
    return READY, "%d/%d replicas ready at revision %s" % (ready, desired, update or "?")


def job_status(obj):
    """Return (state, reason) for a Job: ready once Complete, fail once Failed."""
    if not obj:
        return WAITING, "Job not found yet"
    status = obj.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return READY, "Job complete"
        if condition.get("type") == "Failed":
            return FAILED, "Job failed: %s %s" % (condition.get("reason", ""), condition.get("message", ""))
    return WAITING, "Job running: %d active, %d failed pods" % (_int(status, "active"), _int(status, "failed"))


PREDICATES = {"StatefulSet": statefulset_status, "Job": job_status}


class TransientError(Exception):
    """An error worth retrying (API server unreachable, 5xx, throttling)."""


def wait_rollout(read, kind, name, deadline, check_mode=False):
    """Poll ``read()`` until the predicate for ``kind`` says ready or failed, or ``deadline`` (a _waiter.Deadline) passes.

    ``read`` returns the object (dict) or None when it does not exist yet, and raises
    TransientError for errors worth retrying. In check mode it reads once. Returns a dict with
    ``ready``, ``state``, ``reason``, ``elapsed``, ``polls`` and ``object`` (the last observation).
    """
    predicate = PREDICATES[kind]
    last = {}

    def probe():
        try:
            last["object"] = read()
            state, reason = predicate(last["object"])
        except TransientError as exc:
            state, reason = WAITING, "transient error: %s" % exc
        return [Check(name, state, reason)]

    result = wait_for(probe, deadline, check_mode=check_mode)
    return dict(ready=result.ready, state=result.state, reason=result.checks[0].reason,
                elapsed=round(result.elapsed, 3), polls=result.rounds, object=last.get("object"))
