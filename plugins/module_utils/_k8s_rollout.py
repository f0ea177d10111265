# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""Rollout waiting for StatefulSets (partition-aware, or one pod of them) and Jobs.

This is a private module_utils of tidbops.cluster: its interface may change at any time.

The predicates are pure functions over what the API server returns (dicts as from
``ApiClient.sanitize_for_serialization`` or ``kubectl get -o json``). The waiter takes an
injected ``read`` callable so it can be tested without a cluster.

A StatefulSet's ``spec.updateStrategy.rollingUpdate.partition`` holds the pods below it at the
revision they run: the Kubernetes backend applies a changed template with the partition at the
current replica count, so that no running pod is replaced by Kubernetes itself, and then moves
the partition down one pod at a time (pingcap/tidb-operator does the same in its upgraders).
So "rolled out" means: every pod at or above the partition runs the update revision and is Ready;
a pod below it is Ready when it runs the update revision, and is otherwise left for the roll.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.tidbops.cluster.plugins.module_utils._waiter import FAILED, READY, WAITING, Check, wait_for

# The label the StatefulSet controller puts on each pod: the ControllerRevision it was created from.
REVISION_LABEL = "controller-revision-hash"


def _int(mapping, key):
    value = (mapping or {}).get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _desired(spec):
    value = (spec or {}).get("replicas", 1)
    return value if isinstance(value, int) and not isinstance(value, bool) else 1


def partition(obj):
    """The ordinal below which the StatefulSet keeps pods at their revision (0: it replaces every pod).

    With the OnDelete strategy the controller replaces no pod by itself: every ordinal is held.
    """
    spec = (obj or {}).get("spec") or {}
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type") == "OnDelete":
        return _desired(spec)
    return _int(strategy.get("rollingUpdate"), "partition")


def pod_ordinal(set_name, pod):
    """The ordinal of a pod named ``<set_name>-<n>``, or None for a pod of another name."""
    match = re.match(r"^%s-(\d+)$" % re.escape(set_name), ((pod or {}).get("metadata") or {}).get("name") or "")
    return int(match.group(1)) if match else None


def pod_revision(pod):
    return (((pod or {}).get("metadata") or {}).get("labels") or {}).get(REVISION_LABEL)


def pod_terminating(pod):
    return bool(((pod or {}).get("metadata") or {}).get("deletionTimestamp"))


def pod_ready(pod):
    """Ready: the Ready condition is True and the pod is not being deleted."""
    if not pod or pod_terminating(pod):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in ((pod.get("status") or {}).get("conditions") or []))


def _observed(obj):
    """(WAITING, reason) while the controller has not seen the current spec, else None."""
    generation = _int(obj.get("metadata"), "generation")
    observed = _int(obj.get("status"), "observedGeneration")
    if observed < generation:
        return WAITING, "observedGeneration %d < generation %d" % (observed, generation)
    return None


def pending_pods(obj, pods):
    """Names of the pods of ``obj`` that exist and run another revision than its update revision."""
    name = ((obj or {}).get("metadata") or {}).get("name") or ""
    update = ((obj or {}).get("status") or {}).get("updateRevision")
    found = [(pod_ordinal(name, pod), pod) for pod in pods or []]
    return [pod["metadata"]["name"] for ordinal, pod in sorted(found, key=lambda item: item[0] if item[0] is not None else -1)
            if ordinal is not None and update and pod_revision(pod) != update]


def statefulset_status(obj, pods=None):
    """Return (state, reason) for a StatefulSet rollout.

    Without ``pods`` it judges the status fields as ``kubectl rollout status`` does: the controller
    has seen the current spec, every replica is ready, no surplus runs, and the pods at or above the
    partition are updated (with no partition: the update revision is the current one).

    With ``pods`` (the pods its selector matches) it judges each ordinal: every pod at or above the
    partition runs the update revision and is Ready; below it, a pod at the update revision is Ready
    and a pod at an older revision is left as it is (the roll replaces it).
    """
    if not obj:
        return WAITING, "StatefulSet not found yet"
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    desired = _desired(spec)
    held = partition(obj)
    unseen = _observed(obj)
    if unseen:
        return unseen
    if pods is not None:
        return _statefulset_pods(obj, pods, desired, held)
    ready = _int(status, "readyReplicas")
    updated = _int(status, "updatedReplicas")
    replicas = _int(status, "replicas")
    needed = max(desired - held, 0)
    if updated < needed:
        return WAITING, "updatedReplicas %d/%d" % (updated, needed) + (" (partition %d)" % held if held else "")
    if ready < desired:
        return WAITING, "readyReplicas %d/%d" % (ready, desired)
    if replicas > desired:
        return WAITING, "%d replicas still running, %d desired" % (replicas, desired)
    current, update = status.get("currentRevision"), status.get("updateRevision")
    if not held and update and current != update:
        return WAITING, "currentRevision %s != updateRevision %s" % (current, update)
    if held:
        return READY, "%d/%d replicas ready, %d at revision %s (partition %d)" % (ready, desired, updated, update or "?", held)
    return READY, "%d/%d replicas ready at revision %s" % (ready, desired, update or "?")


