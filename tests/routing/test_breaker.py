"""Tests for router.routing.breaker.Breaker over pybreaker, driven by a ManualClock."""

from __future__ import annotations

import random

import pytest

from router.clock import ManualClock
from router.config import BreakerConfig
from router.routing.breaker import Breaker, BreakerState, Ticket, TrialSchedule
from router.types import AttemptResult

S, F, N = AttemptResult.SUCCESS, AttemptResult.FAILURE, AttemptResult.NEUTRAL
Change = tuple[str, BreakerState, BreakerState]


def _breaker(clock: ManualClock, changes: list[Change] | None = None, trials: int = 1) -> Breaker:
    """A breaker with fail_max=3, reset 30 s, recording on_change calls into `changes`."""
    sink = changes if changes is not None else []
    return Breaker(
        "fast/m",
        fail_max=3,
        reset_timeout_s=30.0,
        half_open_trials=trials,
        clock=clock,
        on_change=lambda name, old, new: sink.append((name, old, new)),
    )


def _state(b: Breaker) -> BreakerState:
    """b.state, read through a call so mypy does not carry narrowing across transitions."""
    return b.state


def _admit(b: Breaker) -> Ticket:
    """admit() that must succeed."""
    ticket = b.admit()
    assert ticket is not None
    return ticket


def _trip(b: Breaker) -> None:
    """Record fail_max failures from closed."""
    for _ in range(3):
        b.record(_admit(b), F)


def test_opens_after_fail_max_failures() -> None:
    """fail_max consecutive failures open the breaker; fewer do not."""
    b = _breaker(ManualClock())
    b.record(_admit(b), F)
    b.record(_admit(b), F)
    assert _state(b) is BreakerState.CLOSED and b.fail_counter == 2
    b.record(_admit(b), F)
    assert _state(b) is BreakerState.OPEN


def test_refuses_while_open() -> None:
    """An open breaker before its reset timeout admits nothing and is unavailable."""
    clock = ManualClock()
    b = _breaker(clock)
    _trip(b)
    clock.advance(29.9)
    assert not b.available()
    assert b.admit() is None
    assert _state(b) is BreakerState.OPEN


def test_available_after_reset_timeout_admits_exact_trials() -> None:
    """After the reset timeout the breaker is available and admits exactly half_open_trials at once."""
    clock = ManualClock()
    b = _breaker(clock, trials=2)
    _trip(b)
    clock.advance(30.0)
    assert b.available()
    assert _state(b) is BreakerState.OPEN  # available() does not move it
    t1, t2 = _admit(b), _admit(b)
    assert t1.trial and t2.trial
    assert _state(b) is BreakerState.HALF_OPEN
    assert not b.available()
    assert b.admit() is None
    assert repr(b) == "Breaker(name='fast/m', state=half-open, failures=3, trials=2/2)"


def test_trial_success_closes() -> None:
    """A successful trial closes the breaker and resets the failure count."""
    clock = ManualClock()
    b = _breaker(clock)
    _trip(b)
    clock.advance(30.0)
    b.record(_admit(b), S)
    assert _state(b) is BreakerState.CLOSED
    assert b.fail_counter == 0
    assert not _admit(b).trial


def test_trial_failure_reopens_and_restarts_timer() -> None:
    """A failed trial reopens the breaker and the reset timeout counts from then."""
    clock = ManualClock()
    b = _breaker(clock)
    _trip(b)
    clock.advance(30.0)
    trial = _admit(b)
    clock.advance(10.0)
    b.record(trial, F)
    assert _state(b) is BreakerState.OPEN
    clock.advance(25.0)  # 35 s after the first open, 25 s after the reopen
    assert not b.available() and b.admit() is None
    clock.advance(5.0)
    assert b.available()


