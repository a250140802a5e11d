"""Responses of the API endpoints as raw ASGI messages: the capped body read, whole and SSE
responses, error envelopes and the rate-limit headers. The three POST endpoints are the hot
path, so this works on header lists and message dicts directly, without Starlette's
Request/Response objects (their header parsing and copying measured as a tenth of the router's
CPU per request); `error_response` is the Starlette form for the GET endpoints."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import anyio
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from router.errors import BadRequest, BodyTooLarge, BudgetExceeded, NoRouteAvailable, RateLimited, RouterError
from router.formats import WireFormat

RawHeaders = list[tuple[bytes, bytes]]

SSE_HEADERS: RawHeaders = [(b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
# As Starlette's StreamingResponse sends it: a charset is added to text/* types.
_SSE_TYPE = (b"content-type", b"text/event-stream; charset=utf-8")
_JSON = b"application/json"


T = TypeVar("T")
# The scope extension the router's HTTP protocol (router/ops/protocol.py) sets on every request:
# an asyncio future done when the client's connection is gone.
CLOSED_KEY = "router.closed"


class ClientGone(Exception):
    """The client disconnected before its request body had arrived."""


def limit_headers(remaining_usd: float | None, reset_at: float | None) -> dict[str, str]:
    """x-ratelimit-remaining (USD left in the window) and x-ratelimit-reset (unix time it ends)."""
    out: dict[str, str] = {}
    if remaining_usd is not None:
        out["x-ratelimit-remaining"] = f"{max(0.0, remaining_usd):.6f}"
    if reset_at is not None:
        out["x-ratelimit-reset"] = str(math.ceil(reset_at))
    return out


def raw_limit_headers(remaining_usd: float | None, reset_at: float | None, out: RawHeaders) -> RawHeaders:
    """`limit_headers`, appended to `out` as raw header pairs."""
    if remaining_usd is not None:
        out.append((b"x-ratelimit-remaining", b"%.6f" % max(0.0, remaining_usd)))
    if reset_at is not None:
        out.append((b"x-ratelimit-reset", b"%d" % math.ceil(reset_at)))
    return out


def _error_parts(fmt: WireFormat, exc: RouterError, headers: dict[str, str] | None) -> tuple[bytes, dict[str, str]]:
    out = dict(headers or {})
    retry_after = None
    if isinstance(exc, (NoRouteAvailable, BudgetExceeded, RateLimited)):
        retry_after = exc.retry_after
    if retry_after is not None:
        out["retry-after"] = str(max(1, math.ceil(retry_after)))
    param = exc.param if isinstance(exc, BadRequest) else None
    return fmt.error_body(exc.status, exc.message, exc.code, param), out


def error_response(fmt: WireFormat, exc: RouterError, headers: dict[str, str] | None = None) -> Response:
    body, out = _error_parts(fmt, exc, headers)
    return Response(body, status_code=exc.status, media_type="application/json", headers=out)


async def send_error(send: Send, fmt: WireFormat, exc: RouterError, headers: dict[str, str] | None = None) -> None:
    """`error_response`, sent as raw messages (same headers, same order)."""
    body, out = _error_parts(fmt, exc, headers)
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in out.items()]
    await send_whole(send, exc.status, raw, body, _JSON)


async def send_whole(send: Send, status: int, headers: RawHeaders, body: bytes, content_type: bytes | None) -> None:
    """One whole response: `headers`, then content-length and content-type as Starlette's
    Response adds them (no length on 1xx/204/304, a charset on text/* types)."""
    if not (status < 200 or status in (204, 304)):
        headers.append((b"content-length", b"%d" % len(body)))
    if content_type is not None:
        if content_type.startswith(b"text/") and b"charset=" not in content_type.lower():
            content_type += b"; charset=utf-8"
        headers.append((b"content-type", content_type))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes `limit` (never buffered beyond it).
    Raises ClientGone if the client disconnects first."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"the request body is {declared} bytes; the limit is {limit}")
    message = await receive()
    if message["type"] != "http.request":
        raise ClientGone
    first: bytes = message.get("body", b"")
    if len(first) > limit:
        raise BodyTooLarge(f"the request body exceeds the limit of {limit} bytes")
    if not message.get("more_body", False):
        return first  # the common case: the whole body in one message, no copy
    buf = bytearray(first)
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientGone
        chunk = message.get("body", b"")
        if len(buf) + len(chunk) > limit:  # checked before the copy: never more than `limit` held
            raise BodyTooLarge(f"the request body exceeds the limit of {limit} bytes")
        buf += chunk
        if not message.get("more_body", False):
            return bytes(buf)


async def send_sse(
    send: Send,
    receive: Receive,
    headers: RawHeaders,
    body: AsyncIterator[bytes],
    settle: Callable[[], Awaitable[object]],
) -> None:
    """A 200 event stream from `body` (`headers` plus its content-type), cancelled at once when
    the client disconnects (as Starlette's StreamingResponse does under ASGI 2.3, which sends
    nothing to tell us). Whatever happens, `body` is closed, so the upstream connection is
    released, and then `settle` bills the stream; both shielded, so a client that left is billed
    for what it was sent. A stream that ends normally is billed before its last message, as
    before, so its ledger line exists once the client has seen the end."""
    headers.append(_SSE_TYPE)
    finished = False

    async def finish() -> None:
        nonlocal finished
        if not finished:
            finished = True
            with anyio.CancelScope(shield=True):
                await body.aclose()  # type: ignore[attr-defined]
                await settle()

    async def stream() -> None:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        async for chunk in body:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await finish()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    # The stream in a task of its own (each chunk resumes a short chain of frames), a watcher
    # that cancels it when the client leaves, and this task waiting for it: two bare tasks, not
    # an anyio task group, whose machinery measured ~40 us per stream.
    loop = asyncio.get_running_loop()
    task = loop.create_task(stream())
    watcher = loop.create_task(_disconnected(receive))
    watcher.add_done_callback(lambda _: task.cancel())
    try:
        await task
    except asyncio.CancelledError:
        # The stream was cancelled by the watcher (the client left: that ends it) or with this
        # task (cancelled from outside, which goes on up).
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
    finally:
        watcher.cancel()
        if not task.done():  # this task was cancelled: the stream goes with it
            task.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.wait([task])
        await finish()
        if not watcher.cancelled() and watcher.done() and watcher.exception() is not None:
            raise watcher.exception()  # type: ignore[misc]


class ClientLeft(ClientGone):
    """The client disconnected while its request was being forwarded, before any byte of the
    answer: the upstream request was cancelled."""


async def unless_gone(scope: Scope, receive: Receive, work: Awaitable[T]) -> T:
    """`work`'s result; or, as soon as the client disconnects, `work` cancelled (an upstream
    request in flight is dropped, so the provider stops writing an answer nobody reads) and
    ClientLeft. The body must have been read."""
    closed = scope.get("extensions", {}).get(CLOSED_KEY)
    if closed is None:
        return await _unless_gone_by_receive(receive, work)
    task = asyncio.current_task()
    assert task is not None
    state = {"waiting": True, "fired": False}

    def on_closed(_: object) -> None:
        # Runs from the loop, possibly after `work` returned: only a request still waiting is
        # cancelled.
        if state["waiting"]:
            state["fired"] = True
            task.cancel()

    closed.add_done_callback(on_closed)
    try:
        return await work
    except asyncio.CancelledError:
        if state["fired"] and task.uncancel() == 0:  # ours, and no one else's on top
            raise ClientLeft from None
        raise
    finally:
        state["waiting"] = False
        closed.remove_done_callback(on_closed)


async def _unless_gone_by_receive(receive: Receive, work: Awaitable[T]) -> T:
    """unless_gone for a server without the router's protocol (no CLOSED_KEY in the scope): a
    task listens on `receive` for the disconnect."""
    with anyio.CancelScope() as scope:

        async def watch() -> None:
            await _disconnected(receive)
            scope.cancel()

        watcher = asyncio.get_running_loop().create_task(watch())
        try:
            return await work
        finally:
            watcher.cancel()
    raise ClientLeft  # the scope was cancelled: only a disconnect does that


async def _disconnected(receive: Receive) -> None:
    message: Message = await receive()
    while message["type"] != "http.disconnect":
        message = await receive()
