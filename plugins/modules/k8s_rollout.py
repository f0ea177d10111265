#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE). Runs inside Ansible, which is licensed under the
# GNU General Public License v3.0+ (https://www.gnu.org/licenses/gpl-3.0.txt); Apache 2.0 code may be combined with it.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: k8s_rollout
short_description: Wait until a StatefulSet has rolled out or a Job has completed
version_added: 0.1.0
description:
  - Polls one StatefulSet or Job through the Kubernetes API with one deadline on a monotonic clock.
  - A StatefulSet is rolled out when C(status.observedGeneration) has reached C(metadata.generation),
    C(updatedReplicas) and C(readyReplicas) equal C(spec.replicas), no surplus replica runs, and
    C(currentRevision) equals C(updateRevision).
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
  description: Whether the rollout finished (StatefulSet) or the Job completed.
  returned: always
  type: bool
reason:
  description: What the last poll saw, e.g. C(readyReplicas 2/3).
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
"""

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.tidbops.cluster.plugins.module_utils._k8s_rollout import TransientError, wait_rollout
from ansible_collections.tidbops.cluster.plugins.module_utils._waiter import FAILED, Deadline

try:
    from kubernetes import client as k8s_client, config as k8s_config
    from kubernetes.client.rest import ApiException
    from urllib3.exceptions import HTTPError as Urllib3Error
    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError:
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = traceback.format_exc()


def _api_client(kubeconfig, context):
    """An ApiClient from the kubeconfig, or the in-cluster service account when there is none."""
    try:
        return k8s_config.new_client_from_config(config_file=kubeconfig, context=context)
    except k8s_config.ConfigException:
        if kubeconfig or context:
            raise
        k8s_config.load_incluster_config()
        return k8s_client.ApiClient()


def make_reader(api_client, kind, name, namespace):
    """A read() for wait_rollout: the object as a dict, None if absent, TransientError if worth retrying."""
    if kind == "Job":
        fetch = k8s_client.BatchV1Api(api_client).read_namespaced_job
    else:
        fetch = k8s_client.AppsV1Api(api_client).read_namespaced_stateful_set

    def read():
        try:
            return api_client.sanitize_for_serialization(fetch(name, namespace))
        except ApiException as exc:
            if exc.status == 404:
                return None
            if exc.status == 429 or (exc.status or 0) >= 500:
                raise TransientError("HTTP %s %s" % (exc.status, exc.reason))
            raise
        except (Urllib3Error, OSError) as exc:
            raise TransientError(str(exc))

    return read


def main():
    module = AnsibleModule(
        argument_spec=dict(
            kind=dict(type="str", choices=["StatefulSet", "Job"], default="StatefulSet"),
            name=dict(type="str", required=True),
            namespace=dict(type="str", required=True),
            kubeconfig=dict(type="path"),
            context=dict(type="str"),
            timeout=dict(type="float", default=600),
            interval=dict(type="float", default=1.0),
        ),
        supports_check_mode=True,
    )
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=KUBERNETES_IMPORT_ERROR)
    params = module.params
    if params["timeout"] < 0 or params["interval"] <= 0:
        module.fail_json(msg="timeout must be >= 0 and interval > 0, got timeout=%s interval=%s"
                         % (params["timeout"], params["interval"]))
    try:
        api_client = _api_client(params["kubeconfig"], params["context"])
        read = make_reader(api_client, params["kind"], params["name"], params["namespace"])
        deadline = Deadline(params["timeout"], params["interval"])
        outcome = wait_rollout(read, params["kind"], params["name"], deadline, check_mode=module.check_mode)
    except (ApiException, k8s_config.ConfigException) as exc:
        module.fail_json(msg="%s %s/%s: %s" % (params["kind"], params["namespace"], params["name"], exc))
    result = dict(
        changed=False,
        ready=outcome["ready"],
        reason=outcome["reason"],
        elapsed=outcome["elapsed"],
        polls=outcome["polls"],
        status=(outcome["object"] or {}).get("status") or {},
    )
    if not outcome["ready"] and not module.check_mode:
        if outcome["state"] == FAILED:
            msg = "%s %s/%s failed: %s" % (params["kind"], params["namespace"], params["name"], outcome["reason"])
        else:
            msg = "%s %s/%s not ready after %.1fs: %s" % (
                params["kind"], params["namespace"], params["name"], outcome["elapsed"], outcome["reason"])
        module.fail_json(msg=msg, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
