"""Tests for router.routing.health: the unknown/healthy/unhealthy state machine (thresholds, last
reason, since) and probe_loop (what it records and logs). Pure: scripted probes, explicit times."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import anyio
import pytest
from structlog.testing import capture_logs

from router.routing.health import Change, HealthState, probe_loop
from router.upstream.probe import Probe, ProbeResult

UP = ProbeResult(True, "status 200", 200, 0.004)
DOWN = ProbeResult(False, "status 503", 503, 0.004)
REFUSED = ProbeResult(False, "connection refused", None, 0.001)
URL = "http://p.example/v1/models"


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


def _scripted(results: list[ProbeResult | Exception]) -> Probe:
    """A probe returning (or raising) the scripted results in order."""
    it: Iterator[ProbeResult | Exception] = iter(results)

    async def probe() -> ProbeResult:
        r = next(it)
        if isinstance(r, Exception):
            raise r
        return r

    return probe


def _clock(start: float = 100.0) -> Callable[[], float]:
    """A wall clock that moves one second per reading."""
    now = [start]

    def wall() -> float:
        now[0] += 1.0
        return now[0]

    return wall


async def _loop(st: HealthState, probe: Probe, probes: int, on_probed: Callable[[], None] | None = None) -> list[float]:
    """Run probe_loop for `probes` probes (interval 7.5 s, timeout 1 s); the sleeps it asked for."""
    sleeps: list[float] = []
    sleep = _stopping_sleep(probes, sleeps)
    with pytest.raises(_Stop):
        await probe_loop("p", st, probe, 7.5, 1.0, url=URL, wall=_clock(), sleep=sleep, on_probed=on_probed)
    return sleeps


def test_starts_unknown_and_routable() -> None:
    """A new state is unknown (not healthy), not probed, yet routing may use it; since = creation."""
    st = HealthState(unhealthy_after=2, healthy_after=2, now=50.0)
    assert st.state == "unknown" and st.routable and not st.probed
    assert st.since == 50.0 and st.last is None and st.last_at is None


def test_unknown_turns_healthy_on_the_first_success() -> None:
    """healthy_after is for coming back from unhealthy; an unknown provider that answers is healthy."""
    st = HealthState(unhealthy_after=2, healthy_after=3, now=0.0)
    assert st.record(UP, 10.0) == Change("unknown", "healthy")
    assert st.since == 10.0 and st.last == UP and st.last_at == 10.0


def test_unknown_stays_unknown_below_the_failure_threshold() -> None:
    """One failure of two needed: still unknown (and routable, as today), with the reason kept."""
    st = HealthState(unhealthy_after=2, healthy_after=1, now=0.0)
    assert st.record(REFUSED, 1.0) is None
    assert st.state == "unknown" and st.routable and st.probed and st.last == REFUSED and st.since == 0.0
    assert st.record(REFUSED, 2.0) == Change("unknown", "unhealthy")
    assert not st.routable and st.since == 2.0


def test_flips_only_after_consecutive_threshold() -> None:
    """healthy -> unhealthy after N failures in a row, back after M successes in a row; since
    moves only on a change, the last reason with every probe."""
    st = HealthState(unhealthy_after=3, healthy_after=2)
    assert st.record(UP, 1.0) == Change("unknown", "healthy")
    assert st.record(DOWN, 2.0) is None
    assert st.record(UP, 3.0) is None  # resets the failure run
    assert [st.record(DOWN, t) for t in (4.0, 5.0, 6.0)] == [None, None, Change("healthy", "unhealthy")]
    assert st.state == "unhealthy" and st.since == 6.0 and st.consecutive_failures == 3
    assert st.record(UP, 7.0) is None and st.last == UP and st.since == 6.0
    assert st.record(UP, 8.0) == Change("unhealthy", "healthy")
    assert st.record(UP, 9.0) is None  # already healthy: no change
    assert st.consecutive_successes == 3 and st.since == 8.0


def test_repr() -> None:
    """repr shows the state, the runs and the last reason."""
    st = HealthState(unhealthy_after=1, healthy_after=1)
    st.record(DOWN, 1.0)
    assert repr(st) == "HealthState(unhealthy, failures=1, successes=0, last='status 503')"


def test_rejects_zero_thresholds() -> None:
    """Thresholds below one are refused, at creation and on a retune."""
    with pytest.raises(ValueError):
        HealthState(unhealthy_after=0, healthy_after=1)
    with pytest.raises(ValueError):
        HealthState(unhealthy_after=1, healthy_after=1).retune(1, 0)


def test_retune_keeps_the_state_and_judges_the_next_probe_by_the_new_thresholds() -> None:
    """A reload's new thresholds: state, since, runs and last probe stay as they were (no change
    without a probe); the next result counts toward the new thresholds, either way."""
    st = HealthState(unhealthy_after=5, healthy_after=1)
    st.record(UP, 1.0)
    assert [st.record(DOWN, t) for t in (2.0, 3.0)] == [None, None]
    st.retune(unhealthy_after=3, healthy_after=2)
    assert st.thresholds == (3, 2)
    assert (st.state, st.since, st.consecutive_failures, st.last, st.last_at) == ("healthy", 1.0, 2, DOWN, 3.0)
    assert st.record(DOWN, 4.0) == Change("healthy", "unhealthy"), "the third failure in a row, of 3 now"
    assert st.record(UP, 5.0) is None, "one success of the 2 now needed"
    assert st.record(UP, 6.0) == Change("unhealthy", "healthy")


def test_observe_settles_the_state_from_one_result_when_asked_and_logs_the_change() -> None:
    """A reload's first probe decides the state at once (`settle`), either way, with one log line
    per change; without `settle` one result counts once, as in the probe loop."""
    with capture_logs() as logs:
        down, up, once = HealthState(3, 2, now=0.0), HealthState(3, 2, now=0.0), HealthState(3, 2, now=0.0)
        assert down.observe("p", REFUSED, 5.0, URL, settle=True) == Change("unknown", "unhealthy")
        assert (down.since, down.consecutive_failures) == (5.0, 3)
        assert up.observe("p", UP, 5.0, URL, settle=True) == Change("unknown", "healthy")
        assert down.observe("p", UP, 6.0, URL, settle=True) == Change("unhealthy", "healthy")
        assert once.observe("p", REFUSED, 5.0, URL) is None
        assert (once.state, once.consecutive_failures) == ("unknown", 1)
    changes = [(e["old"], e["new"], e["reason"], e["url"]) for e in logs if e["event"] == "provider_health_changed"]
    assert changes == [
        ("unknown", "unhealthy", "connection refused", URL),
        ("unknown", "healthy", "status 200", URL),
        ("unhealthy", "healthy", "status 200", URL),
    ]


@pytest.mark.anyio
async def test_probe_loop_probes_at_once_then_each_interval() -> None:
    """The loop probes before its first sleep, sleeps interval_s between probes, calls on_probed
    each time, and records each result at the wall clock's time."""
    st = HealthState(unhealthy_after=1, healthy_after=1)
    seen: list[str] = []
    sleeps = await _loop(st, _scripted([UP, UP, UP]), 3, on_probed=lambda: seen.append(st.state))
    assert sleeps == [7.5, 7.5, 7.5]
    assert seen == ["healthy"] * 3
    assert st.last_at == 103.0 and st.since == 101.0


