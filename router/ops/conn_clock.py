"""When the read side of one client connection gives up, and the counts behind the connection
metrics. Pure: times are passed in (the protocol passes its loop's clock), so tests need no
sockets and no sleeps. The protocol that drives these is `router.ops.protocol`.

A connection reads in three phases, each with its own limit:
- IDLE, between requests: the keep-alive timeout once the last response is complete, none while
  a response is still owed (the app's own deadlines bound that); a new connection waits here for
  its first byte, within the header timeout counted from its open;
- HEAD, from the request's first byte (a new connection: its open; a request pipelined behind
  an unfinished response: that response's end) until its headers are complete: one fixed
  deadline, which bytes arriving do not move (a client sending a byte at a time gains nothing);
- BODY, until the request is whole: the longest silence between two reads. A slow upload that
  keeps moving finishes. While the app is not reading (the transport paused), the silence is
  not the client's and the deadline moves on.
"""

from __future__ import annotations

import enum
import math

INF = math.inf
# A timer may fire a hair before its deadline (uvloop rounds to milliseconds): within this, it
# has expired, instead of being rescheduled for a fraction of a millisecond again and again.
SLACK_S = 0.002


class Phase(enum.Enum):
    IDLE = "idle"
    HEAD = "head"
    BODY = "body"


class Expiry(enum.Enum):
    """Why a connection was closed by a timeout (the `reason` label of the metric)."""

    IDLE = "idle"  # no byte of a next request: closed silently
    HEADER = "header_timeout"  # 408 when no answer has begun
    BODY = "body_timeout"  # 408 when no answer has begun


_EXPIRY = {Phase.IDLE: Expiry.IDLE, Phase.HEAD: Expiry.HEADER, Phase.BODY: Expiry.BODY}


class ReadClock:
    """The phase of a connection's read side and its deadline (`INF`: none). The protocol calls
    the transitions and, when its timer fires, `expired`."""

    __slots__ = ("_body_s", "_fresh", "_header_s", "_idle_s", "deadline", "phase")

    def __init__(self, header_s: float, body_s: float, idle_s: float, now: float) -> None:
        self._header_s, self._body_s, self._idle_s = header_s, body_s, idle_s
        self.phase = Phase.IDLE
        self.deadline = now + header_s  # the first request's headers: counted from the open
        self._fresh = True

    def begin(self, now: float, owed: bool) -> None:
        """A request's first byte. `owed`: an earlier response is not finished (pipelining)."""
        self.phase = Phase.HEAD
        if owed:
            self.deadline = INF  # counted from that response's end (`answered`)
        elif not self._fresh:
            self.deadline = now + self._header_s
        self._fresh = False

    def headers_done(self, now: float) -> None:
        self.phase = Phase.BODY
        self.deadline = now + self._body_s

    def progress(self, now: float) -> None:
        """Body bytes arrived (the protocol calls this only in BODY: the hot path)."""
        self.deadline = now + self._body_s

    def message_done(self, now: float, owed: bool) -> None:
        """The request is whole; `owed`: its response (or an earlier one) is not finished."""
        self.phase = Phase.IDLE
        self.deadline = INF if owed else now + self._idle_s

    def answered(self, now: float) -> None:
        """The last owed response is complete. A body still arriving keeps its deadline."""
        if self.phase is Phase.IDLE:
            self.deadline = now + self._idle_s
        elif self.phase is Phase.HEAD and self.deadline == INF:
            self.deadline = now + self._header_s

    def expired(self, now: float, read_paused: bool) -> Expiry | None:
        """What ran out at `now`, or None (then `deadline` says when to look again)."""
        if now + SLACK_S < self.deadline:
            return None
        if self.phase is Phase.BODY and read_paused:
            self.deadline = now + self._body_s  # the app is not reading: not the client's silence
            return None
        return _EXPIRY[self.phase]


class ConnectionStats:
    """This process's client connections: open now, and closed by each limit since start. One
    per process (`STATS`): a worker is a process, and /metrics sums the workers. Servers run in
    threads of one process (the tests) share it."""

    __slots__ = ("closed", "open")

    def __init__(self) -> None:
        self.open = 0
        # refused: over max_connections; header_too_large: 431; malformed: 400 from the parser
        self.closed = dict.fromkeys([*(e.value for e in Expiry), "refused", "header_too_large", "malformed"], 0)

    def rows(self) -> dict[str, list[list[object]]]:
        """As the live-metrics rows (`router.ops.metrics_live`)."""
        return {
            "client_connections": [[float(self.open)]],
            "client_closed": [[reason, float(n)] for reason, n in self.closed.items()],
        }


STATS = ConnectionStats()
