"""Per-route circuit breaker: pybreaker's counting and transitions behind an admit/record API.

pybreaker 1.4 is synchronous, reads the wall clock while open, and lets every
caller through when half-open; this wrapper keeps time and trial slots itself,
and decides when an open breaker lets its next trial through (`TrialSchedule`).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass

import pybreaker

from router.clock import Clock
from router.types import AttemptResult


class BreakerState(enum.StrEnum):
    """Circuit state, valued as pybreaker's state names."""

    CLOSED = "closed"  # traffic flows; consecutive failures are counted
    OPEN = "open"  # traffic refused until the reset timeout passes
    HALF_OPEN = "half-open"  # a few trial requests decide between closed and open


# Each failed trial doubles the wait before the next one, up to the cap: a short blip is noticed
# within `first_s`, a long outage costs one trial per cap.
TRIAL_BACKOFF_FACTOR = 2.0
# Beyond this many doublings every wait is the cap anyway; bounds the power so it cannot overflow.
_MAX_DOUBLINGS = 64


@dataclass(frozen=True, slots=True)
class TrialSchedule:
    """When an open breaker lets its next half-open trial through.

    The first trial comes `first_s` after the breaker opens; each failed trial doubles the wait,
    up to `max_s`; a success closes the breaker and the next opening starts again at `first_s`.
    Jitter takes up to `jitter` of each wait off (never adds), so breakers that opened together
    (the routes of one provider, the workers of one host, several routers) do not trial in
    lockstep, and `max_s` stays a hard bound on how long a recovered route waits for its trial.
    """

    first_s: float
    max_s: float
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if not (0 <= self.first_s <= self.max_s and 0 <= self.jitter < 1):
            raise ValueError(f"bad trial schedule {self.first_s=}, {self.max_s=}, {self.jitter=}")

    def wait(self, failed_trials: int, draw: float) -> float:
        """Seconds from an opening to the next trial, after `failed_trials` failed trials in a row
        since the breaker was last closed; `draw` is uniform in [0, 1)."""
        base = min(self.max_s, self.first_s * TRIAL_BACKOFF_FACTOR ** min(failed_trials, _MAX_DOUBLINGS))
        return base * (1.0 - self.jitter * draw)


# pybreaker's state name -> ours: a dict lookup, where BreakerState(name) costs an Enum call on
# every admit and record.
_BY_NAME = {s.value: s for s in BreakerState}


@dataclass(slots=True)
class Ticket:
    """Permission for one attempt; hand it back to `Breaker.record` exactly once."""

    trial: bool  # admitted as a half-open trial, holding one of the trial slots
    settled: bool = False


class _Outcome(Exception):
    """Raised inside pybreaker's `call` to report a failure; never leaves this module."""


def _succeed() -> None:
    pass


def _fail() -> None:
    raise _Outcome


class _Listener(pybreaker.CircuitBreakerListener):
    def __init__(self, owner: Breaker) -> None:
        self._owner = owner

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        old = None if old_state is None else BreakerState(old_state.name)
        self._owner._transitioned(old, BreakerState(new_state.name))