@pytest.mark.anyio
async def test_state_changes_are_logged_with_reason_and_url() -> None:
    """unknown -> unhealthy -> healthy: one line each, with the reason and the URL probed; the
    steady results between them log nothing."""
    st = HealthState(unhealthy_after=2, healthy_after=1)
    with capture_logs() as logs:
        await _loop(st, _scripted([REFUSED, REFUSED, REFUSED, UP, UP]), 5)
    changes = [e for e in logs if e["event"] == "provider_health_changed"]
    assert [(e["old"], e["new"], e["reason"], e["log_level"]) for e in changes] == [
        ("unknown", "unhealthy", "connection refused", "warning"),
        ("unhealthy", "healthy", "status 200", "info"),
    ]
    assert all(e["provider"] == "p" and e["url"] == URL for e in changes)
    assert [e["event"] for e in logs] == ["provider_health_changed"] * 2


@pytest.mark.anyio
async def test_probe_exception_counts_as_failure_with_its_reason_and_loop_survives() -> None:
    """An exception from the probe is a failed probe whose reason names it; the loop goes on."""
    st = HealthState(unhealthy_after=2, healthy_after=1)
    with capture_logs() as logs:
        await _loop(st, _scripted([RuntimeError("boom"), RuntimeError("boom"), UP]), 3)
    changes = [e for e in logs if e["event"] == "provider_health_changed"]
    assert [(e["new"], e["reason"]) for e in changes] == [
        ("unhealthy", "probe error: RuntimeError"),
        ("healthy", "status 200"),
    ]


@pytest.mark.anyio
async def test_probe_timeout_is_a_failure_saying_so() -> None:
    """A probe that outlasts timeout_s counts as a failure: 'timeout after ...'."""
    st = HealthState(unhealthy_after=1, healthy_after=1)

    async def hangs() -> ProbeResult:
        await anyio.sleep_forever()
        return UP

    with pytest.raises(_Stop):
        # A zero timeout expires at the probe's first checkpoint: no real waiting.
        await probe_loop("p", st, hangs, 1.0, 0.0, url=URL, wall=_clock(), sleep=_stopping_sleep(1, []))
    assert st.state == "unhealthy" and st.last is not None and st.last.reason == "timeout after 0.0s"


@pytest.mark.anyio
async def test_probe_swallowing_cancel_still_times_out() -> None:
    """A probe that swallows its timeout cancellation and answers up still counts as failed."""
    st = HealthState(unhealthy_after=1, healthy_after=1)

    async def stubborn() -> ProbeResult:
        try:
            await anyio.sleep_forever()
        except BaseException:  # deliberately misbehaving probe
            return UP
        return UP

    with pytest.raises(_Stop):
        await probe_loop("p", st, stubborn, 1.0, 0.0, url=URL, wall=_clock(), sleep=_stopping_sleep(1, []))
    assert st.state == "unhealthy"


@pytest.mark.anyio
async def test_loop_stops_on_task_group_cancel() -> None:
    """Cancelling the enclosing task group ends the loop cleanly."""
    st = HealthState(unhealthy_after=1, healthy_after=1)
    count = 0

    async def probe() -> ProbeResult:
        return UP

    async with anyio.create_task_group() as tg:

        def on_probed() -> None:
            nonlocal count
            count += 1
            if count == 3:
                tg.cancel_scope.cancel()

        async def no_wait(_: float) -> None:
            await anyio.lowlevel.checkpoint()

        tg.start_soon(
            lambda: probe_loop("p", st, probe, 1.0, 1.0, url=URL, wall=_clock(), sleep=no_wait, on_probed=on_probed)
        )
    assert count == 3
