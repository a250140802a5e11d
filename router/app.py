"""Composition root: config -> routing table, pool, provider clients, forwarder, endpoints,
Starlette app. The lifespan owns one task group (the health probes) and the upstream pools."""

from __future__ import annotations

import gc
import os
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import httpx
import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from router.clock import Clock, SystemClock
from router.config import Config, Format, ProviderConfig, load_config
from router.envelopes import error_body
from router.auth import Authenticator
from router.endpoints import Endpoints
from router.ledger import Ledger
from router.limits import Limits
from router.metering import Metering
from router.failover import Forwarder
from router.log import configure
from router.dispatch import RouterApp
from router.middleware import AccessMiddleware
from router.routing.health import Probe, probe_loop
from router.routing.pool import Pool
from router.routing.table import RoutingTable
from router.state import make_backend
from router.state.base import StateBackend
from router.upstream import ProviderClient, probe_headers

ProbeFactory = Callable[[ProviderConfig, httpx.AsyncClient], Probe]


def http_probe(cfg: ProviderConfig, client: httpx.AsyncClient) -> Probe:
    """Healthy when the provider answers its health path below 400 (or 429: rate limited is up)."""
    url = cfg.base_url + cfg.health.path
    headers = probe_headers(cfg)

    async def probe() -> bool:
        try:
            resp = await client.request(cfg.health.method, url, headers=headers, timeout=cfg.health.timeout_s)
        except httpx.HTTPError:
            return False
        return resp.status_code < 400 or resp.status_code == 429

    return probe


class Readiness:
    """Ready once every probed provider has had its first probe and one provider is healthy."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def __call__(self) -> bool:
        states = self._pool.providers.values()
        first_round = all(p.health.probed for p in states if p.probe_enabled)
        return first_round and any(p.health.healthy for p in states)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and methods, in the envelope of the API the path belongs to."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    fmt: Format = "anthropic-messages" if request.url.path.startswith("/v1/messages") else "openai-chat"
    what = "not found" if status == 404 else "method not allowed"
    body = error_body(fmt, status, f"{request.method} {request.url.path}: {what}", what.replace(" ", "_"))
    return Response(body, status, media_type="application/json")


def create_app(
    config: Config,
    *,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    probe_factory: ProbeFactory = http_probe,
    backend: StateBackend | None = None,
) -> Starlette:
    clock = clock or SystemClock()
    if config.server.allow_anonymous:
        # Loud on purpose: an open router spends the operator's provider credit for anyone.
        structlog.get_logger("router.app").warning(
            "anonymous_access_on", keys=len(config.keys), note="requests without a key are served, unlimited"
        )
    table = RoutingTable(config)
    pool = Pool(table, clock, config.routing.ewma_half_life_s)
    clients = {p.name: ProviderClient(p) for p in config.providers}
    forwarder = Forwarder(pool, clients, config.routing, clock, rng)
    state = backend or make_backend(config.state)
    limits = Limits(config, state, clock)
    ledger = Ledger(config.ledger.path if config.ledger.enabled else None)
    metering = Metering(limits, ledger, {m.name: m.price for m in config.models}, clock)
    endpoints = Endpoints(
        forwarder,
        pool,
        Authenticator(config),
        limits,
        metering,
        config.accounting,
        Readiness(pool),
        config.server.max_body_bytes,
        int(time.time()),
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for c in clients.values():
            await c.start()
        async with httpx.AsyncClient() as probe_client, anyio.create_task_group() as tg:
            for p in config.providers:
                if p.health.enabled and p.name in pool.providers:
                    probe = probe_factory(p, probe_client)
                    tg.start_soon(
                        probe_loop, p.name, pool.providers[p.name].health, probe, p.health.interval_s, p.health.timeout_s
                    )
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
                with anyio.CancelScope(shield=True):
                    for c in clients.values():
                        await c.aclose()
                    await state.aclose()
                    ledger.close()

    routes = [
        Route("/v1/chat/completions", endpoints.chat_completions, methods=["POST"]),
        Route("/v1/messages", endpoints.messages, methods=["POST"]),
        Route("/v1/responses", endpoints.responses, methods=["POST"]),
        Route("/v1/models", endpoints.models, methods=["GET"]),
        Route("/health/live", endpoints.live, methods=["GET"]),
        Route("/health/ready", endpoints.ready, methods=["GET"]),
    ]
    hot = {"/v1/chat/completions": endpoints.chat_completions, "/v1/messages": endpoints.messages,
           "/v1/responses": endpoints.responses}  # fmt: skip
    app = RouterApp(
        hot=hot,
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(AccessMiddleware)],
        exception_handlers={404: _http_error, 405: _http_error},
    )
    app.state.pool = pool
    app.state.config = config
    app.state.limits = limits
    return app


def app_from_env() -> Starlette:
    """uvicorn factory for `router serve` (each worker process builds its own app)."""
    config = load_config(os.environ["ROUTER_CONFIG"])
    configure(config.log.level, config.log.format)
    app = create_app(config)
    # Everything built so far (modules, config, the app) lives as long as the process: moved out
    # of the collector's generations, full collections stop re-walking it (they measured tens of
    # ms each under load, a tail-latency spike).
    gc.freeze()
    return app
