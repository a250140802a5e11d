"""The shared-state contract: per-key dollar budgets over a rolling window, rpm and concurrency,
checked and changed atomically. `limits.py` calls it; `memory.py` and `redis.py` implement it.

Every call takes `now`, unix wall time from the caller's injected clock, so tests never sleep and
replicas sharing Redis agree on windows. The rules, the same in both backends:

1. admit, atomically:
   a. if no window is open for the key, or now >= window_start + window_s, a new window opens at
      `now` with spent = reserved = 0;
   b. refuse "budget" when spent + reserved >= budget_usd, retry after the window ends. A request
      admitted below the budget may take it over by at most its own cost;
   c. refuse "rpm" when `rpm` requests were admitted in (now - 60, now] (an exact sliding log),
      retry when enough of them have left it;
   d. refuse "concurrency" when `max_concurrent` leases are live (leases older than lease_s are
      dropped first: a crashed replica must not leak slots), retry after CONCURRENCY_RETRY_S;
   e. otherwise reserved += reserve_usd, log the admission for rpm and give it a lease.
   A refused request changes nothing: no window opens, it does not count toward rpm. Checks run
   in that order, so the reason names the first limit hit.
2. settle, atomically: release the admission's lease; then, with a budget,
   a. window_start is the open window's start: reserved -= reserved_usd (floored at 0), spent += cost;
   b. another (newer) window is open: spent += cost. The roll-over wiped the reservation; the cost
      lands in the window where it settled;
   c. no window is open: nothing is added.
   It returns remaining_usd afterwards (the full budget when no window is open). `settle_nowait`
   does the same without waiting for the store's answer: it returns once the store has the call
   in order behind everything sent before it (Redis: written on its connection), and reports how
   it ended to `done` (None, or the StateUnavailable left after the backend's retries).
3. status reads (remaining_usd, window_end) without changing anything; with no open window it is
   (full budget, now + window_s). Without a budget every dollar figure is None. `ping` changes
   nothing either: it raises StateUnavailable when the store cannot be reached (readiness).
4. Money is stored as integer micro-dollars (no float drift in Redis). Costs and reservations
   round UP and the budget rounds DOWN, so rounding never under-bills; a float's representation
   error (0.1 USD is 100000.00000000001 micro-USD) is forgiven first, so exact amounts stay exact.
5. admission_id names one admission, and the caller makes it unique (limits.py adds a random part
   to the request id, which a client chooses and may repeat). What an admission id did is kept
   RECORD_S after its last admit or settle (memory state: 1 s, as nothing retries there);
   meanwhile a repeated admit changes nothing and returns the first answer, and a repeated settle
   charges and releases nothing and returns what is left now. That makes a retry safe when a
   call failed without saying whether it ran (a Redis timeout: redis.py retries once). A refused
   admit records nothing (it changed nothing).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from router.errors import RouterError

MICROS_PER_USD = 1_000_000
RPM_WINDOW_S = 60.0  # "requests per minute", measured as a sliding minute
# A concurrency slot frees when another request ends, which we cannot predict; one second is a
# polite pause that does not stall an interactive client.
CONCURRENCY_RETRY_S = 1.0
# How long an admission or a settlement is remembered by its admission_id (rule 5): longer than
# a retry of the call can take, and short, as a busy key writes a record per request (kept as
# long as a lease, deadline_s + 60 s, they would pile up).
RECORD_S = 60.0
# Float noise allowed when converting USD to micro-USD before rounding (well below one micro-USD).
_MICROS_TOLERANCE = 1e-6

Reason = Literal["ok", "budget", "rpm", "concurrency"]


class StateUnavailable(RouterError):
    """The shared state (Redis) could not be reached or answered in time."""

    status = 503
    code = "state_unavailable"


@dataclass(frozen=True, slots=True)
class LimitSpec:
    """One plan's limits, as the state backend needs them."""

    budget_usd: float | None  # None: no dollar budget
    window_s: float  # rolling window length (ignored without budget)
    rpm: int | None  # requests per sliding 60 s; None: unlimited
    max_concurrent: int | None  # None: unlimited
    lease_s: float  # a concurrency slot not released within this long expires

    def __post_init__(self) -> None:
        problems = []
        if self.budget_usd is not None and not (self.budget_usd >= 0 and math.isfinite(self.budget_usd)):
            problems.append(f"budget_usd must be a finite amount >= 0, got {self.budget_usd}")
        if self.budget_usd is not None and not self.window_s > 0:
            problems.append(f"window_s must be > 0, got {self.window_s}")
        if self.rpm is not None and self.rpm < 0:
            problems.append(f"rpm must be >= 0, got {self.rpm}")
        if self.max_concurrent is not None and self.max_concurrent < 0:
            problems.append(f"max_concurrent must be >= 0, got {self.max_concurrent}")
        if not self.lease_s > 0:
            problems.append(f"lease_s must be > 0, got {self.lease_s}")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True, slots=True)
