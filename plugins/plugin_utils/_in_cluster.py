# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)

# This plugin_utils is PRIVATE and must only be used by this collection.
# It may change at any time, without notice.

"""Run one of this collection's modules inside the Kubernetes cluster, as a Job (``tidb_k8s_transport:
in_cluster``).

Through the API server's proxy (``kube_proxy``), the controller needs ``pods/proxy`` and
``services/proxy``, a control plane that reaches pod ports, and it sends request bodies (the
changefeed's S3 keys) through the API server. In the cluster none of that is needed: the action
plugin (``_in_process.InProcessAction``) hands a task whose ``kube_proxy`` has ``in_cluster`` to
``run_as_job``, which

1. creates a Job whose pod runs ``job_main`` in ``in_cluster.image`` (an execution environment with
   ansible-core and this collection), then a Secret with the module's name and options, owned by the
   Job (so Kubernetes deletes it with the Job); the options never reach a command line or the Job;
2. waits, under one deadline (the module's own ``timeout`` plus ``in_cluster.start_timeout`` for
   scheduling and the image), for the Job to succeed or fail, retrying the API server's transient
   errors;
3. reads the pod's log, where ``job_main`` printed the module's result (no_log values masked by
   ``_in_process.run_module`` inside the pod) on one line after RESULT_MARK;
4. deletes the Job (and so its pod and Secret) and returns the result, as if the module had run here.

In the pod, the module runs without ``kube_proxy``: it reaches the components directly, at the same
Service and pod DNS names.
"""

from __future__ import annotations

import importlib
import json
import time
import uuid

from ansible_collections.tidbops.cluster.plugins.plugin_utils._in_process import run_module, validate

RESULT_MARK = 'tidbops-result: '
REQUEST_DIR = '/etc/tidbops/run'
REQUEST_FILE = 'request.json'
# What the pod's Python runs: job_main with the request file the Secret mounts.
RUNNER = ('import sys\n'
          'from ansible_collections.tidbops.cluster.plugins.plugin_utils._in_cluster import job_main\n'
          'sys.exit(job_main(sys.argv[1]))\n')
POLL_FIRST, POLL_MAX = 0.25, 2.0


def job_main(path):
    """In the pod: run the module the request names with its options; print its result."""
    with open(path, encoding='utf-8') as handle:
        request = json.load(handle)
    module_file = importlib.import_module('ansible_collections.tidbops.cluster.plugins.modules.' + request['module'])
    result = run_module(module_file, request['args'], request['check_mode'], request['diff'])
    print(RESULT_MARK + json.dumps(result, sort_keys=True), flush=True)
    return 0


def job_objects(name, namespace, module_name, settings):
    """The Job that runs one module (without its Secret, made once the Job has a uid)."""
    labels = dict(settings.get('labels') or {})
    labels['app.kubernetes.io/component'] = 'tidbops-run'
    container = {
        'name': 'run',
        'image': settings['image'],
        'imagePullPolicy': settings.get('image_pull_policy') or 'IfNotPresent',
        'command': [settings['python'], '-c', RUNNER, '%s/%s' % (REQUEST_DIR, REQUEST_FILE)],
        'env': [{'name': 'PYTHONPATH', 'value': settings['collections_path']}, {'name': 'HOME', 'value': '/tmp'}],
        'volumeMounts': [{'name': 'request', 'mountPath': REQUEST_DIR, 'readOnly': True}],
        'resources': {'requests': {'cpu': '50m', 'memory': '128Mi'}, 'limits': {'memory': '512Mi'}},
    }
    pod = {'restartPolicy': 'Never', 'containers': [container],
           'volumes': [{'name': 'request', 'secret': {'secretName': name, 'defaultMode': 0o440}}]}
    if settings.get('pod_security_context'):
        pod['securityContext'] = dict(settings['pod_security_context'])
    return {
        'apiVersion': 'batch/v1', 'kind': 'Job',
        'metadata': {'name': name, 'namespace': namespace, 'labels': dict(labels, **{'tidbops/module': module_name})},
        'spec': {'backoffLimit': 0, 'ttlSecondsAfterFinished': 600, 'activeDeadlineSeconds': int(settings['deadline']),
                 'template': {'metadata': {'labels': labels}, 'spec': pod}},
    }


def request_secret(job, request):
    """The Secret with the request, owned by the Job: deleted with it."""
    meta = job['metadata']
    return {
        'apiVersion': 'v1', 'kind': 'Secret', 'type': 'Opaque',
        'metadata': {'name': meta['name'], 'namespace': meta['namespace'], 'labels': meta['labels'],
                     'ownerReferences': [{'apiVersion': 'batch/v1', 'kind': 'Job', 'name': meta['name'], 'uid': meta['uid']}]},
        'stringData': {REQUEST_FILE: json.dumps(request, sort_keys=True)},
    }


