"""HTTP handlers: read and check the body, hand it to the forwarder, and turn its answer (or
error) into a response in the client's own format."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any, cast

import anyio
import orjson
import structlog
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Send

from router.config import Format
from router.envelopes import error_body
from router.errors import BadRequest, BodyTooLarge, InternalError, NoRouteAvailable, RouterError
from router.failover import Forwarder
from router.parse import parse_request
from router.routing.pool import Pool
from router.types import AccessRecord, FullAnswer

log = structlog.get_logger("router.endpoints")

_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


class SSEResponse(StreamingResponse):
    """A StreamingResponse that always closes its body iterator, so the upstream connection is
    released at once when the client disconnects, not when the generator is collected."""

    media_type = "text/event-stream"

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            with anyio.CancelScope(shield=True):
                await cast(AsyncGenerator[bytes, None], self.body_iterator).aclose()


def error_response(fmt: Format, exc: RouterError) -> Response:
    headers: dict[str, str] = {}
    if isinstance(exc, NoRouteAvailable) and exc.retry_after is not None:
        headers["retry-after"] = str(max(1, round(exc.retry_after)))
    param = exc.param if isinstance(exc, BadRequest) else None
    body = error_body(fmt, exc.status, exc.message, exc.code, param)
    return Response(body, status_code=exc.status, media_type="application/json", headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes `limit` (never buffered beyond it)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"the request body is {declared} bytes; the limit is {limit}")
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the request body exceeds the limit of {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


class Endpoints:
    def __init__(
        self,
        forwarder: Forwarder,
        pool: Pool,
        ready: Callable[[], bool],
        max_body_bytes: int,
        created: int,
    ) -> None:
        self._forwarder = forwarder
        self._pool = pool
        self._ready = ready
        self._max_body = max_body_bytes
        self._created = created

    async def chat_completions(self, request: Request) -> Response:
        return await self._proxy(request, "openai-chat")

    async def messages(self, request: Request) -> Response:
        return await self._proxy(request, "anthropic-messages")

    async def responses(self, request: Request) -> Response:
        return await self._proxy(request, "openai-responses")

    async def _proxy(self, request: Request, fmt: Format) -> Response:
        record: AccessRecord = request.scope["state"]["access"]
        try:
            raw = await read_body(request, self._max_body)
            # From the raw list: dict(request.headers) would rescan the list once per key.
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.scope["headers"]}
            req = parse_request(fmt, raw, headers, record.request_id)
            record.model, record.stream = req.model, req.stream
            answer = await self._forwarder.forward(req, record)
        except RouterError as exc:
            if exc.status >= 500:
                log.warning("request_failed", code=exc.code, message=exc.message)
            return error_response(fmt, exc)
        except ClientDisconnect:
            return Response(status_code=499)
        except Exception:
            log.exception("internal_error")
            return error_response(fmt, InternalError("internal error; see the router log"))
        # How many attempts it took: a client (or the demo) can see failover happen.
        routed = {"x-router-provider": answer.provider, "x-router-attempts": str(len(record.attempts) + 1)}
        if isinstance(answer, FullAnswer):
            headers = {**routed, **answer.headers}
            return Response(answer.body, answer.status, headers=headers, media_type=answer.content_type)
        headers = {**routed, **_SSE_HEADERS}
        return SSEResponse(answer.body, headers=headers)

    async def models(self, request: Request) -> Response:
        data = [
            {"id": m.name, "object": "model", "created": self._created, "owned_by": m.owned_by}
            for m in self._pool.table.models()
        ]
        return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")

    async def live(self, request: Request) -> Response:
        return Response(b'{"status":"live"}', media_type="application/json")

    async def ready(self, request: Request) -> Response:
        ready = self._ready()
        body: dict[str, Any] = {"status": "ready" if ready else "not_ready", **self._pool.snapshot()}
        return Response(orjson.dumps(body), status_code=200 if ready else 503, media_type="application/json")
