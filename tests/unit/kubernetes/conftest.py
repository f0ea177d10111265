"""Fixtures for the Kubernetes backend tests."""

import pytest
from k8s_inventory import load_filters, make_cluster


@pytest.fixture
def cluster():
    """(cluster model, backend settings) of inventories/k8s-like hosts."""
    model, backend = make_cluster()
    assert model["problems"] == []
    return model, backend


@pytest.fixture
def all_manifests(cluster):
    """Every object of a full deployment, in apply order."""
    km = load_filters()
    objects = [km.k8s_namespace(*cluster)]
    for kind in ("pd", "tikv", "tidb", "minio", "ticdc", "tici_meta", "tici_worker", "tiflash"):
        objects += km.k8s_manifests(*cluster, kind)
    return objects
