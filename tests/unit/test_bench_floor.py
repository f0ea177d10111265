"""The benchmark's floors (benchmarks/graph.py, benchmarks/run.py): pure arithmetic over boot times."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))

import graph  # noqa: E402  pylint: disable=import-error,wrong-import-position
import harness  # noqa: E402  pylint: disable=import-error,wrong-import-position
import run  # noqa: E402  pylint: disable=import-error,wrong-import-position


def test_docker_start_stamps_keep_their_fraction():
    assert harness.started_epoch("2026-12-02T23:00:01.123456789Z") == pytest.approx(1796252401.123457, abs=1e-6)
    assert harness.started_epoch("2026-12-02T23:00:01Z") == 1796252401.0


def test_the_boot_floor_is_the_critical_path_of_the_shortest_boots():
    slow = {kind: delay + 1.0 for kind, delay in graph.START_DELAYS.items()}
    fast = dict(slow, pd=graph.START_DELAYS["pd"] + 0.25)
    floor, path = run.boot_floor(0.1, [slow, fast])
    expected, expected_path = graph.critical_path(0.1, delays=dict(slow, pd=fast["pd"]))
    assert (floor, path) == (expected, expected_path)
    # Every container kind on the path costs its boot and one container start; the one-shots cost nothing.
    assert floor == pytest.approx(sum(dict(slow, pd=fast["pd"])[kind] + 0.1 for kind in path if kind not in graph.ONE_SHOT))
    # The delay floor stays below: each boot here is longer than its delay.
    assert floor > graph.critical_path(0.1)[0]


def test_no_boot_floor_without_a_boot_time_for_every_kind():
    partial = {kind: 1.0 for kind in graph.START_DELAYS if kind != "tiflash"}
    assert run.boot_floor(0.1, [partial]) == (None, [])
    assert run.boot_floor(0.1, []) == (None, [])
