"""Tests for router.upstream.provider: the headers sent upstream and to probes, the mapping of the
transport's (router.upstream.client) exceptions to router errors, and UpstreamResponse's read/close over a
stand-in transport response."""

from __future__ import annotations

import socket
from typing import Any

import orjson
import pytest

from router.config import ProviderConfig
from router.errors import UpstreamConnectError, UpstreamError, UpstreamReset, UpstreamTimeout
from router.formats import CHAT, MESSAGES, RESPONSES, wire
from router.upstream import client as http1
from router.upstream.provider import (
    TRANSPORT_ERRORS,
    ProviderClient,
    UpstreamResponse,
    _map,
    probe_headers,
    read_error,
)

ALL = ("openai-chat", "anthropic-messages", "openai-responses")


def _provider(**kw: Any) -> ProviderConfig:
    base: dict[str, Any] = {"name": "p", "base_url": "http://p.invalid", "formats": ALL, "api_key": "sk-provider"}
    return ProviderConfig(**{**base, **kw})


CLIENT_HEADERS = {
    "host": "router.local",
    "connection": "keep-alive",
    "keep-alive": "timeout=5",
    "proxy-connection": "keep-alive",
    "proxy-authorization": "Basic Zm9vOmJhcg==",
    "te": "trailers",
    "trailer": "x-checksum",
    "transfer-encoding": "chunked",
    "upgrade": "h2c",
    "content-length": "123",
    "content-type": "application/json; charset=latin-1",
    "accept-encoding": "gzip, br",
    "authorization": "Bearer toc-client-key-123456",
    "x-api-key": "toc-client-key-123456",
    "api-key": "toc-client-key-123456",
    "cookie": "session=abc",
    "x-request-id": "client-chosen",
    "user-agent": "openai-python/1.0",
    "openai-beta": "assistants=v2",
    "anthropic-beta": "tools-2024",
}
_OWN = {"openai-chat": {"openai-beta"}, "openai-responses": {"openai-beta"}, "anthropic-messages": {"anthropic-beta"}}


@pytest.mark.parametrize("fmt", ALL)
def test_only_the_formats_own_client_headers_go_upstream(fmt: Any) -> None:
    """An allow-list: of the client's headers only those its API defines as changing the answer
    pass (anthropic-* to an Anthropic upstream only); hop-by-hop, framing, credentials, cookies,
    organisation and project selectors, forwarding and custom headers never do."""
    client_headers = {
        **CLIENT_HEADERS,
        "openai-organization": "org-operator-pays",
        "openai-project": "proj-x",
        "x-forwarded-for": "10.0.0.1",
        "x-custom": "x" * 100_000,
    }
    out = ProviderClient(_provider()).request_headers(client_headers, wire(fmt), "rid-1")
    router_set = {"content-type", "x-request-id", "authorization", "x-api-key", "anthropic-version"}
    assert set(out) - router_set == _OWN[fmt]
    assert "toc-client-key-123456" not in " ".join(out.values())
    assert out["content-type"] == "application/json"
    assert out["x-request-id"] == "rid-1"


def test_a_provider_may_forward_more_client_headers() -> None:
    """`forward_headers` in the provider's config adds client headers, for every format."""
    client = ProviderClient(_provider(forward_headers=("x-title", "x-forwarded-for")))
    for fmt in ALL:
        out = client.request_headers({"x-title": "app", "x-other": "1", "openai-beta": "b"}, wire(fmt), "r")
        assert out["x-title"] == "app" and "x-other" not in out
        assert ("openai-beta" in out) == (fmt != "anthropic-messages"), fmt


def test_connection_cannot_strip_what_the_router_sets() -> None:
    """A client naming the router's own headers in Connection cannot remove them."""
    out = ProviderClient(_provider()).request_headers(
        {"connection": "authorization, content-type, x-request-id", "openai-beta": "b"}, CHAT, "rid"
    )
    assert out["authorization"] == "Bearer sk-provider"
    assert out["content-type"] == "application/json" and out["x-request-id"] == "rid"
    assert out["openai-beta"] == "b"


def test_openai_formats_get_a_bearer_provider_key() -> None:
    """openai-chat and openai-responses carry the provider's key as a Bearer token, no x-api-key."""
    client = ProviderClient(_provider())
    for fmt in ("openai-chat", "openai-responses"):
        out = client.request_headers(CLIENT_HEADERS, wire(fmt), "r")
        assert out["authorization"] == "Bearer sk-provider"
        assert "x-api-key" not in out and "anthropic-version" not in out


def test_anthropic_gets_x_api_key_and_a_default_version() -> None:
    """anthropic-messages carries x-api-key (no authorization) and the configured anthropic-version."""
    client = ProviderClient(_provider(anthropic_version="2099-01-01"))
    out = client.request_headers({"user-agent": "sdk"}, MESSAGES, "r")
    assert out["x-api-key"] == "sk-provider"
    assert "authorization" not in out
    assert out["anthropic-version"] == "2099-01-01"


