"""Tests for router.routing.health: HealthState thresholds and probe_loop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import anyio
import pytest
from structlog.testing import capture_logs

from router.routing.health import HealthState, Probe, probe_loop


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio only."""
    return "asyncio"


class _Stop(Exception):
    """Raised by the fake sleep to end probe_loop."""


def _stopping_sleep(after: int, calls: list[float]) -> Callable[[float], Awaitable[None]]:
    """A sleep that records its argument and raises _Stop on call number `after`."""

    async def sleep(seconds: float) -> None:
        calls.append(seconds)
        if len(calls) >= after:
            raise _Stop

    return sleep


def _scripted(results: list[bool | Exception]) -> Probe:
    """A probe returning (or raising) the scripted results in order."""
    it: Iterator[bool | Exception] = iter(results)

    async def probe() -> bool:
        r = next(it)
        if isinstance(r, Exception):
            raise r
        return r

    return probe


def test_starts_healthy_unprobed() -> None:
    """A new state is healthy but not yet probed."""
    st = HealthState(unhealthy_after=2, healthy_after=2)
    assert st.healthy and not st.probed
    assert st.consecutive_failures == 0 and st.consecutive_successes == 0


def test_flips_only_after_consecutive_threshold() -> None:
    """Health flips after N failures in a row and back after M successes in a row."""
    st = HealthState(unhealthy_after=3, healthy_after=2)
    assert st.record(False) is False
    assert st.probed
    assert st.record(False) is False
    assert st.record(True) is False  # resets the failure run
    assert [st.record(False) for _ in range(3)] == [False, False, True]
    assert not st.healthy
    assert st.record(True) is False
    assert st.record(True) is True
    assert st.healthy
    assert st.record(True) is False  # already healthy: no flip


def test_repr() -> None:
    """repr shows health, probed flag and runs."""
    st = HealthState(unhealthy_after=1, healthy_after=1)
    st.record(False)
    assert repr(st) == "HealthState(healthy=False, probed=True, failures=1, successes=0)"


def test_rejects_zero_thresholds() -> None:
    """Thresholds below one are refused."""
    with pytest.raises(ValueError):
        HealthState(unhealthy_after=0, healthy_after=1)


@pytest.mark.anyio
async def test_probe_loop_probes_at_once_then_each_interval() -> None:
    """The loop probes before its first sleep, sleeps interval_s between probes, and calls on_probed each time."""
    st = HealthState(unhealthy_after=1, healthy_after=1)
    sleeps: list[float] = []
    probed: list[bool] = []
    with pytest.raises(_Stop):
        await probe_loop(
            "p",
            st,
            _scripted([True, True, True]),
            7.5,
            1.0,
            sleep=_stopping_sleep(3, sleeps),
            on_probed=lambda: probed.append(st.healthy),
        )
    assert sleeps == [7.5, 7.5, 7.5]
    assert probed == [True, True, True]


@pytest.mark.anyio
async def test_probe_exception_counts_as_failure_and_loop_survives() -> None:
    """An exception from the probe is logged, counted as failure, and the loop goes on."""
    st = HealthState(unhealthy_after=2, healthy_after=1)
    sleeps: list[float] = []
    with capture_logs() as logs, pytest.raises(_Stop):
        await probe_loop(
            "p",
            st,
            _scripted([RuntimeError("boom"), RuntimeError("boom"), True]),
            1.0,
            1.0,
            sleep=_stopping_sleep(3, sleeps),
        )
    errors = [e for e in logs if e["event"] == "provider_probe_error"]
    assert len(errors) == 2 and errors[0]["log_level"] == "warning"
    changes = [e for e in logs if e["event"] == "provider_health_changed"]
    assert [(e["healthy"], e["log_level"]) for e in changes] == [(False, "warning"), (True, "info")]
    assert st.healthy


@pytest.mark.anyio
async def test_health_change_logged_only_on_flip() -> None:
    """Steady results produce no provider_health_changed events."""
    st = HealthState(unhealthy_after=1, healthy_after=1)
    with capture_logs() as logs, pytest.raises(_Stop):
        await probe_loop("p", st, _scripted([True] * 4), 1.0, 1.0, sleep=_stopping_sleep(4, []))
    assert not [e for e in logs if e["event"] == "provider_health_changed"]


@pytest.mark.anyio
async def test_probe_timeout_is_failure() -> None:
    """A probe that outlasts timeout_s counts as a failure."""
    st = HealthState(unhealthy_after=1, healthy_after=1)

    async def hangs() -> bool:
        await anyio.sleep_forever()
        return True

    with capture_logs() as logs, pytest.raises(_Stop):
        # A zero timeout expires at the probe's first checkpoint: no real waiting.
        await probe_loop("p", st, hangs, 1.0, 0.0, sleep=_stopping_sleep(1, []))
    assert not st.healthy
    assert [e["event"] for e in logs] == ["provider_probe_timeout", "provider_health_changed"]


@pytest.mark.anyio
async def test_probe_swallowing_cancel_still_times_out() -> None:
    """A probe that swallows its timeout cancellation and returns True still counts as failed."""
    st = HealthState(unhealthy_after=1, healthy_after=1)

    async def stubborn() -> bool:
        try:
            await anyio.sleep_forever()
        except BaseException:  # deliberately misbehaving probe
            return True
        return True

    with pytest.raises(_Stop):
        await probe_loop("p", st, stubborn, 1.0, 0.0, sleep=_stopping_sleep(1, []))
    assert not st.healthy


@pytest.mark.anyio
async def test_loop_stops_on_task_group_cancel() -> None:
    """Cancelling the enclosing task group ends the loop cleanly."""
    st = HealthState(unhealthy_after=1, healthy_after=1)
    count = 0

    async def probe() -> bool:
        return True

    async with anyio.create_task_group() as tg:

        def on_probed() -> None:
            nonlocal count
            count += 1
            if count == 3:
                tg.cancel_scope.cancel()

        async def no_wait(_: float) -> None:
            await anyio.lowlevel.checkpoint()

        tg.start_soon(lambda: probe_loop("p", st, probe, 1.0, 1.0, sleep=no_wait, on_probed=on_probed))
    assert count == 3