class Admission:
    """The answer to one admit call."""

    ok: bool
    reason: Reason
    retry_after_s: float  # > 0 when refused, 0.0 when admitted
    remaining_usd: float | None  # budget - spent - reserved BEFORE this reservation, >= 0; None without budget
    window_end: float | None  # unix time the current window ends; None without budget
    window_start: float | None  # identifies the window; pass it back to settle


@dataclass(frozen=True, slots=True)
class Settlement:
    """One settle call (rule 2): the admission it closes and what the request cost."""

    key_id: str
    spec: LimitSpec
    window_start: float | None  # the Admission's: which window holds the reservation
    reserved_usd: float
    cost_usd: float
    admission_id: str
    now: float


class StateBackend(Protocol):
    """Atomic budget, window, rpm and concurrency operations for API keys (rules in the module doc)."""

    async def admit(
        self, key_id: str, spec: LimitSpec, reserve_usd: float, admission_id: str, now: float
    ) -> Admission: ...

    async def settle(self, s: Settlement) -> float | None: ...

    async def settle_nowait(self, s: Settlement, done: Callable[[StateUnavailable | None], None]) -> None: ...

    async def status(self, key_id: str, spec: LimitSpec, now: float) -> tuple[float | None, float | None]: ...

    async def ping(self) -> None:
        """Raise StateUnavailable when the store cannot be reached now (readiness asks, now and then)."""
        ...

    async def aclose(self) -> None: ...


def _to_micros(usd: float, up: bool) -> int:
    if not (usd >= 0 and math.isfinite(usd)):
        raise ValueError(f"an amount in USD must be finite and >= 0, got {usd}")
    micros = usd * MICROS_PER_USD
    nearest = round(micros)
    if abs(micros - nearest) <= _MICROS_TOLERANCE:
        return nearest
    return math.ceil(micros) if up else math.floor(micros)


def cost_micros(usd: float) -> int:
    """A cost or reservation in micro-USD, rounded up (rule 4)."""
    return _to_micros(usd, up=True)


def budget_micros(usd: float) -> int:
    """A budget in micro-USD, rounded down (rule 4)."""
    return _to_micros(usd, up=False)


def to_usd(micros: int) -> float:
    return micros / MICROS_PER_USD


def less_cost(remaining: float, cost: float) -> float:
    """What is left of `remaining` USD once `cost` is charged, rounded as a settle rounds it."""
    return to_usd(max(0, round(remaining * MICROS_PER_USD) - cost_micros(cost)))


def remaining_usd(budget: int, spent: int, reserved: int) -> float:
    """What is left of a budget, never negative."""
    return to_usd(max(0, budget - spent - reserved))


def is_open(start: float | None, spec: LimitSpec, now: float) -> bool:
    """Whether a window that began at `start` is still open at `now` (rule 1a)."""
    return start is not None and now < start + spec.window_s


def decide(
    spec: LimitSpec,
    now: float,
    start: float | None,
    used: int,
    rpm_log_len: int,
    rpm_pivot: float | None,
    live_leases: int,
) -> Admission:
    """Rule 1 b-e as one pure decision, shared by both backends.

    `start` is the open window's start (None: a fresh one would open at `now`); `used` is its
    spent + reserved micro-USD; `rpm_pivot` is the admission time that must leave the last minute
    before one more fits (the (len - rpm)-th oldest), when the log is full.
    """
    window_start = (start if start is not None else now) if spec.budget_usd is not None else None
    window_end = window_start + spec.window_s if window_start is not None else None
    remaining = None
    if spec.budget_usd is not None:
        budget = budget_micros(spec.budget_usd)
        remaining = remaining_usd(budget, used, 0)
        if used >= budget:
            assert window_end is not None
            return Admission(False, "budget", window_end - now, remaining, window_end, window_start)
    if spec.rpm is not None and rpm_log_len >= spec.rpm:
        # With rpm == 0 nothing ever fits; a minute is as honest an answer as any.
        wait = rpm_pivot + RPM_WINDOW_S - now if rpm_pivot is not None else RPM_WINDOW_S
        return Admission(False, "rpm", max(wait, 1e-3), remaining, window_end, window_start)
    if spec.max_concurrent is not None and live_leases >= spec.max_concurrent:
        return Admission(False, "concurrency", CONCURRENCY_RETRY_S, remaining, window_end, window_start)
    return Admission(True, "ok", 0.0, remaining, window_end, window_start)
