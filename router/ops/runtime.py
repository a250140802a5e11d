"""What a config reload changes in a running app, and how (see reload.py for the triggers).

The new file is validated in full first (the same `load_config` as at start): an invalid file is
refused with the same precise messages, logged, and the old config keeps serving. A valid one is
applied in one step, with no await in between, so no request sees half of each:
- routing: `Pool.reconfigure` keeps the live state (EWMA, breakers, cooldowns, health) of every
  route and provider that still exists; requests in flight hold the old table and finish on it;
- new providers, and providers a model routes to for the first time (or again), get their pool
  and their first health probe *before* the swap, so they take traffic only once probed healthy
  and readiness never waits on them; these probes run at the same time, so the reload waits at
  most one probe timeout; removed or changed providers' pools close after the drain timeout,
  when nothing can still be using them;
- a provider whose `health:` alone changed keeps its pool and its health state (under the new
  thresholds); the probe loop of every changed provider restarts with its new settings;
- keys, plans, prices, budgets and tokens take effect at once (the budget state itself lives in
  the state backend and is kept); under `state:` only `on_unavailable` does, and a change of any
  other `state.*` key is logged by name as needing a restart.
Reloads run one at a time, in the order triggered, each re-reading the file when its turn comes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import anyio
import httpx
import structlog

from router.billing.auth import Authenticator
from router.billing.limits import Limits
from router.billing.metering import Metering
from router.billing.state.base import StateBackend
from router.clock import Clock
from router.config import Config, ConfigError, Price, ProviderConfig, StateConfig, load_config
from router.log import mask_urls
from router.ops.metrics import Metrics
from router.ops.readiness import StateWatch
from router.ops.status import StatusBoard
from router.routing.failover import Forwarder
from router.routing.health import probe_loop
from router.routing.pool import Pool
from router.routing.table import RoutingTable
from router.server.endpoints import Endpoints
from router.upstream.probe import ProbeResult, probe_once, probe_url
from router.upstream.provider import ProviderClient

log = structlog.get_logger("router.ops.reload")


def prices_of(config: Config) -> dict[str, Price | None]:
    return {m.name: m.price for m in config.models}


def plans_of_keys(config: Config) -> dict[str, str]:
    return {k.id: k.plan for k in config.keys}


class Runtime:
    """The app's config-dependent parts, and the probe loops, as one thing a reload swaps."""

    def __init__(
        self,
        config: Config,
        clock: Clock,
        pool: Pool,
        clients: dict[str, ProviderClient],
        forwarder: Forwarder,
        endpoints: Endpoints,
        metering: Metering,
        metrics: Metrics,
        board: StatusBoard,
        state: StateBackend,
        watch: StateWatch,
        probe_factory: Any,
    ) -> None:
        self.config = config
        self.board = board
        self._clock = clock
        self.pool = pool
        self._clients = clients  # shared with the forwarder: updated in place
        self._forwarder = forwarder
        self._endpoints = endpoints
        self._metering = metering
        self._metrics = metrics
        self._state = state
        self._watch = watch
        self._probe_factory = probe_factory
        self._tg: anyio.abc.TaskGroup | None = None
        self._probe_client: httpx.AsyncClient | None = None
        self._probes: dict[str, anyio.CancelScope] = {}
        self._retired: list[ProviderClient] = []
        self._reloading = anyio.Lock()

    def start(self, tg: anyio.abc.TaskGroup, probe_client: httpx.AsyncClient) -> None:
        self._tg, self._probe_client = tg, probe_client
        for p in self.config.providers:
            self._start_probe(p.name)

    def _start_probe(self, name: str) -> None:
        p = self.config.provider(name)
        if self._tg is None or self._probe_client is None or not p.health.enabled or name not in self.pool.providers:
            return
        scope = anyio.CancelScope()
        self._probes[name] = scope
        probe = self._probe_factory(p, self._probe_client)
        health = self.pool.providers[name].health

        async def run() -> None:
            with scope:
                await probe_loop(
                    name,
                    health,
                    probe,
                    p.health.interval_s,
                    p.health.timeout_s,
                    url=mask_urls(probe_url(p)),
                    wall=self._clock.wall,
                )

        self._tg.start_soon(run)

    async def reload(self, path: str | None) -> bool:
        """Re-read `path` and apply it; False (old config kept) when it is invalid. Reloads run
        one at a time, in the order triggered: one that waits on a slow first probe must not
        apply its (by then older) file over a later reload's."""
        async with self._reloading:
            return await self._reload(path)

    async def _reload(self, path: str | None) -> bool:
        if path is None:
            return False
        try:
            new = load_config(path)
        except ConfigError as exc:
            log.error("config_reload_failed", path=path, error=str(exc))
            return False
        old = self.config
        ignored = state_ignored(old.state, new.state)
        if ignored:
            log.warning("config_reload_state_ignored", keys=ignored, note="these need a restart; the old values stay")
        changes = provider_changes(old, new)
        table = RoutingTable(new)
        # New providers, and those changed outside `health:`: their pools first, then one probe
        # each, before any traffic. So too a provider the pool did not hold (in the config, but
        # no model routed to it), which the swap gives a fresh, unknown state.
        fresh = {name: ProviderClient(new.provider(name)) for name in changes.reconnect}
        for c in fresh.values():
            await c.start()
        unpooled = [n for n in dict.fromkeys(r.provider.name for r in table.routes()) if n not in self.pool.providers]
        first = await self._first_probes(new, list(dict.fromkeys([*changes.first_probe, *unpooled])))
        # The swap: synchronous from here on.
        names = {p.name for p in new.providers}
        for name in [n for n in self._clients if n in fresh or n not in names]:
            self._retired.append(self._clients.pop(name))  # closed once nothing can be on them
        self._clients.update(fresh)
        added = self.pool.reconfigure(table)
        now = self._clock.wall()
        for name, result in first.items():
            if name in self.pool.providers:
                url = mask_urls(probe_url(new.provider(name)))
                self.pool.providers[name].health.observe(name, result, now, url, settle=True)
        limits = Limits(new, self._state, self._clock)
        self._forwarder.reconfigure(new.routing)
        self._endpoints.reconfigure(Authenticator(new), limits, new.accounting, new.server.max_body_bytes)
        self._metering.reconfigure(limits, prices_of(new), plans_of_keys(new))
        self._metrics.reconfigure(new, self.pool)
        self._watch.reconfigure(new.state)
        self.board.reconfigure(new, self.pool, limits)
        self.config = new
        for name in list(self._probes):  # a changed provider's loop restarts with its new settings
            if name not in self.pool.providers or name in changes.changed:
                self._probes.pop(name).cancel()
        for name in self.pool.providers:
            if name not in self._probes:
                self._start_probe(name)
        log.warning(
            "config_reloaded",
            path=path,
            providers=len(new.providers),
            models=len(new.models),
            added_providers=added,
            keys=len(new.keys),
        )
        if self._tg is not None and self._retired:
            self._tg.start_soon(self._close_retired, new.server.drain_timeout_s)
        return True

    async def _first_probes(self, config: Config, names: list[str]) -> dict[str, ProbeResult]:
        """One probe of each provider (those with probes enabled), all at once: a reload that
        brings N providers that are down waits one timeout, not N."""
        found: dict[str, ProbeResult] = {}
        client = self._probe_client
        if client is None:
            return found

        async def one(p: ProviderConfig) -> None:
            found[p.name] = await probe_once(self._probe_factory(p, client), p.health.timeout_s)

        async with anyio.create_task_group() as tg:
            for p in (config.provider(n) for n in names):
                if p.health.enabled:
                    tg.start_soon(one, p)
        return found

    async def _close_retired(self, after_s: float) -> None:
        """Pools of removed or replaced providers close once no request can still be on them."""
        await anyio.sleep(after_s)
        retired, self._retired = self._retired, []
        for c in retired:
            await c.aclose()

    async def aclose(self) -> None:
        for c in [*self._clients.values(), *self._retired]:
            await c.aclose()
        await self._state.aclose()


