"""The router's HTTP/1.1 server protocol: uvicorn's httptools protocol with limits on clients.

uvicorn alone lets a client hold a connection, and its file descriptor, for ever: headers sent a
byte at a time, a Content-Length never fully sent, or (after uvicorn has answered early) a body
trickling in are never timed out, and any number of connections are accepted. A few hundred such
clients exhaust a worker. Here (limits from `server:`, see ServerConfig; phases in conn_clock.py):

- headers not complete within `header_timeout_s` -> 408, closed;
- a body silent for `body_timeout_s` -> 408 (or just closed once an answer has begun);
- idle between requests for `keepalive_timeout_s` -> closed, no answer;
- request line and headers over `max_header_bytes` -> 431, closed (counted as bytes arrive, so
  one endless header is refused too, not buffered);
- a parse error (e.g. a body longer than its Content-Length, read as a broken next request) ->
  400 in the envelope, closed;
- more than `max_connections` open in this worker -> a new one is answered 503 (Retry-After: 1)
  and closed at once, before reading anything.

Answers are in the error envelope of the path when the request line has been read (Anthropic's
on /v1/messages), else OpenAI's; always `Connection: close`. A request the app was handling
when its connection is closed sees a disconnect (the endpoint logs it as 499).

Cost per request: a few attribute writes and one timer per connection, rescheduled only when a
deadline comes earlier (a body's moving deadline is a float store per read; the timer, when it
fires early, reschedules itself to the new deadline).

`ServingConfig` carries the limits through uvicorn (pickled to each of `--workers N`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from router.config import ServerConfig
from router.formats import for_path
from router.ops.conn_clock import INF, STATS, Expiry, Phase, ReadClock
from router.server.responses import CLOSED_KEY

_REASON = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}
_REASON[503] = b"Service Unavailable"


class _HeadersTooLarge(Exception):
    """Raised from a parser callback to stop parsing (httptools re-raises it wrapped)."""


class ServingConfig(uvicorn.Config):
    """uvicorn's Config, serving with `RouterHttpProtocol` under `server`'s limits. A class of
    its own so that the limits travel with the rest when uvicorn pickles it to its workers."""

    def __init__(self, app: Any, server: ServerConfig, **kwargs: Any) -> None:
        # No WebSocket endpoints: an Upgrade is served as a plain request, never handed over.
        super().__init__(app, http=RouterHttpProtocol, ws="none", **kwargs)
        self.client_limits = server


class RouterHttpProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limits = config.client_limits if isinstance(config, ServingConfig) else ServerConfig()
        self._limits = limits
        self._body_s = limits.body_timeout_s
        self._max_head = limits.max_header_bytes
        self._clock: ReadClock | None = None  # None: refused at the connection cap
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = INF
        self._head_raw = 0  # bytes read while a request's head is incomplete (a lower bound)
        self._head_exact = 0  # the request line and complete headers
        self._too_large = False
        self.url = b""
        # Done when the client's connection is gone; each request's scope carries it (CLOSED_KEY)
        # so the app hears a disconnect by a callback, not a task blocked on `receive` per request.
        self._closed: asyncio.Future[None] = self.loop.create_future()

    # --- the connection ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self._limits.max_connections:
            self.transport = transport  # connection_lost closes it
            STATS.closed["refused"] += 1
            message = "the router is at its connection limit; retry shortly"
            transport.write(self._answer(503, message, "too_many_connections", b"retry-after: 1\r\n"))
            transport.close()
            return
        super().connection_made(transport)
        STATS.open += 1
        limits = self._limits
        self._clock = ReadClock(
            limits.header_timeout_s, limits.body_timeout_s, limits.keepalive_timeout_s, self.loop.time()
        )
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._clock is not None:
            STATS.open -= 1
            self._clock = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)
        if not self._closed.done():
            self._closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        clock = self._clock
        if clock is None:
            return
        if clock.phase is Phase.BODY:
            clock.progress(self.loop.time())
        else:
            self._head_raw += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._no_more_requests()  # the parser stops at an Upgrade; we do not upgrade
        except httptools.HttpParserError:
            if self._too_large:
                self._header_too_large()
            else:
                STATS.closed["malformed"] += 1
                self._close(400, "malformed HTTP request", "invalid_request")
            return
        if clock.phase is Phase.HEAD and self._head_raw > self._max_head:
            self._header_too_large()  # a head still incomplete, already too long

    # --- the parser's callbacks (called within feed_data) -------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_exact = 0
        assert self._clock is not None
        self._clock.begin(self.loop.time(), self._owed())
        self._arm()

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._head_exact += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # uvicorn's own, plus the count (its headers list has no size).
        self._head_exact += len(name) + len(value) + 4
        name = name.lower()
        value = value.rstrip(b" \t")
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self._head_exact > self._max_head:
            self._too_large = True
            raise _HeadersTooLarge
        super().on_headers_complete()
        self.scope["extensions"] = {CLOSED_KEY: self._closed}  # type: ignore[dict-item]  # an extension of ours
        assert self._clock is not None
        self._clock.headers_done(self.loop.time())
        self._arm()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_raw = 0
        assert self._clock is not None
        self._clock.message_done(self.loop.time(), self._owed())
        self._arm()

    def on_response_complete(self) -> None:
        # uvicorn's own, with our idle deadline in place of its keep-alive timer.
        self.server_state.total_requests += 1
        if self.transport.is_closing() or self._clock is None:
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._clock.answered(self.loop.time())
        self._arm()

    # --- the timer ----------------------------------------------------------------------------

    def _arm(self) -> None:
        """Make the timer fire no later than the deadline (later moves are caught when it fires)."""
        assert self._clock is not None
        deadline = self._clock.deadline
        if deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.loop.call_at(deadline, self._on_timer)
            self._timer_at = deadline

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, INF
        clock = self._clock
        if clock is None or self.transport.is_closing():
            return
        why = clock.expired(self.loop.time(), self.flow.read_paused)
        if why is None:
            self._arm()
            return
        STATS.closed[why.value] += 1
        if why is Expiry.IDLE:
            self._close(None, "", "")
        elif why is Expiry.HEADER:
            limit = self._limits.header_timeout_s
            self._close(408, f"the request headers did not arrive within {limit:g} s", "request_timeout")
        else:
            self._close(408, f"the request body stalled: nothing for {self._body_s:g} s", "request_timeout")

    # --- answers ------------------------------------------------------------------------------

    def _owed(self) -> bool:
        """A response is still to finish on this connection."""
        cycle = self.cycle
        return bool(self.pipeline) or (cycle is not None and not cycle.response_complete)

    def _header_too_large(self) -> None:
        STATS.closed["header_too_large"] += 1
        message = f"the request line and headers exceed {self._max_head} bytes"
        self._close(431, message, "request_header_fields_too_large")

    def _no_more_requests(self) -> None:
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.keep_alive = False  # closed once answered
        else:
            self.transport.close()

    def _close(self, status: int | None, message: str, code: str) -> None:
        """Close the connection; first answer `status` if nothing of an answer has been sent.
        The request in the app's hands, if any, sees a disconnect."""
        if self.transport.is_closing():
            return
        cycle = self.cycle
        started = cycle is not None and cycle.response_started and not cycle.response_complete
        if status is not None and not started and not self.pipeline:
            self.transport.write(self._answer(status, message, code))
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()

    def _answer(self, status: int, message: str, code: str, extra: bytes = b"") -> bytes:
        path = self.url.split(b"?", 1)[0].decode("latin-1")
        body = for_path(path).error_body(status, message, code)
        head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASON[status])]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head.append(b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body))
        head.append(b"connection: close\r\n" + extra + b"\r\n")
        return b"".join(head) + body
