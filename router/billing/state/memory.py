"""Single-process state backend (the default): plain dicts on the event loop.

Atomic without locks because nothing awaits inside admit or settle: one event loop runs one
coroutine step at a time. Rules are numbered in `router/billing/state/base.py`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from router.billing.state.base import (
    RPM_WINDOW_S,
    Admission,
    LimitSpec,
    Settlement,
    StateUnavailable,
    budget_micros,
    cost_micros,
    decide,
    is_open,
    remaining_usd,
    to_usd,
)


@dataclass(slots=True)
class _Window:
    start: float
    spent: int = 0  # micro-USD
    reserved: int = 0  # micro-USD


@dataclass(slots=True)
class _Record:
    """What an admission_id did (rule 5), remembered until `expiry`."""

    expiry: float
    admission: Admission | None  # the answer it was admitted with; None: settled, never admitted here
    settled: bool = False


# Nothing here fails without saying whether it ran (there is no network), so nothing retries,
# and records only guard against a caller repeating itself by mistake. Redis keeps them RECORD_S
# for its retries; here that would hold 60 s of requests: 0.5 KB each, 110 MiB at 3,500 req/s.
MEMORY_RECORD_S = 1.0


class MemoryBackend:
    """StateBackend for one process. Memory stays bounded: the rpm log keeps the last minute, and
    records of admissions are dropped `record_s` after their last use."""

    def __init__(self, record_s: float = MEMORY_RECORD_S) -> None:
        self._record_s = record_s
        self._windows: dict[str, _Window] = {}
        self._rpm: dict[str, deque[float]] = {}
        self._leases: dict[str, dict[str, float]] = {}  # key_id -> admission_id -> expiry
        # key_id -> no lease of the key expires before this: the expiry scan (a walk over every
        # lease in flight) runs only once something may have expired, not on every admission.
        self._lease_floor: dict[str, float] = {}
        # (key_id, admission_id) -> its record. Every record lives record_s from its last write
        # and a write moves it to the end, so the oldest expire first, from the front.
        self._records: dict[tuple[str, str], _Record] = {}

    async def admit(self, key_id: str, spec: LimitSpec, reserve_usd: float, admission_id: str, now: float) -> Admission:
        reserve = cost_micros(reserve_usd)
        self._forget(now)
        record = self._record(key_id, admission_id, now)
        if record is not None and record.admission is not None:
            return record.admission  # a repeat: the first answer, nothing changes (rule 5)
        window = self._open_window(key_id, spec, now)
        log = self._rpm.setdefault(key_id, deque())
        while log and log[0] <= now - RPM_WINDOW_S:
            log.popleft()
        leases = self._leases.setdefault(key_id, {})
        if now >= self._lease_floor.get(key_id, math.inf):
            for member in [m for m, expiry in leases.items() if expiry <= now]:
                del leases[member]
            self._lease_floor[key_id] = min(leases.values(), default=math.inf)
        # The admission that must leave the last minute before one more fits (None with rpm 0).
        pivot = log[len(log) - spec.rpm] if spec.rpm and len(log) >= spec.rpm else None
        used = window.spent + window.reserved if window is not None else 0
        answer = decide(spec, now, window.start if window else None, used, len(log), pivot, len(leases))
        if not answer.ok:
            return answer
        if spec.budget_usd is not None:
            if window is None:
                window = self._windows[key_id] = _Window(start=now)
            window.reserved += reserve
        if spec.rpm is not None:
            log.append(now)
        if spec.max_concurrent is not None:
            expiry = leases[admission_id] = now + spec.lease_s
            if expiry < self._lease_floor.get(key_id, math.inf):
                self._lease_floor[key_id] = expiry
        if spec.budget_usd is not None or spec.rpm is not None or spec.max_concurrent is not None:
            self._remember(key_id, admission_id, _Record(now + self._record_s, answer))
        return answer

    async def settle(self, s: Settlement) -> float | None:
        key_id, spec, window_start, admission_id, now = s.key_id, s.spec, s.window_start, s.admission_id, s.now
        reserved, cost = cost_micros(s.reserved_usd), cost_micros(s.cost_usd)
        self._leases.get(key_id, {}).pop(admission_id, None)  # releasing twice releases nothing
        if spec.budget_usd is None:
            return None
        budget = budget_micros(spec.budget_usd)
        record = self._record(key_id, admission_id, now)
        first = record is None or not record.settled
        if first:
            if record is None:
                record = _Record(now + self._record_s, None, settled=True)
            record.expiry, record.settled = now + self._record_s, True
            self._remember(key_id, admission_id, record)
        window = self._open_window(key_id, spec, now)
        if window is None:  # rule 2c
            return to_usd(budget)
        if first:
            if window.start == window_start:  # rule 2a
                window.reserved = max(0, window.reserved - reserved)
            window.spent += cost  # rules 2a and 2b
        return remaining_usd(budget, window.spent, window.reserved)

    async def settle_nowait(self, s: Settlement, done: Callable[[StateUnavailable | None], None]) -> None:
        await self.settle(s)
        done(None)  # nothing to wait for here: it is settled

    async def status(self, key_id: str, spec: LimitSpec, now: float) -> tuple[float | None, float | None]:
        if spec.budget_usd is None:
            return None, None
        budget = budget_micros(spec.budget_usd)
        window = self._open_window(key_id, spec, now)
        if window is None:
            return to_usd(budget), now + spec.window_s
        return remaining_usd(budget, window.spent, window.reserved), window.start + spec.window_s

    async def ping(self) -> None:
        """Always reachable: it is this process's memory."""

    async def aclose(self) -> None:
        self._windows.clear()
        self._rpm.clear()
        self._leases.clear()
        self._lease_floor.clear()
        self._records.clear()

    def _record(self, key_id: str, admission_id: str, now: float) -> _Record | None:
        record = self._records.get((key_id, admission_id))
        return record if record is not None and now < record.expiry else None

    def _remember(self, key_id: str, admission_id: str, record: _Record) -> None:
        self._records.pop((key_id, admission_id), None)  # to the end: the newest
        self._records[key_id, admission_id] = record

    def _forget(self, now: float) -> None:
        """Drop expired records from the front (the oldest), stopping at the first live one."""
        records = self._records
        while records:
            oldest = next(iter(records))
            if now < records[oldest].expiry:
                return
            del records[oldest]

    def _open_window(self, key_id: str, spec: LimitSpec, now: float) -> _Window | None:
        """The key's open window, or None (an expired one is left for the next admission to replace)."""
        window = self._windows.get(key_id)
        return window if window is not None and is_open(window.start, spec, now) else None

    def __repr__(self) -> str:
        keys = set(self._windows) | set(self._rpm) | set(self._leases)
        rpm_entries = sum(map(len, self._rpm.values()))
        leases = sum(map(len, self._leases.values()))
        return (
            f"MemoryBackend(keys={len(keys)}, rpm_entries={rpm_entries}, leases={leases}, records={len(self._records)})"
        )
