"""One Redis connection per process, pipelined: every call is queued the moment it is made, the
calls of one turn of the event loop are written together by one writer task, and their answers
are read, in order, by one reader task. No pool and no per-call connection checkout (redis-py's
generic command path cost more CPU per request than the rest of the router): a call is its
command, packed once by the caller, and a future the reader resolves.

Under load a round trip so carries many requests' admits and settles: one write, one read of the
answers. No timer holds a call back: the write goes out in the next turn of the loop, before
anything read meanwhile is handled.

Failures. The connection is broken, and every call in flight on it fails with a redis-py
ConnectionError or TimeoutError (the caller's retry policy decides what then), when a write or a
read fails, the server closes it (a restart: the reader sees the close at once, so the next call
reconnects instead of writing into a dead socket), or the oldest call has waited `timeout_s` for
its answer (a hung server: a later answer could no longer be matched to its call). The next call
opens a new connection (connect and handshake within `timeout_s`); calls made meanwhile wait for
that one connect rather than each opening their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Sequence
from typing import Any

import redis.asyncio
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


class Link:
    """One open connection, the calls in flight on it (oldest first), the task writing what the
    calls of one turn of the event loop packed, and the task reading their answers."""

    def __init__(self, conn: AbstractConnection, timeout_s: float) -> None:
        self._conn = conn
        self._timeout = timeout_s
        self._loop = asyncio.get_running_loop()
        self._pending: deque[tuple[asyncio.Future[Any], float]] = deque()  # (answer, deadline)
        self._out: list[bytes] = []  # packed, not yet written
        self._on_write: list[asyncio.Future[None]] = []  # resolved once what is queued now is written
        self._wake: asyncio.Future[None] | None = None  # the writer waits on it for calls
        self._timer: asyncio.TimerHandle | None = None
        self.broken: BaseException | None = None
        self._writer = self._loop.create_task(self._write())
        self._reader = self._loop.create_task(self._read())

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        """Queue one packed command for this turn's write; the future holds its answer (a
        ResponseError for an error answer, a ConnectionError or TimeoutError when the link breaks)."""
        if self.broken is not None:
            raise RedisConnectionError(f"the Redis connection broke: {self.broken!r}")
        fut = self._loop.create_future()
        deadline = self._loop.time() + self._timeout
        self._pending.append((fut, deadline))
        self._out.append(packed)
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)
        if self._timer is None:
            self._timer = self._loop.call_at(deadline, self._check)
        return fut

    def written(self) -> asyncio.Future[None]:
        """Resolves once everything queued so far has been handed to the socket (or the link
        broke): a caller that must know Redis has its call before it tells anyone else waits on
        this, not on the answer."""
        fut = self._loop.create_future()
        if self.broken is not None or not self._out:
            fut.set_result(None)
        else:
            self._on_write.append(fut)
        return fut

    def idle(self) -> bool:
        return not self._pending

    async def drained(self) -> None:
        """Once every call sent so far has its answer (or has failed)."""
        if self._pending:
            await asyncio.wait([self._pending[-1][0]])

    async def _write(self) -> None:
        """Every call queued in one turn of the event loop, in one write."""
        try:
            while True:
                while not self._out:
                    self._wake = self._loop.create_future()
                    await self._wake
                if not self._conn.is_connected:  # closed by a failed read: never let redis-py reconnect it
                    raise RedisConnectionError("the Redis connection is closed")
                data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
                waiters, self._on_write = self._on_write, []
                self._out.clear()
                await self._conn.send_packed_command(data, check_health=False)
                _resolve(waiters)
        except BaseException as exc:  # the write failed, or fail() cancelled this task
            self.fail(exc)

    async def _read(self) -> None:
        pending, read = self._pending, self._conn.read_response
        try:
            while True:
                error: ResponseError | None = None
                try:
                    reply = await read(timeout=math.inf)  # no per-read timer: _check watches the oldest call
                except ResponseError as exc:  # an error answer to one call; the connection is fine
                    reply, error = None, exc
                if not pending:
                    raise RedisConnectionError("Redis sent an answer to no call")
                fut = pending.popleft()[0]
                if fut.done():  # its caller was cancelled
                    continue
                if error is None:
                    fut.set_result(reply)
                else:
                    _set_exception(fut, error)
        except BaseException as exc:  # the connection failed, or fail() cancelled this task
            self.fail(exc)
        finally:
            with contextlib.suppress(Exception):  # already closed, mostly: redis-py closes on a failed read
                await self._conn.disconnect(nowait=True)

    def _check(self) -> None:
        """The oldest call's deadline: passed, the server is taken as hung; else wait for the next."""
        self._timer = None
        if self.broken is not None or not self._pending:
            return
        deadline = self._pending[0][1]
        if deadline <= self._loop.time():
            self.fail(RedisTimeoutError(f"no answer from Redis within {self._timeout} s"))
        else:
            self._timer = self._loop.call_at(deadline, self._check)

    def fail(self, exc: BaseException) -> None:
        """Break the link: every call in flight fails with a ConnectionError or TimeoutError, and the
        connection is closed (redis-py's read and write disconnect when their task is cancelled)."""
        if self.broken is not None:
            return
        self.broken = exc
        error = exc if isinstance(exc, (RedisError, OSError)) else RedisConnectionError(f"closed: {exc!r}")
        self._out.clear()
        waiters, self._on_write = self._on_write, []
        _resolve(waiters)  # their calls fail below, each through its own answer
        while self._pending:
            fut = self._pending.popleft()[0]
            if not fut.done():
                _set_exception(fut, error)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        current = asyncio.current_task()
        for task in (self._writer, self._reader):
            if task is not current:
                task.cancel()

    async def aclose(self) -> None:
        self.fail(RedisConnectionError("closed by the router"))
        await asyncio.gather(self._writer, self._reader, return_exceptions=True)
        await self._conn.disconnect(nowait=True)


