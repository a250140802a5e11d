"""Tests for router.server.middleware.AccessMiddleware: the request id, the structlog context, and one
access log line per request (none for /health/*). Small inline apps, plus the real app in-process."""

from __future__ import annotations

import re
from collections.abc import Iterable, MutableMapping
from typing import Any

import anyio
import httpx
import pytest
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send
from structlog.testing import capture_logs

from router.app import create_app
from router.server.middleware import AccessMiddleware
from router.types import AccessRecord

HEX32 = re.compile(r"[0-9a-f]{32}")


async def _echo(request: Request) -> Response:
    """Reports what the handler saw: the bound structlog context and the access record."""
    record: AccessRecord = request.scope["state"]["access"]
    record.model = "m-from-handler"
    return JSONResponse({"context": structlog.contextvars.get_contextvars(), "rid": record.request_id})


async def _slow(request: Request) -> Response:
    """Answers after 50 ms: as a request that waited on a failed attempt before its answer."""
    record: AccessRecord = request.scope["state"]["access"]
    record.model = "m"
    await anyio.sleep(0.05)
    return JSONResponse({})


async def _boom(request: Request) -> Response:
    raise RuntimeError("handler bug")


def _inline_app() -> AccessMiddleware:
    app = Starlette(
        routes=[Route("/v1/echo", _echo), Route("/v1/slow", _slow), Route("/health/live", _echo), Route("/boom", _boom)]
    )
    return AccessMiddleware(app)


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://router")


