"""Composition root: config -> routing table, pool, provider clients, forwarder, endpoints,
Starlette app. The lifespan owns one task group (the health probes, the state store's PING) and
the upstream pools."""

from __future__ import annotations

import gc
import os
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
import httpx
import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from router.billing.auth import Authenticator
from router.billing.ledger import Ledger
from router.billing.limits import Limits
from router.billing.metering import Metering
from router.billing.state import make_backend
from router.billing.state.base import StateBackend
from router.clock import Clock, SystemClock
from router.config import Config, ProviderConfig, load_config
from router.formats import for_path
from router.log import configure
from router.observe import Observers
from router.ops.metrics import Metrics
from router.ops.readiness import Readiness, StateWatch
from router.ops.reload import register as register_reload
from router.ops.reload import watch as watch_config
from router.ops.runtime import Runtime, plans_of_keys, prices_of
from router.ops.serve import install_signal_handlers
from router.ops.startup import announce_serving
from router.ops.status import StatusBoard
from router.ops.tracing_env import from_env as tracing_from_env
from router.routing.failover import Forwarder
from router.routing.pool import Pool
from router.routing.table import RoutingTable
from router.server.dispatch import RouterApp
from router.server.drain import PROCESS_DRAIN, Drain
from router.server.endpoints import Endpoints
from router.server.middleware import AccessMiddleware
from router.types import echo
from router.upstream.probe import Probe, http_probe
from router.upstream.provider import ProviderClient

if TYPE_CHECKING:  # imported only when tracing is on (router/ops/tracing_env.py)
    from router.ops.tracing import Tracing

ProbeFactory = Callable[[ProviderConfig, httpx.AsyncClient], Probe]


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and methods, in the envelope of the API the path belongs to."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    what = "not found" if status == 404 else "method not allowed"
    message = f"{request.method} {echo(request.url.path)}: {what}"
    body = for_path(request.url.path).error_body(status, message, what.replace(" ", "_"))
    allow = exc.headers if isinstance(exc, HTTPException) and status == 405 else None  # Starlette's Allow
    return Response(body, status, headers=allow, media_type="application/json")


def create_app(
    config: Config,
    *,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    probe_factory: ProbeFactory = http_probe,
    backend: StateBackend | None = None,
    drain: Drain | None = None,
    config_path: str | None = None,
    handle_signals: bool = False,
    on_started: Callable[[], None] | None = None,
    tracing: Tracing | None = None,
) -> Starlette:
    """`config_path`: the file a reload re-reads; `handle_signals`: SIGTERM drains and SIGHUP
    reloads (`router serve`; never in tests that run servers in threads); `on_started`: called
    when the lifespan has started everything (`router serve`'s `serving` line); `tracing`: spans
    for requests and attempts (None: off, and the path pays nothing for it)."""
    clock = clock or SystemClock()
    if config.server.allow_anonymous:
        # Loud on purpose: an open router spends the operator's provider credit for anyone.
        structlog.get_logger("router.app").warning(
            "anonymous_access_on", keys=len(config.keys), note="requests without a key are served, unlimited"
        )
    drain = drain or Drain()
    table = RoutingTable(config)
    rng = rng or random.Random()  # one source for the choice (P2C) and the breakers' jitter
    pool = Pool(table, clock, config.routing.ewma_half_life_s, rng)
    clients = {p.name: ProviderClient(p) for p in config.providers}
    state = backend or make_backend(config.state)
    state_watch = StateWatch(state, config.state, clock)
    limits = Limits(config, state, clock)
    metrics = Metrics.from_config(config, pool)
    board = StatusBoard(pool, limits, config, clock)
    # What the request path reports, they record.
    observer = Observers([metrics, board] if tracing is None else [metrics, board, tracing])
    forwarder = Forwarder(pool, clients, config.routing, clock, rng, observer=observer)
    ledger = Ledger(config.ledger.path if config.ledger.enabled else None)
    metering = Metering(limits, ledger, prices_of(config), clock, observer, plans_of_keys(config))
    endpoints = Endpoints(
        forwarder,
        pool,
        Authenticator(config),
        limits,
        metering,
        config.accounting,
        Readiness(pool, drain, state_watch),
        config.server.max_body_bytes,
        int(time.time()),
        drain,
        observer,
    )
    live = Runtime(
        config, clock, pool, clients, forwarder, endpoints, metering, metrics, board, state, state_watch, probe_factory
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for c in clients.values():
            await c.start()
        restore_signals = (
            install_signal_handlers(drain, config.server.drain_grace_s, config.server.drain_timeout_s)
            if handle_signals
            else (lambda: None)
        )
        unregister = register_reload(lambda: live.reload(config_path)) if config_path else (lambda: None)
        async with httpx.AsyncClient() as probe_client, anyio.create_task_group() as tg:
            live.start(tg, probe_client)
            tg.start_soon(metrics.run_publisher)
            tg.start_soon(state_watch.run)
            if config_path and config.server.watch_config:
                tg.start_soon(watch_config, config_path, lambda: live.reload(config_path))
            if on_started is not None:
                on_started()
            try:
                yield
            finally:
                unregister()
                restore_signals()
                tg.cancel_scope.cancel()
                with anyio.CancelScope(shield=True):
                    await live.aclose()
                    ledger.close()
                    metrics.close()
                    if tracing is not None:
                        await tracing.aclose()

    async def metrics_endpoint(request: Request) -> Response:
        status, headers, body = metrics.render(request.headers.get("authorization"), request.headers.get("accept"))
        return Response(body, status, headers=headers)

    async def status_json(request: Request) -> Response:
        status, headers, body = await live.board.render_json(request.headers.get("authorization"))
        return Response(body, status, headers=headers)

    async def status_page(request: Request) -> Response:
        status, headers, body = live.board.render_page()
        return Response(body, status, headers=headers)

    routes = [
        *(Route(path, endpoint, methods=["POST"]) for path, endpoint in endpoints.api.items()),
        Route("/v1/models", endpoints.models, methods=["GET"]),
        Route("/health/live", endpoints.live, methods=["GET"]),
        Route("/health/ready", endpoints.ready, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/status", status_page, methods=["GET"]),
        Route("/status.json", status_json, methods=["GET"]),
    ]
    middleware = [Middleware(AccessMiddleware, observer=observer)]
    if tracing is not None:  # inside the access middleware: the access record exists, the log line names the trace
        middleware.append(Middleware(tracing.wrap, routes=frozenset(r.path for r in routes)))
    app = RouterApp(
        hot=endpoints.api,
        routes=routes,
        lifespan=lifespan,
        middleware=middleware,
        exception_handlers={404: _http_error, 405: _http_error},
    )
    app.state.runtime = live  # the live config and pool, for tools and tests
    # Starlette would answer `/v1/models/` with a redirect whose Location is built from the
    # client's Host header: behind a gateway, an open redirect. A 404 in the envelope instead.
    app.router.redirect_slashes = False
    return app


def app_from_env() -> Starlette:
    """uvicorn factory for `router serve` (each worker process builds its own app)."""
    path = os.environ["ROUTER_CONFIG"]
    config = load_config(path)
    configure(config.log.level, config.log.format)
    tracing = tracing_from_env(os.environ)
    app = create_app(
        config,
        drain=PROCESS_DRAIN,
        config_path=path,
        handle_signals=True,
        on_started=announce_serving,
        tracing=tracing,
    )
    # Everything built so far (modules, config, the app) lives as long as the process: moved out
    # of the collector's generations, full collections stop re-walking it (they measured tens of
    # ms each under load, a tail-latency spike).
    gc.freeze()
    return app
