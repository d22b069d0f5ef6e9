"""The crossing scenarios make their two calls just after a clock tick, so that both
retransmission timers get the same expiry (demo/netns.py explains the race)."""

from __future__ import annotations

import time

from capdissect.demo.scenarios import drive

COARSE = 6  # CLOCK_MONOTONIC_COARSE: advances once a tick


def test_returns_just_after_the_coarse_clock_ticked() -> None:
    for _ in range(20):
        before = time.clock_gettime_ns(COARSE)
        drive._just_after_a_tick()
        # Without the wait, both readings fall in the same tick: a call takes microseconds.
        assert time.clock_gettime_ns(COARSE) > before
