"""What a key may do: its plan's models, and its budget, rpm and concurrency, enforced through
a state backend (memory, or Redis shared by replicas). A request reserves an estimate of its
cost before it is forwarded and settles to the real cost after.

Overspend bound (docs/billing.md): a request is admitted only while settled + reserved spend is below the
budget, so with reservations that cover the real costs the window's spend ends at most one
reservation over the budget. The output side is covered: the endpoint sends every request a cap
no larger than the one reserved for (`accounting.output_limit`); only an input the estimate
undercounted (under 3 bytes a token) can add an excess on top.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import structlog

from router.billing.auth import Principal
from router.billing.state.base import Admission, LimitSpec, Settlement, StateBackend, StateUnavailable, less_cost
from router.clock import Clock
from router.config import Config, PlanConfig
from router.errors import BudgetExceeded, LimitsUnavailable, ModelNotAllowed, RateLimited

log = structlog.get_logger("router.billing.limits")

_LEASE_MARGIN_S = 60.0  # a concurrency slot outlives the longest request by this much


@dataclass(slots=True)
class Grant:
    """An admitted request's hold on its key's limits, settled exactly once."""

    key_id: str
    spec: LimitSpec | None  # None: not counted (anonymous, or fail_open while the store is down)
    admission_id: str  # names this admission in the state backend (its rule 5)
    reserved_usd: float
    window_start: float | None
    remaining_usd: float | None
    window_end: float | None
    settled: bool = False


class Limits:
    def __init__(self, config: Config, backend: StateBackend, clock: Clock) -> None:
        self._backend = backend
        self._clock = clock
        self._fail_open = config.state.on_unavailable == "fail_open"
        self._lease_s = config.routing.deadline_s + _LEASE_MARGIN_S
        self._specs: dict[str, LimitSpec] = {p.name: self._spec(p) for p in config.plans}
        self._down = False

    def _spec(self, plan: PlanConfig) -> LimitSpec:
        return LimitSpec(
            budget_usd=plan.budget.usd if plan.budget else None,
            window_s=plan.budget.window_s if plan.budget else 0.0,
            rpm=plan.rpm,
            max_concurrent=plan.max_concurrent,
            lease_s=self._lease_s,
        )

    @staticmethod
    def check_model(principal: Principal, model: str) -> None:
        if not principal.allows(model):
            plan = principal.plan.name if principal.plan else "anonymous"
            raise ModelNotAllowed(f"model '{model}' is not included in plan '{plan}'")

    async def admit(self, principal: Principal, request_id: str, reserve_usd: float) -> Grant:
        spec = self._specs.get(principal.plan.name) if principal.plan else None
        if spec is None:
            return Grant(principal.key_id, None, request_id, 0.0, None, None, None)
        # The backend takes a repeated admission id for a retry of the same admission; the request
        # id is the client's to choose and repeat (on any replica), so it gets a random part.
        admission_id = f"{request_id}/{os.urandom(8).hex()}"
        try:
            adm = await self._backend.admit(principal.key_id, spec, reserve_usd, admission_id, self._clock.wall())
        except StateUnavailable as exc:
            return self._unavailable(principal, admission_id, exc)
        self._recovered()
        if not adm.ok:
            raise _refusal(principal, adm)
        return Grant(
            principal.key_id, spec, admission_id, reserve_usd, adm.window_start, adm.remaining_usd, adm.window_end
        )

    async def settle(self, grant: Grant, cost_usd: float) -> float | None:
        """Replace the reservation by the real cost, without waiting for the store's answer (the
        state backend's `settle_nowait`). Returns the USD left for the response's header: what
        the key had left when this request was admitted, less its cost (docs/billing.md, "Headers")."""
        if grant.settled:
            return grant.remaining_usd
        grant.settled = True
        if grant.spec is None:
            return None
        settlement = Settlement(
            grant.key_id,
            grant.spec,
            grant.window_start,
            grant.reserved_usd,
            cost_usd,
            grant.admission_id,
            self._clock.wall(),
        )
        await self._backend.settle_nowait(settlement, self._settled)
        if grant.remaining_usd is not None:
            grant.remaining_usd = less_cost(grant.remaining_usd, cost_usd)
        return grant.remaining_usd

    def _settled(self, error: StateUnavailable | None) -> None:
        if error is None:
            self._recovered()
        else:
            self._went_down(error)

    async def status(self, principal: Principal) -> tuple[float | None, float | None]:
        """(USD left, window end) for the headers of a response that spent nothing."""
        spec = self._specs.get(principal.plan.name) if principal.plan else None
        if spec is None or spec.budget_usd is None:
            return None, None
        try:
            return await self._backend.status(principal.key_id, spec, self._clock.wall())
        except StateUnavailable as exc:
            self._went_down(exc)
            return None, None

    def _unavailable(self, principal: Principal, admission_id: str, exc: StateUnavailable) -> Grant:
        self._went_down(exc)
        if not self._fail_open:
            raise LimitsUnavailable(
                "usage limits cannot be checked right now (the shared state store is unreachable); retry shortly"
            )
        return Grant(principal.key_id, None, admission_id, 0.0, None, None, None)

    def _went_down(self, exc: StateUnavailable) -> None:
        if not self._down:  # loudly, once per outage
            self._down = True
            policy = "fail_open: requests pass uncounted" if self._fail_open else "fail_closed: requests get 503"
            log.error("state_unavailable", error=str(exc), policy=policy)

    def _recovered(self) -> None:
        if self._down:
            self._down = False
            log.warning("state_recovered")


def _refusal(principal: Principal, adm: Admission) -> BudgetExceeded | RateLimited:
    plan = principal.plan.name if principal.plan else "anonymous"
    if adm.reason == "budget":
        return BudgetExceeded(
            f"the budget of plan '{plan}' for this window is spent; it resets in {adm.retry_after_s:.0f}s",
            adm.retry_after_s,
        )
    what = "requests per minute" if adm.reason == "rpm" else "concurrent requests"
    return RateLimited(f"too many {what} for plan '{plan}'", adm.retry_after_s)
