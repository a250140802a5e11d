"""The status page's data, `GET /status.json`, and the page itself, `GET /status`.

The JSON is built when asked for, from the routing pool's snapshot (the /health/ready body) plus
three things the pool does not keep:
- each route's share of recent traffic: the last RECENT_REQUESTS requests served, counted only
  within the last SHARE_WINDOW_S, fed by `note_served` (a deque append per request);
- the recent failovers, newest first, fed by `note_failover`;
- per plan, the spend of its keys' current budget windows, read through `Limits.status` (the
  state backend) and cached for SPEND_TTL_S, so several open pages cost one read per key.

The data is admin-only: with `server.admin_token` set, /status.json wants it as a Bearer token.
The page is a static document with no data in it; it reads the token from its URL fragment
(`/status#token=...`, which browsers never send to the server, so it stays out of access logs)
or from a form, and sends it with each fetch.

With several workers, each answers from its own pool, traffic and failovers (the spend is
shared when the state backend is Redis). The metrics aggregate across workers; this page shows
whichever worker answered, and says which (`pid`).
"""

from __future__ import annotations

import os
from collections import Counter, deque
from typing import Any

import anyio
import orjson

from router.billing.auth import Principal
from router.billing.limits import Limits
from router.clock import Clock
from router.config import Config
from router.observe import Attempt, Observer
from router.ops.admin_auth import CHALLENGE, BearerGuard
from router.ops.status_page import PAGE, PAGE_HEADERS
from router.routing.pool import Pool

RECENT_REQUESTS = 1000  # the share of traffic is over at most this many requests...
SHARE_WINDOW_S = 60.0  # ...served within this long
RECENT_FAILOVERS = 50
SPEND_TTL_S = 2.0  # the page polls every 2 s; more viewers must not mean more state-store reads
SPEND_TIMEOUT_S = 2.0  # a slow state store leaves spend unknown rather than hang the page
SPEND_CONCURRENCY = 16

_JSON_HEADERS = {"content-type": "application/json", "cache-control": "no-store"}
_UNAUTHORIZED = b'{"error":"unauthorized: send the admin token as a Bearer token"}'


