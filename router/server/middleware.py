"""Pure ASGI middleware around every request: the request id (taken from a sane client
`x-request-id` or made), structlog context, and one access log line when the response ends."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router.formats import for_path
from router.observe import Observer
from router.types import QUIET_PREFIX, AccessRecord, echo

log = structlog.get_logger("router.access")


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            # Echoed into headers and logs: accept only short printable ids.
            if 0 < len(value) <= 128 and value.isascii() and value.decode().isprintable():
                return str(value.decode())
            break
    return os.urandom(16).hex()  # as unique as a uuid4, at a fraction of the cost


class AccessMiddleware:
    def __init__(self, app: ASGIApp, observer: Observer | None = None) -> None:
        self.app = app
        self._observer = observer or Observer()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _request_id(scope)
        record = AccessRecord(request_id=rid, method=scope["method"], path=echo(scope["path"]))
        scope.setdefault("state", {})["access"] = record
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=rid)
        header = (b"x-request-id", rid.encode())

        first_byte: list[float] = []

        # A plain function handing back send's own awaitable, not a coroutine of its own: every
        # message of a stream passes here, and a frame less per chunk is measurable.
        def send_with_id(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                record.status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
                first_byte.append(time.perf_counter())
            return send(message)

        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # A bug: the client gets a 500 in its endpoint's envelope (with the request id so
            # it can be found in the log), never a traceback; the log gets the traceback.
            log.exception("unhandled_error")
            if record.status:
                raise  # the response has started; only the server can end it now
            body = for_path(scope["path"]).error_body(500, "internal error; see the router log", "internal_error")
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send_with_id({"type": "http.response.start", "status": 500, "headers": headers})
            await send_with_id({"type": "http.response.body", "body": body})
        finally:
            if not scope["path"].startswith(QUIET_PREFIX):
                total = time.perf_counter() - start
                # The client's time to first byte, from the request's start (failed attempts,
                # waits and the router's own work included), as the metrics' histogram has it.
                ttfb = first_byte[0] - start if first_byte else None
                record.ttfb_ms = None if ttfb is None else ttfb * 1000
                log.info("request", **record.fields(), total_ms=round(total * 1000, 1))
                self._observer.request(scope["path"], record.model, record.provider, record.status, total, ttfb)
