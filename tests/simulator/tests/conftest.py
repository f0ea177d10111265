"""Fixtures for the simulator's own tests: a Sim per test, and shared small clusters per module."""

import pytest

from tidbsim.testing import Sim


@pytest.fixture
def sim(tmp_path):
    with Sim(tmp_path) as harness:
        yield harness


@pytest.fixture(scope="module")
def module_sim(tmp_path_factory):
    with Sim(tmp_path_factory.mktemp("sim")) as harness:
        yield harness