class Breaker:
    """Circuit breaker for one route, timed by the injected clock.

    While OPEN it admits nothing until the `TrialSchedule`'s wait has passed (`trial_at`).

    Use: `ticket = admit()`; if not None, make the attempt and always
    `record(ticket, result)` (NEUTRAL when cancelled) - an unrecorded trial
    ticket keeps its half-open slot forever.

    In HALF_OPEN only the current trials' results count: a request admitted
    while CLOSED, or a trial from an earlier half-open round, reports on the
    upstream as it was before the breaker opened.
    """

    def __init__(
        self,
        name: str,
        fail_max: int,
        reset_timeout_s: float,
        half_open_trials: int,
        clock: Clock,
        on_change: Callable[[str, BreakerState, BreakerState], None] | None = None,
        *,
        reset_timeout_max_s: float | None = None,
        jitter: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        """`reset_timeout_s` is the wait before the first trial, `reset_timeout_max_s` (default:
        the same, a fixed wait) the cap it doubles up to, `jitter` the share a random draw from
        `rng` may take off each wait (see `TrialSchedule`)."""
        if fail_max < 1 or half_open_trials < 1 or not reset_timeout_s >= 0:
            raise ValueError(f"bad breaker config {fail_max=}, {half_open_trials=}, {reset_timeout_s=}")
        cap = reset_timeout_s if reset_timeout_max_s is None else reset_timeout_max_s
        self._schedule = TrialSchedule(reset_timeout_s, cap, jitter)
        self._rng = rng or random.Random()
        self._name = name
        self._half_open_trials = half_open_trials
        self._clock = clock
        self._on_change = on_change
        self._trial_at: float | None = None  # while OPEN: when the next trial may go
        self._failed_trials = 0  # failed trials in a row since the breaker was last closed
        # Outstanding trial tickets of the current half-open round, matched by
        # identity so a ticket from an earlier round cannot free a slot it no longer holds.
        self._trials: list[Ticket] = []
        self._pending: list[tuple[BreakerState, BreakerState]] = []
        # pybreaker gets our first reset timeout only for the record: it would act on
        # it while open, and it is never called while open.
        self._cb = pybreaker.CircuitBreaker(
            fail_max=fail_max,
            reset_timeout=reset_timeout_s,
            name=name,
            listeners=[_Listener(self)],
        )

    @property
    def state(self) -> BreakerState:
        """The real state; OPEN stays OPEN after the reset timeout until `admit` moves it."""
        return _BY_NAME[self._cb.current_state]

    @property
    def trial_at(self) -> float | None:
        """While OPEN, the monotonic time from which the next trial is admitted; else None."""
        return self._trial_at if self.state is BreakerState.OPEN else None

    @property
    def fail_counter(self) -> int:
        """pybreaker's consecutive-failure count."""
        return self._cb.fail_counter

    def available(self) -> bool:
        """Whether `admit` would hand out a ticket now; changes nothing."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            return self._reset_elapsed()
        return len(self._trials) < self._half_open_trials

    def admit(self) -> Ticket | None:
        """A ticket for one attempt, or None when refused."""
        state = self.state
        if state is BreakerState.CLOSED:
            return Ticket(trial=False)
        if state is BreakerState.OPEN:
            if not self._reset_elapsed():
                return None
            # Move pybreaker ourselves: its own move happens inside `call`, after
            # comparing against datetime.now(), and admits unboundedly.
            self._cb.half_open()
            self._flush()
        if len(self._trials) >= self._half_open_trials:
            return None
        ticket = Ticket(trial=True)
        self._trials.append(ticket)
        return ticket

    def record(self, ticket: Ticket, result: AttemptResult) -> None:
        """Settle `ticket` with `result`; a second call for the same ticket is ignored."""
        if ticket.settled:
            return
        ticket.settled = True
        current_trial = self._release(ticket)
        if result is AttemptResult.NEUTRAL:
            return
        state = self.state
        if state is BreakerState.OPEN:
            # Stale: admitted before the breaker opened. Feeding it would also
            # make pybreaker consult the wall clock to decide on half-opening.
            return
        if state is BreakerState.HALF_OPEN and not current_trial:
            return
        if state is BreakerState.CLOSED and result is AttemptResult.SUCCESS and self._cb.fail_counter == 0:
            # All pybreaker would do is reset a counter that is already zero (under a lock, on
            # every request): skip it.
            return
        try:
            self._cb.call(_succeed if result is AttemptResult.SUCCESS else _fail)
        except (_Outcome, pybreaker.CircuitBreakerError):
            # CircuitBreakerError: this failure tripped the breaker; the listener saw it.
            pass
        finally:
            self._flush()

    def trip(self) -> None:
        """Open now, whatever the count: a failure that no retry will mend (a rejected credential)."""
        if self.state is not BreakerState.OPEN:
            self._cb.open()
            self._flush()

    def _release(self, ticket: Ticket) -> bool:
        for i, held in enumerate(self._trials):
            if held is ticket:
                del self._trials[i]
                return True
        return False

    def _reset_elapsed(self) -> bool:
        if self._trial_at is None:
            return True
        return self._clock.monotonic() >= self._trial_at

    def _transitioned(self, old: BreakerState | None, new: BreakerState) -> None:
        # pybreaker notifies on every state object it builds; only real flips count.
        if old is None or old is new:
            return
        if new is BreakerState.OPEN:
            # From HALF_OPEN a trial failed: wait longer. From CLOSED: a fresh outage.
            self._failed_trials = self._failed_trials + 1 if old is BreakerState.HALF_OPEN else 0
            wait = self._schedule.wait(self._failed_trials, self._rng.random())
            self._trial_at = self._clock.monotonic() + wait
        elif new is BreakerState.CLOSED:
            self._failed_trials = 0
        # Any flip ends the half-open round: leftover trials become ordinary stale requests.
        self._trials.clear()
        # Deferred: pybreaker notifies before it stores the new state, so a
        # callback reading `state` right now would see the old one.
        self._pending.append((old, new))

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if self._on_change is not None:
            for old, new in pending:
                self._on_change(self._name, old, new)

    def __repr__(self) -> str:
        return (
            f"Breaker(name={self._name!r}, state={self.state.value}, "
            f"failures={self.fail_counter}, trials={len(self._trials)}/{self._half_open_trials})"
        )