def _resolve(waiters: list[asyncio.Future[None]]) -> None:
    for fut in waiters:
        if not fut.done():  # its caller may have been cancelled
            fut.set_result(None)


def _set_exception(fut: asyncio.Future[Any], exc: BaseException) -> None:
    fut.set_exception(exc)
    fut.exception()  # marks it retrieved: a caller that gave up must not make asyncio log it


class Channel:
    """The process's way to Redis: the live Link, opened again after it breaks."""

    def __init__(self, url: str, timeout_s: float, greeting: Sequence[bytes] = ()) -> None:
        self._timeout = timeout_s
        self._greeting = greeting  # packed commands sent first on every new connection
        # Only a connection factory (its URL parsing: host, port, password, db, TLS, unix socket):
        # the connections are ours, never pooled.
        self._factory = redis.asyncio.ConnectionPool.from_url(
            url,
            socket_connect_timeout=timeout_s,
            socket_timeout=None,  # the Link times the calls; a per-read timer would cost every answer
            # The one retry is the backend's, visible and counted; redis-py's would hide how long a
            # call may take.
            retry=Retry(NoBackoff(), 0),
            protocol=2,  # RESP2: no push messages interleaved with the answers
        )
        self._link: Link | None = None
        self._connecting: asyncio.Task[Link] | None = None

    def live(self) -> Link | None:
        """The open link, if there is one (no waiting)."""
        link = self._link
        return link if link is not None and link.broken is None else None

    async def link(self) -> Link:
        """The open link, or a new one (connected within timeout_s, shared by every caller waiting)."""
        link = self.live()
        if link is not None:
            return link
        if self._connecting is None:
            self._connecting = asyncio.get_running_loop().create_task(self._connect())
            self._connecting.add_done_callback(_retrieve)
        return await asyncio.shield(self._connecting)

    async def send(self, packed: bytes) -> asyncio.Future[Any]:
        link = self.live()
        return (link or await self.link()).send(packed)

    async def _connect(self) -> Link:
        try:
            conn = self._factory.connection_class(**self._factory.connection_kwargs)
            try:
                async with asyncio.timeout(self._timeout):
                    await conn.connect_check_health(check_health=False, retry_socket_connect=False)
            except BaseException:
                await conn.disconnect(nowait=True)
                raise
            link = self._link = Link(conn, self._timeout)
            for packed in self._greeting:  # ahead of every call, in order; what they answer is not needed
                link.send(packed).add_done_callback(_retrieve)
            return link
        finally:
            self._connecting = None

    async def drained(self) -> None:
        if (link := self.live()) is not None:
            await link.drained()

    async def aclose(self) -> None:
        if self._connecting is not None:
            await asyncio.gather(self._connecting, return_exceptions=True)
        if self._link is not None:
            await self._link.aclose()
            self._link = None
        await self._factory.disconnect()

    def __repr__(self) -> str:
        link = self.live()
        state = "closed" if link is None else ("idle" if link.idle() else "busy")
        return f"Channel({self._factory.connection_kwargs.get('host', 'unix')}, {state})"


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()  # nobody may be waiting: a failure is theirs to see, not asyncio's log's
