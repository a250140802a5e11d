"""Anthropic Messages (`POST /v1/messages`): everything the router knows about it.

Streams are named events (`message_start`, `content_block_*`, `message_delta`, `message_stop`)
and end at `message_stop`; usage is cumulative, split between `message_start` (input) and
`message_delta` (output). The credential goes in `x-api-key` with an `anthropic-version`.
Errors: `{"type": "error", "error": {"type", "message"}}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from router.formats.base import (
    Codec,
    Delivered,
    EventKind,
    Prepared,
    StreamState,
    StreamWriter,
    WireFormat,
    delivered,
    empty_shell,
)
from router.formats.codec import messages as messages_codec
from router.formats.codec import messages_stream
from router.formats.codec.fields import count, sub
from router.formats.sse import encode

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    431: "request_too_large",
    503: "overloaded_error",
    529: "overloaded_error",
}
_KINDS = {
    "message_start": EventKind.PRELUDE,
    "ping": EventKind.PRELUDE,
    "message_delta": EventKind.TRAILER,
    "message_stop": EventKind.FINAL,
    "error": EventKind.ERROR,
}
_DELTA_TEXT = {"text_delta": "text", "input_json_delta": "partial_json", "thinking_delta": "thinking"}


def strip_unsigned_thinking(body: dict[str, Any]) -> dict[str, Any]:
    """A native Anthropic body without thinking blocks that carry no signature. An earlier turn
    served through another provider shows its reasoning to an Anthropic client as a thinking block
    with an empty signature; sent back to Anthropic, that block would be refused (a 400 after a
    failover, say). Copies only what it changes; the common case costs one scan of the turns."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return body
    out: list[Any] | None = None
    for i, msg in enumerate(messages):
        content = msg.get("content") if isinstance(msg, dict) and msg.get("role") == "assistant" else None
        if not isinstance(content, list):
            continue
        kept = [
            b for b in content if not (isinstance(b, dict) and b.get("type") == "thinking" and not b.get("signature"))
        ]
        if len(kept) != len(content):
            if out is None:
                out = list(messages)
            out[i] = {**msg, "content": kept}
    return body if out is None else {**body, "messages": out}


class MessagesStreamState(StreamState):
    """Also keeps what a resume needs: the message id and model, the next block index, the open
    text block's index, the text delivered, whether a text or tool_use block was the last one
    started, and each tool_use block's name and input fragments (IR index = tool_use blocks
    started before it, as the reader numbers them)."""

    __slots__ = (
        "_args",
        "_blocked",
        "_id",
        "_model",
        "_names",
        "_next",
        "_open",
        "_open_tool",
        "_text",
        "_texting",
        "_tools",
    )

    def __init__(self, input_estimate_tokens: int) -> None:
        super().__init__(input_estimate_tokens)
        self._id: str | None = None
        self._model = ""
        self._next = 0  # the next content block's index
        self._open: int | None = None  # the open text block's index
        self._text: list[str] = []  # the text deltas, as delivered
        self._texting = False  # the latest block started is a text block
        self._blocked = False  # another kind of block, or the answer's end: never resumable
        self._tools: dict[int, int] = {}  # tool_use block index -> IR tool-call index
        self._names: list[str] = []  # by IR index
        self._args: list[list[str]] = []  # input fragments as delivered, by IR index
        self._open_tool: int | None = None  # the last tool_use block, while not stopped

    def feed(self, obj: Any) -> None:
        if not isinstance(obj, dict):
            return
        kind = obj.get("type")
        if kind == "content_block_delta":
            delta = obj.get("delta")
            if isinstance(delta, dict):
                kind = delta.get("type")
                text = delta.get(_DELTA_TEXT.get(kind, "")) if isinstance(kind, str) else None
                if isinstance(text, str):
                    self._add_chars(len(text))
                    if kind == "text_delta" and self._texting:
                        self._text.append(text)
                    elif kind == "input_json_delta" and text:
                        call = self._tools.get(obj.get("index"))  # type: ignore[arg-type]
                        if call is not None:
                            self._args[call].append(text)
        elif kind == "content_block_start":
            self._block_start(obj.get("index"), obj.get("content_block"))
        elif kind == "content_block_stop":
            index = obj.get("index")
            if index == self._open:
                self._open = None
            elif index == self._open_tool:
                self._open_tool = None
        elif kind == "message_start":
            message = obj.get("message")
            if isinstance(message, dict):
                self._overlay(sub(message, "usage"))
                ident, model = message.get("id"), message.get("model")
                self._id = ident if isinstance(ident, str) else None
                self._model = model if isinstance(model, str) else ""
        elif kind == "message_delta":
            self._blocked = True  # the stop reason: the answer is whole
            usage = obj.get("usage")
            if isinstance(usage, dict) and self._overlay(usage):
                self._complete = True
        elif kind == "message_stop":
            self._blocked = True

    def feed_content(self, obj: Any) -> bool:
        if type(obj) is not dict or obj.get("type") != "content_block_delta":
            return False
        delta = obj.get("delta")
        if type(delta) is not dict or delta.get("type") != "text_delta":
            return False
        text = delta.get("text")
        if type(text) is not str:
            return False
        self._add_chars(len(text))
        if self._texting:
            self._text.append(text)
        return True

    def _block_start(self, index: Any, block: Any) -> None:
        if type(index) is not int or not isinstance(block, dict):
            return
        self._next = max(self._next, index + 1)
        kind = block.get("type")
        self._texting = kind == "text"
        self._open = index if self._texting else None
        self._open_tool = None
        if self._texting:
            text = block.get("text")
            if isinstance(text, str) and text:  # Anthropic sends ""; a server may not
                self._add_chars(len(text))
                self._text.append(text)
        elif kind == "tool_use":
            self._tools[index] = len(self._names)
            self._open_tool = index
            name, given = block.get("name"), block.get("input")
            self._names.append(name if isinstance(name, str) else "")
            # Anthropic sends {} and streams the input; a server that sends it whole is read
            # as the reader reads it (one fragment of its JSON text).
            self._args.append([messages_codec.json_text(given)] if given else [])
        elif kind not in ("thinking", "redacted_thinking"):
            self._blocked = True  # server tools: no other route can repeat them

    def resume_point(self) -> Delivered | None:
        if self._blocked or self._id is None:
            return None
        if not self._names:
            return Delivered("".join(self._text), ()) if self._texting and self._text else None
        if self._tools.get(self._next - 1) is None:
            return None  # a text or thinking block after the calls: no open call to continue
        return delivered(self._text, self._names, self._args)

    def resume_writer(self, include_usage: bool) -> StreamWriter:
        assert self._id is not None, "resume_writer before resume_text or resume_point"
        tool = None if self._open_tool is None else (self._tools[self._open_tool], self._open_tool)
        return messages_stream.MessagesStreamWriter.resume(self._id, self._model, self._next, self._open, tool)

    def _overlay(self, u: dict[str, Any]) -> bool:
        """Overwrite the reported counts present in `u` (Anthropic's are cumulative, never summed);
        True when it carried output or input tokens."""
        r = self._reported
        inp, out = count(u.get("input_tokens")), count(u.get("output_tokens"))
        if inp is not None:
            r.input_tokens = inp
        if out is not None:
            r.output_tokens = out
        cached, write = count(u.get("cache_read_input_tokens")), count(u.get("cache_creation_input_tokens"))
        if cached is not None:
            r.cached_tokens = cached
        if write is not None:
            r.cache_write_tokens = write
        thinking = count(sub(u, "output_tokens_details").get("thinking_tokens"))
        if thinking is not None:
            r.reasoning_tokens = thinking
        return inp is not None or out is not None

    def error_tail(self, message: str, after_error: bool) -> bytes:
        if after_error:
            return b""  # the upstream's own error event already ended it
        return encode(orjson.dumps({"type": "error", "error": {"type": "api_error", "message": message}}), "error")


