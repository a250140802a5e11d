"""What a failed attempt means for routing, decided in one place: `classify` turns one failure
(a status, or a transport error) into a `Verdict`: try the next route or not, count a breaker
failure or not, cool the route down or not. (Where a stream event stands is its format's
business: `WireFormat.event_kind`.)
"""

from __future__ import annotations

import asyncio
import email.utils
import enum
import time
from dataclasses import dataclass

from router.errors import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamReset,
    UpstreamStatusError,
    UpstreamTimeout,
)


class Action(enum.Enum):
    FAILOVER = "failover"  # try another route (or this one again, if it is the only one)
    CLIENT_ERROR = "client_error"  # the client's fault: return the answer as it is
    CONTEXT_FALLBACK = "context_fallback"  # context window exceeded: the model's context_fallback may serve it


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    reason: str  # low-cardinality, for logs and the 503 message: "status_503", "timeout_first_token"
    breaker_failure: bool = False
    trip: bool = False  # open the route's breaker at once: retrying will not help (its key was refused)
    cooldown_s: float | None = None  # retry-after: keep the route out of rotation this long
    same_route_ok: bool = False  # a transient failure: one more try on the same route is allowed


_TRANSIENT_STATUSES = {500, 502}
_FAILOVER_STATUSES = {500, 502, 503, 504, 529, 429}
MAX_COOLDOWN_S = 3600.0  # a provider asking for more than an hour is capped: probes and breakers take over
_CONTEXT_MARKERS = (
    b"context_length_exceeded",
    b"maximum context length",
    b"context window",
    b"prompt is too long",
    b"too many tokens",
)
_POLICY_MARKERS = (b"content_policy", b"content_filter", b"safety")


def classify(exc: UpstreamError) -> Verdict:
    """The verdict on one failed attempt. Cases:

    1. connection refused or reset, nothing received: failover, breaker failure, may retry same route;
    2. a timeout: failover, breaker failure, never the same route again in this request;
    3. a stream that ended or errored before its first content event: failover, breaker failure;
    4. 429 / 5xx: failover, breaker failure; retry-after on 429/503 cools the route down;
    5. 401 / 403: the provider refused the router's own credential: failover, and the route's
       breaker opens at once;
    6. a 400 saying the context window was exceeded: context fallback (content-policy never is);
    7. any other status: the client's fault, returned as it is.
    """
    if isinstance(exc, UpstreamTimeout):
        return Verdict(Action.FAILOVER, f"timeout_{exc.phase}", breaker_failure=True)
    if isinstance(exc, UpstreamConnectError):
        return Verdict(Action.FAILOVER, "connect_error", breaker_failure=True, same_route_ok=True)
    if isinstance(exc, UpstreamProtocolError):
        return Verdict(Action.FAILOVER, "stream_failed_before_content", breaker_failure=True)
    if isinstance(exc, UpstreamStatusError):
        status = exc.upstream_status
        if status in (401, 403):
            # The operator's credential for this provider is wrong or revoked: the provider's
            # failure, not the client's (whose own key the router already accepted).
            return Verdict(Action.FAILOVER, f"status_{status}", breaker_failure=True, trip=True)
        if status in _FAILOVER_STATUSES:
            cooldown = retry_after_s(exc.headers) if status in (429, 503) else None
            return Verdict(
                Action.FAILOVER,
                f"status_{status}",
                breaker_failure=True,
                cooldown_s=cooldown,
                same_route_ok=status in _TRANSIENT_STATUSES,
            )
        if status == 400 and _is_context_overflow(exc.body):
            return Verdict(Action.CONTEXT_FALLBACK, "context_exceeded")
        return Verdict(Action.CLIENT_ERROR, f"status_{status}")
    return Verdict(Action.FAILOVER, exc.code, breaker_failure=True)


def is_prefill_refusal(exc: UpstreamError) -> bool:
    """A 400 saying the model takes no trailing assistant message (a continuation's prefill)."""
    return isinstance(exc, UpstreamStatusError) and exc.upstream_status == 400 and b"prefill" in exc.body.lower()


def _is_context_overflow(body: bytes) -> bool:
    low = body.lower()
    if any(m in low for m in _POLICY_MARKERS):
        return False
    return any(m in low for m in _CONTEXT_MARKERS)


def retry_after_s(headers: dict[str, str], now: float | None = None) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (delta-seconds or an HTTP date)."""
    value = _retry_after(headers, now)
    return None if value is None else min(value, MAX_COOLDOWN_S)


def _retry_after(headers: dict[str, str], now: float | None) -> float | None:
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
        if seconds == seconds:  # NaN is not a duration
            return max(0.0, seconds)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def outcome_of(exc: BaseException | None) -> str:
    """The `outcome` label of one upstream attempt: None is a success; a cancellation (client gone)
    is "cancelled"; an upstream error by its kind."""
    if exc is None:
        return "ok"
    if isinstance(exc, UpstreamStatusError):
        s = exc.upstream_status
        return "429" if s == 429 else "5xx" if s >= 500 else "4xx" if s >= 400 else "error"
    if isinstance(exc, UpstreamTimeout):
        return "timeout"
    if isinstance(exc, UpstreamReset):  # before its parent class
        return "reset"
    if isinstance(exc, UpstreamConnectError):
        return "connect_error"
    if isinstance(exc, UpstreamProtocolError):
        return "protocol_error"
    if isinstance(exc, UpstreamError):
        return "error"
    # anyio runs on asyncio here: a cancelled attempt (client gone, deadline) raises this.
    return "cancelled" if isinstance(exc, asyncio.CancelledError) else "error"
