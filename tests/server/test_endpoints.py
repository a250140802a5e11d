"""Tests for router.server.endpoints with a stand-in forwarder in a small inline app: errors the socket
tests cannot provoke (a client gone mid-body, a bug in the forwarder) and error rendering."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import Message
from structlog.testing import capture_logs

from router import formats
from router.billing.auth import Authenticator
from router.billing.ledger import Ledger
from router.billing.limits import Limits
from router.billing.metering import Metering
from router.billing.state.memory import MemoryBackend
from router.clock import ManualClock
from router.config import parse_config
from router.errors import BadRequest, NoRouteAvailable, UnknownModel, UpstreamTimeout
from router.routing.pool import Pool
from router.routing.table import RoutingTable
from router.server.drain import Drain
from router.server.endpoints import Endpoints, error_response
from router.server.middleware import AccessMiddleware

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


class StubForwarder:
    """Raises what it is given, or answers nothing (it is never meant to get that far)."""

    def __init__(self, exc: BaseException | None = None) -> None:
        self.exc = exc
        self.calls = 0

    async def forward(self, req: Any, routes: Any) -> Any:
        self.calls += 1
        if self.exc is not None:
            raise self.exc
        raise AssertionError("no answer scripted")


def _app(forwarder: StubForwarder) -> AccessMiddleware:
    config = parse_config(
        {
            "server": {"allow_anonymous": True},
            "providers": [{"name": "a", "base_url": "http://a.invalid", "formats": ["openai-chat"]}],
            "models": [{"name": "m", "routes": [{"provider": "a", "model": "a-m"}]}],
        }
    )
    clock = ManualClock()
    pool = Pool(RoutingTable(config), clock, 10.0)
    limits = Limits(config, MemoryBackend(), clock)
    metering = Metering(limits, Ledger(None), {}, clock)
    auth = Authenticator(config)
    ep = Endpoints(forwarder, pool, auth, limits, metering, config.accounting, lambda: (True, {}), 2048, 0, Drain())  # type: ignore[arg-type]
    routes = [Route(path, endpoint, methods=["POST"]) for path, endpoint in ep.api.items()]
    return AccessMiddleware(Starlette(routes=routes))


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://router")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            "/v1/chat/completions",
            {
                "error": {
                    "message": "internal error; see the router log",
                    "type": "server_error",
                    "code": "internal_error",
                    "param": None,
                }
            },
        ),
        (
            "/v1/messages",
            {"type": "error", "error": {"type": "api_error", "message": "internal error; see the router log"}},
        ),
    ],
)
async def test_a_bug_in_the_forwarder_is_a_500_in_the_clients_envelope(path: str, expected: dict[str, Any]) -> None:
    """An unexpected exception becomes a 500 in the endpoint's envelope; details only in the log."""
    app = _app(StubForwarder(RuntimeError("secret detail toc-abcdefgh")))
    body = {**CHAT, "max_tokens": 5}
    with capture_logs() as logs:
        async with _client(app) as client:
            r = await client.post(path, json=body)
    assert r.status_code == 500 and r.json() == expected
    assert "secret detail" not in r.text
    [err] = [e for e in logs if e["event"] == "internal_error"]
    assert err["log_level"] == "error" and err["exc_info"] is True


@pytest.mark.anyio
async def test_client_gone_while_sending_the_body_is_499() -> None:
    """A disconnect while the body is being read ends the request as 499, never reaching the forwarder."""
    forwarder = StubForwarder()
    app = _app(forwarder)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("router", 80),
    }
    incoming: list[Message] = [
        {"type": "http.request", "body": b'{"model": "m", ', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 499
    assert forwarder.calls == 0


@pytest.mark.anyio
async def test_server_side_router_errors_are_logged_client_errors_are_not() -> None:
    """RouterErrors of status >= 500 log one request_failed warning; 4xx ones log nothing extra."""
    async with _client(_app(StubForwarder(UpstreamTimeout("slow", "total")))) as client:
        with capture_logs() as logs:
            r = await client.post("/v1/responses", json={"model": "m", "input": "hi"})
    assert r.status_code == 504 and r.json()["error"]["code"] == "upstream_timeout"
    [warn] = [e for e in logs if e["event"] == "request_failed"]
    assert warn == {"event": "request_failed", "code": "upstream_timeout", "message": "slow", "log_level": "warning"}
    async with _client(_app(StubForwarder(UnknownModel("no such model")))) as client:
        with capture_logs() as logs:
            r = await client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 404
    assert [e["event"] for e in logs] == ["request"]


def test_retry_after_header_is_whole_seconds_at_least_one() -> None:
    """503 NoRouteAvailable carries retry-after rounded to whole seconds, never 0; none when unknown."""
    assert error_response(formats.CHAT, NoRouteAvailable("x", 0.2)).headers["retry-after"] == "1"
    assert error_response(formats.CHAT, NoRouteAvailable("x", 2.6)).headers["retry-after"] == "3"
    assert "retry-after" not in error_response(formats.CHAT, NoRouteAvailable("x")).headers


def test_bad_request_names_its_param_in_openai_envelopes() -> None:
    """A BadRequest's param reaches the OpenAI envelope; Anthropic's envelope has no param field."""
    r = error_response(formats.RESPONSES, BadRequest("bad stream", param="stream"))
    assert r.status_code == 400 and orjson.loads(r.body)["error"]["param"] == "stream"
    a = error_response(formats.MESSAGES, BadRequest("bad stream", param="stream"))
    assert orjson.loads(a.body) == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "bad stream"},
    }
