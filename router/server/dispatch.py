"""The ASGI app: Starlette, with a shortcut for the hot path. A POST to one of the three API
paths goes straight to its endpoint, wrapped in the app's own middleware (the access
middleware); everything else (lifespan, the GET endpoints, 404, 405, redirects) goes through
Starlette as usual.

Why: Starlette's routing walks every route with a regex, and its stack (error middleware,
exception middleware, router, route) adds a coroutine frame each, which every resumption of the
request passes through again, plus a wrapper around every `send`. For the hot path that
measured as a noticeable share of the CPU per request; an exact path lookup gives the same
answer. Starlette's error and exception middleware have nothing to do there: the endpoints
render their own errors, the access middleware turns anything else into a 500 envelope and
re-raises only once the response has started, which Starlette's would re-raise too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send


class RouterApp(Starlette):
    """A Starlette app whose POSTs to the `hot` paths (exact path -> the endpoint's ASGI app)
    skip Starlette's routing and its error and exception middleware, but not the app's own
    middleware (`middleware=`, `add_middleware`), which wraps them just as it wraps the rest."""

    def __init__(self, *, hot: Mapping[str, ASGIApp], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._hot_endpoints = dict(hot)
        self._hot: dict[str, ASGIApp] | None = None  # built on first use, as Starlette builds its stack

    def _wrap(self, app: ASGIApp) -> ASGIApp:
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # root_path: a mounted app's paths are Starlette's business (it strips the prefix).
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            if self._hot is None:
                self._hot = {path: self._wrap(app) for path, app in self._hot_endpoints.items()}
            handler = self._hot.get(scope["path"])
            if handler is not None:
                await handler(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
