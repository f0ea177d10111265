#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE). Runs inside Ansible, which is licensed under the
# GNU General Public License v3.0+ (https://www.gnu.org/licenses/gpl-3.0.txt); Apache 2.0 code may be combined with it.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: k8s_rollout
short_description: Wait until a StatefulSet (or one of its pods) has rolled out or a Job has completed
version_added: 0.1.0
description:
  - Polls one StatefulSet and its pods, or one Job, through the Kubernetes API with one deadline on a
    monotonic clock.
  - A StatefulSet is rolled out when C(status.observedGeneration) has reached C(metadata.generation), no pod
    beyond C(spec.replicas) exists, every pod at or above C(spec.updateStrategy.rollingUpdate.partition) runs
    C(status.updateRevision) (its C(controller-revision-hash) label) and is Ready, and every pod below the
    partition that runs the update revision is Ready. A pod below the partition at an older revision is left
    as it is and returned in RV(pending); with partition 0 that is none, which is a full rollout.
  - With O(pod), it waits for that one pod instead (a pod being replaced or restarted) - it must exist, not be
    the pod of uid O(replaced_uid) nor be terminating, run the update revision when O(updated), and be Ready.
  - A Job is done when it has the condition C(Complete); the condition C(Failed) fails at once.
  - A missing object, API server errors (5xx, 429) and connection errors count as "not yet".
  - On timeout the module fails with the last observation.
author:
  - tidbops maintainers (@tidbops)
extends_documentation_fragment:
  - tidbops.cluster.attributes
requirements:
  - kubernetes (Python library)
attributes:
  check_mode:
    support: full
    details: In check mode it reads the object once and never fails.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: It only reads; it never reports a change.
options:
  kind:
    description: Kind of the object.
    type: str
    choices: [StatefulSet, Job]
    default: StatefulSet
  name:
    description: Name of the object.
    type: str
    required: true
  namespace:
    description: Namespace of the object.
    type: str
    required: true
  pod:
    description:
      - Name of one pod of the StatefulSet to wait for, instead of the whole StatefulSet.
      - Only with O(kind=StatefulSet).
    type: str
  replaced_uid:
    description:
      - With O(pod), the uid of the pod it replaces (the one just deleted); a pod of that uid does not count.
    type: str
  updated:
    description:
      - With O(pod), whether the pod must run the StatefulSet's C(status.updateRevision).
      - A pod below the partition that is deleted comes back at the current revision, so a plain restart
        sets this to false.
    type: bool
    default: true
  kubeconfig:
    description:
      - Path to a kubeconfig file.
      - Without it the C(KUBECONFIG) environment variable or C(~/.kube/config) is used, or the
        in-cluster service account when neither exists.
    type: path
  context:
    description: Context of the kubeconfig to use; its current context by default.
    type: str
  timeout:
    description: Seconds to wait in total.
    type: float
    default: 600
  interval:
    description: Seconds between the first polls; the pause grows by half each time up to 10 s.
    type: float
    default: 1.0
"""

EXAMPLES = r"""
- name: Wait for the PD StatefulSet to roll out
  tidbops.cluster.k8s_rollout:
    name: tidb-pd
    namespace: tidb
    timeout: 600

- name: Wait until tidb-pd-2 runs the update revision and is Ready
  tidbops.cluster.k8s_rollout:
    name: tidb-pd
    pod: tidb-pd-2
    namespace: tidb

- name: Wait for the bucket Job
  tidbops.cluster.k8s_rollout:
    kind: Job
    name: tidb-minio-bucket
    namespace: tidb
    kubeconfig: ~/.kube/config
    context: prod
"""

RETURN = r"""
ready:
  description: Whether the rollout finished (StatefulSet), the pod is back (O(pod)), or the Job completed.
  returned: always
  type: bool
reason:
  description: What the last poll saw, e.g. C(pod tidb-pd-2 not Ready (phase Pending)).
  returned: always
  type: str
elapsed:
  description: Seconds spent waiting.
  returned: always
  type: float
polls:
  description: Number of reads of the object.
  returned: always
  type: int
status:
  description: The C(status) of the object at the last poll, if it existed.
  returned: always
  type: dict
partition:
  description: The StatefulSet's partition at the last poll (the ordinal below which pods keep their revision).
  returned: when O(kind=StatefulSet)
  type: int
update_revision:
  description: The StatefulSet's C(status.updateRevision) at the last poll.
  returned: when O(kind=StatefulSet)
  type: str
pending:
  description: The StatefulSet's pods that run another revision than its update revision, by ordinal.
  returned: when O(kind=StatefulSet) and O(pod) is not given
  type: list
  elements: str
  sample: [tidb-pd-0, tidb-pd-1, tidb-pd-2]
pod:
  description: The pod waited for at the last poll - C(name), C(uid), C(revision), C(ready) - or empty when absent.
  returned: when O(pod) is given
  type: dict
