"""Tests for router.routing.ewma.PeakEwma."""

from __future__ import annotations

import math

import pytest

from router.clock import ManualClock
from router.routing.ewma import PeakEwma


def test_none_until_first_sample() -> None:
    """No estimate exists before the first observation."""
    ewma = PeakEwma(half_life_s=10.0, clock=ManualClock())
    assert ewma.value() is None
    assert ewma.samples == 0


def test_first_sample_is_the_value() -> None:
    """The first sample becomes the estimate as-is."""
    ewma = PeakEwma(half_life_s=10.0, clock=ManualClock())
    ewma.observe(0.2)
    assert ewma.value() == 0.2
    assert ewma.samples == 1


def test_higher_sample_replaces_at_once() -> None:
    """A sample above the estimate is taken as the new peak immediately."""
    clock = ManualClock()
    ewma = PeakEwma(half_life_s=10.0, clock=clock)
    ewma.observe(0.1)
    clock.advance(0.001)
    ewma.observe(2.0)
    assert ewma.value() == 2.0


def test_lower_sample_after_one_half_life_blends_halfway() -> None:
    """After exactly one half-life the old estimate keeps half its weight."""
    clock = ManualClock()
    ewma = PeakEwma(half_life_s=10.0, clock=clock)
    ewma.observe(1.0)
    clock.advance(10.0)
    ewma.observe(0.0)
    value = ewma.value()
    assert value is not None
    assert math.isclose(value, 0.5)


def test_back_to_back_lower_sample_barely_moves() -> None:
    """With no time elapsed the old estimate keeps all its weight."""
    ewma = PeakEwma(half_life_s=10.0, clock=ManualClock())
    ewma.observe(1.0)
    ewma.observe(0.1)
    assert ewma.value() == 1.0


def test_long_gap_lets_new_sample_dominate() -> None:
    """After many half-lives a low sample nearly replaces a stale high estimate."""
    clock = ManualClock()
    ewma = PeakEwma(half_life_s=1.0, clock=clock)
    ewma.observe(5.0)
    clock.advance(30.0)
    ewma.observe(0.1)
    value = ewma.value()
    assert value is not None
    assert value == pytest.approx(0.1, abs=1e-6)


def test_repr_shows_value_and_samples() -> None:
    """repr carries the rounded estimate and the sample count."""
    ewma = PeakEwma(half_life_s=1.0, clock=ManualClock())
    assert repr(ewma) == "PeakEwma(value=None, samples=0)"
    ewma.observe(0.1234)
    assert repr(ewma) == "PeakEwma(value=0.123, samples=1)"


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf])
def test_rejects_invalid_samples(bad: float) -> None:
    """Negative, NaN and infinite samples are refused."""
    ewma = PeakEwma(half_life_s=1.0, clock=ManualClock())
    with pytest.raises(ValueError):
        ewma.observe(bad)


def test_rejects_non_positive_half_life() -> None:
    """A half-life must be positive."""
    with pytest.raises(ValueError):
        PeakEwma(half_life_s=0.0, clock=ManualClock())


def test_estimate_decays_toward_zero_while_idle() -> None:
    """An idle route's estimate halves every half-life, so it gets chosen and re-measured."""
    clock = ManualClock()
    e = PeakEwma(half_life_s=10, clock=clock)
    e.observe(4.0)
    clock.advance(10)
    assert e.value() == pytest.approx(2.0)
    clock.advance(20)
    assert e.value() == pytest.approx(0.5)
