"""Live state of every route (latency EWMA, in-flight count, breaker, cooldown) and of every
provider (health), and the question routing asks of it: which routes may serve this model now?

Decisions here never await: state is read and updated synchronously, I/O happens elsewhere.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import structlog

from router.clock import Clock
from router.config import ProviderConfig
from router.formats import WireFormat
from router.log import outside_request
from router.routing.breaker import Breaker, BreakerState, Ticket
from router.routing.cooldown import Cooldown
from router.routing.ewma import PeakEwma
from router.routing.health import Health, HealthState
from router.routing.table import ModelRoutes, Route, RoutingTable
from router.types import AttemptResult

log = structlog.get_logger("router.routing")

_ASSUMED = "health probes disabled: assumed healthy"


class ProviderState:
    """A provider's health, fed by the active probes."""

    __slots__ = ("health", "name", "probe_enabled")

    def __init__(self, name: str, health: HealthState, probe_enabled: bool) -> None:
        self.name = name
        self.health = health
        self.probe_enabled = probe_enabled

    @property
    def state(self) -> Health:
        """The state readiness and the status page go by: with probes disabled, healthy by assumption."""
        return self.health.state if self.probe_enabled else "healthy"

    def describe(self) -> dict[str, Any]:
        """The state, why and since when, and the last probe, as /health/ready and /status show them."""
        if not self.probe_enabled:
            return {"state": self.state, "reason": _ASSUMED, "since": None, "assumed": True, "last_probe": None}
        h, last = self.health, self.health.last
        probe = None
        if last is not None and h.last_at is not None:
            probe = {
                "at": round(h.last_at, 3),
                "ok": last.ok,
                "status": last.status,
                "latency_ms": None if last.latency_s is None else round(last.latency_s * 1000, 1),
            }
        reason = last.reason if last is not None else "not probed yet"
        since = round(h.since, 3)
        return {"state": self.state, "reason": reason, "since": since, "assumed": False, "last_probe": probe}


class RouteState:
    """The passive signals of one (provider, upstream model) pair."""

    __slots__ = ("breaker", "cooldown", "ewma", "inflight", "prefill_refused", "provider", "route")

    def __init__(
        self, route: Route, provider: ProviderState, clock: Clock, half_life_s: float, rng: random.Random
    ) -> None:
        cfg = route.provider.breaker
        self.route = route
        self.provider = provider
        self.ewma = PeakEwma(half_life_s, clock)
        self.inflight = 0
        self.prefill_refused = False  # its model answered a prefill with a 400: restart here, never continue
        self.breaker = Breaker(
            route.key,
            cfg.fail_max,
            cfg.reset_timeout_s,
            cfg.half_open_trials,
            clock,
            on_change=_log_flip,
            reset_timeout_max_s=cfg.reset_timeout_max_s,
            jitter=cfg.reset_jitter,
            rng=rng,
        )
        self.cooldown = Cooldown(clock)

    def available(self) -> bool:
        return self.provider.health.routable and not self.cooldown.active() and self.breaker.available()

    def __repr__(self) -> str:
        return (
            f"RouteState({self.route.key}, health={self.provider.health.state}, "
            f"breaker={self.breaker.state.value}, ewma={self.ewma.value()}, inflight={self.inflight}, "
            f"cooldown={self.cooldown.remaining():.3f})"
        )


class Lease:
    """One attempt's hold on a route: counts it in flight and carries its breaker ticket.
    `finish` is idempotent, so every exit path may call it."""

    __slots__ = ("_done", "_ticket", "state")

    def __init__(self, state: RouteState, ticket: Ticket) -> None:
        self.state = state
        self._ticket = ticket
        self._done = False
        state.inflight += 1

    def observe_ttfb(self, seconds: float) -> None:
        self.state.ewma.observe(seconds)

    def finish(self, result: AttemptResult) -> None:
        if self._done:
            return
        self._done = True
        self.state.inflight -= 1
        self.state.breaker.record(self._ticket, result)


@dataclass(frozen=True, slots=True)
class Selection:
    """The routes that may be tried now, or how long to wait for a cooled-down tier."""

    routes: list[RouteState]
    wait_s: float | None = None


