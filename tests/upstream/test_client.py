"""Tests for router.upstream.client, the data path's HTTP/1.1 client, against small scripted servers on
real loopback sockets: framing (length, chunked, until close), keep-alive reuse and its limits,
decompression, errors by phase, the pool limit and cancellation."""

from __future__ import annotations

import asyncio
import gzip
import ssl
import subprocess
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from router.upstream import client as http1

Handler = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]


class Server:
    """Reads each request (head and Content-Length body) and lets `handler` answer it."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[bytes] = []
        self.connections = 0
        self.closed = 0
        self.port = 0
        self.tasks: set[asyncio.Task[Any]] = set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                await self.handler(request, writer)
                if writer.is_closing():
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the test is over, or the client left
        finally:
            self.closed += 1
            writer.close()


@asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[Server]:
    server = Server(handler)
    tcp = await asyncio.start_server(server._serve, "127.0.0.1", 0)
    server.port = tcp.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        tcp.close()
        for task in server.tasks:
            task.cancel()
        await asyncio.gather(*server.tasks, return_exceptions=True)


def pool(server: Server, path: str = "", **kw: Any) -> http1.Pool:
    options: dict[str, Any] = {"limit": 10, "keepalive_s": 30.0, "connect_s": 1.0, **kw}
    return http1.Pool(f"http://127.0.0.1:{server.port}{path}", **options)


def answer(body: bytes, *headers: str, status: str = "200 OK") -> Handler:
    async def handler(request: bytes, writer: asyncio.StreamWriter) -> None:
        extra = "".join(f"{h}\r\n" for h in headers)
        writer.write(f"HTTP/1.1 {status}\r\ncontent-length: {len(body)}\r\n{extra}\r\n".encode() + body)
        await writer.drain()

    return handler


async def drain(p: http1.Pool, body: bytes = b"{}", headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    resp = await http1.post(p, "/v1/chat/completions", headers or {}, body)
    try:
        return resp.status, await resp.read_all()
    finally:
        resp.close()


@pytest.mark.anyio
async def test_request_on_the_wire_and_a_sized_answer() -> None:
    """The request line carries the base URL's path; Host, Accept, Accept-Encoding, User-Agent
    and Content-Length are added as aiohttp did; the answer's status, headers and body come back."""
    async with serve(answer(b'{"ok":true}', "X-Thing: 1", status="201 Created")) as server:
        p = pool(server, "/api")
        resp = await http1.post(p, "/v1/chat/completions", {"content-type": "application/json", "x-a": "b"}, b'{"q":1}')
        assert (resp.status, resp.header("x-thing"), resp.header("X-THING"), resp.header("nope")) == (
            201,
            "1",
            "1",
            None,
        )
        assert await resp.read_all() == b'{"ok":true}'
        resp.close()
        await p.aclose()
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /api/v1/chat/completions HTTP/1.1" and body == b'{"q":1}'
    assert {
        f"Host: 127.0.0.1:{server.port}",
        "content-type: application/json",
        "x-a: b",
        "Accept: */*",
        "Accept-Encoding: gzip, deflate",
        f"User-Agent: {http1.USER_AGENT}",
        "Content-Length: 7",
    } == set(lines[1:])


@pytest.mark.anyio
async def test_caller_headers_replace_the_defaults() -> None:
    """A caller's own Accept and User-Agent are sent instead of the defaults, not beside them."""
    async with serve(answer(b"{}")) as server:
        p = pool(server)
        await drain(p, headers={"accept": "application/json", "user-agent": "sdk/1"})
    head = server.requests[0].decode().lower()
    assert head.count("accept:") == 1 and "accept: application/json" in head
    assert head.count("user-agent:") == 1 and "user-agent: sdk/1" in head


@pytest.mark.anyio
async def test_default_ports_are_left_out_of_host() -> None:
    """Host names the port only when it is not the scheme's default."""
    assert http1.Pool("http://example.com", 1, 1, 1).host_header == "example.com"
    assert http1.Pool("http://example.com:80", 1, 1, 1).host_header == "example.com"
    assert http1.Pool("https://example.com:8443", 1, 1, 1).host_header == "example.com:8443"
    assert http1.Pool("http://[::1]:9000/x", 1, 1, 1).host_header == "[::1]:9000"
    with pytest.raises(ValueError):
        http1.Pool("ftp://example.com", 1, 1, 1)


@pytest.mark.anyio
async def test_keep_alive_reuses_one_connection() -> None:
    """Answers read to their end return the connection to the pool: three requests, one connection."""
    async with serve(answer(b"{}")) as server:
        p = pool(server)
        for _ in range(3):
            assert await drain(p) == (200, b"{}")
        await p.aclose()
    assert (server.connections, len(server.requests)) == (1, 3)


