"""One attempt's I/O against one provider, over that provider's pool of keep-alive connections.

This is the only module that talks to upstreams on the data path, and the only place where the
transport's exceptions are mapped to `router.errors` (as httpx maps httpcore's); the stream
relay's loop catches them itself (`TRANSPORT_ERRORS`, one coroutine frame less per chunk) and
maps them with `read_error`. The transport is `http1.py`, not httpx (whose pool measured 10-30x slower than
aiohttp's for pass-through on this machine) nor aiohttp (whose request machinery measured about
a quarter of the router's CPU per request; see http1.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from router.config import ProviderConfig
from router.errors import UpstreamConnectError, UpstreamError, UpstreamReset, UpstreamTimeout
from router.formats import ALL, WireFormat, wire
from router.log import SECRET_RE
from router.upstream import client as http1

# W3C trace context: every upstream gets the client's, unchanged, so its spans join the client's
# trace (with tracing on, the tracer replaces it with the attempt span's). Not `baggage`: free-form
# data a client may not mean for a third party.
TRACE_HEADERS = frozenset({"traceparent", "tracestate"})

# A read woken by `UpstreamResponse.interrupt()`: the reader's own doing, not the upstream's.
ReadInterrupted = http1.Interrupted
# What `UpstreamResponse.read_unmapped` raises besides ReadInterrupted; `read_error` maps it.
TRANSPORT_ERRORS = (http1.TransportError, OSError)


class UpstreamResponse:
    """An upstream answer whose headers have arrived. `close()` must be called (it is sync, so
    it runs even inside a cancelled scope); a half-read connection is discarded, not reused."""

    __slots__ = ("_resp", "read_unmapped", "status")

    def __init__(self, resp: http1.Response) -> None:
        self.status = resp.status
        self._resp = resp
        # read() without its error mapping, for the stream relay's loop (one coroutine frame less
        # per chunk): it catches TRANSPORT_ERRORS and maps them with read_error.
        self.read_unmapped = resp.read

    def header(self, name: str) -> str | None:
        return self._resp.header(name)

    def headers(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self._resp.headers}

    async def read_all(self) -> bytes:
        try:
            return await self._resp.read_all()
        except (http1.TransportError, OSError) as exc:
            raise _map(exc, "reading the answer") from None

    async def read(self) -> bytes:
        """The next bytes of the body as they arrive; b"" at its end. ReadInterrupted when
        `interrupt()` woke it."""
        try:
            return await self._resp.read()
        except (http1.TransportError, OSError) as exc:
            raise _map(exc, "reading the stream") from None

    def interrupt(self) -> None:
        """Wake the pending read (or the next one that would wait) with ReadInterrupted."""
        self._resp.interrupt()

    def close(self) -> None:
        self._resp.close()


class ProviderClient:
    """A provider's connection pool and credentials."""

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self._pool: http1.Pool | None = None
        # An allow-list, not a deny-list: a header a client invents (an organisation selector, a
        # cookie, megabytes of its own) never reaches the provider.
        self._forward = {fmt: tuple(fmt.forward_headers | set(config.forward_headers) | TRACE_HEADERS) for fmt in ALL}

    async def start(self) -> None:
        cfg = self.config
        # Only connect is bounded here; first-token, idle and total are the router's own
        # deadlines (an anyio scope per attempt, one timer per stream in relay), which tell
        # "thinking before the first token" from "stalled mid-stream".
        self._pool = http1.Pool(cfg.base_url, cfg.pool.max_connections, cfg.pool.keepalive_s, cfg.timeouts.connect_s)

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None

    def request_headers(self, client_headers: Mapping[str, str], fmt: WireFormat, request_id: str) -> dict[str, str]:
        """The client headers `fmt` (and this provider's config) allow, then the provider's own
        headers, the router's request id and the provider's credentials."""
        cfg = self.config
        out = {name: client_headers[name] for name in self._forward[fmt] if name in client_headers}
        out.update(cfg.headers)
        out["content-type"] = "application/json"
        out["x-request-id"] = request_id
        fmt.auth_headers(cfg.api_key, out, anthropic_version=cfg.anthropic_version)
        return out

    async def send(self, fmt: WireFormat, body: bytes, headers: dict[str, str]) -> UpstreamResponse:
        """POST to the format's path; returns once the status line and headers have arrived."""
        if self._pool is None:
            raise UpstreamConnectError(f"provider {self.config.name} is not started")
        try:
            resp = await http1.post(self._pool, fmt.path, headers, body)
        except (http1.TransportError, OSError) as exc:
            raise _map(exc, "connecting") from None
        return UpstreamResponse(resp)


def read_error(exc: BaseException) -> UpstreamError:
    """One of TRANSPORT_ERRORS from `read_unmapped`, as `read` would have raised it."""
    return _map(exc, "reading the stream")


def _map(exc: BaseException, during: str) -> UpstreamError:
    """The transport's exceptions, in the router's terms."""
    if isinstance(exc, http1.ConnectTimeout):
        return UpstreamTimeout(f"connect timeout while {during}", phase="connect")
    if isinstance(exc, http1.ConnectFailed):
        return UpstreamConnectError(f"cannot connect: {exc.os_error.strerror or exc}")
    if isinstance(exc, http1.Disconnected):
        return UpstreamReset(f"upstream closed the connection while {during}")
    if isinstance(exc, http1.BadHeader):  # nothing was sent; the provider's config is at fault
        return UpstreamConnectError(f"invalid request header: {exc} (check the provider's api_key and headers)")
    if isinstance(exc, http1.PayloadError):
        return UpstreamReset(f"upstream connection broke while {during}")
    return UpstreamConnectError(f"upstream connection error while {during}: {type(exc).__name__}")


def probe_headers(cfg: ProviderConfig) -> dict[str, str]:
    """Credentials for a health probe, in the style of the provider's first format."""
    out = dict(cfg.headers)
    wire(cfg.formats[0]).auth_headers(cfg.api_key, out, anthropic_version=cfg.anthropic_version)
    return out


# An upstream's error message reaches the client; this much of it at most.
MAX_ERROR_MESSAGE = 1024
_SECRET_PIECE = 8  # any piece of the provider's key this long is masked, not just the whole key


def scrub_error(body: bytes, secret: str | None) -> bytes:
    """An upstream error body as the client may see it: the provider's own key (and any piece
    of it of 8 characters or more) and anything shaped like an API key masked in every string,
    each string cut to MAX_ERROR_MESSAGE; the JSON shape (error type, code) kept. Some providers
    echo part of the credential, or account details, in their messages."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _scrub_text(body.decode("utf-8", "replace"), secret).encode()
    return orjson.dumps(_scrub(obj, secret))


def _scrub(node: Any, secret: str | None) -> Any:
    if isinstance(node, str):
        return _scrub_text(node, secret)
    if isinstance(node, dict):
        return {k: _scrub(v, secret) for k, v in node.items()}
    if isinstance(node, list):
        return [_scrub(v, secret) for v in node]
    return node


def _scrub_text(text: str, secret: str | None) -> str:
    if secret:
        text = text.replace(secret, "[redacted]")
        pieces = [secret[i : i + _SECRET_PIECE] for i in range(len(secret) - _SECRET_PIECE + 1)]
        while (found := next((p for p in pieces if p in text), None)) is not None:
            text = text.replace(found, "[redacted]")
    text = SECRET_RE.sub("[redacted]", text)
    return text if len(text) <= MAX_ERROR_MESSAGE else text[:MAX_ERROR_MESSAGE] + "…(cut)"
