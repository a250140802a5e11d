"""One provider's health probe, over httpx: the request, and what its outcome means.

A probe answers with a `ProbeResult` that says why (the status, or what went wrong on the way),
not a bare bool: the operator sees the reason on /health/ready, /status and in the log. httpx's
exceptions are mapped to reasons here and nowhere else. The running router (`routing.health`'s
loop) and `router check --probe` send the same probe.

What a probe sends: the provider's credentials (its first format's auth headers and its extra
headers), so a revoked key shows as "status 401". What it reports never holds them: reasons come
from the status or from the exception's type, with its text only where that text is the OS's or
the remote's (never a header refused on the way out), and URLs are shown through
`log.mask_urls`, which masks any user:password and query string.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import anyio
import httpx

from router.config import ProviderConfig
from router.upstream.provider import probe_headers

_SSL_SOURCE = re.compile(r"\s*\(_ssl\.c:\d+\)")
BAD_HEADER = "invalid request header (check api_key / headers)"
MAX_REASON = 200  # an exception's text can be long (TLS errors); the reason is a one-line summary


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one probe found. `ok`: the provider counts as up (below 400, or 429: rate limited is
    up). `status`: the HTTP status when one came back. `latency_s`: how long the probe took."""

    ok: bool
    reason: str  # "status 200", "status 503", "timeout after 2.0s", "connection refused", ...
    status: int | None = None
    latency_s: float | None = None


Probe = Callable[[], Awaitable[ProbeResult]]


def probe_url(cfg: ProviderConfig) -> str:
    """The URL a provider's probe requests."""
    return cfg.base_url + cfg.health.path


# A URL fit for a log line or a page; the name ops.runtime imports.


def status_result(status: int, latency_s: float) -> ProbeResult:
    return ProbeResult(status < 400 or status == 429, f"status {status}", status, latency_s)


def reason_of(exc: BaseException, timeout_s: float) -> str:
    """httpx's exception as a short reason an operator can act on."""
    if isinstance(exc, httpx.TimeoutException):
        what = "connect timeout" if isinstance(exc, httpx.ConnectTimeout) else "timeout"
        return f"{what} after {timeout_s}s"
    cause = _root(exc)
    if isinstance(cause, ssl.SSLError):
        # "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate",
        # without the "(_ssl.c:1000)" that means nothing to an operator
        return _cut(f"TLS error: {_SSL_SOURCE.sub('', str(cause))}")
    if isinstance(cause, socket.gaierror):
        return _cut(f"DNS: {cause.strerror or cause}")
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, httpx.LocalProtocolError):
        # h11's text quotes the offending header whole: the credential, when the key has a newline
        return BAD_HEADER
    if isinstance(exc, httpx.RemoteProtocolError):
        return _cut(f"protocol error: {exc}")
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return _cut(f"bad URL: {exc}")
    if isinstance(exc, httpx.ConnectError):
        return _cut(f"connect error: {exc}")
    if isinstance(exc, httpx.NetworkError):
        return _cut(f"network error: {exc}")
    # Any other text is not ours to vouch for (it may quote the request): the type alone.
    return type(exc).__name__


def _root(exc: BaseException) -> BaseException:
    """The innermost cause: httpx wraps httpcore's exception, which wraps the OSError."""
    seen = 0
    while seen < 8:
        inner = exc.__cause__ or exc.__context__
        if inner is None:
            break
        exc, seen = inner, seen + 1
    return exc


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."


def http_probe(
    cfg: ProviderConfig, client: httpx.AsyncClient, monotonic: Callable[[], float] = time.monotonic
) -> Probe:
    """The provider's health probe: its configured method on its health path, with its credentials."""
    url = probe_url(cfg)
    headers = probe_headers(cfg)
    timeout_s = cfg.health.timeout_s

    async def probe() -> ProbeResult:
        start = monotonic()
        try:
            resp = await client.request(cfg.health.method, url, headers=headers, timeout=timeout_s)
        except httpx.HTTPError as exc:
            return ProbeResult(False, reason_of(exc, timeout_s), None, monotonic() - start)
        return status_result(resp.status_code, monotonic() - start)

    return probe


async def probe_once(probe: Probe, timeout_s: float) -> ProbeResult:
    """One probe, bounded by `timeout_s`: a probe that overruns or raises is a failed probe
    (with the reason), never an exception."""
    result: ProbeResult | None = None
    with anyio.move_on_after(timeout_s) as scope:
        try:
            result = await probe()
        except Exception as exc:
            # A buggy or surprised probe is a failed probe, not a dead health loop.
            # The type alone: the text may quote the request (its headers), and the reason is shown
            # on the unauthenticated /health/ready.
            return ProbeResult(False, f"probe error: {type(exc).__name__}")
    # cancel_called rather than cancelled_caught: a probe that swallows the cancellation and
    # returns a result anyway still overran its deadline.
    if scope.cancel_called or result is None:
        return ProbeResult(False, f"timeout after {timeout_s}s", None, timeout_s)
    return result


async def probe_each(providers: Sequence[ProviderConfig]) -> dict[str, ProbeResult]:
    """Each provider's probe once, all at the same time, on a client of their own (`router check
    --probe`)."""
    found: dict[str, ProbeResult] = {}

    async def one(p: ProviderConfig, client: httpx.AsyncClient) -> None:
        found[p.name] = await probe_once(http_probe(p, client), p.health.timeout_s)

    async with httpx.AsyncClient() as client, anyio.create_task_group() as tg:
        for p in providers:
            tg.start_soon(one, p, client)
    return found