def test_anthropic_version_from_the_client_passes_through() -> None:
    """A client's own anthropic-version wins over the provider default."""
    out = ProviderClient(_provider()).request_headers({"anthropic-version": "2023-01-01"}, MESSAGES, "r")
    assert out["anthropic-version"] == "2023-01-01"


def test_no_provider_key_sends_no_credentials() -> None:
    """A keyless provider (a local server) gets no credentials at all, not even the client's."""
    client = ProviderClient(_provider(api_key=None))
    for fmt in ALL:
        out = client.request_headers(CLIENT_HEADERS, wire(fmt), "r")
        assert not {"authorization", "x-api-key", "api-key"} & set(out), fmt


def test_provider_extra_headers_are_added() -> None:
    """The provider's configured headers are sent, overriding a client header of the same name."""
    client = ProviderClient(_provider(headers=(("http-referer", "https://me"), ("user-agent", "router"))))
    out = client.request_headers({"user-agent": "sdk"}, CHAT, "r")
    assert out["http-referer"] == "https://me" and out["user-agent"] == "router"


def test_request_headers_do_not_mutate_the_client_mapping() -> None:
    """The client's headers are copied, never changed in place."""
    headers = dict(CLIENT_HEADERS)
    ProviderClient(_provider()).request_headers(headers, CHAT, "r")
    assert headers == CLIENT_HEADERS


def test_probe_headers_follow_the_first_format() -> None:
    """Probe credentials are in the style of the provider's first format."""
    openai = probe_headers(_provider(headers=(("x-extra", "1"),)))
    assert openai == {"x-extra": "1", "authorization": "Bearer sk-provider"}
    anth = probe_headers(_provider(formats=("anthropic-messages", "openai-chat"), anthropic_version="v9"))
    assert anth == {"anthropic-version": "v9", "x-api-key": "sk-provider"}
    assert probe_headers(_provider(api_key=None)) == {}
    assert probe_headers(_provider(api_key=None, formats=("anthropic-messages",))) == {
        "anthropic-version": "2023-06-01"
    }


def test_paths_per_format() -> None:
    """Each client format goes to its provider path."""
    assert (CHAT.path, MESSAGES.path, RESPONSES.path) == ("/v1/chat/completions", "/v1/messages", "/v1/responses")


# --- exception mapping --------------------------------------------------------------------------


def test_map_connect_timeout() -> None:
    """The transport's connect timeout is a connect-phase timeout."""
    err = _map(http1.ConnectTimeout("x"), "connecting")
    assert isinstance(err, UpstreamTimeout) and err.phase == "connect"
    assert err.message == "connect timeout while connecting"


def test_map_connect_failure_names_the_os_error() -> None:
    """A refused connection reports the OS reason."""
    err = _map(http1.ConnectFailed(ConnectionRefusedError(111, "Connection refused"), "p.invalid:443"), "connecting")
    assert type(err) is UpstreamConnectError
    assert err.message == "cannot connect: Connection refused"


def test_map_connect_failure_without_strerror() -> None:
    """An OS error with no strerror still gives a readable message."""
    err = _map(http1.ConnectFailed(OSError("no route"), "p.invalid:443"), "connecting")
    assert type(err) is UpstreamConnectError and err.message.startswith("cannot connect: ")
    assert "p.invalid" in err.message


@pytest.mark.parametrize(
    ("exc", "kind", "message"),
    [
        (http1.Disconnected("x"), UpstreamReset, "upstream closed the connection while reading the stream"),
        (http1.PayloadError("bad chunk"), UpstreamReset, "upstream connection broke while reading the stream"),
        (
            http1.ProtocolError("bad"),
            UpstreamConnectError,
            "upstream connection error while reading the stream: ProtocolError",
        ),
        (
            ConnectionResetError(104, "reset"),
            UpstreamConnectError,
            "upstream connection error while reading the stream: ConnectionResetError",
        ),
    ],
)
def test_map_connection_errors(exc: BaseException, kind: type[UpstreamError], message: str) -> None:
    """Disconnects and broken payloads are resets; other socket errors are connect errors (both fail over)."""
    err = _map(exc, "reading the stream")
    assert type(err) is kind and err.message == message


# --- UpstreamResponse over a stand-in transport response ----------------------------------------


class _Resp:
    """Just what UpstreamResponse uses of http1.Response."""

    def __init__(self, chunks: list[bytes | BaseException] | None = None, body: bytes | BaseException = b"{}") -> None:
        self.status = 201
        self.headers = [("Content-Type", "application/json"), ("Retry-After", "3")]
        self._chunks = chunks or []
        self._body = body
        self.calls: list[str] = []

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    async def read(self) -> bytes:
        item = self._chunks.pop(0) if self._chunks else b""
        if isinstance(item, BaseException):
            raise item
        return item

    async def read_all(self) -> bytes:
        if isinstance(self._body, BaseException):
            raise self._body
        return self._body

    def close(self) -> None:
        self.calls.append("close")


