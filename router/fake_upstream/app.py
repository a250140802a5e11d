"""The fake provider as a Starlette app: three generation endpoints (raw ASGI, so faults can act
between the headers and the body), a models probe, and /_admin endpoints to steer faults live and
to read back what the fake received."""

from __future__ import annotations

import asyncio
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

from router.fake_upstream.answers import Answer, plan
from router.fake_upstream.conn import Conn, ResetConnection, ServerClosing, install_log_filter
from router.fake_upstream.faults import FaultError, Faults
from router.fake_upstream.formats import GARBAGE_EVENT, WireFormat, openai_error_body
from router.fake_upstream.formats_anthropic import MessagesFormat
from router.fake_upstream.formats_chat import ChatFormat
from router.fake_upstream.formats_responses import ResponsesFormat

FORMATS: dict[str, WireFormat] = {
    "/v1/chat/completions": ChatFormat(),
    "/v1/messages": MessagesFormat(),
    "/v1/responses": ResponsesFormat(),
}

# What a model that refuses a prefill answers, with a 400 (some real models do).
PREFILL_REFUSED = (
    "This model does not support assistant message prefill; the conversation must end with a user message."
)


class _State:
    """Live faults, counters and the requests currently waiting (so a stop can wake them)."""

    def __init__(self, name: str, faults: Faults, seed: int | None) -> None:
        self.name = name
        self.faults = faults
        self.seed = seed
        self.rng = random.Random(seed)
        self.waiting: set[Conn] = set()
        self.in_flight = 0
        self.reset_stats()

    def reset_stats(self) -> None:
        self.requests: dict[str, int] = {}
        self.completed = 0
        self.cancelled = 0
        self.aborted = 0
        # raw bodies, decoded only when asked, to keep the request path lean
        self.last_request: tuple[Scope, bytes] | None = None
        self.last_bodies: dict[str, bytes] = {}  # per generation endpoint
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
            scope, raw = self.last_request
            last = {
                "method": scope["method"],
                "path": scope["path"],
                "query": scope["query_string"].decode("latin-1"),
                "headers": {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
                "body": _decode(raw),
            }
        return {
            "requests": dict(self.requests),
            "completed": self.completed,
            "cancelled": self.cancelled,
            "aborted": self.aborted,
            "in_flight": self.in_flight,
            "last_request": last,
        }


def _decode(raw: bytes) -> Any:
    """A recorded body as JSON; None if it was not JSON."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


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
        conn = Conn(receive, st.waiting)
        try:
            finished = await self._answer(scope, conn, send)
        except ServerClosing:
            st.cancelled += 1
            raise
        except ResetConnection:
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

    async def _answer(self, scope: Scope, conn: Conn, send: Send) -> bool:
        """Answer one request. True if the response was sent to its end, False if the client left."""
        st = self._state
        raw = await conn.read_body()
        if raw is None:
            return False
        rid = st.new_id()
        st.last_request = (scope, raw)
        st.last_bodies[self._path] = raw
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            await self._send_error(send, 400, "request body is not valid JSON", rid)
            return True
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

        prompt = self._fmt.prompt(body)
        if prompt.prefill is not None:
            problem = PREFILL_REFUSED if f.refuse_prefill else self._fmt.prefill_problem(prompt.prefill)
            if problem is not None:
                await self._send_error(send, 400, problem, rid)
                return True
        answer = plan(
            prompt,
            default_text=self._text,
            text=f.text,
            chunks=f.chunks,
            cached_tokens=f.cached_tokens,
            model=model,
            rid=rid,
            created=int(time.time()),
            prompt_tokens=max(1, len(raw) // 4),
            no_done=f.no_done,
            output_tokens=f.output_tokens,
        )
        if body.get("stream") is True:
            return await self._stream(conn, send, f, answer)
        payload = self._fmt.complete(answer)
        await self._start(send, 200, self._json_headers, rid, len(payload))
        if f.hang_after_headers:
            return not await conn.wait(None)
        await send({"type": "http.response.body", "body": payload})
        return True

    async def _stream(self, conn: Conn, send: Send, f: Faults, answer: Answer) -> bool:
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
            (f.error_after_chunks, "error"),
        ):
            if n is not None and min(n, total) < cut:
                cut, kind = min(n, total), name
        delay = f.chunk_delay_ms / 1000
        sent = 0
        while True:
            if sent == cut:
                if kind == "reset":
                    raise ResetConnection
                if kind == "stall":
                    return not await conn.wait(None)
                if kind == "error":  # the format's in-band error event, then the end
                    event = self._fmt.error_event(f"{self._state.name}: injected stream error")
                    await send({"type": "http.response.body", "body": event})
                    return True
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

    async def last(request: Request) -> Response:
        """The last body each generation endpoint received (JSON; null if it was not JSON), by
        path; with ?path=/v1/messages, that endpoint's body alone (404 if it received none)."""
        path = request.query_params.get("path")
        if path is None:
            return _json({p: _decode(raw) for p, raw in state.last_bodies.items()}, state)
        raw = state.last_bodies.get(path)
        if raw is None:
            return _json({"error": f"no request received on {path}"}, state, 404)
        return _json(_decode(raw), state)

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
        Route("/_admin/last", last, methods=["GET"]),
    ]
    install_log_filter()
    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
    app.state.fake = state
    return app