class Pool:
    """Every route's and provider's live state, keyed by route key and provider name."""

    def __init__(self, table: RoutingTable, clock: Clock, half_life_s: float, rng: random.Random | None = None) -> None:
        self.table = table
        self._clock = clock
        self._half_life_s = half_life_s
        self._rng = rng or random.Random()  # the breakers' jitter
        self.providers: dict[str, ProviderState] = {}
        self.routes: dict[str, RouteState] = {}
        self._build(table, {}, {})

    def _build(
        self, table: RoutingTable, old_providers: dict[str, ProviderState], old_routes: dict[str, RouteState]
    ) -> None:
        providers: dict[str, ProviderState] = {}
        routes: dict[str, RouteState] = {}
        for route in table.routes():
            p = route.provider
            ps = providers.get(p.name)
            if ps is None:
                ps = self._provider(p, old_providers.get(p.name))
            providers[p.name] = ps
            state = old_routes.get(route.key)
            if state is not None and state.provider is ps and state.route.provider.breaker == p.breaker:
                state.route = route  # weight and translation options may have changed; the signals stay
            else:
                state = RouteState(route, ps, self._clock, self._half_life_s, self._rng)
            routes[route.key] = state
        self.table, self.providers, self.routes = table, providers, routes

    def _provider(self, p: ProviderConfig, old: ProviderState | None) -> ProviderState:
        """The provider's state under its (new) config: a surviving one keeps its health (state,
        counts in a row, last probe) under the new thresholds; one whose probes are turned off
        drops it, since no probe would ever revisit a verdict of `unhealthy`."""
        h = p.health
        if old is None:
            return ProviderState(p.name, HealthState(h.unhealthy_after, h.healthy_after, self._clock.wall()), h.enabled)
        if old.probe_enabled and not h.enabled:
            # The same ProviderState, so its routes keep their breakers and EWMA.
            old.health = HealthState(h.unhealthy_after, h.healthy_after, self._clock.wall())
        old.health.retune(h.unhealthy_after, h.healthy_after)
        old.probe_enabled = h.enabled
        return old

    def reconfigure(self, table: RoutingTable) -> list[str]:
        """Swap in a new table, keeping the live state (EWMA, breaker, cooldown, in-flight,
        health) of every route and provider that still exists. Returns the new providers' names.
        Requests in flight hold the old table's objects and finish on them."""
        before = set(self.providers)
        self._build(table, self.providers, self.routes)
        return [name for name in self.providers if name not in before]

    def select(self, model: ModelRoutes, fmt: WireFormat, exclude: set[str], max_wait_s: float) -> Selection:
        """The ready routes of the best tier that has any. Cases:
        1. a tier has available routes: the best such tier's;
        2. no tier has any, but a route is only cooling down for at most `max_wait_s`: wait for
           the one back soonest (a refusing top tier never holds back a ready lower one);
        3. otherwise an empty selection.
        """
        wait: float | None = None
        for tier in model.tiers:
            ready: list[RouteState] = []
            for route in tier:
                if route.key in exclude or route.upstream_format(fmt) is None:
                    continue
                state = self.routes.get(route.key)
                if state is None:
                    continue  # removed by a reload while this request was in flight
                if state.available():
                    ready.append(state)
                elif state.cooldown.active() and state.provider.health.routable and state.breaker.available():
                    remaining = state.cooldown.remaining()
                    if remaining <= max_wait_s and (wait is None or remaining < wait):
                        wait = remaining
            if ready:
                return Selection(ready)
        return Selection([], wait_s=wait)

    def cooldown_end(self, model: ModelRoutes) -> float | None:
        """Seconds until the first of the model's cooled-down routes is back, if any."""
        states = [self.routes.get(r.key) for tier in model.tiers for r in tier]
        ends = [s.cooldown.remaining() for s in states if s is not None and s.cooldown.active()]
        return min(ends) if ends else None

    def acquire(self, state: RouteState) -> Lease | None:
        ticket = state.breaker.admit()
        return None if ticket is None else Lease(state, ticket)

    def available_routes(self, model: ModelRoutes) -> int:
        states = [self.routes.get(r.key) for tier in model.tiers for r in tier]
        return sum(1 for s in states if s is not None and s.available())

    def snapshot(self) -> dict[str, Any]:
        """The /health/ready body's providers and models: each provider's health state and why, each
        route's breaker, EWMA and load; per model the routes available now, and those without."""
        providers: dict[str, Any] = {}
        for name, ps in self.providers.items():
            routes = {
                key: {
                    "breaker": rs.breaker.state.value,
                    "ewma_ms": None if rs.ewma.value() is None else round(rs.ewma.value() * 1000, 1),  # type: ignore[operator]
                    "inflight": rs.inflight,
                    "cooldown_s": round(rs.cooldown.remaining(), 3),
                }
                for key, rs in self.routes.items()
                if rs.provider is ps
            }
            providers[name] = {
                **ps.describe(),
                "healthy": ps.health.routable,  # false only once probes found it down (see `state`)
                "probed": ps.health.probed,
                "breaker": _worst(rs["breaker"] for rs in routes.values()),
                "inflight": sum(r["inflight"] for r in routes.values()),
                "routes": routes,
            }
        models = {m.name: self.available_routes(self.table.get(m.name)) for m in self.table.models()}  # type: ignore[arg-type]
        # A model no route of which could take a request now (every provider down, breakers
        # open, cooling down): its requests fail, yet others may be served.
        down = [name for name, n in models.items() if n == 0]
        return {"providers": providers, "models": models, "models_unavailable": down}


def _log_flip(name: str, old: BreakerState, new: BreakerState) -> None:
    """Breakers log only when they flip, never per request; the line is the route's, so it
    carries no request id (the request that noticed a timed flip is unrelated to it)."""
    level = log.warning if new is BreakerState.OPEN else log.info
    outside_request(level, "breaker_state_changed", route=name, old=old.value, new=new.value)


def _worst(states: Any) -> str:
    """A provider's breaker summary: open if any route's is, then half-open, else closed."""
    seen = set(states)
    for s in (BreakerState.OPEN.value, BreakerState.HALF_OPEN.value):
        if s in seen:
            return s
    return BreakerState.CLOSED.value
