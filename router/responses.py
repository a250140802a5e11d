"""Starlette response helpers for the endpoints: the SSE response that always releases its
upstream, error responses in the client's envelope, the rate-limit headers, and the capped body
read."""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator
from typing import cast

import anyio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Send

from router.config import Format
from router.envelopes import error_body
from router.errors import BadRequest, BodyTooLarge, BudgetExceeded, NoRouteAvailable, RateLimited, RouterError

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


class SSEResponse(StreamingResponse):
    """A StreamingResponse that always closes its body iterator, so the upstream connection is
    released (and the stream billed) at once when the client disconnects, not when the
    generator is garbage-collected."""

    media_type = "text/event-stream"

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            with anyio.CancelScope(shield=True):
                await cast(AsyncGenerator[bytes, None], self.body_iterator).aclose()


def limit_headers(remaining_usd: float | None, reset_at: float | None) -> dict[str, str]:
    """x-ratelimit-remaining (USD left in the window) and x-ratelimit-reset (unix time it ends)."""
    out: dict[str, str] = {}
    if remaining_usd is not None:
        out["x-ratelimit-remaining"] = f"{max(0.0, remaining_usd):.6f}"
    if reset_at is not None:
        out["x-ratelimit-reset"] = str(math.ceil(reset_at))
    return out


def error_response(fmt: Format, exc: RouterError, headers: dict[str, str] | None = None) -> Response:
    out = dict(headers or {})
    retry_after = None
    if isinstance(exc, (NoRouteAvailable, BudgetExceeded, RateLimited)):
        retry_after = exc.retry_after
    if retry_after is not None:
        out["retry-after"] = str(max(1, math.ceil(retry_after)))
    param = exc.param if isinstance(exc, BadRequest) else None
    body = error_body(fmt, exc.status, exc.message, exc.code, param)
    return Response(body, status_code=exc.status, media_type="application/json", headers=out)


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
