"""Tests for router.server.dispatch.RouterApp: POSTs to the hot paths reach their endpoint wrapped in
the app's own middleware, and everything else is Starlette's as before. Small inline apps."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from router.server.dispatch import RouterApp


class Endpoint:
    """An ASGI endpoint that says what it saw: its name, and the middleware marks on the scope."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        seen = ",".join(scope.get("marks", []))
        response = PlainTextResponse(f"{self.name} via [{seen}]")
        await response(scope, receive, send)


class Mark:
    """Middleware that appends its label to scope['marks']."""

    def __init__(self, app: ASGIApp, label: str) -> None:
        self.app = app
        self.label = label

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope.setdefault("marks", []).append(self.label)
        await self.app(scope, receive, send)


async def _slow(request: Request) -> Response:
    return PlainTextResponse("starlette route")


def _app() -> RouterApp:
    hot = Endpoint("hot")
    app = RouterApp(
        hot={"/v1/hot": hot},
        routes=[Route("/v1/hot", hot, methods=["POST"]), Route("/v1/other", _slow, methods=["GET", "POST"])],
        middleware=[Middleware(Mark, label="outer"), Middleware(Mark, label="inner")],
    )
    app.add_middleware(Mark, label="added")
    return app


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://router")


@pytest.mark.anyio
async def test_hot_post_gets_the_apps_middleware_in_order() -> None:
    """A POST to a hot path reaches its endpoint through the app's middleware, outermost first."""
    async with _client(_app()) as client:
        r = await client.post("/v1/hot", content=b"{}")
    assert r.status_code == 200 and r.text == "hot via [added,outer,inner]"


@pytest.mark.anyio
async def test_everything_else_is_starlettes() -> None:
    """Other methods on a hot path (405), other paths, unknown paths (404) and a trailing slash
    (redirect) go through Starlette's routing, with the same middleware."""
    async with _client(_app()) as client:
        wrong_method = await client.get("/v1/hot")
        other = await client.post("/v1/other")
        missing = await client.post("/v1/nope")
        slash = await client.post("/v1/hot/", follow_redirects=False)
    assert wrong_method.status_code == 405
    assert other.status_code == 200 and other.text == "starlette route"
    assert missing.status_code == 404
    assert slash.status_code == 307 and slash.headers["location"].endswith("/v1/hot")


@pytest.mark.anyio
async def test_a_mounted_app_is_left_to_starlette() -> None:
    """With a root_path (mounted under a prefix), the exact-path shortcut stands aside."""
    seen: list[str] = []

    async def outer(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["path"])
        await _app()({**scope, "root_path": "/prefix", "path": "/prefix" + scope["path"]}, receive, send)

    async with _client(outer) as client:
        r = await client.post("/v1/hot", content=b"{}")
    assert r.status_code == 200 and r.text == "hot via [added,outer,inner]"