class MessagesFormat(WireFormat):
    name = "anthropic-messages"
    codec = Codec(
        messages_codec.read_request,
        messages_codec.write_request,
        messages_codec.read_answer,
        messages_codec.write_answer,
        messages_codec.read_error,
        messages_codec.read_usage,
        messages_stream.MessagesStreamReader,
        messages_stream.MessagesStreamWriter,
    )
    path = "/v1/messages"
    forward_headers = frozenset({"anthropic-version", "anthropic-beta"})  # Claude Code sends both
    body_fields = (
        ("messages", (list,), "an array", True),
        ("max_tokens", (int,), "an integer", False),
        ("system", (str, list), "a string or an array", False),
        ("tools", (list,), "an array", False),
    )
    max_output_fields = ("max_tokens",)
    param_fields: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "temperature": ("temperature",),
        "top_p": ("top_p",),
        "top_k": ("top_k",),
        "stop": ("stop_sequences",),
        "reasoning": ("thinking", "output_config"),
    }

    def auth_headers(self, api_key: str | None, headers: dict[str, str], *, anthropic_version: str) -> None:
        headers.setdefault("anthropic-version", anthropic_version)  # the client's own, if it sent one
        if api_key:
            headers["x-api-key"] = api_key

    def prepare(self, body: dict[str, Any], model: str, drop: frozenset[str], stream: bool) -> Prepared:
        return Prepared(strip_unsigned_thinking(self._rewritten(body, model, drop)))

    def event_kind(self, obj: Any) -> EventKind:
        etype = obj.get("type") if isinstance(obj, dict) else None
        if not isinstance(etype, str):
            return EventKind.TRAILER
        if etype == "content_block_start" and empty_shell(obj.get("content_block")):
            return EventKind.PRELUDE
        return _KINDS.get(etype, EventKind.CONTENT)

    def stream_state(self, input_estimate_tokens: int) -> StreamState:
        return MessagesStreamState(input_estimate_tokens)

    def error_body(self, status: int, message: str, code: str, param: str | None = None) -> bytes:
        etype = _ERROR_TYPES.get(status, "api_error")
        return orjson.dumps({"type": "error", "error": {"type": etype, "message": message}})


MESSAGES = MessagesFormat()
