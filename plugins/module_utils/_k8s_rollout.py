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

import time

READY = "ready"
WAIT = "wait"
FAIL = "fail"


def _int(mapping, key):
    value = (mapping or {}).get(key)
    return value if isinstance(value, int) else 0


def statefulset_status(obj):
    """Return (verdict, reason) for a StatefulSet rollout.

    Ready means: the controller has seen the current spec (observedGeneration >= generation),
    every desired replica is updated and ready, and the update revision is the current one.
    """
    if not obj:
        return WAIT, "StatefulSet not found yet"
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    desired = spec.get("replicas", 1)
    if not isinstance(desired, int):
        desired = 1
    generation = _int(meta, "generation")
    observed = _int(status, "observedGeneration")
    if observed < generation:
        return WAIT, "observedGeneration %d < generation %d" % (observed, generation)
    ready = _int(status, "readyReplicas")
    updated = _int(status, "updatedReplicas")
    replicas = _int(status, "replicas")
    if updated < desired:
        return WAIT, "updatedReplicas %d/%d" % (updated, desired)
    if ready < desired:
        return WAIT, "readyReplicas %d/%d" % (ready, desired)
    if replicas > desired:
        return WAIT, "%d replicas still running, %d desired" % (replicas, desired)
    current, update = status.get("currentRevision"), status.get("updateRevision")
    if update and current != update:
        return WAIT, "currentRevision %s != updateRevision %s" % (current, update)
    return READY, "%d/%d replicas ready at revision %s" % (ready, desired, update or "?")


def job_status(obj):
    """Return (verdict, reason) for a Job: ready once Complete, fail once Failed."""
    if not obj:
        return WAIT, "Job not found yet"
    status = obj.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return READY, "Job complete"
        if condition.get("type") == "Failed":
            return FAIL, "Job failed: %s %s" % (condition.get("reason", ""), condition.get("message", ""))
    return WAIT, "Job running: %d active, %d failed pods" % (_int(status, "active"), _int(status, "failed"))


PREDICATES = {"StatefulSet": statefulset_status, "Job": job_status}


class TransientError(Exception):
    """An error worth retrying (API server unreachable, 5xx, throttling)."""


def wait_rollout(read, kind, timeout, interval=1.0, max_interval=10.0, clock=time.monotonic, sleep=time.sleep):
    """Poll ``read()`` until the predicate for ``kind`` says ready or fail, or the deadline passes.

    ``read`` returns the object (dict) or None when it does not exist yet, and raises
    TransientError for errors worth retrying. Returns a dict with ``ready``, ``verdict``,
    ``reason``, ``elapsed``, ``polls`` and ``object`` (the last observation).
    """
    predicate = PREDICATES[kind]
    start = clock()
    deadline = start + timeout
    delay = interval
    polls = 0
    last = None
    while True:
        polls += 1
        try:
            last = read()
            verdict, reason = predicate(last)
        except TransientError as exc:
            verdict, reason = WAIT, "transient error: %s" % exc
        now = clock()
        if verdict != WAIT or now >= deadline:
            return dict(ready=verdict == READY, verdict=verdict, reason=reason,
                        elapsed=round(now - start, 3), polls=polls, object=last)
        sleep(min(delay, max(deadline - now, 0)))
        delay = min(delay * 1.5, max_interval)