class StatusBoard(Observer):
    """Feeds: `attempt` (the `Observer` interface; hot path, O(1)). Endpoints: `render_json`,
    `render_page`. Config reload: `reconfigure` (the recent traffic and failovers are kept)."""

    def __init__(
        self,
        pool: Pool,
        limits: Limits,
        config: Config,
        clock: Clock,
        *,
        recent_requests: int = RECENT_REQUESTS,
        window_s: float = SHARE_WINDOW_S,
        recent_failovers: int = RECENT_FAILOVERS,
    ) -> None:
        self._clock = clock
        self._window_s = window_s
        self._served: deque[tuple[float, str]] = deque(maxlen=recent_requests)
        self._failovers: deque[tuple[float, str, str, str]] = deque(maxlen=recent_failovers)
        self.reconfigure(config, pool, limits)

    def reconfigure(self, config: Config, pool: Pool, limits: Limits) -> None:
        self.pool = pool
        self._limits = limits
        self._guard = BearerGuard(config.server.admin_token)
        self._plans = config.plans
        # Only keys of plans with a budget have a window to read; models are irrelevant here.
        self._keys = [
            (k.id, k.plan, Principal(k.id, config.plan(k.plan), frozenset()))
            for k in config.keys
            if config.plan(k.plan).budget is not None
        ]
        self._key_counts = Counter(k.plan for k in config.keys)
        self._spend: tuple[float, dict[str, tuple[float | None, float | None]]] | None = None

    # --- feeds (hot path) -------------------------------------------------------------------------

    def attempt(self, attempt: Attempt) -> None:
        if attempt.failover is not None:
            self.note_failover(attempt.model, attempt.route, attempt.failover)
        if attempt.served:
            self._served.append((self._clock.monotonic(), attempt.route))  # note_served, inline

    def continuation(self, model: str, reason: str, outcome: str) -> None:
        # Shown with the failovers: a broken stream and what became of it.
        self._failovers.append((self._clock.wall(), model, "(stream)", f"continued after {reason}: {outcome}"))

    def note_served(self, route_key: str) -> None:
        """A request was answered by `route_key` (provider/upstream model)."""
        self._served.append((self._clock.monotonic(), route_key))

    def note_failover(self, model: str, route_key: str, reason: str) -> None:
        """An attempt of `model` on `route_key` failed for `reason` and the router moved on."""
        self._failovers.append((self._clock.wall(), model, route_key, reason))

    # --- endpoints --------------------------------------------------------------------------------

    async def render_json(self, authorization: str | None) -> tuple[int, dict[str, str], bytes]:
        """The /status.json response: (status, headers, body). 401 without the admin token."""
        if not self._guard.allows(authorization):
            return 401, {**_JSON_HEADERS, **CHALLENGE}, _UNAUTHORIZED
        return 200, dict(_JSON_HEADERS), orjson.dumps(await self.snapshot())

    @staticmethod
    def render_page() -> tuple[int, dict[str, str], bytes]:
        """The /status page: static, so never guarded (its data is)."""
        return 200, dict(PAGE_HEADERS), PAGE

    async def snapshot(self) -> dict[str, Any]:
        pool = self.pool
        snap = pool.snapshot()
        counts, total = self._recent()
        models_of: dict[str, list[str]] = {}
        for m in pool.table.models():
            mr = pool.table.get(m.name)
            for tier in mr.tiers if mr is not None else ():
                for r in tier:
                    models_of.setdefault(r.key, []).append(m.name)
        providers, routes = [], []
        for name, p in snap["providers"].items():
            served = 0
            for key, r in p["routes"].items():
                rs = pool.routes[key]
                served += counts.get(key, 0)
                routes.append(
                    {
                        "key": key,
                        "provider": name,
                        "upstream_model": rs.route.upstream_model,
                        "models": models_of.get(key, []),
                        "available": rs.available(),
                        **r,
                        "served": counts.get(key, 0),
                        "share": _share(counts.get(key, 0), total),
                    }
                )
            providers.append(
                {
                    "name": name,
                    "state": p["state"],  # healthy | unhealthy | unknown, and why (the last probe)
                    "reason": p["reason"],
                    "since": p["since"],
                    "assumed": p["assumed"],
                    "last_probe": p["last_probe"],
                    "healthy": p["healthy"],
                    "probed": p["probed"],
                    "breaker": p["breaker"],
                    "inflight": p["inflight"],
                    "served": served,
                    "share": _share(served, total),
                    "routes": list(p["routes"]),
                }
            )
        plans, keys = await self._spend_by_plan()
        return {
            "generated_at": round(self._clock.wall(), 3),
            "pid": os.getpid(),
            "traffic": {"window_s": self._window_s, "max_requests": self._served.maxlen, "requests": total},
            "providers": providers,
            "routes": routes,
            "models": snap["models"],
            "models_unavailable": snap["models_unavailable"],
            "failovers": [
                {"ts": round(ts, 3), "model": model, "route": route, "reason": reason}
                for ts, model, route, reason in reversed(self._failovers)
            ],
            "plans": plans,
            "keys": keys,
        }

    # --- parts ------------------------------------------------------------------------------------

    def _recent(self) -> tuple[Counter[str], int]:
        """Requests per route among the recent ones still inside the window, and their total."""
        cutoff = self._clock.monotonic() - self._window_s
        counts = Counter(key for t, key in self._served if t >= cutoff)
        return counts, sum(counts.values())

    async def _spend_by_plan(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        status = await self._key_status()
        keys: list[dict[str, Any]] = []
        for key_id, plan_name, principal in self._keys:
            budget = principal.plan.budget if principal.plan else None
            assert budget is not None  # only budgeted keys are listed
            remaining, window_end = status.get(key_id, (None, None))
            spent = None if remaining is None else round(max(0.0, budget.usd - remaining), 6)
            keys.append(
                {
                    "id": key_id,
                    "plan": plan_name,
                    "spent_usd": spent,
                    "remaining_usd": None if remaining is None else round(remaining, 6),
                    "window_end": None if window_end is None else round(window_end, 3),
                }
            )
        plans: list[dict[str, Any]] = []
        for plan in self._plans:
            mine = [k for k in keys if k["plan"] == plan.name]
            known = [k["spent_usd"] for k in mine if k["spent_usd"] is not None]
            plans.append(
                {
                    "name": plan.name,
                    "keys": self._key_counts.get(plan.name, 0),
                    "budget_usd": plan.budget.usd if plan.budget else None,  # per key and window
                    "window_s": plan.budget.window_s if plan.budget else None,
                    "spent_usd": round(sum(known), 6) if plan.budget else None,  # spent + reserved, all keys
                    "unknown_keys": len(mine) - len(known),  # the state store did not answer for these
                }
            )
        return plans, keys

    async def _key_status(self) -> dict[str, tuple[float | None, float | None]]:
        """(remaining USD, window end) per budgeted key, at most SPEND_TTL_S old."""
        now = self._clock.monotonic()
        if self._spend is not None and now - self._spend[0] < SPEND_TTL_S:
            return self._spend[1]
        found: dict[str, tuple[float | None, float | None]] = {}
        limiter = anyio.CapacityLimiter(SPEND_CONCURRENCY)

        async def one(key_id: str, principal: Principal) -> None:
            async with limiter:
                found[key_id] = await self._limits.status(principal)

        # Structured: the reads live and die within this request, bounded in time.
        with anyio.move_on_after(SPEND_TIMEOUT_S):
            async with anyio.create_task_group() as tg:
                for key_id, _, principal in self._keys:
                    tg.start_soon(one, key_id, principal)
        self._spend = (now, found)
        return found


def _share(n: int, total: int) -> float:
    return round(n / total, 4) if total else 0.0