def test_neutral_counts_nothing_and_frees_slot() -> None:
    """NEUTRAL leaves counters and state alone but releases the half-open slot."""
    clock = ManualClock()
    b = _breaker(clock)
    b.record(_admit(b), F)
    b.record(_admit(b), N)
    assert b.fail_counter == 1
    b.record(_admit(b), F)
    b.record(_admit(b), F)
    clock.advance(30.0)
    trial = _admit(b)
    assert b.admit() is None
    b.record(trial, N)
    assert _state(b) is BreakerState.HALF_OPEN
    assert b.available()
    assert _admit(b).trial


def test_success_resets_failure_count_when_closed() -> None:
    """A success in closed state wipes earlier failures, so fail_max must be consecutive."""
    b = _breaker(ManualClock())
    b.record(_admit(b), F)
    b.record(_admit(b), F)
    b.record(_admit(b), S)
    assert b.fail_counter == 0
    b.record(_admit(b), F)
    b.record(_admit(b), F)
    assert _state(b) is BreakerState.CLOSED


def test_stale_results_while_open_ignored() -> None:
    """Results of requests admitted before the breaker opened change nothing while open."""
    clock = ManualClock()
    changes: list[Change] = []
    b = _breaker(clock, changes)
    stale_ok, stale_bad = _admit(b), _admit(b)
    _trip(b)
    b.record(stale_ok, S)
    b.record(stale_bad, F)
    assert _state(b) is BreakerState.OPEN
    assert b.fail_counter == 3
    assert len(changes) == 1


def test_stale_closed_ticket_ignored_while_half_open() -> None:
    """In half-open only the current trial decides; an old closed-state ticket does not."""
    clock = ManualClock()
    b = _breaker(clock)
    old = _admit(b)
    _trip(b)
    clock.advance(30.0)
    trial = _admit(b)
    b.record(old, S)
    assert _state(b) is BreakerState.HALF_OPEN
    b.record(trial, S)
    assert _state(b) is BreakerState.CLOSED


def test_trial_from_earlier_round_holds_no_slot() -> None:
    """A leftover trial from a previous half-open round neither frees nor decides the new round."""
    clock = ManualClock()
    b = _breaker(clock, trials=2)
    _trip(b)
    clock.advance(30.0)
    failing, leftover = _admit(b), _admit(b)
    b.record(failing, F)  # reopens
    clock.advance(30.0)
    t1, t2 = _admit(b), _admit(b)
    b.record(leftover, F)
    assert _state(b) is BreakerState.HALF_OPEN
    assert b.admit() is None  # the leftover freed no current slot
    b.record(t1, S)
    assert _state(b) is BreakerState.CLOSED
    b.record(t2, N)


def test_record_twice_is_noop() -> None:
    """A second record on the same ticket is ignored."""
    b = _breaker(ManualClock())
    ticket = _admit(b)
    b.record(ticket, F)
    b.record(ticket, F)
    assert b.fail_counter == 1
    assert ticket.settled


def test_record_twice_does_not_free_second_slot() -> None:
    """Recording a trial ticket twice releases its slot once."""
    clock = ManualClock()
    b = _breaker(clock, trials=2)
    _trip(b)
    clock.advance(30.0)
    t1, _t2 = _admit(b), _admit(b)
    b.record(t1, N)
    b.record(t1, N)
    assert _admit(b).trial
    assert b.admit() is None


def test_on_change_called_once_per_flip() -> None:
    """on_change sees each real transition exactly once, with the state already updated."""
    clock = ManualClock()
    changes: list[Change] = []
    seen: list[BreakerState] = []

    def on_change(name: str, old: BreakerState, new: BreakerState) -> None:
        changes.append((name, old, new))
        seen.append(b.state)

    b = Breaker("r", fail_max=1, reset_timeout_s=5.0, half_open_trials=1, clock=clock, on_change=on_change)
    b.record(_admit(b), F)
    clock.advance(5.0)
    b.record(_admit(b), F)
    clock.advance(5.0)
    b.record(_admit(b), S)
    b.record(_admit(b), S)
    c, o, h = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
    assert changes == [("r", c, o), ("r", o, h), ("r", h, o), ("r", o, h), ("r", h, c)]
    assert seen == [new for _, _, new in changes]


