"""Pure ASGI middleware around every request: the request id (taken from a sane client
`x-request-id` or made), structlog context, and one access log line when the response ends."""

from __future__ import annotations

import os
import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router.types import AccessRecord

log = structlog.get_logger("router.access")

_QUIET_PREFIX = "/health/"  # load balancer probes would drown the access log


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            # Echoed into headers and logs: accept only short printable ids.
            if 0 < len(value) <= 128 and value.isascii() and value.decode().isprintable():
                return str(value.decode())
            break
    return os.urandom(16).hex()  # as unique as a uuid4, at a fraction of the cost


class AccessMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _request_id(scope)
        record = AccessRecord(request_id=rid, method=scope["method"], path=scope["path"])
        scope.setdefault("state", {})["access"] = record
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=rid)
        header = (b"x-request-id", rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if not scope["path"].startswith(_QUIET_PREFIX):
                log.info("request", **record.fields(), total_ms=round((time.perf_counter() - start) * 1000, 1))
