"""HTTP handlers. For the three API endpoints (raw ASGI apps: they are the hot path):
authenticate, read and check the body, check the plan and admit the request against its limits,
forward it, and turn the answer (or error) into a response in the client's own format, carrying
the key's rate-limit headers. The GET endpoints are ordinary Starlette handlers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from router.billing.accounting import abandoned_usage, output_limit, reserve_usd
from router.billing.auth import Authenticator, Principal
from router.billing.limits import Grant, Limits
from router.billing.metering import Charge, Metering, Settled
from router.config import AccountingConfig
from router.errors import InternalError, NoRouteAvailable, RouterError, UnknownModel
from router.formats import ALL, CHAT, WireFormat
from router.observe import Observer
from router.routing.failover import Forwarder
from router.routing.outcome import FullAnswer, failovers
from router.routing.pool import Pool
from router.server.drain import Drain
from router.server.parse import parse_request
from router.server.responses import (
    SSE_HEADERS,
    ClientGone,
    ClientLeft,
    error_response,
    limit_headers,
    raw_limit_headers,
    read_body,
    send_error,
    send_sse,
    send_whole,
    unless_gone,
)
from router.types import AccessRecord, Usage

log = structlog.get_logger("router.server.endpoints")

__all__ = ["ApiEndpoint", "Endpoints", "error_response"]


class ApiEndpoint:
    """The ASGI app of one API endpoint. A class rather than a method so that Starlette's Route
    mounts it as an ASGI app (it wraps plain functions in its Request/Response machinery), and
    the front dispatcher can call it straight."""

    __slots__ = ("_endpoints", "fmt")

    def __init__(self, endpoints: Endpoints, fmt: WireFormat) -> None:
        self._endpoints = endpoints
        self.fmt = fmt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._endpoints.proxy(scope, receive, send, self.fmt)


class Endpoints:
    def __init__(
        self,
        forwarder: Forwarder,
        pool: Pool,
        auth: Authenticator,
        limits: Limits,
        metering: Metering,
        accounting: AccountingConfig,
        ready: Callable[[], tuple[bool, dict[str, Any]]],
        max_body_bytes: int,
        created: int,
        drain: Drain,
        observer: Observer | None = None,
    ) -> None:
        self._observer = observer or Observer()
        self._drain = drain
        self._forwarder = forwarder
        self._pool = pool
        self._auth = auth
        self._limits = limits
        self._metering = metering
        self._accounting = accounting
        self._ready = ready
        self._max_body = max_body_bytes
        self._created = created
        # API path -> its endpoint, one per wire format
        self.api: dict[str, ApiEndpoint] = {f.path: ApiEndpoint(self, f) for f in ALL}

    def reconfigure(
        self, auth: Authenticator, limits: Limits, accounting: AccountingConfig, max_body_bytes: int
    ) -> None:
        """A config reload: keys, plans and limits take effect for the next request."""
        self._auth, self._limits, self._accounting, self._max_body = auth, limits, accounting, max_body_bytes

    def _principal(self, headers: dict[str, str], record: AccessRecord) -> Principal:
        principal = self._auth.authenticate(headers.get("authorization"), headers.get("x-api-key"))
        record.key_id = principal.key_id
        return principal

    async def proxy(self, scope: Scope, receive: Receive, send: Send, fmt: WireFormat) -> None:
        record: AccessRecord = scope["state"]["access"]
        # From the raw list, once: a Headers object would rescan the list once per key.
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        principal: Principal | None = None
        grant: Grant | None = None
        try:
            principal = self._principal(headers, record)
            raw = await read_body(receive, headers.get("content-length"), self._max_body)
            req = parse_request(fmt, raw, headers, record.request_id)
            record.model, record.stream = req.model, req.stream
            routes = self._pool.table.get(req.model)
            if routes is None:  # the one place an unknown model is refused
                raise UnknownModel(f"model '{req.model}' is not served by this router")
            self._limits.check_model(principal, req.model)
            price = routes.model.price
            cost = 0.0
            limit = output_limit(routes.model, self._accounting.default_max_output_tokens)
            if limit is not None:  # the provider is sent a cap the reservation covers
                req.body, cap = fmt.capped(req.body, limit)
                if price is not None:
                    cost = reserve_usd(cap, len(raw), price)
            grant = await self._limits.admit(principal, req.request_id, cost)
            answer = await unless_gone(scope, receive, self._forwarder.forward(req, routes))
        except RouterError as exc:
            if isinstance(exc, NoRouteAvailable):
                record.attempts = exc.failovers
            await self._error(send, fmt, exc, principal, grant, record)
            return
        except ClientGone as gone:
            # 499, nginx's "client closed request": in the access line and the metrics. A request
            # already sent upstream is billed its input estimate (the provider read the prompt);
            # one whose body never arrived costs nothing.
            if grant is not None:
                usage = abandoned_usage(len(raw)) if isinstance(gone, ClientLeft) else None
                await self._settle(grant, record, 499, usage=usage)
            await send_whole(send, 499, [], b"", None)
            return
        except Exception:
            log.exception("internal_error")
            await self._error(send, fmt, InternalError("internal error; see the router log"), principal, grant, record)
            return
        failed: list[str] = []
        if len(answer.attempts) != 1 or answer.attempts[0].failover is not None:  # the common case: none
            failed = failovers(answer.attempts)
        record.provider, record.attempts = answer.provider, failed
        # How many attempts it took: a client (or the demo) can see failover happen.
        out = [
            (b"x-router-provider", answer.provider.encode("latin-1")),
            (b"x-router-attempts", b"%d" % (len(failed) + 1)),
        ]
        if isinstance(answer, FullAnswer):
            settled = await self._settle(grant, record, answer.status, answer.model, answer.usage)
            out += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.items()]
            raw_limit_headers(settled.remaining_usd, grant.window_end, out)
            await send_whole(send, answer.status, out, answer.body, answer.content_type.encode("latin-1"))
            return
        # A stream's cost is not known when its headers leave: what was left before it.
        out += SSE_HEADERS
        raw_limit_headers(grant.remaining_usd, grant.window_end, out)
        stream = answer

        async def settle() -> object:
            record.stream_end, record.continuations = stream.end, stream.continuations
            record.provider = stream.provider  # a continuation's, when one finished the stream
            return await self._settle(grant, record, 200, stream.model, stream.usage(), len(stream.continued))

        self._drain.register(stream.abort)
        try:
            await send_sse(send, receive, out, stream.body, settle)
        finally:
            self._drain.unregister(stream.abort)

    async def _settle(
        self,
        grant: Grant,
        record: AccessRecord,
        status: int,
        model: str | None = None,
        usage: Usage | None = None,
        continuations: int = 0,
    ) -> Settled:
        """Bill the request (`usage` None: release the reservation) and note its cost on the access line."""
        charge = Charge(
            record.request_id, model or record.model, record.provider, record.stream, status, usage, continuations
        )
        settled = await self._metering.settle(grant, charge)
        record.cost_usd = settled.cost_usd
        return settled

    async def _error(
        self,
        send: Send,
        fmt: WireFormat,
        exc: RouterError,
        principal: Principal | None,
        grant: Grant | None,
        record: AccessRecord,
    ) -> None:
        if exc.status >= 500:
            log.warning("request_failed", code=exc.code, message=exc.message)
        elif exc.status in (402, 429) and principal is not None:
            self._observer.refused(principal.plan.name if principal.plan else None, exc.status)
        headers: dict[str, str] = {}
        if grant is not None:
            settled = await self._settle(grant, record, exc.status)
            headers = limit_headers(settled.remaining_usd, grant.window_end)
        elif principal is not None:
            headers = limit_headers(*await self._limits.status(principal))
        await send_error(send, fmt, exc, headers)

    async def models(self, request: Request) -> Response:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.scope["headers"]}
        record: AccessRecord = request.scope["state"]["access"]
        try:
            principal = self._principal(headers, record)
        except RouterError as exc:
            return error_response(CHAT, exc)
        data = [
            {"id": m.name, "object": "model", "created": self._created, "owned_by": m.owned_by}
            for m in self._pool.table.models()
            if principal.allows(m.name)
        ]
        body = orjson.dumps({"object": "list", "data": data})
        status = limit_headers(*await self._limits.status(principal))
        return Response(body, media_type="application/json", headers=status)

    async def live(self, request: Request) -> Response:
        return Response(b'{"status":"live"}', media_type="application/json")

    async def ready(self, request: Request) -> Response:
        """200 or 503, and why (router/ops/readiness.py, which `ready` comes from)."""
        ready, body = self._ready()
        return Response(
            orjson.dumps(body),
            status_code=200 if ready else 503,
            media_type="application/json",
            headers={"cache-control": "no-store"},
        )