def test_repr_closed() -> None:
    """repr names the route, state, failures and trial slots."""
    b = _breaker(ManualClock())
    assert repr(b) == "Breaker(name='fast/m', state=closed, failures=0, trials=0/1)"


@pytest.mark.parametrize(("fail_max", "trials", "reset"), [(0, 1, 1.0), (1, 0, 1.0), (1, 1, -1.0)])
def test_rejects_bad_config(fail_max: int, trials: int, reset: float) -> None:
    """Non-positive fail_max or trials and negative reset timeouts are refused."""
    with pytest.raises(ValueError):
        Breaker("x", fail_max, reset, trials, ManualClock())


def test_never_calls_pybreaker_while_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """pybreaker's open-state gate, which reads the wall clock, is never reached."""
    import pybreaker

    def forbidden(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("pybreaker consulted while open")

    monkeypatch.setattr(pybreaker.CircuitOpenState, "before_call", forbidden)
    clock = ManualClock()
    b = _breaker(clock, trials=2)
    stale = _admit(b)
    _trip(b)
    b.record(stale, F)
    clock.advance(30.0)
    t1, t2 = _admit(b), _admit(b)
    b.record(t1, F)
    b.record(t2, S)  # arrives after t1 reopened the breaker
    assert _state(b) is BreakerState.OPEN


# The trial schedule: when an open breaker lets its next trial through.

DEFAULTS = BreakerConfig()


def _scheduled(clock: ManualClock, seed: int = 1, cfg: BreakerConfig = DEFAULTS) -> Breaker:
    """A breaker on `cfg`'s schedule (the defaults: 5 s, doubling to 10 s, 20% jitter), seeded."""
    return Breaker(
        "r",
        cfg.fail_max,
        cfg.reset_timeout_s,
        cfg.half_open_trials,
        clock,
        reset_timeout_max_s=cfg.reset_timeout_max_s,
        jitter=cfg.reset_jitter,
        rng=random.Random(seed),
    )


def _trial_waits(b: Breaker, clock: ManualClock, failures: int) -> list[float]:
    """Open `b` from closed, then fail `failures` trials, each at the first instant it is
    admitted; the waits between the opening (or the last failed trial) and each trial."""
    for _ in range(DEFAULTS.fail_max):
        b.record(_admit(b), F)
    waits = []
    for _ in range(failures):
        opened, trial_at = clock.monotonic(), b.trial_at
        assert trial_at is not None
        clock.advance(trial_at - opened - 1e-6)
        assert not b.available() and b.admit() is None
        clock.advance(1e-6)
        assert b.available()
        b.record(_admit(b), F)
        assert _state(b) is BreakerState.OPEN
        waits.append(clock.monotonic() - opened)
    return waits


def test_schedule_doubles_to_the_cap() -> None:
    """Without jitter: first_s, then doubling per failed trial, never above max_s."""
    s = TrialSchedule(first_s=2.0, max_s=10.0)
    assert [s.wait(n, 0.5) for n in range(6)] == [2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert s.wait(10_000, 0.0) == 10.0  # no overflow after a very long outage


def test_schedule_jitter_only_shortens() -> None:
    """A draw takes up to `jitter` of the wait off; the cap stays an upper bound."""
    s = TrialSchedule(first_s=5.0, max_s=10.0, jitter=0.2)
    assert s.wait(0, 0.0) == 5.0 and s.wait(0, 0.5) == pytest.approx(4.5)
    assert s.wait(3, 0.0) == 10.0 and s.wait(3, 0.999999) == pytest.approx(8.0)


@pytest.mark.parametrize(("first", "cap", "jitter"), [(-1.0, 1.0, 0.0), (2.0, 1.0, 0.0), (1.0, 2.0, 1.0)])
def test_schedule_rejects_bad_values(first: float, cap: float, jitter: float) -> None:
    """Negative first wait, a cap below it, and jitter of 1 (a zero wait) or more are refused."""
    with pytest.raises(ValueError):
        TrialSchedule(first, cap, jitter)


def test_default_trial_times_under_repeated_failure() -> None:
    """With the defaults, the first trial comes 4-5 s after the opening, every later one 8-10 s
    after the failed one before it: at most one extra attempt every 4 s, and never more than
    10 s without a trial however long the outage lasts."""
    clock = ManualClock()
    waits = _trial_waits(_scheduled(clock), clock, failures=40)
    assert 4.0 <= waits[0] <= 5.0
    assert all(8.0 <= w <= 10.0 for w in waits[1:]), waits
    assert len({round(w, 6) for w in waits[1:]}) > 30, "jittered, not a fixed beat"


def test_jitter_spreads_breakers_that_opened_together() -> None:
    """Breakers that open at the same instant with different draws trial at different times."""
    clock = ManualClock()
    shared = random.Random(3)
    breakers = [Breaker(f"r{i}", 1, 5.0, 1, clock, reset_timeout_max_s=10.0, jitter=0.2, rng=shared) for i in range(5)]
    for b in breakers:
        b.record(_admit(b), F)
    times = [b.trial_at for b in breakers]
    assert len(set(times)) == 5
    assert all(t is not None and clock.monotonic() + 4.0 <= t <= clock.monotonic() + 5.0 for t in times)


def test_success_resets_the_schedule() -> None:
    """A trial that succeeds closes the breaker; its next opening starts again at the first wait."""
    clock = ManualClock()
    b = _scheduled(clock)
    assert min(_trial_waits(b, clock, failures=5)[1:]) >= 8.0
    trial_at = b.trial_at
    assert trial_at is not None
    clock.advance(trial_at - clock.monotonic())
    b.record(_admit(b), S)
    assert _state(b) is BreakerState.CLOSED and b.trial_at is None
    assert _trial_waits(b, clock, failures=1)[0] <= 5.0


def test_fixed_wait_without_cap_or_jitter() -> None:
    """No cap and no jitter (the keyword defaults): every trial exactly reset_timeout_s apart."""
    clock = ManualClock()
    b = Breaker("r", DEFAULTS.fail_max, 7.0, 1, clock)
    assert _trial_waits(b, clock, failures=4) == pytest.approx([7.0] * 4)


def test_neutral_trial_keeps_the_schedule() -> None:
    """A trial cancelled by its client neither reopens the breaker nor counts as a failed trial."""
    clock = ManualClock()
    b = Breaker("r", DEFAULTS.fail_max, 1.0, 1, clock, reset_timeout_max_s=100.0)
    assert _trial_waits(b, clock, failures=2) == pytest.approx([1.0, 2.0])
    clock.advance(4.0)
    b.record(_admit(b), N)
    assert _state(b) is BreakerState.HALF_OPEN and b.trial_at is None
    b.record(_admit(b), F)  # the third failed trial, not the fourth
    assert b.trial_at == pytest.approx(clock.monotonic() + 8.0)


def test_trip_opens_at_once_and_trials_follow_the_schedule() -> None:
    """trip() opens a closed breaker without counting failures; its first trial comes after the
    first wait, as for any opening; tripping an open breaker changes nothing."""
    clock = ManualClock()
    flips: list[tuple[str, str]] = []
    b = Breaker("r", 5, 5.0, 1, clock, on_change=lambda n, old, new: flips.append((old.value, new.value)))
    b.trip()
    assert b.state is BreakerState.OPEN and flips == [("closed", "open")]
    b.trip()
    assert flips == [("closed", "open")]
    assert b.admit() is None
    clock.advance(5.0)
    assert b.admit() is not None
    assert repr(b).startswith("Breaker(name='r', state=half-open")