@pytest.mark.anyio
@pytest.mark.parametrize("header", ["Connection: close", "X-Plain: 1"])
async def test_connection_close_or_a_half_read_answer_is_not_reused(header: str) -> None:
    """An answer that says Connection: close, or one closed before it was read, costs its connection."""
    async with serve(answer(b"0123456789", header)) as server:
        p = pool(server)
        for _ in range(2):
            resp = await http1.post(p, "/x", {}, b"")
            if header.startswith("Connection"):
                assert await resp.read_all() == b"0123456789"
            resp.close()
        await p.aclose()
    assert server.connections == 2


def first_then_second(go: asyncio.Event) -> Handler:
    """A chunked answer: "first" at once, "second" and the end once `go` is set."""

    async def handler(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await go.wait()
        writer.write(b"6\r\nsecond\r\n0\r\n\r\n")
        await writer.drain()

    return handler


@pytest.mark.anyio
async def test_chunked_body_arrives_as_it_is_sent() -> None:
    """A chunked body is handed out piece by piece as the server sends it, then b''."""
    go = asyncio.Event()

    handler = first_then_second(go)

    async with serve(handler) as server:
        p = pool(server)
        resp = await http1.post(p, "/x", {}, b"")
        assert await resp.read() == b"first"
        go.set()
        assert await resp.read() == b"second"
        assert await resp.read() == b""
        resp.close()
        assert await drain(p) == (200, b"firstsecond")  # the connection was reused for a second answer
        await p.aclose()
    assert server.connections == 1


@pytest.mark.anyio
async def test_interrupt_wakes_a_pending_read_and_leaves_the_answer_whole() -> None:
    """interrupt() wakes the read that waits with Interrupted, not a transport error; the body
    then goes on as it arrives, and an interrupt that came after the data is moot."""
    go = asyncio.Event()

    handler = first_then_second(go)

    async with serve(handler) as server:
        p = pool(server)
        resp = await http1.post(p, "/x", {}, b"")
        assert await resp.read() == b"first"
        pending = asyncio.ensure_future(resp.read())
        await asyncio.sleep(0)
        resp.interrupt()
        with pytest.raises(http1.Interrupted):
            await pending
        go.set()
        assert await resp.read() == b"second"  # the interruption was taken by the read it woke
        resp.interrupt()  # nothing waits, and the body is complete: the end is still the end
        assert await resp.read() == b""
        resp.close()
        assert await drain(p) == (200, b"firstsecond")  # the connection was reused for a second answer
        await p.aclose()
    assert server.connections == 1


@pytest.mark.anyio
async def test_a_body_without_length_ends_with_the_connection() -> None:
    """No length and not chunked: the body is what comes until the server closes."""

    async def handler(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\npart one, ")
        await writer.drain()
        writer.write(b"part two")
        writer.close()

    async with serve(handler) as server:
        p = pool(server)
        assert await drain(p) == (200, b"part one, part two")
        assert await drain(p) == (200, b"part one, part two")
        await p.aclose()
    assert server.connections == 2


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some servers send
    ],
)
async def test_compressed_answers_are_decoded(encoding: str, encode: Callable[[bytes], bytes]) -> None:
    """gzip and deflate (zlib-wrapped or raw) bodies come back decoded, as aiohttp's did."""
    text = b'{"text": "' + b"hello " * 200 + b'"}'
    async with serve(answer(encode(text), f"content-encoding: {encoding}")) as server:
        p = pool(server)
        assert await drain(p) == (200, text)
        assert await drain(p) == (200, text)  # decoder state does not leak into the next answer
        await p.aclose()


