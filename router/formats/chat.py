"""OpenAI Chat Completions (`POST /v1/chat/completions`): everything the router knows about it.

Streams are `data: {chunk}` lines ending with `data: [DONE]`; usage comes in a last chunk with
empty `choices`, and only when the request set `stream_options.include_usage`. Errors use the
OpenAI envelope `{"error": {"message", "type", "code", "param"}}`, shared with the Responses API.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from router.formats.base import Codec, Delivered, EventKind, Prepared, StreamState, StreamWriter, WireFormat, delivered
from router.formats.codec import chat as chat_codec
from router.formats.codec import chat_stream
from router.formats.sse import encode

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    431: "invalid_request_error",
}
_CONTENT_KEYS = ("content", "tool_calls", "reasoning_content", "reasoning", "refusal", "function_call")
# Content last: in a delta carrying reasoning and content, the reasoning came first.
_DELTA_TEXT = ("reasoning_content", "reasoning", "refusal", "content")
# Delta fields besides `content` that feed() or event_kind() read: a delta with any of them set
# is not plain answer text.
_NOT_PLAIN = frozenset(_CONTENT_KEYS).union(_DELTA_TEXT) - {"content"}


def openai_error_body(status: int, message: str, code: str, param: str | None = None) -> bytes:
    """The OpenAI error envelope (Chat Completions and Responses)."""
    etype = _OPENAI_TYPES.get(status, "server_error")
    return orjson.dumps({"error": {"message": message, "type": etype, "code": code, "param": param}})


class ChatStreamState(StreamState):
    """Also keeps what a resume needs: the chunk id, created and model the client sees on every
    chunk, the content text delivered, whether text or a tool call was the last thing delivered,
    and each tool call's name and argument fragments (numbered as the chat reader numbers them)."""

    __slots__ = (
        "_args",
        "_blocked",
        "_calls",
        "_created",
        "_id",
        "_last",
        "_model",
        "_names",
        "_text",
        "_texting",
        "_tooling",
        "_wires",
    )

    def __init__(self, input_estimate_tokens: int) -> None:
        super().__init__(input_estimate_tokens)
        self._id: str | None = None
        self._created = 0
        self._model = ""
        self._text: list[str] = []  # the content deltas, as delivered
        self._texting = False  # the latest content delivered was answer text
        self._tooling = False  # the latest content delivered was a tool call's
        self._blocked = False  # a finish or a second choice: never resumable
        # Tool calls, by IR index: (id, wire index), name, argument fragments as delivered.
        self._calls: dict[int, int] = {}  # tool_calls[].index -> IR index
        self._last: int | None = None  # the IR index the latest fragment belonged to
        self._wires: list[tuple[str, int | None]] = []
        self._names: list[str] = []
        self._args: list[list[str]] = []

    def feed(self, obj: Any) -> None:
        if not isinstance(obj, dict):
            return
        if self._id is None and isinstance(ident := obj.get("id"), str):
            self._opened(ident, obj)
        choices = obj.get("choices")
        if isinstance(choices, list):
            n = 0
            for choice in choices:
                if not isinstance(choice, dict):
                    continue
                if choice.get("finish_reason") or choice.get("index", 0) != 0:
                    self._blocked = True
                delta = choice.get("delta")
                if not isinstance(delta, dict):
                    continue
                for key in _DELTA_TEXT:
                    text = delta.get(key)
                    if isinstance(text, str):
                        n += len(text)
                        if text:
                            self._delivered(key, text)
                calls = delta.get("tool_calls")
                if isinstance(calls, list):
                    for call in calls:
                        if isinstance(call, dict):
                            n += self._tool(call)
            self._add_chars(n)
        usage = obj.get("usage")  # after the chunk's own text: a usage on it covers that text
        if isinstance(usage, dict):
            self._report(chat_codec.read_usage(usage))

    def feed_content(self, obj: Any) -> bool:
        # One choice (index 0) not finishing, whose delta is non-empty answer text, with no error
        # or usage on the chunk, after the first chunk gave the id: feed() would only add the text.
        if self._id is None or type(obj) is not dict:
            return False
        choices = obj.get("choices")
        if type(choices) is not list or len(choices) != 1:
            return False
        choice = choices[0]
        if type(choice) is not dict or choice.get("finish_reason") or choice.get("index", 0) != 0:
            return False
        delta = choice.get("delta")
        if type(delta) is not dict:
            return False
        text = delta.get("content")
        if type(text) is not str or not text or obj.get("error") or type(obj.get("usage")) is dict:
            return False
        if len(delta) > 1 and any(v is not None for k, v in delta.items() if k in _NOT_PLAIN):
            return False
        self._tooling = False
        self._text.append(text)
        self._texting = True
        self._add_chars(len(text))
        return True

    def _opened(self, ident: str, chunk: dict[str, Any]) -> None:
        self._id = ident
        created, model = chunk.get("created"), chunk.get("model")
        self._created = created if type(created) is int else int(time.time())
        self._model = model if isinstance(model, str) else ""

    def _delivered(self, key: str, text: str) -> None:
        self._tooling = False
        if key == "content":
            self._text.append(text)
            self._texting = True
        else:  # reasoning, or a refusal: not answer text a prefill can continue
            self._texting = False

    def _tool(self, call: dict[str, Any]) -> int:
        """One tool_calls fragment, numbered by the chat reader's rule (ChatStreamReader's
        _tool_fragment: a new id at a known index is a new call); its argument characters."""
        fn = call.get("function")
        fn = fn if isinstance(fn, dict) else {}
        index, call_id = call.get("index"), call.get("id")
        known = self._calls.get(index) if type(index) is int else self._last
        if known is None or (isinstance(call_id, str) and call_id and call_id != self._wires[known][0]):
            known = len(self._names)
            ident = call_id if isinstance(call_id, str) and call_id else f"call_{known}"
            self._wires.append((ident, index if type(index) is int else None))
            name = fn.get("name")
            self._names.append(name if isinstance(name, str) else "")
            self._args.append([])
            if type(index) is int:
                self._calls[index] = known
        self._last = known
        self._texting, self._tooling = False, True
        args = fn.get("arguments")
        if isinstance(args, str) and args:
            self._args[known].append(args)
            return len(args)
        return 0

    def resume_point(self) -> Delivered | None:
        if self._blocked or self._id is None:
            return None
        if not self._names:
            return Delivered("".join(self._text), ()) if self._texting else None
        if not self._tooling:  # text or reasoning after the calls: no open call to continue
            return None
        return delivered(self._text, self._names, self._args)

    def resume_writer(self, include_usage: bool) -> StreamWriter:
        assert self._id is not None, "resume_writer before resume_text or resume_point"
        # The open call keeps the tool_calls index the client saw (a server may number its
        # calls otherwise than the IR does); calls started after it take their IR index.
        wires = {} if self._last is None else {self._last: self._wires[self._last][1]}
        return chat_stream.ChatStreamWriter.resume(
            self._id,
            self._model,
            self._created,
            include_usage,
            {k: v for k, v in wires.items() if v is not None},
        )

    def error_tail(self, message: str, after_error: bool) -> bytes:
        if after_error:
            return b""  # the upstream's own error line already ended it
        return encode(
            orjson.dumps(
                {"error": {"message": message, "type": "server_error", "code": "upstream_error", "param": None}}
            )
        )


