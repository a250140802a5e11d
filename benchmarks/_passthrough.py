"""The floor under the router's CPU per stream chunk: the same server (uvicorn, httptools, uvloop)
and the router's own upstream client, relaying each upstream read to the client as it comes,
with nothing else (no key, plan, budget, parsing, state or log). `profile_stream.py --measure
--floor` runs it beside the router. Benchmarks only; an ASGI app for `uvicorn _passthrough:app`
with the upstream in $PASSTHROUGH_UPSTREAM.
"""

from __future__ import annotations

import os
from typing import Any

from router.upstream import client as http1

_pool: http1.Pool | None = None
_SSE = [(b"content-type", b"text/event-stream; charset=utf-8")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _pool
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            _pool = http1.Pool(os.environ["PASSTHROUGH_UPSTREAM"], 256, 60, 2)
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["method"] == "GET":  # readiness
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    assert _pool is not None
    resp = await http1.post(_pool, scope["path"], {"content-type": "application/json"}, body)
    try:
        await send({"type": "http.response.start", "status": resp.status, "headers": _SSE})
        while chunk := await resp.read():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        resp.close()
