"""HTTP handlers. For the three API endpoints: authenticate, read and check the body, check the
plan and admit the request against its limits, forward it, and turn the answer (or error) into
a response in the client's own format, carrying the key's rate-limit headers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import structlog
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from router.accounting import reserve_usd
from router.auth import Authenticator, Principal
from router.config import AccountingConfig, Format
from router.errors import InternalError, RouterError, UnknownModel
from router.failover import Forwarder
from router.limits import Grant, Limits
from router.metering import Metering
from router.parse import parse_request
from router.responses import SSE_HEADERS, SSEResponse, error_response, limit_headers, read_body
from router.routing.pool import Pool
from router.types import AccessRecord, FullAnswer

log = structlog.get_logger("router.endpoints")


class Endpoints:
    def __init__(
        self,
        forwarder: Forwarder,
        pool: Pool,
        auth: Authenticator,
        limits: Limits,
        metering: Metering,
        accounting: AccountingConfig,
        ready: Callable[[], bool],
        max_body_bytes: int,
        created: int,
    ) -> None:
        self._forwarder = forwarder
        self._pool = pool
        self._auth = auth
        self._limits = limits
        self._metering = metering
        self._accounting = accounting
        self._ready = ready
        self._max_body = max_body_bytes
        self._created = created

    async def chat_completions(self, request: Request) -> Response:
        return await self._proxy(request, "openai-chat")

    async def messages(self, request: Request) -> Response:
        return await self._proxy(request, "anthropic-messages")

    async def responses(self, request: Request) -> Response:
        return await self._proxy(request, "openai-responses")

    def _principal(self, headers: dict[str, str], record: AccessRecord) -> Principal:
        principal = self._auth.authenticate(headers.get("authorization"), headers.get("x-api-key"))
        record.key_id = principal.key_id
        return principal

    async def _proxy(self, request: Request, fmt: Format) -> Response:
        record: AccessRecord = request.scope["state"]["access"]
        # From the raw list: dict(request.headers) would rescan the list once per key.
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.scope["headers"]}
        principal: Principal | None = None
        grant: Grant | None = None
        try:
            principal = self._principal(headers, record)
            raw = await read_body(request, self._max_body)
            req = parse_request(fmt, raw, headers, record.request_id)
            record.model, record.stream = req.model, req.stream
            routes = self._pool.table.get(req.model)
            if routes is None:
                raise UnknownModel(f"model '{req.model}' is not served by this router")
            self._limits.check_model(principal, req.model)
            price = routes.model.price
            cost = reserve_usd(fmt, req.body, len(raw), price, self._accounting.default_max_output_tokens) if price else 0.0
            grant = await self._limits.admit(principal, req.request_id, cost)
            answer = await self._forwarder.forward(req, record)
        except RouterError as exc:
            return await self._error(fmt, exc, principal, grant, record)
        except ClientDisconnect:
            if grant is not None:
                await self._metering.nothing(grant, 499, record)
            return Response(status_code=499)
        except Exception:
            log.exception("internal_error")
            return await self._error(fmt, InternalError("internal error; see the router log"), principal, grant, record)
        # How many attempts it took: a client (or the demo) can see failover happen.
        routed = {"x-router-provider": answer.provider, "x-router-attempts": str(len(record.attempts) + 1)}
        if isinstance(answer, FullAnswer):
            remaining = await self._metering.whole(grant, answer, record)
            out = {**routed, **answer.headers, **limit_headers(remaining, grant.window_end)}
            return Response(answer.body, answer.status, headers=out, media_type=answer.content_type)
        # A stream's cost is not known when its headers leave: what was left before it.
        out = {**routed, **SSE_HEADERS, **limit_headers(grant.remaining_usd, grant.window_end)}
        return SSEResponse(self._metering.stream(grant, answer, record), headers=out)

    async def _error(
        self, fmt: Format, exc: RouterError, principal: Principal | None, grant: Grant | None, record: AccessRecord
    ) -> Response:
        if exc.status >= 500:
            log.warning("request_failed", code=exc.code, message=exc.message)
        headers: dict[str, str] = {}
        if grant is not None:
            remaining = await self._metering.nothing(grant, exc.status, record)
            headers = limit_headers(remaining, grant.window_end)
        elif principal is not None:
            headers = limit_headers(*await self._limits.status(principal))
        return error_response(fmt, exc, headers)

    async def models(self, request: Request) -> Response:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.scope["headers"]}
        record: AccessRecord = request.scope["state"]["access"]
        try:
            principal = self._principal(headers, record)
        except RouterError as exc:
            return error_response("openai-chat", exc)
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
        ready = self._ready()
        body: dict[str, Any] = {"status": "ready" if ready else "not_ready", **self._pool.snapshot()}
        return Response(orjson.dumps(body), status_code=200 if ready else 503, media_type="application/json")