class ChatFormat(WireFormat):
    name = "openai-chat"
    codec = Codec(
        chat_codec.read_request,
        chat_codec.write_request,
        chat_codec.read_answer,
        chat_codec.write_answer,
        chat_codec.read_error,
        chat_codec.read_usage,
        chat_stream.ChatStreamReader,
        chat_stream.ChatStreamWriter,
    )
    path = "/v1/chat/completions"
    forward_headers = frozenset({"openai-beta"})
    terminator = b"data: [DONE]\n\n"
    terminator_data = b"[DONE]"
    ends_at_final = False  # the usage chunk and [DONE] follow the finish_reason
    body_fields = (
        ("messages", (list,), "an array", True),
        ("max_tokens", (int,), "an integer", False),
        ("max_completion_tokens", (int,), "an integer", False),
        ("tools", (list,), "an array", False),
    )
    max_output_fields = ("max_completion_tokens", "max_tokens")
    param_fields: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "temperature": ("temperature",),
        "top_p": ("top_p",),
        "stop": ("stop",),
        "reasoning": ("reasoning_effort",),
    }

    def auth_headers(self, api_key: str | None, headers: dict[str, str], *, anthropic_version: str) -> None:
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"

    def wants_usage(self, body: dict[str, Any]) -> bool:
        options = body.get("stream_options")
        return isinstance(options, dict) and options.get("include_usage") is True

    def prepare(self, body: dict[str, Any], model: str, drop: frozenset[str], stream: bool) -> Prepared:
        out = self._rewritten(body, model, drop)
        if not stream or self.wants_usage(body):
            return Prepared(out)
        # Ask for the usage chunk to bill the stream; hide it from a client that did not.
        options = out.get("stream_options")
        out["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        return Prepared(out, hide_usage=True)

    def event_kind(self, obj: Any) -> EventKind:
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
            if isinstance(delta, dict) and any(delta.get(k) for k in _CONTENT_KEYS):
                kind = EventKind.CONTENT
        return kind

    def is_usage_only(self, obj: Any) -> bool:
        return isinstance(obj, dict) and isinstance(obj.get("usage"), dict) and not obj.get("choices")

    def stream_state(self, input_estimate_tokens: int) -> StreamState:
        return ChatStreamState(input_estimate_tokens)

    def error_body(self, status: int, message: str, code: str, param: str | None = None) -> bytes:
        return openai_error_body(status, message, code, param)


CHAT = ChatFormat()
