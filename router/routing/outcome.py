"""What the attempt loop hands back to the endpoint: a whole answer, or a committed stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from router.formats.base import StreamState
from router.types import Usage


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


@dataclass(slots=True)
class StreamAnswer:
    """A committed stream: its first events have arrived, the rest follow from `body`."""

    provider: str
    model: str
    body: AsyncIterator[bytes]
    state: StreamState  # fed by the relay; the usage to bill when the stream ends
