# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)
"""Deadline, backoff and the poll loop, on a fake clock."""

from __future__ import annotations

import pytest

from ansible_collections.tidbops.cluster.plugins.module_utils._waiter import FAILED, READY, WAITING, Check, Deadline, overall, retry, wait_for


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def deadline(timeout, interval=1.0, max_delay=10.0):
    clock = FakeClock()
    return Deadline(timeout, interval, max_delay, clock=clock, sleep=clock.sleep), clock


def test_backoff_grows_and_is_capped():
    dl, clock = deadline(100, 1.0, 3.0)
    for _attempt in range(5):
        assert dl.pause()
    assert clock.sleeps == [1.0, 1.5, 2.25, 3.0, 3.0]


def test_pauses_stay_at_the_interval_while_steady_then_grow():
    # A gate polls as often as it can while a component usually boots, and backs off on a long wait.
    clock = FakeClock()
    dl = Deadline(100, 0.2, 0.5, clock=clock, sleep=clock.sleep, steady_for=1.0)
    for _attempt in range(8):
        assert dl.pause()
    assert clock.sleeps == [0.2, 0.2, 0.2, 0.2, 0.2, 0.3, 0.45, 0.5]


def test_never_sleeps_past_the_deadline():
    dl, clock = deadline(2.0, 1.0)
    assert dl.pause() and dl.pause()
    assert clock.sleeps == [1.0, 1.0]  # the second pause is cut to what is left
    assert dl.expired()
    assert not dl.pause()
    assert clock.sleeps == [1.0, 1.0]


def rounds(*states):
    it = iter(states)
    return lambda: [Check('a', next(it), 'r')]


@pytest.mark.parametrize('states, expected, n', [
    ((WAITING, WAITING, READY), READY, 3),
    ((WAITING, FAILED, READY), FAILED, 2),
    ((READY,), READY, 1),
])
def test_wait_for(states, expected, n):
    dl, _clock = deadline(100, 0.5)
    result = wait_for(rounds(*states), dl)
    assert (result.state, result.rounds) == (expected, n)


def test_wait_for_times_out_with_last_observation():
    dl, clock = deadline(3.0, 1.0)
    calls = []

    def probe():
        calls.append(clock.now)
        return [Check('pd0', WAITING, 'round %d' % len(calls))]

    result = wait_for(probe, dl)
    assert result.state == WAITING and not result.ready
    assert result.checks[0].reason == 'round %d' % result.rounds
    assert result.elapsed == pytest.approx(3.0)
    assert sum(clock.sleeps) == pytest.approx(3.0)


def test_wait_for_check_mode_probes_once():
    dl, clock = deadline(100)
    result = wait_for(rounds(WAITING, READY), dl, check_mode=True)
    assert result.rounds == 1 and result.state == WAITING and clock.sleeps == []


def test_overall():
    assert overall([Check('a', READY, ''), Check('b', READY, '')]) == READY
    assert overall([Check('a', READY, ''), Check('b', WAITING, '')]) == WAITING
    assert overall([Check('a', WAITING, ''), Check('b', FAILED, '')]) == FAILED
    assert overall([]) == WAITING


def test_retry_until_not_transient():
    dl, _clock = deadline(100, 0.1)
    answers = iter([503, 503, 200])
    assert retry(lambda: next(answers), lambda status: status == 503, dl) == 200


def test_retry_returns_last_at_deadline():
    dl, _clock = deadline(1.0, 0.4)
    calls = []
    assert retry(lambda: calls.append(1) or 503, lambda status: True, dl) == 503
    assert len(calls) == 3  # at 0, 0.4 and 1.0 (the 0.6 pause is capped to what is left), then no time is left


def test_each_retry_series_starts_at_the_interval():
    dl, clock = deadline(100, 1.0)
    answers = iter([503, 503, 200, 503, 200])
    assert retry(lambda: next(answers), lambda status: status == 503, dl) == 200
    assert retry(lambda: next(answers), lambda status: status == 503, dl) == 200
    assert clock.sleeps == [1.0, 1.5, 1.0]
