"""An inventory like inventories/k8s as plain dicts, and the cluster model built from it, for the
Kubernetes backend tests."""

import copy
import importlib


def _import(name):
    # Imported lazily: a conftest loads before Ansible's collection finder is set up.
    return importlib.import_module("ansible_collections.tidbops.cluster.plugins." + name)


def load_filters():
    return _import("filter.k8s_manifests")


SECRETS = {
    "access_key": "AKIAEXAMPLEKEY0001",
    "secret_key": "s3cr3t+/=Key&with?chars",
    "minio_root_password": "minio-Root-Pw-1234",
    "tici_tidb_password": "tidb-P@ss:word",
}

GROUP_SIZES = {
    "pd_servers": 3, "tikv_servers": 3, "tidb_servers": 2, "tiflash_servers": 2, "cdc_servers": 2,
    "tici_meta_servers": 1, "tici_worker_servers": 2, "minio_servers": 1,
}


def make_inventory(sizes=None, host_vars=None):
    """The inventory argument of _model.build: groups, hosts with their group and variables, play hosts."""
    sizes = dict(GROUP_SIZES, **(sizes or {}))
    groups, hosts = {}, {}
    for group, count in sizes.items():
        groups[group] = []
        for index in range(count):
            host = "%s-%d" % (group.replace("_servers", ""), index)
            groups[group].append(host)
            hosts[host] = {"group_names": [group], "vars": dict((host_vars or {}).get(host, {}))}
    return {"groups": groups, "hosts": hosts, "play_hosts": list(hosts)}


def make_backend(**overrides):
    backend = {
        "namespace": "tidb-test",
        "create_namespace": True,
        "render_dir": "",
        "image_pull_policy": "IfNotPresent",
        "kubeconfig": "",
        "context": "",
        "storage": {"class_name": None, "pd": "10Gi", "tikv": "100Gi", "tiflash": "100Gi", "ticdc": "10Gi",
                    "tici_worker": "20Gi", "minio": "50Gi"},
        "resources": {component: {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
                      for component in _import("module_utils._topology").NAMES},
        "s3_client_image": "example.invalid/mc:v1",
        "sql_client_image": "example.invalid/mysql:v1",
        "tiflash_probe": {},
        "log_tailer_image": "example.invalid/busybox:v1",
        "pod_security_context": {},
        "runner_image": "example.invalid/tidbops-ee:v1",
        "runner_python": "/usr/bin/python3.11",
        "runner_collections_path": "/usr/share/ansible/collections",
        "transport": "proxy",
        "job_timeout": 300,
    }
    backend.update(copy.deepcopy(overrides))
    return backend


def make_settings(backend=None, **overrides):
    settings = {
        "backend": "kubernetes",
        "cluster_name": "tidb",
        "network_mode": "host",
        "images": {key: "example.invalid/%s:v1" % key for key in ("pd", "tikv", "tidb", "tiflash", "ticdc", "tici", "minio")},
        "server_configs": {"tikv": {"storage.reserve-space": "0MB"}, "tiflash": {"logger.level": "debug"}},
        "tici_enabled": True,
        "tici_s3": {"bucket": "ticidefaultbucket", "prefix": "tici_default_prefix", "region": "us-east-1",
                    "access_key": SECRETS["access_key"], "secret_key": SECRETS["secret_key"], "use_path_style": True},
        "minio_root_user": SECRETS["access_key"],
        "minio_root_password": SECRETS["minio_root_password"],
        "minio_tici_user": "tici",
        "minio_tici_password": "tici-S3-secret-1",
        "tici_tidb_user": "tici",
        "tici_tidb_password": SECRETS["tici_tidb_password"],
        "changefeed_id": "tici-replication-task",
        "digest_key": "fedcba9876543210" * 4,
        "cdc_flush_interval": "",
        "container_env": {},
        "backend_settings": backend or make_backend(),
    }
    settings.update(copy.deepcopy(overrides))
    return settings


def make_cluster(sizes=None, host_vars=None, backend=None, **settings):
    """(cluster model, backend settings) for an inventory like inventories/k8s."""
    backend = backend or make_backend()
    return _import("module_utils._model").build(make_settings(backend, **settings), make_inventory(sizes, host_vars)), backend