def _wrap(resp: _Resp) -> UpstreamResponse:
    return UpstreamResponse(resp)  # type: ignore[arg-type]


def test_response_headers_are_lower_cased() -> None:
    """headers() lower-cases names; header() reads one; status is copied."""
    up = _wrap(_Resp())
    assert up.status == 201
    assert up.headers() == {"content-type": "application/json", "retry-after": "3"}
    assert up.header("Retry-After") == "3" and up.header("x-none") is None


@pytest.mark.anyio
async def test_read_yields_chunks_then_empty() -> None:
    """read() passes chunks through as they come and b'' at the end."""
    up = _wrap(_Resp([b"a", b"b"]))
    assert [await up.read(), await up.read(), await up.read()] == [b"a", b"b", b""]


@pytest.mark.anyio
async def test_read_maps_transport_errors() -> None:
    """A reset mid-stream surfaces as UpstreamReset, not a transport exception."""
    up = _wrap(_Resp([b"a", http1.PayloadError("cut")]))
    await up.read()
    with pytest.raises(UpstreamReset, match="broke while reading the stream"):
        await up.read()


@pytest.mark.anyio
@pytest.mark.parametrize(
    "exc",
    [http1.PayloadError("cut"), http1.Disconnected("gone"), http1.ProtocolError("bad"), ConnectionResetError(104, "r")],
)
async def test_read_unmapped_with_read_error_is_read(exc: BaseException) -> None:
    """The relay's loop: read_unmapped raises one of TRANSPORT_ERRORS, and read_error makes of it
    exactly what read() raises."""
    with pytest.raises(UpstreamError) as mapped:
        await _wrap(_Resp([exc])).read()
    with pytest.raises(TRANSPORT_ERRORS) as raw:
        await _wrap(_Resp([exc])).read_unmapped()
    err = read_error(raw.value)
    assert type(err) is type(mapped.value) and err.message == mapped.value.message


@pytest.mark.anyio
async def test_read_all_maps_transport_errors() -> None:
    """read_all() of a body whose connection drops raises UpstreamReset."""
    with pytest.raises(UpstreamReset, match="closed the connection while reading the answer"):
        await _wrap(_Resp(body=http1.Disconnected("gone"))).read_all()
    assert await _wrap(_Resp(body=b'{"ok":1}')).read_all() == b'{"ok":1}'


def test_close_hands_the_connection_back_to_the_transport() -> None:
    """close() is the transport response's close (which reuses a finished connection, see test_http1)."""
    resp = _Resp()
    _wrap(resp).close()
    assert resp.calls == ["close"]


# --- ProviderClient lifecycle -------------------------------------------------------------------


@pytest.mark.anyio
async def test_send_before_start_is_a_connect_error() -> None:
    """A client used before start() fails as a connect error, not an AttributeError."""
    with pytest.raises(UpstreamConnectError, match="provider p is not started"):
        await ProviderClient(_provider()).send(CHAT, b"{}", {})


@pytest.mark.anyio
async def test_refused_connection_is_mapped() -> None:
    """Connecting to a closed loopback port raises UpstreamConnectError; aclose() is repeatable."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = ProviderClient(_provider(base_url=f"http://127.0.0.1:{port}"))
    await client.start()
    try:
        with pytest.raises(UpstreamConnectError, match="cannot connect"):
            await client.send(CHAT, b"{}", {})
    finally:
        await client.aclose()
        await client.aclose()


def test_scrub_error_masks_the_providers_key_its_pieces_and_key_shapes() -> None:
    """The provider's key, any 8+ character piece of it, and key-shaped strings are masked in
    every string of an error body; the JSON shape stays; long messages are cut."""
    from router.upstream.provider import MAX_ERROR_MESSAGE, scrub_error

    secret = "provider-key-alpha-0123456789"
    body = {
        "error": {
            "type": "invalid_request_error",
            "message": f"bad key {secret}; also key-alpha-01 and toc-abcdefgh123 and Bearer xyz",
            "code": 401,
        }
    }
    out = orjson.loads(scrub_error(orjson.dumps(body), secret))
    msg = out["error"]["message"]
    assert out["error"]["type"] == "invalid_request_error" and out["error"]["code"] == 401
    assert secret not in msg and "key-alpha-01" not in msg and "toc-abcdefgh123" not in msg and "xyz" not in msg
    assert msg.count("[redacted]") >= 3 and msg.startswith("bad key ")
    long = scrub_error(orjson.dumps({"error": {"message": "x" * 5000}}), None)
    assert len(orjson.loads(long)["error"]["message"]) <= MAX_ERROR_MESSAGE + 10
    assert scrub_error(b"plain text with provider-key-alpha-0123456789", secret) == b"plain text with [redacted]"
