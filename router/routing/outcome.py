"""What the attempt loop hands back to the endpoint: a whole answer, or a committed stream, each
with the attempts it took. The endpoint builds the response and the access line from these."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from router.formats.base import StreamState
from router.observe import Attempt
from router.types import Usage, sum_usage


def failovers(attempts: list[Attempt]) -> list[str]:
    """`route:reason` of each attempt the router moved on from, for the access line and the 503."""
    return [f"{a.route}:{a.failover}" for a in attempts if a.failover is not None]


@dataclass(slots=True)
class FullAnswer:
    """A whole (non-stream) answer, or an upstream client error returned as it is."""

    status: int
    body: bytes
    content_type: str
    provider: str
    model: str  # the public model that served (a context fallback's, if one did)
    headers: dict[str, str] = field(default_factory=dict)
    usage: Usage | None = None
    attempts: list[Attempt] = field(default_factory=list)  # every attempt, this one last


@dataclass(slots=True)
class StreamAnswer:
    """A committed stream: its first events have arrived, the rest follow from `body`."""

    provider: str
    model: str
    body: AsyncIterator[bytes]
    state: StreamState  # fed by the relay; the usage to bill when the stream ends
    abort: Callable[[str], None]  # end it now with an error event (the router is shutting down)
    # A continuation's stream states (what each continuation used) and "reason:outcome" of each
    # continuation tried, when the stream broke and was finished on another route.
    continued: list[StreamState] = field(default_factory=list)
    continuations: list[str] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)  # every attempt, this one last
    end: str | None = None  # how it ended, once it has: ok | truncated | timeout_idle | client_disconnected | ...

    def usage(self) -> Usage:
        """What every attempt of the stream used: the first, and each continuation's."""
        return sum_usage([self.state.usage(), *(s.usage() for s in self.continued)])