def parse_result(log):
    """The module's result from the pod's log, or None when the log has none."""
    for line in reversed((log or '').splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK):])
    return None


def job_state(job):
    """'succeeded', 'failed' or None (running) from a Job's status."""
    status = (job or {}).get('status') or {}
    if status.get('succeeded'):
        return 'succeeded'
    if status.get('failed') or any(c.get('type') == 'Failed' and c.get('status') == 'True' for c in status.get('conditions') or []):
        return 'failed'
    return None


def _transient(exc):
    status = getattr(exc, 'status', None)
    return status in (429, 500, 502, 503, 504) or status is None


def run_as_job(module_file, args, check_mode=False, diff=False):
    """Run ``module_file`` in the cluster with ``args`` (their ``kube_proxy.in_cluster`` says how);
    its result, ``failed`` set when it failed or gave none."""
    args = json.loads(json.dumps(args))
    # Bad options fail here, before a Job is made.
    failed = validate(module_file, args)[1]
    if failed:
        return failed
    kube = args.pop('kube_proxy')
    settings = kube['in_cluster']
    module_name = module_file.__name__.rsplit('.', 1)[-1]
    # Imported here: only in-cluster runs need the kubernetes package.
    from kubernetes import client as k8s, config  # pylint: disable=import-outside-toplevel
    from kubernetes.client.rest import ApiException  # pylint: disable=import-outside-toplevel

    api = config.new_client_from_config(config_file=kube.get('kubeconfig'), context=kube.get('context'), persist_config=False)
    core, batch = k8s.CoreV1Api(api), k8s.BatchV1Api(api)
    namespace = kube['namespace']
    # The job-name label of its pod takes at most 63 characters.
    name = '%s-%s' % (('%s-%s' % (settings['job_prefix'], module_name.replace('_', '-')))[:54].rstrip('-'), uuid.uuid4().hex[:8])
    timeout = float(args.get('timeout') or 0) + float(settings.get('start_timeout') or 300)
    deadline = time.monotonic() + timeout
    job = job_objects(name, namespace, module_name, dict(settings, deadline=timeout))

    def call(what, *call_args, **call_kwargs):
        """One API call, retried on transient errors until the deadline."""
        while True:
            try:
                return what(*call_args, **call_kwargs)
            except ApiException as exc:
                if not _transient(exc) or time.monotonic() >= deadline:
                    raise
            except OSError:  # connection refused or reset: the API server restarts
                if time.monotonic() >= deadline:
                    raise
            time.sleep(POLL_FIRST)

    observed = 'the Job was not created'
    try:
        created = api.sanitize_for_serialization(call(batch.create_namespaced_job, namespace, job))
        job['metadata']['uid'] = created['metadata']['uid']
        call(core.create_namespaced_secret, namespace,
             request_secret(job, {'module': module_name, 'args': args, 'check_mode': check_mode, 'diff': diff}))
        interval, state = POLL_FIRST, None
        while state is None:
            current = api.sanitize_for_serialization(call(batch.read_namespaced_job, name, namespace))
            state = job_state(current)
            observed = 'Job %s: %s' % (name, json.dumps(current.get('status') or {}, sort_keys=True))
            if state is None:
                if time.monotonic() >= deadline:
                    return dict(failed=True, changed=False,
                                msg='%s did not finish in the cluster within %.0f s; last seen: %s' % (module_name, timeout, observed))
                time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
                interval = min(interval * 2, POLL_MAX)
        pods = call(core.list_namespaced_pod, namespace, label_selector='job-name=%s' % name).items
        log = call(core.read_namespaced_pod_log, pods[0].metadata.name, namespace) if pods else ''
        result = parse_result(log)
        if result is None:
            tail = '\n'.join((log or '').splitlines()[-20:])
            return dict(failed=True, changed=False,
                        msg='%s ran in the cluster (Job %s, %s) but gave no result; its log ends:\n%s' % (module_name, name, state, tail))
        return result
    except ApiException as exc:
        return dict(failed=True, changed=False, msg='%s: the API server refused the in-cluster run (%s %s; %s)'
                    % (module_name, exc.status, exc.reason, observed))
    finally:
        try:
            batch.delete_namespaced_job(name, namespace, propagation_policy='Background')
        except ApiException:
            pass  # never created, or gone; ttlSecondsAfterFinished removes a leftover
