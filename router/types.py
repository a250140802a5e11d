"""Value types shared along the request path: the parsed client request, the answer handed back
to the endpoint, and the per-request record behind the access log line."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from router.billing.accounting import StreamMeter, Usage
from router.config import Format


@dataclass(slots=True)
class ClientRequest:
    """A validated client request: parsed once at the endpoint, never re-parsed."""

    fmt: Format
    model: str
    stream: bool
    body: dict[str, Any]
    headers: dict[str, str]  # lower-cased; credentials are dropped before anything goes upstream
    request_id: str


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
    meter: StreamMeter  # fed by the relay; the usage to bill when the stream ends


@dataclass(slots=True)
class AccessRecord:
    """What the access log line says about one request; filled in along the way."""

    request_id: str
    method: str
    path: str
    key_id: str | None = None
    model: str | None = None
    stream: bool = False
    provider: str | None = None
    attempts: list[str] = field(default_factory=list)  # "provider/model:reason" per failed attempt
    status: int = 0
    ttfb_ms: float | None = None
    stream_end: str | None = None  # ok | truncated | timeout_idle | client_disconnected | ...
    cost_usd: float | None = None

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "request_id": self.request_id,
            "method": self.method,
            "path": self.path,
            "status": self.status,
        }
        if self.key_id is not None:
            out["key_id"] = self.key_id  # not "key": the redactor masks fields of that name
        if self.model is not None:
            out.update(model=self.model, stream=self.stream, provider=self.provider)
            out["attempts"] = len(self.attempts) + (1 if self.provider else 0)
            if self.attempts:
                out["failovers"] = self.attempts
            if self.ttfb_ms is not None:
                out["ttfb_ms"] = round(self.ttfb_ms, 1)
            if self.stream_end is not None:
                out["stream_end"] = self.stream_end
            if self.cost_usd is not None:
                out["cost_usd"] = round(self.cost_usd, 6)
        return out
