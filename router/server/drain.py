"""Graceful drain: what SIGTERM changes inside one router process.

1. `begin()`: readiness answers 503 at once, so the gateway in front stops sending; requests
   that still arrive are served as usual during `server.drain_grace_s`.
2. The server then stops accepting connections and waits up to `server.drain_timeout_s` for
   in-flight requests and streams to finish (uvicorn's graceful shutdown; see serve.py).
3. `abort_all()` (a second SIGTERM, or the timeout): every stream still open ends now with a
   well-formed error event in its client's format, never a silently cut connection.

One `Drain` per app; the endpoint registers each stream (its abort) while it is being relayed.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

log = structlog.get_logger("router.server.drain")


Abort = Callable[[str], None]  # ends one stream now with an error event, for `reason`


class Drain:
    __slots__ = ("_streams", "draining")

    def __init__(self) -> None:
        self.draining = False
        self._streams: set[Abort] = set()

    def begin(self) -> None:
        if not self.draining:
            self.draining = True
            log.warning("drain_started", streams=len(self._streams))

    def register(self, stream: Abort) -> None:
        self._streams.add(stream)

    def unregister(self, stream: Abort) -> None:
        self._streams.discard(stream)

    @property
    def streams(self) -> int:
        return len(self._streams)

    def abort_all(self, reason: str = "the router is shutting down") -> None:
        """End every open stream with an error event (each relay writes its own tail)."""
        if self._streams:
            log.warning("drain_aborting_streams", streams=len(self._streams))
        for stream in list(self._streams):
            stream(reason)


# `router serve` builds its app through a factory in each worker; the signal handling in
# serve.py and the app meet here, one per process.
PROCESS_DRAIN = Drain()