"""

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.tidbops.cluster.plugins.module_utils._k8s_rollout import (
    TransientError, observation_predicate, partition, pending_pods, pod_ready, pod_revision, wait_rollout)
from ansible_collections.tidbops.cluster.plugins.module_utils._waiter import FAILED, Deadline

# The kubernetes client, imported when the module first runs rather than when it is loaded: every
# ansible-playbook process loads this module (tidbops.cluster.linear), and the container backends never
# need the client, which takes 0.2-0.5 s to import. The strategy imports it before the first worker of
# a k8s_rollout task forks (WORKER_IMPORTS in plugins/action/k8s_rollout.py).
_KUBERNETES = {}


def _kubernetes():
    """{client, config, ApiException, Urllib3Error}; ImportError when the client is not installed."""
    if not _KUBERNETES:
        from kubernetes import client, config  # pylint: disable=import-outside-toplevel
        from kubernetes.client.rest import ApiException  # pylint: disable=import-outside-toplevel
        from urllib3.exceptions import HTTPError  # pylint: disable=import-outside-toplevel
        _KUBERNETES.update(client=client, config=config, ApiException=ApiException, Urllib3Error=HTTPError)
    return _KUBERNETES


def _api_client(kubeconfig, context):
    """An ApiClient from the kubeconfig, or the in-cluster service account when there is none."""
    k8s = _kubernetes()
    try:
        return k8s["config"].new_client_from_config(config_file=kubeconfig, context=context)
    except k8s["config"].ConfigException:
        if kubeconfig or context:
            raise
        k8s["config"].load_incluster_config()
        return k8s["client"].ApiClient()


def make_reader(api_client, kind, name, namespace, pod=None):
    """A read() for wait_rollout: a Job (None if absent), or {set, pods} for a StatefulSet and the pods
    its selector matches, or {set, pod} with O(pod); TransientError if worth retrying."""
    k8s = _kubernetes()
    apps = k8s["client"].AppsV1Api(api_client)
    core = k8s["client"].CoreV1Api(api_client)

    def call(fetch, *args, **kwargs):
        try:
            return api_client.sanitize_for_serialization(fetch(*args, **kwargs))
        except k8s["ApiException"] as exc:
            if exc.status == 404:
                return None
            if exc.status == 429 or (exc.status or 0) >= 500:
                raise TransientError("HTTP %s %s" % (exc.status, exc.reason))
            raise
        except (k8s["Urllib3Error"], OSError) as exc:
            raise TransientError(str(exc))

    def read():
        if kind == "Job":
            return call(k8s["client"].BatchV1Api(api_client).read_namespaced_job, name, namespace)
        found = call(apps.read_namespaced_stateful_set, name, namespace)
        if pod:
            return {"set": found, "pod": call(core.read_namespaced_pod, pod, namespace) if found else None}
        labels = (((found or {}).get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        pods = []
        if found and labels:
            selector = ",".join("%s=%s" % item for item in sorted(labels.items()))
            pods = (call(core.list_namespaced_pod, namespace, label_selector=selector) or {}).get("items") or []
        return {"set": found, "pods": pods}

    return read


def _summary(kind, pod, seen):
    """What the module returns about the last observation, besides ready and reason."""
    if kind == "Job":
        return dict(status=(seen or {}).get("status") or {})
    seen = seen or {}
    found = seen.get("set") or {}
    result = dict(status=found.get("status") or {}, partition=partition(found) if found else 0,
                  update_revision=(found.get("status") or {}).get("updateRevision") or "")
    if pod:
        item = seen.get("pod") or {}
        result["pod"] = dict(name=pod, uid=(item.get("metadata") or {}).get("uid"), revision=pod_revision(item),
                             ready=pod_ready(item)) if item else {}
    else:
        result["pending"] = pending_pods(found, seen.get("pods") or [])
    return result


# The options; plugins/action runs the same code with them when the task runs on the controller.
ARGUMENT_SPEC = dict(
    kind=dict(type="str", choices=["StatefulSet", "Job"], default="StatefulSet"),
    name=dict(type="str", required=True),
    namespace=dict(type="str", required=True),
    pod=dict(type="str"),
    replaced_uid=dict(type="str"),
    updated=dict(type="bool", default=True),
    kubeconfig=dict(type="path"),
    context=dict(type="str"),
    timeout=dict(type="float", default=600),
    interval=dict(type="float", default=1.0),
)
ARGUMENT_RULES = dict(required_by=dict(replaced_uid="pod"))


def main():
    run(AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True, **ARGUMENT_RULES))


def run(module):
    """The module's work, given AnsibleModule or the controller's stand-in for it."""
    try:
        k8s = _kubernetes()
    except ImportError:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=traceback.format_exc())
        raise  # not reached: fail_json ends the module
    params = module.params
    if params["timeout"] < 0 or params["interval"] <= 0:
        module.fail_json(msg="timeout must be >= 0 and interval > 0, got timeout=%s interval=%s"
                         % (params["timeout"], params["interval"]))
    if params["pod"] and params["kind"] != "StatefulSet":
        module.fail_json(msg="pod: only with kind=StatefulSet")
    what = "%s %s/%s" % (params["kind"], params["namespace"], params["name"])
    if params["pod"]:
        what = "Pod %s/%s of StatefulSet %s" % (params["namespace"], params["pod"], params["name"])
    try:
        api_client = _api_client(params["kubeconfig"], params["context"])
        read = make_reader(api_client, params["kind"], params["name"], params["namespace"], params["pod"])
        predicate = observation_predicate(params["kind"], params["pod"], params["replaced_uid"], params["updated"])
        deadline = Deadline(params["timeout"], params["interval"])
        outcome = wait_rollout(read, params["kind"], params["name"], deadline, check_mode=module.check_mode,
                               predicate=predicate)
    except (k8s["ApiException"], k8s["config"].ConfigException) as exc:
        module.fail_json(msg="%s: %s" % (what, exc))
    result = dict(changed=False, ready=outcome["ready"], reason=outcome["reason"], elapsed=outcome["elapsed"],
                  polls=outcome["polls"])
    result.update(_summary(params["kind"], params["pod"], outcome["object"]))
    if not outcome["ready"] and not module.check_mode:
        if outcome["state"] == FAILED:
            msg = "%s failed: %s" % (what, outcome["reason"])
        else:
            msg = "%s not ready after %.1fs: %s" % (what, outcome["elapsed"], outcome["reason"])
        module.fail_json(msg=msg, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
