"""What the three wire formats share (protocols.md A-C): the `WireFormat` interface each format
module implements, SSE framing, a builder that splits a stream into head / content deltas / tail
(so faults can act between deltas), and the error envelopes."""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import orjson

from router.fake_upstream.answers import Answer, Prompt

dumps = orjson.dumps


class Stream(NamedTuple):
    """An SSE answer: `head` before the first delta, one item per content delta, `tail` = final events."""

    head: bytes
    deltas: list[bytes]
    tail: bytes


class WireFormat(Protocol):
    """One format: reads what matters from a request, writes answers and errors."""

    request_id_header: bytes

    def prompt(self, body: dict[str, Any]) -> Prompt: ...
    def prefill_problem(self, prefill: str) -> str | None: ...
    def error_body(self, status: int, message: str, rid: str) -> bytes: ...
    def error_event(self, message: str) -> bytes: ...
    def complete(self, a: Answer) -> bytes: ...
    def stream(self, a: Answer) -> Stream: ...


class StreamBuilder:
    """Collects a stream's events in order. `delta` marks a content delta (text, reasoning or
    argument piece); the events before it (block stops and starts) travel with it, so a fault
    "after N deltas" or a per-delta delay never splits a block's start from its first delta."""

    __slots__ = ("_deltas", "_head", "_pending")

    def __init__(self) -> None:
        self._head: bytes | None = None
        self._deltas: list[bytes] = []
        self._pending: list[bytes] = []

    def event(self, data: bytes) -> None:
        self._pending.append(data)

    def delta(self, data: bytes) -> None:
        if self._head is None:
            # the events before the first delta are the head, sent at once
            self._head = b"".join(self._pending)
            self._deltas.append(data)
        else:
            self._pending.append(data)
            self._deltas.append(b"".join(self._pending))
        self._pending = []

    def build(self) -> Stream:
        tail = b"".join(self._pending)
        if self._head is None:
            return Stream(tail, [], b"")
        return Stream(self._head, self._deltas, tail)


def data(obj: Any) -> bytes:
    """A data-only SSE event (chat completions)."""
    return b"data: " + dumps(obj) + b"\n\n"


def event(name: bytes, obj: Any) -> bytes:
    """A named SSE event (anthropic messages, responses)."""
    return b"event: " + name + b"\ndata: " + dumps(obj) + b"\n\n"


GARBAGE_EVENT = b"data: not-json{\n\n"

# status -> (type, code) as OpenAI answers them
_OPENAI_ERRORS: dict[int, tuple[str, str | None]] = {
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    503: ("server_error", "server_is_overloaded"),
}
ANTHROPIC_ERRORS: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def openai_error_body(status: int, message: str) -> bytes:
    """The OpenAI error envelope (protocols A.5), shared by chat and responses."""
    default = ("server_error", None) if status >= 500 else ("invalid_request_error", None)
    kind, code = _OPENAI_ERRORS.get(status, default)
    return dumps({"error": {"message": message, "type": kind, "code": code, "param": None}})


def cap(body: dict[str, Any], key: str) -> int | None:
    """A request's output cap field, when it is a non-negative int."""
    v = body.get(key)
    return v if type(v) is int and v >= 0 else None


def first_tool(tools: Any, kinds: tuple[str | None, ...]) -> str | None:
    """The name of the first tool whose `type` is one of `kinds`; the name is read from a nested
    `function` object (chat) or from the tool itself (anthropic, responses)."""
    if not isinstance(tools, list):
        return None
    for tool in tools:
        if not isinstance(tool, dict) or tool.get("type") not in kinds:
            continue
        inner = tool.get("function")
        name = inner.get("name") if isinstance(inner, dict) else tool.get("name")
        if isinstance(name, str) and name:
            return name
    return None