def _access(logs: Iterable[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == "request"]


@pytest.mark.anyio
async def test_sane_request_id_is_echoed_bound_and_logged() -> None:
    """A short printable x-request-id is kept: response header, bound context and access line."""
    with capture_logs() as logs:
        async with _client(_inline_app()) as client:
            r = await client.get("/v1/echo", headers={"x-request-id": "client-id-1"})
    assert r.headers["x-request-id"] == "client-id-1"
    assert r.json() == {"context": {"request_id": "client-id-1"}, "rid": "client-id-1"}
    [line] = _access(logs)
    assert line["request_id"] == "client-id-1" and line["status"] == 200
    assert line["method"] == "GET" and line["path"] == "/v1/echo" and line["model"] == "m-from-handler"
    assert isinstance(line["total_ms"], float) and line["log_level"] == "info"


@pytest.mark.anyio
async def test_missing_request_id_is_made() -> None:
    """Without x-request-id the router makes a fresh 32-hex id per request."""
    async with _client(_inline_app()) as client:
        a = await client.get("/v1/echo")
        b = await client.get("/v1/echo")
    ids = [a.headers["x-request-id"], b.headers["x-request-id"]]
    assert all(HEX32.fullmatch(i) for i in ids) and ids[0] != ids[1]
    assert a.json()["rid"] == ids[0]


@pytest.mark.anyio
async def test_request_id_length_limit() -> None:
    """128 characters are accepted; 129 are replaced."""
    async with _client(_inline_app()) as client:
        ok = await client.get("/v1/echo", headers={"x-request-id": "a" * 128})
        long = await client.get("/v1/echo", headers={"x-request-id": "a" * 129})
    assert ok.headers["x-request-id"] == "a" * 128
    assert HEX32.fullmatch(long.headers["x-request-id"])


async def _call(
    app: Any, headers: list[tuple[bytes, bytes]], path: str = "/v1/echo"
) -> tuple[list[Message], dict[str, Any]]:
    """One raw ASGI request (headers exactly as given); returns sent messages and the scope."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("router", 80),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent, scope


def _rid(sent: list[Message]) -> str:
    start = next(m for m in sent if m["type"] == "http.response.start")
    values: list[str] = [v.decode() for k, v in start["headers"] if k == b"x-request-id"]
    assert len(values) == 1
    return values[0]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "value",
    [b"", b"bad\x01id", b"tab\tid", b"new\nline", b"caf\xc3\xa9", b"\xff\xfe", b"del\x7f"],
)
async def test_unsafe_request_id_is_replaced(value: bytes) -> None:
    """Empty, control-character or non-ASCII ids are never echoed; a fresh one replaces them."""
    sent, scope = await _call(_inline_app(), [(b"x-request-id", value)])
    rid = _rid(sent)
    assert HEX32.fullmatch(rid)
    assert scope["state"]["access"].request_id == rid


@pytest.mark.anyio
async def test_only_the_first_request_id_header_counts() -> None:
    """With two x-request-id headers, a bad first one is replaced, not skipped for the second."""
    sent, _ = await _call(_inline_app(), [(b"x-request-id", b"bad\x00"), (b"x-request-id", b"good")])
    assert HEX32.fullmatch(_rid(sent))
    sent, _ = await _call(_inline_app(), [(b"x-request-id", b"first"), (b"x-request-id", b"second")])
    assert _rid(sent) == "first"


@pytest.mark.anyio
async def test_context_from_an_earlier_request_does_not_leak() -> None:
    """Context bound before the request is cleared: the handler sees only its request_id."""
    structlog.contextvars.bind_contextvars(stale="yes", request_id="old")
    try:
        async with _client(_inline_app()) as client:
            r = await client.get("/v1/echo", headers={"x-request-id": "new"})
    finally:
        structlog.contextvars.clear_contextvars()
    assert r.json()["context"] == {"request_id": "new"}


@pytest.mark.anyio
async def test_health_paths_are_not_logged() -> None:
    """/health/* requests get an id but no access line."""
    with capture_logs() as logs:
        async with _client(_inline_app()) as client:
            r = await client.get("/health/live")
    assert r.status_code == 200 and "x-request-id" in r.headers
    assert _access(logs) == []


@pytest.mark.anyio
async def test_an_app_exception_still_logs_one_line() -> None:
    """A handler that raises still produces exactly one access line, and the error propagates."""
    with capture_logs() as logs, pytest.raises(RuntimeError, match="handler bug"):
        await _call(_inline_app(), [(b"x-request-id", b"rid-boom")], path="/boom")
    [line] = _access(logs)
    assert line["request_id"] == "rid-boom" and line["path"] == "/boom"


@pytest.mark.anyio
async def test_non_http_scopes_pass_through() -> None:
    """Lifespan (and websocket) scopes reach the app untouched, with no access line."""
    seen: list[dict[str, Any]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(dict(scope))

    with capture_logs() as logs:
        await AccessMiddleware(app)({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert seen == [{"type": "lifespan"}] and logs == []


# --- the real app, in process, against the fake providers ---------------------------------------


@pytest.mark.anyio
async def test_real_app_logs_one_access_line_per_request(fakes: Any, config_factory: Any) -> None:
    """Through the real app: one line per request with request_id, model, provider and status."""
    config = config_factory({"m": [("alpha", 0)]}, health={"enabled": False})
    app = create_app(config)
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    with capture_logs() as logs:
        async with app.router.lifespan_context(app), _client(app) as client:
            ok = await client.post("/v1/chat/completions", json=body, headers={"x-request-id": "rid-ok"})
            bad = await client.post("/v1/chat/completions", json={"messages": []}, headers={"x-request-id": "rid-bad"})
            unknown = await client.post("/v1/chat/completions", json={**body, "model": "nope"})
            await client.get("/health/ready")
    assert (ok.status_code, bad.status_code, unknown.status_code) == (200, 400, 404)
    lines = _access(logs)
    assert len(lines) == 3
    first, second, third = lines
    assert first["request_id"] == "rid-ok" and first["status"] == 200
    assert (first["model"], first["provider"], first["attempts"], first["stream"]) == ("m", "alpha", 1, False)
    assert first["ttfb_ms"] >= 0
    assert second["request_id"] == "rid-bad" and second["status"] == 400 and "model" not in second
    assert third["status"] == 404 and third["model"] == "nope" and third["provider"] is None
    assert third["request_id"] == unknown.headers["x-request-id"]


@pytest.mark.anyio
async def test_a_bug_in_the_real_app_is_a_500_envelope_with_the_request_id(config_factory: Any) -> None:
    """An unhandled exception becomes a 500 in the endpoint's envelope, with x-request-id and an access line."""
    app = create_app(config_factory({"m": [("alpha", 0)]}))
    app.router.routes.append(Route("/v1/messages/boom", _boom, methods=["POST"]))
    app.router.routes.append(Route("/v1/boom", _boom))
    with capture_logs() as logs:
        async with _client(app) as client:
            r = await client.post("/v1/messages/boom", headers={"x-request-id": "rid-bug"})
            r2 = await client.get("/v1/boom")
    assert r.status_code == 500 and r.headers["x-request-id"] == "rid-bug"
    assert r.json() == {
        "type": "error",
        "error": {"type": "api_error", "message": "internal error; see the router log"},
    }
    assert r2.status_code == 500 and r2.json()["error"]["code"] == "internal_error"
    assert "Traceback" not in r.text + r2.text
    lines = _access(logs)
    assert [line["status"] for line in lines] == [500, 500]
    assert any(e["event"] == "unhandled_error" for e in logs)


@pytest.mark.anyio
async def test_unknown_paths_and_methods_get_the_envelope(config_factory: Any) -> None:
    """404 and 405 from routing come as JSON in the API's envelope, not plain text."""
    app = create_app(config_factory({"m": [("alpha", 0)]}))
    async with _client(app) as client:
        r = await client.get("/v1/nope")
        r2 = await client.get("/v1/messages")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert r2.status_code == 405 and r2.json()["type"] == "error"


@pytest.mark.anyio
async def test_ttfb_is_the_clients_from_the_requests_start() -> None:
    """The access line's ttfb_ms counts from the request's start to its first byte, so time spent
    before the answer (failed attempts, waits) is in it."""
    with capture_logs() as logs:
        async with _client(_inline_app()) as client:
            assert (await client.get("/v1/slow")).status_code == 200
    [line] = _access(logs)
    assert 50 <= line["ttfb_ms"] <= line["total_ms"]
