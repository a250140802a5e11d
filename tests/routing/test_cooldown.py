"""Tests for router.routing.cooldown.Cooldown."""

from __future__ import annotations

from router.clock import ManualClock
from router.routing.cooldown import Cooldown


def test_inactive_initially() -> None:
    """A fresh cooldown is not active."""
    cd = Cooldown(ManualClock())
    assert not cd.active()
    assert cd.remaining() == 0.0
    assert cd.until() is None


def test_active_until_expiry() -> None:
    """A started cooldown stays active for its duration, then lapses."""
    clock = ManualClock(start=100.0)
    cd = Cooldown(clock)
    cd.start(5.0)
    assert cd.active()
    assert cd.until() == 105.0
    clock.advance(3.0)
    assert cd.remaining() == 2.0
    clock.advance(2.0)
    assert not cd.active()
    assert cd.remaining() == 0.0
    assert cd.until() is None


def test_extends_but_never_shortens() -> None:
    """A longer start extends the pause; a shorter one leaves it alone."""
    clock = ManualClock(start=0.0)
    cd = Cooldown(clock)
    cd.start(10.0)
    cd.start(2.0)
    assert cd.until() == 10.0
    cd.start(20.0)
    assert cd.until() == 20.0


def test_non_positive_ignored() -> None:
    """Zero or negative durations do nothing."""
    cd = Cooldown(ManualClock())
    cd.start(0.0)
    cd.start(-1.0)
    assert not cd.active()


def test_restart_after_expiry() -> None:
    """After a cooldown lapses, a shorter new one takes effect."""
    clock = ManualClock(start=0.0)
    cd = Cooldown(clock)
    cd.start(10.0)
    clock.advance(11.0)
    cd.start(1.0)
    assert cd.until() == 12.0


def test_repr_shows_remaining() -> None:
    """The repr shows the seconds left, 0.000 once expired (state is asserted through repr)."""
    clock = ManualClock()
    cd = Cooldown(clock)
    cd.start(2.5)
    clock.advance(1.0)
    assert repr(cd) == "Cooldown(remaining=1.500)"
    clock.advance(2.0)
    assert repr(cd) == "Cooldown(remaining=0.000)"
