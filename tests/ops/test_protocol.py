"""Slow and oversized clients over real loopback sockets (part of the hardening work): raw sockets
as the client, the router served by `RouterHttpProtocol` with timeouts of a few tenths of a
second. Every case ends with the connection closed by the router, never a hang."""

from __future__ import annotations

import socket
import time
from typing import Any

import orjson
import pytest

from router.ops.conn_clock import STATS
from tests.conftest import BODIES, ConfigFactory, RouterServer

CHAT, MESSAGES = "/v1/chat/completions", "/v1/messages"
T = 0.3  # every timeout under test
LIMITS = {"header_timeout_s": T, "body_timeout_s": T, "keepalive_timeout_s": T}


def start(router_server: Any, config_factory: ConfigFactory, **server: Any) -> RouterServer:
    rs: RouterServer = router_server(config_factory({"m": [("alpha", 0)]}, server={**LIMITS, **server}))
    rs.client.close()  # its kept-alive connection would count against max_connections
    rs.wait_until(lambda: STATS.open == 0)
    return rs


def connect(rs: RouterServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", rs.server.port), timeout=5)


def read_to_eof(sock: socket.socket, timeout: float = 3.0) -> bytes:
    """Everything until the router closes; fails (socket.timeout) if it never does."""
    sock.settimeout(timeout)
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def read_response(sock: socket.socket) -> bytes:
    """One whole response with a Content-Length, the connection left open."""
    sock.settimeout(5)
    raw = b""
    while b"\r\n\r\n" not in raw:
        raw += sock.recv(65536)
    head_, _, body = raw.partition(b"\r\n\r\n")
    length = int(status_and_body(head_ + b"\r\n\r\n")[1]["content-length"])
    while len(body) < length:
        body += sock.recv(65536)
    return head_ + b"\r\n\r\n" + body


def status_and_body(raw: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, orjson.loads(body) if body else None


def head(path: str, length: int | None = None, extra: str = "") -> bytes:
    cl = f"content-length: {length}\r\n" if length is not None else ""
    return f"POST {path} HTTP/1.1\r\nhost: r\r\ncontent-type: application/json\r\n{cl}{extra}\r\n".encode()


@pytest.mark.parametrize("path", [CHAT, MESSAGES])
def test_headers_dribbled_a_byte_at_a_time_get_408_at_the_header_deadline(fakes, config_factory, router_server, path):
    """The request line, then a header byte every 50 ms, which does not move the header
    deadline: 408 (the path's envelope) and closed at ~T after the open, mid-dribble."""
    rs = start(router_server, config_factory)
    before = STATS.closed["header_timeout"]
    request_line, _, rest = head(path, 10).partition(b"\r\n")
    with connect(rs) as sock:
        t0 = time.monotonic()
        sock.sendall(request_line + b"\r\n")
        sock.settimeout(0.05)
        got = b""
        for byte in rest[:-2]:  # never the blank line
            try:
                sock.send(bytes([byte]))
                got = sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            break
        raw = got + read_to_eof(sock)
        elapsed = time.monotonic() - t0
    status, headers, body = status_and_body(raw)
    assert status == 408 and headers["connection"] == "close" and T - 0.05 <= elapsed < T + 0.5
    if path == MESSAGES:
        assert body["type"] == "error" and "headers did not arrive" in body["error"]["message"]
    else:
        assert body["error"]["type"] == "invalid_request_error" and body["error"]["code"] == "request_timeout"
    assert STATS.closed["header_timeout"] == before + 1
    assert fakes.served("alpha") == 0


def test_a_body_shorter_than_its_content_length_gets_408_at_the_body_deadline(fakes, config_factory, router_server):
    """Content-Length 100, 10 bytes sent, then silence: 408 and closed after T; nothing upstream."""
    rs = start(router_server, config_factory)
    with connect(rs) as sock:
        sock.sendall(head(CHAT, 100) + b'{"model": ')
        t0 = time.monotonic()
        raw = read_to_eof(sock)
        elapsed = time.monotonic() - t0
    status, _, body = status_and_body(raw)
    assert status == 408 and "body stalled" in body["error"]["message"] and T - 0.05 <= elapsed < T + 0.5
    assert fakes.served("alpha") == 0


def test_a_body_cut_by_the_clients_eof_is_closed_without_an_answer(fakes, config_factory, router_server):
    rs = start(router_server, config_factory, body_timeout_s=5)
    with connect(rs) as sock:
        sock.sendall(head(CHAT, 100) + b'{"model": ')
        sock.shutdown(socket.SHUT_WR)
        t0 = time.monotonic()
        assert read_to_eof(sock) == b"" and time.monotonic() - t0 < 1
    assert fakes.served("alpha") == 0


def test_a_slow_body_that_keeps_moving_finishes(fakes, config_factory, router_server):
    """Eight pieces 0.12 s apart: a second in all, past the header and three body timeouts, but
    never T without a byte: 200."""
    rs = start(router_server, config_factory)
    body = orjson.dumps({**BODIES[CHAT], "user": "x" * 200})
    size = len(body) // 8 + 1
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    with connect(rs) as sock:
        sock.sendall(head(CHAT, len(body)))
        for piece in pieces:
            time.sleep(0.12)
            sock.sendall(piece)
        status, _, answer = status_and_body(read_response(sock))
    assert status == 200 and answer["object"] == "chat.completion"


def test_idle_connections_are_closed_silently(fakes, config_factory, router_server):
    """Kept alive after an answer, or opened and never used: closed after T, with no bytes."""
    rs = start(router_server, config_factory)
    before = STATS.closed["idle"]
    with connect(rs) as used, connect(rs) as unused:
        used.sendall(b"GET /health/live HTTP/1.1\r\nhost: r\r\n\r\n")
        answer = read_response(used)
        assert answer.startswith(b"HTTP/1.1 200") and b"connection: close" not in answer.lower()
        t0 = time.monotonic()
        assert read_to_eof(used) == b"" and T - 0.05 <= time.monotonic() - t0 < T + 0.5
        assert read_to_eof(unused) == b""
    assert STATS.closed["idle"] == before + 2
    rs.wait_until(lambda: STATS.open == 0)


def test_connections_over_the_cap_get_503_at_once_and_the_count_comes_back(fakes, config_factory, router_server):
    """Three held (max_connections 3): a fourth is answered 503 and closed before it sends a
    byte; once the held ones time out, the count is back to zero and a new one is served."""
    rs = start(router_server, config_factory, max_connections=3, header_timeout_s=0.6)
    refused = STATS.closed["refused"]
    held = [connect(rs) for _ in range(3)]
    try:
        rs.wait_until(lambda: STATS.open == 3)
        with connect(rs) as extra:
            t0 = time.monotonic()
            raw = read_to_eof(extra)
            assert time.monotonic() - t0 < 0.3
        status, headers, body = status_and_body(raw)
        assert status == 503 and headers["retry-after"] == "1" and headers["connection"] == "close"
        assert body["error"]["code"] == "too_many_connections"
        with connect(rs) as eager:  # its request already sent: the 503 still reaches it
            eager.sendall(b"GET /health/live HTTP/1.1\r\nhost: r\r\n\r\n")
            assert read_to_eof(eager).startswith(b"HTTP/1.1 503")
        for sock in held:
            assert read_to_eof(sock) == b""  # idle: closed at the header deadline, silently
    finally:
        for sock in held:
            sock.close()
    rs.wait_until(lambda: STATS.open == 0)
    with connect(rs) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nhost: r\r\nconnection: close\r\n\r\n")
        raw = read_to_eof(sock)
    assert raw.startswith(b"HTTP/1.1 200")
    assert b"router_client_connections 1.0" in raw, "the scrape's own connection"
    assert STATS.closed["refused"] == refused + 2
    assert b'router_client_connections_closed_total{reason="refused"} %d.0' % (refused + 2) in raw


@pytest.mark.parametrize("complete", [True, False])
def test_headers_over_the_limit_get_431(fakes, config_factory, router_server, complete):
    """max_header_bytes 2048: a 4 KiB header, whole or never ended, is refused with 431."""
    rs = start(router_server, config_factory, max_header_bytes=2048, header_timeout_s=5)
    data = head(CHAT, 2, "x-big: " + "a" * 4096 + "\r\n") + b"{}"
    with connect(rs) as sock:
        sock.sendall(data if complete else data[:3000])
        t0 = time.monotonic()
        raw = read_to_eof(sock)
        assert time.monotonic() - t0 < 1
    status, _, body = status_and_body(raw)
    assert status == 431 and "exceed 2048 bytes" in body["error"]["message"]
    assert fakes.served("alpha") == 0


def test_a_header_sent_in_pieces_is_refused_at_the_limit_not_at_its_end(fakes, config_factory, router_server):
    """One header value arriving 1 KiB at a time and never ended: 431 once past 64 KiB (the
    default), well before the header timeout; it is not buffered until it ends."""
    rs = start(router_server, config_factory, header_timeout_s=5)
    with connect(rs) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nx-endless: ")
        for _ in range(64):  # with the line before, just past 64 KiB: all read before the close
            sock.sendall(b"a" * 1024)
        t0 = time.monotonic()
        raw = read_to_eof(sock)
        assert time.monotonic() - t0 < 1
    status, _, body = status_and_body(raw)
    assert status == 431 and "exceed 65536 bytes" in body["error"]["message"]


def test_a_chunked_body_over_max_body_bytes_gets_413(fakes, config_factory, router_server):
    """max_body_bytes 65536 (the test config): a chunked upload of 100 KiB gets the 413 of a
    declared one, in the envelope; nothing upstream."""
    rs = start(router_server, config_factory)
    piece = b"a" * 4096
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(25)) + b"0\r\n\r\n"
    with connect(rs) as sock:
        # Kept alive: the rest of the upload is read and dropped, then the idle timeout closes.
        sock.sendall(head(CHAT, None, "transfer-encoding: chunked\r\n") + chunks)
        raw = read_to_eof(sock)
    status, _, body = status_and_body(raw)
    assert status == 413 and body["error"]["type"] == "invalid_request_error" and "65536" in body["error"]["message"]
    assert fakes.served("alpha") == 0


def test_a_body_longer_than_its_content_length_gets_400_and_a_close(fakes, config_factory, router_server):
    """Content-Length 2 and 30 bytes: the rest reads as a broken next request: 400, closed."""
    rs = start(router_server, config_factory)
    with connect(rs) as sock:
        sock.sendall(head(CHAT, 2) + b'{}{"model": "m", "messages": []}')
        t0 = time.monotonic()
        raw = read_to_eof(sock)
        assert time.monotonic() - t0 < 1
    status, headers, body = status_and_body(raw)
    assert status == 400 and headers["connection"] == "close"
    assert body["error"]["type"] == "invalid_request_error"
    assert fakes.served("alpha") == 0