@pytest.mark.anyio
async def test_informational_answers_are_skipped() -> None:
    """A 100 Continue before the real answer is not the answer."""

    async def handler(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-real: yes\r\n\r\nok")
        await writer.drain()

    async with serve(handler) as server:
        p = pool(server)
        resp = await http1.post(p, "/x", {}, b"")
        assert (resp.status, resp.header("x-real"), await resp.read_all()) == (200, "yes", b"ok")
        resp.close()
        await p.aclose()


async def _close_at_once(request: bytes, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def _close_mid_body(request: bytes, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part")
    await writer.drain()
    writer.close()


async def _garbage(request: bytes, writer: asyncio.StreamWriter) -> None:
    writer.write(b"SPDY/9 what\r\n\r\n")
    await writer.drain()


@pytest.mark.anyio
async def test_errors_by_phase() -> None:
    """Closed before answering: Disconnected. Closed mid-body: PayloadError on read. Not HTTP:
    ProtocolError. Each connection is dropped, and the pool keeps working."""
    async with serve(_close_at_once) as server:
        p = pool(server)
        with pytest.raises(http1.Disconnected):
            await http1.post(p, "/x", {}, b"")
    async with serve(_close_mid_body) as server:
        p = pool(server)
        resp = await http1.post(p, "/x", {}, b"")
        assert await resp.read() == b"only part"
        with pytest.raises(http1.PayloadError):
            await resp.read()
        resp.close()
        with pytest.raises(http1.PayloadError):
            await (await http1.post(p, "/x", {}, b"")).read_all()
    async with serve(_garbage) as server:
        p = pool(server)
        with pytest.raises(http1.ProtocolError):
            await http1.post(p, "/x", {}, b"")
        assert p._open == 0


@pytest.mark.anyio
async def test_connect_errors() -> None:
    """A refused port is ConnectFailed with the OS error; a connect past connect_s is ConnectTimeout."""
    async with serve(answer(b"")) as server:
        port = server.port
    p = http1.Pool(f"http://127.0.0.1:{port}", 10, 30.0, 1.0)
    with pytest.raises(http1.ConnectFailed) as info:
        await http1.post(p, "/x", {}, b"")
    assert isinstance(info.value.os_error, ConnectionRefusedError)
    loop = asyncio.get_running_loop()

    async def hang(*args: Any, **kw: Any) -> Any:
        await asyncio.sleep(10)

    p = http1.Pool(f"http://127.0.0.1:{port}", 10, 30.0, 0.05)
    original = loop.create_connection
    loop.create_connection = hang  # type: ignore[method-assign]
    try:
        with pytest.raises(http1.ConnectTimeout):
            await http1.post(p, "/x", {}, b"")
    finally:
        loop.create_connection = original  # type: ignore[method-assign]
    assert p._open == 0


@pytest.mark.anyio
async def test_idle_connections_closed_by_the_server_or_expired_are_replaced() -> None:
    """A pooled connection the server closed, or one idle past keepalive_s, is not used again."""

    async def once(request: bytes, writer: asyncio.StreamWriter) -> None:
        await answer(b"{}")(request, writer)
        writer.close()  # without saying Connection: close

    async with serve(once) as server:
        p = pool(server)
        assert await drain(p) == (200, b"{}")
        await asyncio.sleep(0.05)
        assert await drain(p) == (200, b"{}")
        await p.aclose()
    assert server.connections == 2
    async with serve(answer(b"{}")) as server:
        p = pool(server, keepalive_s=0.01)
        await drain(p)
        await asyncio.sleep(0.05)
        await drain(p)
        await p.aclose()
    assert server.connections == 2


@pytest.mark.anyio
async def test_bytes_on_an_idle_connection_retire_it() -> None:
    """Unasked-for bytes on a pooled connection (a server's 408, say) mean it is not used again."""

    async def then_408(request: bytes, writer: asyncio.StreamWriter) -> None:
        await answer(b"{}")(request, writer)
        await asyncio.sleep(0.01)
        writer.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n")

    async with serve(then_408) as server:
        p = pool(server)
        assert await drain(p) == (200, b"{}")
        await asyncio.sleep(0.05)
        assert await drain(p) == (200, b"{}")
        await p.aclose()
    assert server.connections == 2


@pytest.mark.anyio
async def test_a_connection_closing_under_our_feet_is_a_disconnect() -> None:
    """A pooled connection the server is closing right now is skipped; one whose write fails
    (uvloop refuses writes on a handle it just closed) is a Disconnected, not a crash."""
    async with serve(answer(b"{}")) as server:
        p = pool(server)
        await drain(p)
        [conn] = p._idle
        assert conn.usable()
        assert conn.transport is not None

        def refuse(data: object) -> None:
            raise RuntimeError("unable to perform operation on <TCPTransport closed=True>")

        conn.transport.write = refuse  # type: ignore[method-assign]
        with pytest.raises(http1.Disconnected):
            await http1.post(p, "/x", {}, b"")
        assert p._open == 0 and conn.closed
        assert await drain(p) == (200, b"{}")
        await p.aclose()


@pytest.mark.anyio
async def test_the_limit_makes_callers_wait() -> None:
    """With limit 1 a second request waits for the first connection, then reuses it."""
    release = asyncio.Event()

    async def slow(request: bytes, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        await answer(b"{}")(request, writer)

    async with serve(slow) as server:
        p = pool(server, limit=1)
        first = asyncio.ensure_future(drain(p))
        second = asyncio.ensure_future(drain(p))
        await asyncio.sleep(0.05)
        assert len(server.requests) == 1 and not second.done()
        release.set()
        assert await first == (200, b"{}") and await second == (200, b"{}")
        await p.aclose()
    assert server.connections == 1


@pytest.mark.anyio
async def test_cancelled_requests_close_their_connection_and_free_the_slot() -> None:
    """Cancelled while waiting for an answer: the connection is closed at once, and its slot (and a
    waiter's turn) passes on."""
    hold = asyncio.Event()

    async def hang(request: bytes, writer: asyncio.StreamWriter) -> None:
        if len(server.requests) == 1:
            await hold.wait()
        await answer(b"{}")(request, writer)

    async with serve(hang) as server:
        p = pool(server, limit=1)
        stuck = asyncio.ensure_future(drain(p))
        await asyncio.sleep(0.05)
        waiting = asyncio.ensure_future(drain(p))
        await asyncio.sleep(0.01)
        stuck.cancel()
        assert await waiting == (200, b"{}")
        assert server.connections == 2 and p._open == 1
        hold.set()
        await p.aclose()


@pytest.mark.anyio
async def test_newlines_in_headers_are_refused() -> None:
    """Header injection is refused before anything is sent, as a transport error (the provider
    maps it) naming the header, never quoting the value (it may be a credential)."""
    async with serve(answer(b"{}")) as server:
        p = pool(server)
        with pytest.raises(http1.BadHeader) as refused:
            await http1.post(p, "/x", {"x-evil": "a-secret\r\nInjected: 1"}, b"")
        with pytest.raises(http1.BadHeader, match="name"):
            await http1.post(p, "/x", {"x-evil\n": "v"}, b"")
    assert server.requests == []
    assert str(refused.value) == "CR or LF in the value of request header x-evil"


@pytest.mark.anyio
async def test_aclose_closes_idle_connections_and_refuses_new_requests() -> None:
    """After aclose() idle connections are gone and a request fails as Disconnected."""
    async with serve(answer(b"{}")) as server:
        p = pool(server)
        await drain(p)
        await p.aclose()
        await asyncio.sleep(0.05)
        assert server.closed == 1
        with pytest.raises(http1.Disconnected):
            await http1.post(p, "/x", {}, b"")


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for localhost and its key, made with the openssl command line."""
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.anyio
async def test_tls_to_an_https_provider_verifies_its_certificate(tmp_path: Path) -> None:
    """Real providers are HTTPS: the request goes over TLS with SNI and keep-alive, and a
    certificate the client does not trust is a connect failure, not an answer."""
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    server = Server(answer(b'{"ok": true}', "content-type: application/json"))
    tcp = await asyncio.start_server(server._serve, "127.0.0.1", 0, ssl=server_ctx)
    port = tcp.sockets[0].getsockname()[1]
    try:
        trusting = ssl.create_default_context(cafile=str(cert))
        p = http1.Pool(f"https://localhost:{port}", 10, 30.0, 1.0, ssl_context=trusting)
        assert await drain(p) == (200, b'{"ok": true}')
        assert await drain(p) == (200, b'{"ok": true}')
        assert server.connections == 1, "the TLS connection is kept alive and reused"
        assert server.requests[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
        await p.aclose()
        untrusting = http1.Pool(f"https://localhost:{port}", 10, 30.0, 1.0)  # the system's CAs only
        with pytest.raises(http1.TransportError):
            await drain(untrusting)
        await untrusting.aclose()
    finally:
        tcp.close()
        for task in server.tasks:
            task.cancel()
        await asyncio.gather(*server.tasks, return_exceptions=True)


@pytest.mark.anyio
async def test_headers_that_are_not_ascii_are_dropped() -> None:
    """An upstream header with bytes beyond ASCII (UTF-8 text, raw Latin-1) never reaches the
    router as a value it could fail to re-encode: it is dropped; the others arrive."""

    async def handler(request: bytes, writer: asyncio.StreamWriter) -> None:
        head = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-ok: fine\r\n"
        writer.write(head + "x-utf8: 5 € left\r\n".encode() + b"x-raw: caf\xe9\r\n\r\n{}")
        await writer.drain()

    async with serve(handler) as server:
        p = pool(server)
        resp = await http1.post(p, "/v1/chat/completions", {}, b"{}")
        assert (resp.header("x-ok"), resp.header("x-utf8"), resp.header("x-raw")) == ("fine", None, None)
        assert await resp.read_all() == b"{}"
        resp.close()
        await p.aclose()
