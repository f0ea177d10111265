# -*- coding: utf-8 -*-
# Copyright (c) tidbops maintainers
# Apache License 2.0 (see LICENSE)

# This module_utils is PRIVATE and must only be used by this collection.
# It may change at any time, without notice.

"""One deadline on a monotonic clock, backoff polling and retries of transient errors."""

from __future__ import annotations

import time

BACKOFF_FACTOR = 1.5
MAX_DELAY = 10.0

READY = 'ready'
WAITING = 'waiting'
FAILED = 'failed'


class Deadline:
    """A time budget measured on time.monotonic(), with a growing pause between attempts.

    The pause starts at ``interval``; once ``steady_for`` seconds have passed it grows x1.5 up to
    ``max_delay`` (never below ``interval``). It is cut short so that nobody sleeps past the deadline.
    """

    def __init__(self, timeout, interval=1.0, max_delay=MAX_DELAY,  # pylint: disable=too-many-arguments
                 clock=time.monotonic, sleep=time.sleep, steady_for=0.0):
        self._clock = clock
        self._sleep = sleep
        self.timeout = float(timeout)
        self.started = clock()
        self.interval = max(float(interval), 0.01)
        self.delay = self.interval
        self.max_delay = max(float(max_delay), self.interval)
        self.steady_for = max(float(steady_for), 0.0)

    def restart_backoff(self):
        """Start the next series of attempts at ``interval`` again (the deadline stays)."""
        self.delay = self.interval

    def elapsed(self):
        return self._clock() - self.started

    def remaining(self):
        return max(0.0, self.timeout - self.elapsed())

    def expired(self):
        return self.remaining() <= 0.0

    def pause(self):
        """Sleep before the next attempt; False (without sleeping) when no time is left."""
        remaining = self.remaining()
        if remaining <= 0.0:
            return False
        self._sleep(min(self.delay, remaining))
        if self.elapsed() >= self.steady_for:
            self.delay = min(self.delay * BACKOFF_FACTOR, self.max_delay)
        return True


class Check:
    """The verdict on one instance in one poll round, with the observation behind it."""

    def __init__(self, instance, state, reason, response=None):
        self.instance = instance
        self.state = state
        self.reason = reason
        self.response = response

    def as_dict(self):
        response = self.response
        return dict(
            instance=self.instance,
            ready=self.state == READY,
            state=self.state,
            reason=self.reason,
            status=response.status if response is not None else None,
            error=response.error if response is not None else None,
        )


def overall(checks):
    """READY when every check is ready, FAILED when any failed, else WAITING."""
    states = set(check.state for check in checks)
    if FAILED in states:
        return FAILED
    if states == {READY}:
        return READY
    return WAITING


class WaitResult:
    def __init__(self, state, checks, elapsed, rounds):
        self.state = state
        self.checks = checks
        self.elapsed = elapsed
        self.rounds = rounds

    @property
    def ready(self):
        return self.state == READY

    def not_ready(self):
        return [check for check in self.checks if check.state != READY]


def wait_for(probe, deadline, check_mode=False):
    """Call ``probe()`` (a list of Checks) until all are ready, one fails, or the deadline passes.

    In check mode the probe runs once and its result is returned as is (the caller must not fail).
    The last round's checks are kept, so a timeout can name every instance and what it last said.
    """
    rounds = 0
    while True:
        checks = probe()
        rounds += 1
        state = overall(checks)
        if state != WAITING or check_mode or not deadline.pause():
            return WaitResult(state, checks, deadline.elapsed(), rounds)


def retry(send, is_transient, deadline):
    """Call ``send()`` until its response is not transient or the deadline passes; return the last one."""
    deadline.restart_backoff()
    while True:
        response = send()
        if not is_transient(response) or not deadline.pause():
            return response