@dataclass(frozen=True, slots=True)
class ProviderChanges:
    """What a reload does to the providers that are in the new config."""

    changed: frozenset[str]  # existing ones whose config changed: their probe loops restart
    reconnect: tuple[str, ...]  # new ones, and those changed outside `health`: a new pool
    first_probe: tuple[str, ...]  # probed (if enabled) before the swap


def provider_changes(old: Config, new: Config) -> ProviderChanges:
    """A change of `health:` alone keeps the pool (which does not use it) and the health state
    (which takes the new thresholds); only probes it turns on get a first probe, since a provider
    whose probes were off has no state to go on."""
    before = {p.name: p for p in old.providers}
    changed = frozenset(p.name for p in new.providers if p.name in before and before[p.name] != p)
    reconnect = tuple(
        p.name for p in new.providers if p.name not in before or replace(before[p.name], health=p.health) != p
    )
    turned_on = tuple(n for n in sorted(changed) if n not in reconnect and not before[n].health.enabled)
    return ProviderChanges(changed, reconnect, reconnect + turned_on)


# What a reload applies under `state:` (the new Limits and the state watch take it); the rest
# configures the store connection and its watch, made once at start.
_STATE_RELOADED = frozenset({"on_unavailable"})


def state_ignored(old: StateConfig, new: StateConfig) -> list[str]:
    """The `state.*` keys a reload changed but cannot apply."""
    return [
        f"state.{f.name}"
        for f in fields(StateConfig)
        if f.name not in _STATE_RELOADED and getattr(old, f.name) != getattr(new, f.name)
    ]
