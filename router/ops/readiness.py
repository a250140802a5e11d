"""What `GET /health/ready` answers, and why (docs/health.md has the operator's view).

Ready (200) when every one of these holds, else 503 with each failing one in `reasons`:
- not `draining` (SIGTERM: the load balancer stops sending at once);
- the `first_probe_round` is over: every probed provider has had its first probe (at start, all
  at once; each bounded by its timeout, so a provider that does not answer ends it as failed),
  and the state store has had its first PING when it is required;
- the state store answers, when it is required (Redis with `on_unavailable: fail_closed`: every
  request needs it): else `state_unavailable`, with the store's error;
- at least one provider is healthy (`no_healthy_provider`). Providers with probes disabled count
  as healthy by assumption. Unknown ones do not count, though routing still sends them traffic.
A model whose routes are all unavailable does not make the replica unready (another model may
be served): it is listed in `models_unavailable` (and `router_model_available` is 0).

The state store is PINGed from the lifespan every `state.ping_interval_s` (`StateWatch.run`),
not per readiness request: a load balancer's polls cost Redis nothing, and the answer is at most
one interval old. Readiness reads the last outcome.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio

from router.billing.state.base import StateBackend, StateUnavailable
from router.clock import Clock
from router.config import StateConfig
from router.log import mask_urls
from router.routing.health import Health
from router.routing.pool import Pool
from router.server.drain import Drain

# Reasons, in the order they are listed.
DRAINING = "draining"
FIRST_ROUND = "first_probe_round"
STATE_UNAVAILABLE = "state_unavailable"
NO_HEALTHY = "no_healthy_provider"


@dataclass(frozen=True, slots=True)
class StateCheck:
    """The outcome of one PING of the state store."""

    ok: bool
    error: str | None  # the store's error, credentials removed
    at: float  # wall clock


def decide(
    states: Mapping[str, Health],
    first_round_over: bool,
    draining: bool,
    state: StateCheck | None,
    state_required: bool,
) -> list[str]:
    """The reasons the replica is not ready (none: ready). `states`: each provider's state, with
    probes disabled already counted healthy; `state`: the last PING (None: none yet)."""
    reasons = []
    if draining:
        reasons.append(DRAINING)
    if not first_round_over or (state_required and state is None):
        reasons.append(FIRST_ROUND)
    if state_required and state is not None and not state.ok:
        reasons.append(STATE_UNAVAILABLE)
    if "healthy" not in states.values():
        reasons.append(NO_HEALTHY)
    return reasons


def redact(text: str, url: str | None) -> str:
    """`text` without the store URL's password, nor any URL's user info or query."""
    password = urlsplit(url).password if url else None
    if password:
        text = text.replace(password, "***")
    return mask_urls(text)


class StateWatch:
    """The state store's reachability, PINGed from the lifespan. Only Redis is watched (memory is
    this process); it is `required` when every request needs it (fail_closed)."""

    def __init__(self, backend: StateBackend, config: StateConfig, clock: Clock) -> None:
        self._backend = backend
        self._config = config
        self._clock = clock
        self.watched = config.backend == "redis"
        self.required = self.watched and config.on_unavailable == "fail_closed"
        self.last: StateCheck | None = None

    def reconfigure(self, config: StateConfig) -> None:
        """A config reload: whether the store is required follows `on_unavailable`, as the new
        Limits do. The store and the PING schedule stay those of the start (a restart's)."""
        self.required = self.watched and config.on_unavailable == "fail_closed"

    async def check(self) -> StateCheck:
        """One PING, bounded by the store's timeout (and recorded as `last`)."""
        error: str | None = "no answer within the state timeout"
        with anyio.move_on_after(self._config.timeout_s * 2):
            try:
                await self._backend.ping()
                error = None
            except StateUnavailable as exc:
                error = redact(exc.message, self._config.url)
            except Exception as exc:  # a surprised backend is an unreachable one, not a dead lifespan
                error = redact(f"{type(exc).__name__}: {exc}", self._config.url)
        self.last = StateCheck(error is None, error, self._clock.wall())
        return self.last

    async def run(self) -> None:
        """Lifespan task: PING at once, then every `ping_interval_s`; never returns when watched."""
        if not self.watched:
            return
        while True:
            await self.check()
            await anyio.sleep(self._config.ping_interval_s)

    def describe(self) -> dict[str, Any]:
        last = self.last
        return {
            "backend": self._config.backend,
            "required": self.required,
            "ok": None if last is None else last.ok,
            "error": None if last is None else last.error,
            "checked_at": None if last is None else round(last.at, 3),
        }


class Readiness:
    """The /health/ready answer, (ready, body), from the pool, the drain and the state watch."""

    def __init__(self, pool: Pool, drain: Drain | None = None, state: StateWatch | None = None) -> None:
        self._pool = pool
        self._drain = drain
        self._state = state

    def __call__(self) -> tuple[bool, dict[str, Any]]:
        snap = self._pool.snapshot()
        providers = self._pool.providers.values()
        first_round_over = all(p.health.probed for p in providers if p.probe_enabled)
        watch = self._state
        reasons = decide(
            {p.name: p.state for p in providers},
            first_round_over,
            self._drain is not None and self._drain.draining,
            watch.last if watch is not None else None,
            watch is not None and watch.required,
        )
        body: dict[str, Any] = {
            "status": "not_ready" if reasons else "ready",
            "reasons": reasons,
            "providers": snap["providers"],
            "models": snap["models"],
            "models_unavailable": snap["models_unavailable"],
        }
        if watch is not None and watch.watched:
            body["state"] = watch.describe()
        return not reasons, body
