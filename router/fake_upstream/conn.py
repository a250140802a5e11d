"""The fake provider's connection handling: one request's receive side (body, disconnect
watch, interruptible waits) and the deliberate connection resets, kept quiet in uvicorn's log."""

from __future__ import annotations

import asyncio
import logging

from starlette.types import Receive

_SHUTDOWN = "shutdown"
_DISCONNECT = "disconnect"


class ResetConnection(Exception):
    """Raised after the headers were sent: uvicorn then closes the socket mid-body, which the
    client sees as an incomplete chunked read (not a clean end of the stream)."""


class ServerClosing(ResetConnection):
    """The server is stopping while a request hangs: drop its connection instead of waiting."""


class _QuietReset(logging.Filter):
    """Keep uvicorn from logging a traceback for the connection resets we cause on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ResetConnection))


def install_log_filter() -> None:
    """Idempotent; must run after uvicorn configured its loggers."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietReset) for f in logger.filters):
        logger.addFilter(_QuietReset())


class Conn:
    """One request's receive side: reads the body, then notices a client disconnect while we wait."""

    __slots__ = ("_gone", "_receive", "_waiting", "_watcher")

    def __init__(self, receive: Receive, waiting: set[Conn]) -> None:
        self._receive = receive
        self._waiting = waiting  # the server's waiting requests, so a stop can interrupt them
        self._gone: asyncio.Future[str] | None = None
        self._watcher: asyncio.Task[None] | None = None

    async def read_body(self) -> bytes | None:
        """The whole request body, or None if the client went away first."""
        parts = []
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                return None
            parts.append(message.get("body", b""))
            if not message.get("more_body", False):
                return parts[0] if len(parts) == 1 else b"".join(parts)

    async def wait(self, seconds: float | None) -> bool:
        """Sleep `seconds` (None = forever). True if the client disconnected first; raises
        ServerClosing if the server is stopping. The watcher task exists only once we wait."""
        gone = self._gone
        if gone is None:
            loop = asyncio.get_running_loop()
            gone = self._gone = loop.create_future()
            self._watcher = loop.create_task(self._watch(gone))
            self._waiting.add(self)
        if not gone.done():
            await asyncio.wait((gone,), timeout=seconds)
        if not gone.done():
            return False
        if gone.result() == _SHUTDOWN:
            raise ServerClosing
        return True

    async def _watch(self, gone: asyncio.Future[str]) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        if not gone.done():
            gone.set_result(_DISCONNECT)

    def interrupt(self) -> None:
        if self._gone is not None and not self._gone.done():
            self._gone.set_result(_SHUTDOWN)

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            self._waiting.discard(self)
