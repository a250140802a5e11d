"""What an upstream's answer means for routing, decided in one place.

Two tables: `event_kind` says where a stream event stands (opening, content, final, error), and
`classify` turns one failed attempt (a status, or a transport error) into a `Verdict`: try the next
route or not, count a breaker failure or not, cool the route down or not.
"""

from __future__ import annotations

import email.utils
import enum
import time
from dataclasses import dataclass
from typing import Any

from router.config import Format
from router.errors import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeout,
)


class EventKind(enum.Enum):
    PRELUDE = "prelude"  # opening events held back until content arrives (role chunk, message_start, ping, created)
    CONTENT = "content"  # the answer has begun: from here on the stream is committed to this route
    FINAL = "final"  # the answer is complete (finish_reason, message_stop, response.completed)
    TRAILER = "trailer"  # after content but not content: chat's usage chunk, message_delta, output_*.done
    ERROR = "error"  # the upstream reports a failure inside the stream
    DONE = "done"  # chat's `data: [DONE]` terminator


_ANTHROPIC_KINDS = {
    "message_start": EventKind.PRELUDE,
    "ping": EventKind.PRELUDE,
    "message_delta": EventKind.TRAILER,
    "message_stop": EventKind.FINAL,
    "error": EventKind.ERROR,
}
_RESPONSES_KINDS = {
    "response.created": EventKind.PRELUDE,
    "response.in_progress": EventKind.PRELUDE,
    "response.queued": EventKind.PRELUDE,
    "response.completed": EventKind.FINAL,
    "response.incomplete": EventKind.FINAL,
    "response.failed": EventKind.ERROR,
    "error": EventKind.ERROR,
}
_CHAT_CONTENT_KEYS = ("content", "tool_calls", "reasoning_content", "reasoning", "refusal", "function_call")


def event_kind(fmt: Format, obj: Any) -> EventKind:
    """Where a parsed stream event (its JSON `data`) stands in the stream of `fmt`."""
    if fmt == "openai-chat":
        if not isinstance(obj, dict):
            return EventKind.TRAILER
        if obj.get("error"):
            return EventKind.ERROR
        choices = obj.get("choices") or ()
        if not choices:
            # The usage chunk comes after the content; an empty chunk before it (Azure's
            # prompt_filter_results) is an opening event, held like the role chunk.
            return EventKind.TRAILER if obj.get("usage") else EventKind.PRELUDE
        kind = EventKind.PRELUDE
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            if choice.get("finish_reason"):
                return EventKind.FINAL
            delta = choice.get("delta")
            if isinstance(delta, dict) and any(delta.get(k) for k in _CHAT_CONTENT_KEYS):
                kind = EventKind.CONTENT
        return kind
    etype = obj.get("type") if isinstance(obj, dict) else None
    if not isinstance(etype, str):
        return EventKind.TRAILER
    if fmt == "anthropic-messages":
        if etype == "content_block_start" and _empty_shell(obj.get("content_block")):
            return EventKind.PRELUDE
        return _ANTHROPIC_KINDS.get(etype, EventKind.CONTENT)
    if etype.endswith(".done"):
        return EventKind.TRAILER
    if etype == "response.output_item.added" and _empty_shell(obj.get("item")):
        return EventKind.PRELUDE
    if etype == "response.content_part.added" and _empty_shell(obj.get("part")):
        return EventKind.PRELUDE
    return _RESPONSES_KINDS.get(etype, EventKind.CONTENT)


def _empty_shell(block: Any) -> bool:
    """An opening block with nothing in it yet (an empty text, thinking or message shell): held
    back like the opening events, so a stream that dies right after it can still fail over.
    A tool-call shell is content: it names the tool."""
    if not isinstance(block, dict):
        return False
    kind = block.get("type")
    if kind in ("text", "output_text"):
        return not block.get("text")
    if kind == "thinking":
        return not block.get("thinking")
    if kind == "message":
        return not block.get("content")
    return False


class Action(enum.Enum):
    FAILOVER = "failover"  # try another route (or this one again, if it is the only one)
    CLIENT_ERROR = "client_error"  # the client's fault: return the answer as it is
    CONTEXT_FALLBACK = "context_fallback"  # context window exceeded: the model's context_fallback may serve it


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    reason: str  # low-cardinality, for logs and the 503 message: "status_503", "timeout_first_token"
    breaker_failure: bool = False
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
    5. a 400 saying the context window was exceeded: context fallback (content-policy never is);
    6. any other status: the client's fault, returned as it is.
    """
    if isinstance(exc, UpstreamTimeout):
        return Verdict(Action.FAILOVER, f"timeout_{exc.phase}", breaker_failure=True)
    if isinstance(exc, UpstreamConnectError):
        return Verdict(Action.FAILOVER, "connect_error", breaker_failure=True, same_route_ok=True)
    if isinstance(exc, UpstreamProtocolError):
        return Verdict(Action.FAILOVER, "stream_failed_before_content", breaker_failure=True)
    if isinstance(exc, UpstreamStatusError):
        status = exc.upstream_status
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