def _statefulset_pods(obj, pods, desired, held):
    name = (obj.get("metadata") or {}).get("name") or ""
    update = (obj.get("status") or {}).get("updateRevision")
    if not update:
        return WAITING, "no updateRevision in the status yet"
    by_ordinal = {}
    for pod in pods:
        ordinal = pod_ordinal(name, pod)
        if ordinal is not None:
            by_ordinal[ordinal] = pod
    surplus = sorted(ordinal for ordinal in by_ordinal if ordinal >= desired)
    if surplus:
        return WAITING, "%d pods beyond the %d desired still exist (%s-%d...)" % (len(surplus), desired, name, surplus[0])
    behind = []
    for ordinal in range(desired):
        pod_name = "%s-%d" % (name, ordinal)
        pod = by_ordinal.get(ordinal)
        if pod is None:
            return WAITING, "pod %s not created yet" % pod_name
        if pod_terminating(pod):
            return WAITING, "pod %s is terminating" % pod_name
        revision = pod_revision(pod)
        if revision != update:
            if ordinal >= held:
                return WAITING, "pod %s at revision %s, not yet %s" % (pod_name, revision, update)
            behind.append(pod_name)
            continue
        if not pod_ready(pod):
            return WAITING, "pod %s not Ready" % pod_name
    reason = "%d/%d pods at revision %s ready" % (desired - len(behind), desired, update)
    if behind:
        reason += "; %s held at an older revision below partition %d" % (", ".join(behind), held)
    return READY, reason


def pod_replacement(obj, pods, pod_name):
    """How to replace or restart the pod ``pod_name`` of the StatefulSet ``obj`` (``pods``: its pods).

    ``behind``: the pod runs another revision than the update revision, so it is replaced by moving the
    partition down to ``next_partition`` - its ordinal, or 0 when no pod of a lower ordinal is behind
    (so a roll, which goes from the highest ordinal down, ends at 0), never above the current partition.
    Otherwise the pod is restarted (deleted) and the partition stays. ``blocked_by``: pods of higher
    ordinals still behind, which a partition cannot skip: they must be replaced first.
    """
    name = ((obj or {}).get("metadata") or {}).get("name") or ""
    update = ((obj or {}).get("status") or {}).get("updateRevision")
    held = partition(obj)
    ordinal = pod_ordinal(name, {"metadata": {"name": pod_name}})
    if ordinal is None:
        raise ValueError("pod %s is not a pod of the StatefulSet %s (<name>-<ordinal>)" % (pod_name, name))
    by_ordinal = {}
    for pod in pods or []:
        number = pod_ordinal(name, pod)
        if number is not None:
            by_ordinal[number] = pod
    behind = sorted(number for number, pod in by_ordinal.items() if update and pod_revision(pod) != update)
    pod = by_ordinal.get(ordinal)
    is_behind = ordinal in behind
    lower = [number for number in behind if number < ordinal]
    return {
        "pod": pod_name,
        "ordinal": ordinal,
        "exists": pod is not None,
        "uid": ((pod or {}).get("metadata") or {}).get("uid") or "",
        "revision": pod_revision(pod) or "",
        "update_revision": update or "",
        "behind": is_behind,
        "partition": held,
        "next_partition": min(held, ordinal if lower else 0) if is_behind else held,
        "blocked_by": ["%s-%d" % (name, number) for number in behind if number > ordinal],
    }


def pod_status(obj, pod, replaced_uid=None, updated=True):
    """Return (state, reason) for one pod of a StatefulSet being replaced or restarted.

    Ready when the pod exists, is not the one it replaces (uid ``replaced_uid``) nor being deleted,
    runs the StatefulSet's update revision (when ``updated``) and is Ready.
    """
    if not obj:
        return WAITING, "StatefulSet not found yet"
    unseen = _observed(obj)
    if unseen:
        return unseen
    if not pod:
        return WAITING, "pod not created yet"
    meta = pod.get("metadata") or {}
    name = meta.get("name", "?")
    if replaced_uid and meta.get("uid") == replaced_uid:
        return WAITING, "pod %s: the old pod (uid %s) is still there%s" % (
            name, replaced_uid, ", terminating" if pod_terminating(pod) else "")
    if pod_terminating(pod):
        return WAITING, "pod %s is terminating" % name
    update = (obj.get("status") or {}).get("updateRevision")
    revision = pod_revision(pod)
    if updated and (not update or revision != update):
        return WAITING, "pod %s at revision %s, not yet %s" % (name, revision, update)
    if not pod_ready(pod):
        phase = (pod.get("status") or {}).get("phase") or "?"
        return WAITING, "pod %s not Ready (phase %s)" % (name, phase)
    return READY, "pod %s Ready at revision %s" % (name, revision)


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


def observation_predicate(kind, pod=None, replaced_uid=None, updated=True):
    """The predicate over what the module reads: a Job, or {set, pods} (a StatefulSet and its pods),
    or {set, pod} (a StatefulSet and the one pod ``pod`` waits for)."""
    if kind == "Job":
        return job_status
    if pod:
        return lambda seen: pod_status((seen or {}).get("set"), (seen or {}).get("pod"), replaced_uid, updated)
    return lambda seen: statefulset_status((seen or {}).get("set"), (seen or {}).get("pods") or [])


class TransientError(Exception):
    """An error worth retrying (API server unreachable, 5xx, throttling)."""


def wait_rollout(read, kind, name, deadline, check_mode=False, predicate=None):
    """Poll ``read()`` until ``predicate`` (by default the one for ``kind``) says ready or failed, or
    ``deadline`` (a _waiter.Deadline) passes.

    ``read`` returns the observation the predicate takes (the object, None when it does not exist
    yet), and raises TransientError for errors worth retrying. In check mode it reads once. Returns
    a dict with ``ready``, ``state``, ``reason``, ``elapsed``, ``polls`` and ``object`` (the last
    observation).
    """
    predicate = predicate or PREDICATES[kind]
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
