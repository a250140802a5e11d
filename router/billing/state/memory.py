"""Single-process state backend (the default): plain dicts on the event loop.

Atomic without locks because nothing awaits inside admit or settle: one event loop runs one
coroutine step at a time. Rules are numbered in `router/billing/state/base.py`.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from router.billing.state.base import (
    RPM_WINDOW_S,
    Admission,
    LimitSpec,
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


def lease_member(leases: dict[str, float], request_id: str) -> str:
    """A lease name for request_id not already taken (rule 5): the id itself, else id#1, id#2..."""
    member, n = request_id, 0
    while member in leases:
        n += 1
        member = f"{request_id}#{n}"
    return member


def release_member(leases: dict[str, float], request_id: str) -> str | None:
    """The taken lease name of request_id to release, if any."""
    if request_id in leases:
        return request_id
    prefix = request_id + "#"
    return next((m for m in leases if m.startswith(prefix) and m[len(prefix) :].isdigit()), None)


class MemoryBackend:
    """StateBackend for one process. Memory stays bounded: the rpm log keeps the last minute."""

    def __init__(self) -> None:
        self._windows: dict[str, _Window] = {}
        self._rpm: dict[str, deque[float]] = {}
        self._leases: dict[str, dict[str, float]] = {}  # key_id -> lease name -> expiry
        # key_id -> no lease of the key expires before this: the expiry scan (a walk over every
        # lease in flight) runs only once something may have expired, not on every admission.
        self._lease_floor: dict[str, float] = {}

    async def admit(self, key_id: str, spec: LimitSpec, reserve_usd: float, request_id: str, now: float) -> Admission:
        reserve = cost_micros(reserve_usd)
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
            expiry = leases[lease_member(leases, request_id)] = now + spec.lease_s
            if expiry < self._lease_floor.get(key_id, math.inf):
                self._lease_floor[key_id] = expiry
        return answer

    async def settle(
        self,
        key_id: str,
        spec: LimitSpec,
        window_start: float | None,
        reserved_usd: float,
        cost_usd: float,
        request_id: str,
        now: float,
    ) -> float | None:
        reserved, cost = cost_micros(reserved_usd), cost_micros(cost_usd)
        leases = self._leases.get(key_id, {})
        member = release_member(leases, request_id)
        if member is not None:
            del leases[member]
        if spec.budget_usd is None:
            return None
        budget = budget_micros(spec.budget_usd)
        window = self._open_window(key_id, spec, now)
        if window is None:  # rule 2c
            return to_usd(budget)
        if window.start == window_start:  # rule 2a
            window.reserved = max(0, window.reserved - reserved)
        window.spent += cost  # rules 2a and 2b
        return remaining_usd(budget, window.spent, window.reserved)

    async def status(self, key_id: str, spec: LimitSpec, now: float) -> tuple[float | None, float | None]:
        if spec.budget_usd is None:
            return None, None
        budget = budget_micros(spec.budget_usd)
        window = self._open_window(key_id, spec, now)
        if window is None:
            return to_usd(budget), now + spec.window_s
        return remaining_usd(budget, window.spent, window.reserved), window.start + spec.window_s

    async def aclose(self) -> None:
        self._windows.clear()
        self._rpm.clear()
        self._leases.clear()
        self._lease_floor.clear()

    def _open_window(self, key_id: str, spec: LimitSpec, now: float) -> _Window | None:
        """The key's open window, or None (an expired one is left for the next admission to replace)."""
        window = self._windows.get(key_id)
        return window if window is not None and is_open(window.start, spec, now) else None

    def __repr__(self) -> str:
        keys = set(self._windows) | set(self._rpm) | set(self._leases)
        rpm_entries = sum(map(len, self._rpm.values()))
        leases = sum(map(len, self._leases.values()))
        return f"MemoryBackend(keys={len(keys)}, rpm_entries={rpm_entries}, leases={leases})"
