"""Tests for router.upstream.probe: the HTTP health probe (over httpx.MockTransport), the reasons
httpx's exceptions map to, the URL as shown, and probe_once's bounds. No sockets."""

from __future__ import annotations

import socket
import ssl
from typing import Any

import anyio
import httpx
import pytest

from router.config import HealthConfig, ProviderConfig
from router.log import mask_urls
from router.upstream.probe import BAD_HEADER, ProbeResult, http_probe, probe_once, probe_url, reason_of


def _provider(**kw: Any) -> ProviderConfig:
    base: dict[str, Any] = {
        "name": "p",
        "base_url": "http://p.invalid",
        "formats": ("openai-chat",),
        "api_key": "sk-probe-key",
    }
    return ProviderConfig(**{**base, **kw})


def _ticks(step: float = 0.25) -> Any:
    """A monotonic clock that moves `step` per reading."""
    now = [0.0]

    def monotonic() -> float:
        now[0] += step
        return now[0]

    return monotonic


async def _probe(cfg: ProviderConfig, handler: Any) -> ProbeResult:
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        return await http_probe(cfg, client, monotonic=_ticks())()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "healthy"),
    [(200, True), (204, True), (301, True), (429, True), (401, False), (404, False), (500, False), (503, False)],
)
async def test_probe_status(status: int, healthy: bool) -> None:
    """Below 400 is healthy, and so is 429 (rate limited is up); any other error status is down.
    The reason is the status; the latency is the clock's difference."""
    result = await _probe(_provider(), lambda req: httpx.Response(status))
    assert result == ProbeResult(healthy, f"status {status}", status, 0.25)


@pytest.mark.anyio
async def test_probe_request_shape() -> None:
    """The probe uses the configured method and path with the provider's credentials."""
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200)

    cfg = _provider(health=HealthConfig(method="HEAD", path="/status"))
    assert (await _probe(cfg, handler)).ok
    [req] = seen
    assert req.method == "HEAD" and str(req.url) == "http://p.invalid/status" == probe_url(cfg)
    assert req.headers["authorization"] == "Bearer sk-probe-key"


def _wrapped(outer: type[httpx.HTTPError], inner: BaseException) -> httpx.HTTPError:
    """httpx's exception caused by `inner`, as httpx raises it (through httpcore's)."""
    try:
        try:
            raise inner
        except BaseException as exc:
            raise outer(str(exc)) from exc
    except httpx.HTTPError as mapped:
        return mapped


_VERIFY = "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate"


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (httpx.ReadTimeout("slow"), "timeout after 2.0s"),
        (httpx.ConnectTimeout("slow"), "connect timeout after 2.0s"),
        (_wrapped(httpx.ConnectError, ConnectionRefusedError(111, "Connect call failed")), "connection refused"),
        (_wrapped(httpx.ReadError, ConnectionResetError(104, "reset")), "connection reset"),
        (
            _wrapped(httpx.ConnectError, socket.gaierror(-2, "Name or service not known")),
            "DNS: Name or service not known",
        ),
        (
            _wrapped(httpx.ConnectError, ssl.SSLCertVerificationError(1, f"{_VERIFY} (_ssl.c:1000)")),
            f"TLS error: {_VERIFY}",
        ),
        (httpx.RemoteProtocolError("Server disconnected"), "protocol error: Server disconnected"),
        (
            httpx.UnsupportedProtocol("Request URL has an unsupported protocol 'ftp://'."),
            "bad URL: Request URL has an unsupported protocol 'ftp://'.",
        ),
        (httpx.ConnectError("something\nelse"), "connect error: something else"),
        (httpx.DecodingError("x" * 500), "DecodingError"),
        (httpx.LocalProtocolError("Illegal header value b'Bearer sk-live-secret\\n'"), BAD_HEADER),
        (httpx.ProxyError("via http://u:sk-live-secret@proxy"), "ProxyError"),
    ],
)
def test_reasons_of_httpx_exceptions(exc: httpx.HTTPError, reason: str) -> None:
    """Each transport failure says what it was, in one short line an operator can act on; a text
    the router cannot vouch for (h11 quotes a refused header whole) is never shown."""
    assert reason_of(exc, 2.0) == reason and len(reason) <= 200 and "secret" not in reason


@pytest.mark.anyio
async def test_transport_errors_are_failed_probes_with_a_reason() -> None:
    """A connection error is a failed probe (not an exception), its reason from `reason_of`."""

    def handler(req: httpx.Request) -> httpx.Response:
        raise _wrapped(httpx.ConnectError, ConnectionRefusedError(111, "refused"))

    result = await _probe(_provider(), handler)
    assert result == ProbeResult(False, "connection refused", None, 0.25)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://user:secret@api.example.com:8443/v1/models?key=abc",
            "https://***@api.example.com:8443/v1/models?...",
        ),
        ("https://api.example.com/v1/models?key=abc#frag", "https://api.example.com/v1/models?..."),
        ("http://[::1]:9000/health", "http://[::1]:9000/health"),
        ("http://127.0.0.1/v1/models", "http://127.0.0.1/v1/models"),
    ],
)
def test_shown_urls_drop_credentials_and_query(url: str, shown: str) -> None:
    assert mask_urls(url) == shown


@pytest.mark.anyio
async def test_probe_once_bounds_and_catches() -> None:
    """A hanging probe is a timeout; a raising one a failure naming the exception; a result passes."""

    async def hangs() -> ProbeResult:
        await anyio.sleep_forever()
        raise AssertionError

    async def raises() -> ProbeResult:
        raise KeyError("x")

    async def answers() -> ProbeResult:
        return ProbeResult(True, "status 200", 200, 0.1)

    assert await probe_once(hangs, 0.0) == ProbeResult(False, "timeout after 0.0s", None, 0.0)
    assert await probe_once(raises, 1.0) == ProbeResult(False, "probe error: KeyError")
    assert (await probe_once(answers, 1.0)).ok
