"""The fake provider as a Starlette app: three generation endpoints (raw ASGI, so faults can act
between the headers and the body), a models probe, and /_admin endpoints to steer faults live."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from router.fake_upstream.faults import FaultError, Faults
from router.fake_upstream.formats import FORMATS, GARBAGE_EVENT, Answer, WireFormat, openai_error_body, split_text

_SHUTDOWN = "shutdown"
_DISCONNECT = "disconnect"


class _ResetConnection(Exception):
    """Raised after the headers were sent: uvicorn then closes the socket mid-body, which the
    client sees as an incomplete chunked read (not a clean end of the stream)."""


class _ServerClosing(_ResetConnection):
    """The server is stopping while a request hangs: drop its connection instead of waiting."""


class _QuietReset(logging.Filter):
    """Keep uvicorn from logging a traceback for the connection resets we cause on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _ResetConnection))


def install_log_filter() -> None:
    """Idempotent; must run after uvicorn configured its loggers."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietReset) for f in logger.filters):
        logger.addFilter(_QuietReset())


class _State:
    """Live faults, counters and the requests currently waiting (so a stop can wake them)."""

    def __init__(self, name: str, faults: Faults, seed: int | None) -> None:
        self.name = name
        self.faults = faults
        self.seed = seed
        self.rng = random.Random(seed)
        self.waiting: set[_Conn] = set()
        self.in_flight = 0
        self.reset_stats()

    def reset_stats(self) -> None:
        self.requests: dict[str, int] = {}
        self.completed = 0
        self.cancelled = 0
        self.aborted = 0
        self.last_request: tuple[Scope, Any] | None = None
        self.rng = random.Random(self.seed)

    def new_id(self) -> str:
        return format(self.rng.getrandbits(96), "024x")

    def shutdown(self) -> None:
        """Called on the server's loop when stopping: every hanging request gives up."""
        for conn in list(self.waiting):
            conn.interrupt()

    def stats(self) -> dict[str, Any]:
        last = None
        if self.last_request is not None:
            # decoded only when asked, to keep the request path lean
            scope, body = self.last_request
            last = {
                "method": scope["method"],
                "path": scope["path"],
                "query": scope["query_string"].decode("latin-1"),
                "headers": {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
                "body": body,
            }
        return {
            "requests": dict(self.requests),
            "completed": self.completed,
            "cancelled": self.cancelled,
            "aborted": self.aborted,
            "in_flight": self.in_flight,
            "last_request": last,
        }


class _Conn:
    """One request's receive side: reads the body, then notices a client disconnect while we wait."""

    __slots__ = ("_receive", "_state", "_gone", "_watcher")

    def __init__(self, receive: Receive, state: _State) -> None:
        self._receive = receive
        self._state = state
        self._gone: asyncio.Future[str] | None = None
        self._watcher: asyncio.Task[None] | None = None

    async def read_body(self) -> bytes | None:
        """The whole request body, or None if the client went away first."""
        parts = []
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                return None
            parts.append(message.get("body", b""))
            if not message.get("more_body", False):
                return parts[0] if len(parts) == 1 else b"".join(parts)

    async def wait(self, seconds: float | None) -> bool:
        """Sleep `seconds` (None = forever). True if the client disconnected first; raises
        _ServerClosing if the server is stopping. The watcher task exists only once we wait."""
        gone = self._gone
        if gone is None:
            loop = asyncio.get_running_loop()
            gone = self._gone = loop.create_future()
            self._watcher = loop.create_task(self._watch(gone))
            self._state.waiting.add(self)
        if not gone.done():
            await asyncio.wait((gone,), timeout=seconds)
        if not gone.done():
            return False
        if gone.result() == _SHUTDOWN:
            raise _ServerClosing
        return True

    async def _watch(self, gone: asyncio.Future[str]) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        if not gone.done():
            gone.set_result(_DISCONNECT)

    def interrupt(self) -> None:
        if self._gone is not None and not self._gone.done():
            self._gone.set_result(_SHUTDOWN)

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            self._state.waiting.discard(self)


def _header_number(value: float) -> bytes:
    return (str(int(value)) if value == int(value) else repr(value)).encode()


class _Endpoint:
    """A generation endpoint as a raw ASGI app (Starlette routes non-function endpoints as ASGI)."""

    def __init__(self, state: _State, path: str, fmt: WireFormat) -> None:
        self._state = state
        self._path = path
        self._fmt = fmt
        self._text = f"Hello from {state.name}."
        provider = (b"x-fake-provider", state.name.encode())
        self._json_headers = [(b"content-type", b"application/json"), provider]
        self._sse_headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"), provider]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        st = self._state
        st.requests[self._path] = st.requests.get(self._path, 0) + 1
        st.in_flight += 1
        conn = _Conn(receive, st)
        try:
            finished = await self._answer(scope, conn, send)
        except _ServerClosing:
            st.cancelled += 1
            raise
        except _ResetConnection:
            st.aborted += 1
            raise
        except asyncio.CancelledError:
            st.cancelled += 1
            raise
        finally:
            st.in_flight -= 1
            conn.close()
        if finished:
            st.completed += 1
        else:
            st.cancelled += 1

    async def _answer(self, scope: Scope, conn: _Conn, send: Send) -> bool:
        """Answer one request. True if the response was sent to its end, False if the client left."""
        st = self._state
        raw = await conn.read_body()
        if raw is None:
            return False
        rid = st.new_id()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            st.last_request = (scope, None)
            await self._send_error(send, 400, "request body is not valid JSON", rid)
            return True
        st.last_request = (scope, body)
        if not isinstance(body, dict):
            await self._send_error(send, 400, "request body must be a JSON object", rid)
            return True
        model = body.get("model")
        if not isinstance(model, str) or not model:
            await self._send_error(send, 400, "model: a non-empty string is required", rid)
            return True

        f = st.faults.take()
        if f.hang:
            return not await conn.wait(None)
        if f.latency_ms and await conn.wait(f.latency_ms / 1000):
            return False
        status = f.status
        if status is None and f.fail_rate and st.rng.random() < f.fail_rate:
            status = f.fail_status
        if status is not None:
            # faults.text, when set, becomes the error message: tests imitate real upstream errors
            # (a context-window 400, say) with it.
            message = f.text if f.text is not None else f"{st.name}: injected HTTP {status}"
            await self._send_error(send, status, message, rid, f.retry_after)
            return True

        text = self._text if f.text is None else f.text
        stream_options = body.get("stream_options")
        answer = Answer(
            model=model,
            text=text,
            pieces=split_text(text, f.chunks),
            prompt_tokens=max(1, len(raw) // 4),
            completion_tokens=max(1, (len(text) + 3) // 4),
            rid=rid,
            created=int(time.time()),
            include_usage=isinstance(stream_options, dict) and stream_options.get("include_usage") is True,
            no_done=f.no_done,
        )
        if body.get("stream") is True:
            return await self._stream(conn, send, f, answer)
        payload = self._fmt.complete(answer)
        await self._start(send, 200, self._json_headers, rid, len(payload))
        if f.hang_after_headers:
            return not await conn.wait(None)
        await send({"type": "http.response.body", "body": payload})
        return True

    async def _stream(self, conn: _Conn, send: Send, f: Faults, answer: Answer) -> bool:
        await self._start(send, 200, self._sse_headers, answer.rid)
        if f.hang_after_headers:
            return not await conn.wait(None)
        if f.error_first:
            event = self._fmt.error_event(f"{self._state.name}: injected stream error")
            await send({"type": "http.response.body", "body": event})
            return True
        head, deltas, tail = self._fmt.stream(answer)
        await send({"type": "http.response.body", "body": head, "more_body": True})

        # the earliest of the "after N deltas" faults wins; N >= chunks means "before the final events"
        total = len(deltas)
        cut, kind = total + 1, ""
        for n, name in (
            (f.reset_after_chunks, "reset"),
            (f.stall_after_chunks, "stall"),
            (f.truncate_after_chunks, "truncate"),
        ):
            if n is not None and min(n, total) < cut:
                cut, kind = min(n, total), name
        delay = f.chunk_delay_ms / 1000
        sent = 0
        while True:
            if sent == cut:
                if kind == "reset":
                    raise _ResetConnection
                if kind == "stall":
                    return not await conn.wait(None)
                await send({"type": "http.response.body", "body": b""})
                return True
            if delay and await conn.wait(delay):
                return False
            if sent == total:
                break
            await send({"type": "http.response.body", "body": deltas[sent], "more_body": True})
            sent += 1
            if sent == 1 and f.garbage_event:
                await send({"type": "http.response.body", "body": GARBAGE_EVENT, "more_body": True})
        await send({"type": "http.response.body", "body": tail})
        return True

    async def _start(
        self, send: Send, status: int, base: list[tuple[bytes, bytes]], rid: str, length: int | None = None
    ) -> None:
        headers = [*base, (self._fmt.request_id_header, b"req_" + rid.encode())]
        if length is not None:
            headers.append((b"content-length", str(length).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})

    async def _send_error(
        self, send: Send, status: int, message: str, rid: str, retry_after: float | None = None
    ) -> None:
        payload = self._fmt.error_body(status, message, rid)
        base = self._json_headers
        if retry_after is not None:
            base = [*base, (b"retry-after", _header_number(retry_after))]
        await self._start(send, status, base, rid, len(payload))
        await send({"type": "http.response.body", "body": payload})


def _json(data: Any, state: _State, status: int = 200) -> Response:
    return Response(
        orjson.dumps(data),
        status_code=status,
        media_type="application/json",
        headers={"x-fake-provider": state.name},
    )


def build_app(name: str, faults: Faults, seed: int | None = None) -> Starlette:
    """The fake provider `name`, steered by the live `faults` object (also via POST /_admin/faults).
    `seed` makes fail_rate draws and response ids reproducible."""
    state = _State(name, faults, seed)
    models = {
        "object": "list",
        "data": [{"id": f"{name}-model", "object": "model", "created": 0, "owned_by": name}],
    }

    async def list_models(request: Request) -> Response:
        state.requests["/v1/models"] = state.requests.get("/v1/models", 0) + 1
        status = state.faults.health_status
        if status >= 400:
            body = openai_error_body(status, f"{name}: injected health status {status}")
            return Response(body, status, media_type="application/json", headers={"x-fake-provider": name})
        return _json(models, state, status)

    async def get_faults(request: Request) -> Response:
        if request.method == "POST":
            try:
                data = orjson.loads(await request.body())
                if not isinstance(data, dict):
                    raise FaultError("expected a JSON object")
                state.faults.update(data)
            except (orjson.JSONDecodeError, FaultError) as exc:
                return _json({"error": str(exc)}, state, 400)
        return _json(state.faults.to_dict(), state)

    async def reset(request: Request) -> Response:
        state.faults.reset()
        state.reset_stats()
        return _json(state.faults.to_dict(), state)

    async def stats(request: Request) -> Response:
        return _json(state.stats(), state)

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        reason = "method not allowed" if status == 405 else "not found"
        return _json({"error": {"message": f"{request.method} {request.url.path}: {reason}"}}, state, status)

    routes = [Route(path, _Endpoint(state, path, fmt), methods=["POST"]) for path, fmt in FORMATS.items()]
    routes += [
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/_admin/faults", get_faults, methods=["GET", "POST"]),
        Route("/_admin/reset", reset, methods=["POST"]),
        Route("/_admin/stats", stats, methods=["GET"]),
    ]
    install_log_filter()
    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
    app.state.fake = state
    return app
