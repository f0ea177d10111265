"""Fixtures for the Kubernetes backend tests."""

import pytest
from k8s_inventory import load_filters, make_inventory, make_settings


@pytest.fixture
def cluster():
    groups, hostvars = make_inventory()
    return load_filters().k8s_cluster(make_settings(), groups, hostvars)


@pytest.fixture
def all_manifests(cluster):
    """Every object of a full deployment, in apply order."""
    km = load_filters()
    objects = [km.k8s_namespace(cluster)]
    for step in ("pd", "tikv", "tidb", "minio", "ticdc", "tici", "tiflash"):
        objects += km.k8s_manifests(cluster, step)
    return objects
