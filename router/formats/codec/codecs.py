"""The format codecs behind one small API: read a client request, write it for an upstream,
translate an answer, an error body, and a stream (see the package docstring for the design)."""

from __future__ import annotations

from types import ModuleType
from typing import Any, Protocol

from router.config import Format
from router.formats.codec import chat, chat_stream, ir, messages, messages_stream, responses, responses_stream
from router.formats.envelopes import error_body

_CODECS: dict[Format, ModuleType] = {
    "openai-chat": chat,
    "anthropic-messages": messages,
    "openai-responses": responses,
}


def read_request(client: Format, body: dict[str, Any]) -> ir.Request:
    """The client's body as IR; raises BadRequest for shapes that cannot be read."""
    request: ir.Request = _CODECS[client].read_request(body)
    return request


def write_request(upstream: Format, request: ir.Request, model: str, opts: ir.RequestOptions) -> dict[str, Any]:
    body: dict[str, Any] = _CODECS[upstream].write_request(request, model, opts)
    drop_params(upstream, body, opts.drop_params)
    return body


# drop_params names -> the body fields that carry them in each format.
_PARAM_FIELDS: dict[Format, dict[str, tuple[str, ...]]] = {
    "openai-chat": {
        "temperature": ("temperature",),
        "top_p": ("top_p",),
        "stop": ("stop",),
        "reasoning": ("reasoning_effort",),
    },
    "anthropic-messages": {
        "temperature": ("temperature",),
        "top_p": ("top_p",),
        "top_k": ("top_k",),
        "stop": ("stop_sequences",),
        "reasoning": ("thinking", "output_config"),
    },
    "openai-responses": {"temperature": ("temperature",), "top_p": ("top_p",), "reasoning": ("reasoning",)},
}


def drop_params(fmt: Format, body: dict[str, Any], names: frozenset[str] | tuple[str, ...]) -> None:
    """Remove, in place, the fields a route's upstream model rejects (route `drop_params`)."""
    fields = _PARAM_FIELDS[fmt]
    for name in names:
        for field in fields.get(name, ()):
            body.pop(field, None)


def translate_answer(upstream: Format, client: Format, body: dict[str, Any], model: str) -> dict[str, Any]:
    """An upstream's non-stream answer in the client's format."""
    answer: ir.Answer = _CODECS[upstream].read_answer(body)
    out: dict[str, Any] = _CODECS[client].write_answer(answer, model)
    return out


def translate_error(upstream: Format, client: Format, status: int, body: bytes) -> bytes:
    """An upstream error body (any bytes) in the client's envelope, same status."""
    err: ir.Error = _CODECS[upstream].read_error(body)
    return error_body(client, status, err.message, err.code or err.kind)


class _Reader(Protocol):
    def feed(self, obj: Any) -> list[ir.Event]: ...


class _Writer(Protocol):
    def write(self, ev: ir.Event) -> bytes: ...


_READERS: dict[Format, type[_Reader]] = {
    "openai-chat": chat_stream.ChatStreamReader,
    "anthropic-messages": messages_stream.MessagesStreamReader,
    "openai-responses": responses_stream.ResponsesStreamReader,
}
_WRITERS: dict[Format, Any] = {
    "openai-chat": chat_stream.ChatStreamWriter,
    "anthropic-messages": messages_stream.MessagesStreamWriter,
    "openai-responses": responses_stream.ResponsesStreamWriter,
}


class StreamTranslator:
    """Upstream stream events in, client SSE bytes out, event by event with constant state."""

    __slots__ = ("_ended", "_reader", "_upstream", "_writer")

    def __init__(self, upstream: Format, client: Format, model: str, include_usage: bool) -> None:
        self._upstream = upstream
        self._reader: _Reader = _READERS[upstream]()
        self._writer: _Writer = _WRITERS[client](model, include_usage)
        self._ended = False

    def feed(self, obj: Any) -> bytes:
        """One decoded upstream event (chat's terminator as the string "[DONE]")."""
        out = b""
        for ev in self._reader.feed(obj):
            if isinstance(ev, (ir.Finish, ir.Error)):
                self._ended = True
            out += self._writer.write(ev)
        return out

    def finish(self) -> bytes:
        """The upstream ended complete without a terminal event the reader knew: end it cleanly."""
        if self._ended:
            return b""
        # A chat reader holds the finish reason and usage until [DONE]; one that never came
        # still ended a complete answer, so let the reader close with what it holds.
        out = self.feed("[DONE]") if self._upstream == "openai-chat" else b""
        if not self._ended:
            self._ended = True
            out += self._writer.write(ir.Finish("end"))
        return out

    def error(self, message: str) -> bytes:
        """The stream broke after commit: the client's own error ending."""
        if self._ended:
            return b""
        self._ended = True
        return self._writer.write(ir.Error(message))
