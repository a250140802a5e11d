"""Tests for router.clock: the manual clock moves only when told, and wall time follows it."""

from __future__ import annotations

import time

from router.clock import Clock, ManualClock, SystemClock


def test_manual_clock_moves_only_on_advance() -> None:
    """monotonic() and wall() stand still until advance(), then move together."""
    clock = ManualClock(start=5.0, wall_start=1_000.0)
    assert (clock.monotonic(), clock.wall()) == (5.0, 1_000.0)
    clock.advance(2.5)
    assert (clock.monotonic(), clock.wall()) == (7.5, 1_002.5)
    assert repr(clock) == "ManualClock(now=7.5)"


def test_system_clock_reads_the_real_clocks() -> None:
    """SystemClock's monotonic and wall are the process's real clocks (and it is a Clock)."""
    clock: Clock = SystemClock()
    before_m, before_w = time.monotonic(), time.time()
    m, w = clock.monotonic(), clock.wall()
    assert before_m <= m <= time.monotonic()
    assert before_w <= w <= time.time()
