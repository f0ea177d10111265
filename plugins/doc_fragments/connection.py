# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)

from __future__ import annotations


class ModuleDocFragment:
    """The modules that connect to the cluster's components: their TLS and kube_proxy options (the
    argument specs live in module_utils/_http.py), and the action group that lets module_defaults set
    those options once for all of them."""

    DOCUMENTATION = r'''
attributes:
  action_group:
    description: Use C(group/tidbops.cluster.cluster) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - tidbops.cluster.cluster
options:
  ca_cert:
    description:
      - PEM file with the CA certificates that sign the components' HTTPS certificates.
      - Not used with O(kube_proxy), where the API server's CA comes from the kubeconfig.
    type: path
  client_cert:
    description:
      - PEM file with the client certificate presented to the components (mutual TLS).
      - Not used with O(kube_proxy).
    type: path
  client_key:
    description:
      - PEM file with the private key of O(client_cert), if the certificate file does not hold it.
      - Not used with O(kube_proxy).
    type: path
  validate_certs:
    description:
      - Whether HTTPS certificates are verified. Turn off only for throw-away test clusters.
      - Not used with O(kube_proxy), where the kubeconfig's C(insecure-skip-tls-verify) applies.
    type: bool
    default: true
  kube_proxy:
    description:
      - Send every request through the Kubernetes API server's proxy, so that the controller needs no
        route to the pods. The API server URL, its CA, a client certificate or a bearer token come from the kubeconfig.
      - "A URL C(http://HOST:PORT/path) (or C(https://...)) whose HOST is a single DNS label is a Service and becomes
        C(<apiserver>/api/v1/namespaces/<namespace>/services/[https:]HOST:PORT/proxy/path)."
      - "A HOST with several labels (C(<pod>.<headless-service>[.<namespace>.svc...])) is a StatefulSet pod and becomes
        C(<apiserver>/api/v1/namespaces/<namespace>/pods/[https:]<pod>:PORT/proxy/path)."
      - IP addresses cannot be mapped; use DNS names or O(kube_proxy.service).
      - Needs the C(kubernetes) Python package on the host that runs the module.
    type: dict
    suboptions:
      namespace:
        description: Namespace of the Services and pods.
        type: str
        required: true
      kubeconfig:
        description:
          - Path of the kubeconfig file.
          - Defaults to E(KUBECONFIG) or C(~/.kube/config).
        type: path
      context:
        description: Kubeconfig context to use; defaults to the current context.
        type: str
      service:
        description: Send every request to this Service, whatever the URL's host.
        type: str
      port:
        description: Send every request to this port, whatever the URL's port.
        type: int
      in_cluster:
        description:
          - Instead of the proxy, run the module in the cluster, as a Job in O(kube_proxy.namespace), so the controller
            only talks to the API server (the Kubernetes backend's C(tidb_k8s_transport=in_cluster)).
          - The action plugin creates the Job and a Secret with the options (owned by the Job), waits for the Job, reads the
            module's result from the pod's log and deletes the Job. In the pod the module runs without O(kube_proxy).
          - "Keys: C(image) (an execution environment with ansible-core and this collection), C(python) (its Python),
            C(collections_path) (where the collection is installed), C(job_prefix) (the Jobs' name prefix), and optionally
            C(labels), C(image_pull_policy), C(pod_security_context) and C(start_timeout) (seconds for scheduling and the
            image, added to the module's O(timeout); default 300)."
          - Needs the C(kubernetes) Python package on the controller, and in the namespace C(create), C(get) and C(delete)
            on Jobs, C(create) on Secrets, C(list) on pods and C(get) on C(pods/log).
        type: dict
'''
