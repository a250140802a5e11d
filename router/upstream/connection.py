"""One keep-alive HTTP/1.1 client connection as an asyncio Protocol: answers parsed by httptools
(llhttp, the parser uvicorn runs for the router's own server side), bodies handed out as they
arrive, gzip and deflate decoded; and the transport's errors. `http1.py` pools these."""

from __future__ import annotations

import asyncio
import collections
import zlib

import httptools

# Body bytes buffered before the socket stops being read (aiohttp's default read buffer).
_HIGH_WATER = 2**16


class TransportError(Exception):
    """Base of this module's errors."""


class ConnectFailed(TransportError):
    """The TCP (or TLS) connection could not be made; carries the OS error."""

    def __init__(self, os_error: OSError, target: str) -> None:
        super().__init__(f"cannot connect to {target}: {os_error}")
        self.os_error = os_error


class ConnectTimeout(TransportError):
    """No connection within the connect timeout."""


class Disconnected(TransportError):
    """The server closed the connection before the answer's headers were complete."""


class PayloadError(TransportError):
    """The answer's body broke off (connection lost mid-body, an undecodable encoding)."""


class ProtocolError(TransportError):
    """What the server sent is not an HTTP/1.1 answer."""


class Interrupted(Exception):
    """A read woken by `interrupt()` (the reader's own deadline or shutdown), not by the server:
    not a transport error, and the connection is still whole."""


class _Decoder:
    """Incremental gzip or deflate decoding of a body."""

    __slots__ = ("_z",)

    def __init__(self, gzip: bool) -> None:
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzip else None

    def feed(self, data: bytes) -> bytes:
        if self._z is None:
            # "deflate" is zlib-wrapped by the RFC and often raw in practice: the first byte tells.
            self._z = zlib.decompressobj(zlib.MAX_WBITS if data[0] & 0x0F == 8 else -zlib.MAX_WBITS)
        return self._z.decompress(data)

    def flush(self) -> bytes:
        return self._z.flush() if self._z is not None else b""


class Connection(asyncio.Protocol):
    """One keep-alive connection, one request at a time. The parser's callbacks fill in the
    current answer; `read` hands its body out."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.in_use = False  # between begin() and the pool taking it back
        self.idle_since = 0.0
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.keep_alive = False  # the answer is complete and the connection may carry another
        self._parser = httptools.HttpResponseParser(self)
        self._headers_ready: asyncio.Future[None] | None = None  # None: no request yet
        self._waiter: asyncio.Future[None] | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._paused = False
        self._complete = False
        self._until_close = False  # no length and not chunked: the body ends with the connection
        self._informational = False  # inside a 1xx answer, which is skipped
        self._decoder: _Decoder | None = None
        self._error: TransportError | None = None
        self._interrupted = False
        # Made inside the loop (a protocol factory); kept, as on Python 3.11 every
        # get_running_loop() is a getpid() system call, and read() needs it per chunk.
        self._loop = asyncio.get_running_loop()

    def begin(self) -> asyncio.Future[None]:
        """Reset for a new request; the future resolves once the answer's headers are in."""
        self.in_use = True
        self.status = 0
        self.headers = []
        self.keep_alive = self._complete = self._until_close = self._informational = False
        self._chunks.clear()
        self._buffered = 0
        self._decoder = None
        self._error = None
        self._interrupted = False
        self._headers_ready = self._loop.create_future()
        return self._headers_ready

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.in_use:  # unasked-for bytes on an idle connection (a 408, say): never reuse it
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"invalid HTTP answer: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        ready = self._headers_ready
        if ready is None or self._complete or self._error is not None:
            self._wake()
        elif not ready.done():
            self._fail(Disconnected("the server closed the connection before answering"))
        elif self._until_close and exc is None:
            self._finish()  # a body without a length ends here
        else:
            self._fail(PayloadError("the connection broke before the answer was complete"))

    # --- httptools callbacks ---

    def on_header(self, name: bytes, value: bytes) -> None:
        # A header that is not plain ASCII is dropped: HTTP fields are ASCII, and a value the
        # router might pass on (content-type, retry-after, request-id) must re-encode safely.
        if value.isascii() and name.isascii():
            self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:
            self._informational = True  # 100 Continue and the like: the real answer follows
            self.headers = []
            return
        self.status = status
        sized = False
        encoding = ""
        for name, value in self.headers:
            lower = name.lower()
            if lower == "content-length":
                sized = True
            elif lower == "transfer-encoding":
                sized = sized or "chunked" in value.lower()
            elif lower == "content-encoding":
                encoding = value.strip().lower()
        self._until_close = not sized and status not in (204, 304)
        if encoding in ("gzip", "x-gzip", "deflate"):
            self._decoder = _Decoder(gzip=encoding != "deflate")
        if self._headers_ready is not None and not self._headers_ready.done():
            self._headers_ready.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self._informational:
            return
        if self._decoder is not None:
            try:
                body = self._decoder.feed(body)
            except zlib.error as exc:
                self._fail(PayloadError(f"cannot decode the answer: {exc}"))
                self.close()
                return
            if not body:
                return
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        self._finish()
        self.keep_alive = self._complete and not self._until_close and self._parser.should_keep_alive()

    # --- the answer ---

    def _finish(self) -> None:
        if self._decoder is not None:
            try:
                tail = self._decoder.flush()
            except zlib.error as exc:
                self._fail(PayloadError(f"cannot decode the answer: {exc}"))
                return
            if tail:
                self._chunks.append(tail)
        self._complete = True
        self._wake()

    def _fail(self, error: TransportError) -> None:
        if self._error is None and not self._complete:
            self._error = error
        ready = self._headers_ready
        if ready is not None and not ready.done():
            ready.set_exception(error)
            ready.exception()  # marked retrieved: a caller that was cancelled meanwhile must not warn
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def usable(self) -> bool:
        """Open, and not on its way to closing (the server's FIN may be in, connection_lost not yet)."""
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    def at_eof(self) -> bool:  # the whole answer has arrived and has been read
        return self._complete and not self._chunks

    def interrupt(self) -> None:
        """Wake the pending `read()` (or the next one that would wait) with `Interrupted`. A
        reader's own timer calls this: one timer per stream re-armed as it goes is far cheaper
        than a cancel scope around every read."""
        self._interrupted = True
        self._wake()

    async def read(self) -> bytes:
        """Everything buffered now, waiting when nothing is; b"" at the end of the body."""
        while not self._chunks:
            if self._complete:
                return b""
            if self._error is not None:
                raise self._error
            if self.closed:
                raise PayloadError("the connection broke before the answer was complete")
            if self._interrupted:
                self._interrupted = False
                raise Interrupted
            self._waiter = self._loop.create_future()
            await self._waiter
        self._interrupted = False  # data came first: the interruption is moot
        data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    async def read_all(self) -> bytes:
        parts = []
        while data := await self.read():
            parts.append(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True
