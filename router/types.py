"""Value types shared along the request path that belong to no one stage: what an attempt says
about its upstream, the token usage of one request, and the record behind its access log line.
A leaf: imports nothing of the router's."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class AttemptResult(enum.Enum):
    """What one attempt says about its upstream, for the breaker (`routing/breaker.py`)."""

    SUCCESS = enum.auto()
    FAILURE = enum.auto()
    # Cancelled by client disconnect, or otherwise says nothing about the
    # upstream: releases a half-open slot, counts nothing.
    NEUTRAL = enum.auto()


@dataclass(slots=True)
class Usage:
    """One request's token counts, split the way they are priced."""

    input_tokens: int = 0  # uncached input only (excludes cache reads and writes)
    cached_tokens: int = 0  # cache reads
    cache_write_tokens: int = 0  # cache writes
    output_tokens: int = 0  # includes reasoning
    reasoning_tokens: int = 0  # informational: already inside output_tokens
    estimated: bool = False  # True when some count was estimated from characters (a cut stream)


# A value from the request echoed in an answer or a log line is cut to this many characters: a
# client cannot make the router write megabytes back or into its logs.
MAX_ECHO = 256


def echo(value: str) -> str:
    """`value` as the router may echo it: at most MAX_ECHO characters, marked when cut."""
    return value if len(value) <= MAX_ECHO else value[:MAX_ECHO] + "…(cut)"


def sum_usage(usages: list[Usage]) -> Usage:
    """The counts of several usages added up (estimated if any of them was)."""
    if len(usages) == 1:
        return usages[0]
    out = Usage()
    for u in usages:
        out.input_tokens += u.input_tokens
        out.cached_tokens += u.cached_tokens
        out.cache_write_tokens += u.cache_write_tokens
        out.output_tokens += u.output_tokens
        out.reasoning_tokens += u.reasoning_tokens
        out.estimated = out.estimated or u.estimated
    return out


# Paths with no access line and no span: load balancer probes would drown both.
QUIET_PREFIX = "/health/"


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
    ttfb_ms: float | None = None  # the client's: from the request's start to the response's first byte
    stream_end: str | None = None  # ok | truncated | timeout_idle | client_disconnected | ...
    continuations: list[str] = field(default_factory=list)  # "reason:outcome" per continuation tried
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
            if self.continuations:
                out["continuations"] = self.continuations
            if self.cost_usd is not None:
                out["cost_usd"] = round(self.cost_usd, 6)
        return out
