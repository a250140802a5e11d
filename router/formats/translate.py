"""Translation between formats, through the IR: an upstream's answer, error body and stream
events, written in the client's format. Same-format routes never come here: their bodies are
forwarded as they came, unknown fields and all.

One reader and one writer per format (in each format object, from `codec/`) rather than six
direct pairs: three formats need three readers and three writers, each written and tested once.
"""

from __future__ import annotations

from typing import Any

from router.formats.base import TERMINATOR, Delivered, StreamReader, StreamWriter, WireFormat
from router.formats.codec import ir
from router.types import Usage


def translate_answer(upstream: WireFormat, client: WireFormat, body: dict[str, Any], model: str) -> dict[str, Any]:
    """An upstream's non-stream answer in the client's format."""
    return client.write_answer(upstream.read_answer(body), model)


def translate_error(upstream: WireFormat, client: WireFormat, status: int, body: bytes) -> bytes:
    """An upstream error body (any bytes) in the client's envelope, same status."""
    err = upstream.read_error(body)
    return client.error_body(status, err.message, err.code or err.kind)


def write_request(upstream: WireFormat, req: ir.Request, model: str, opts: ir.RequestOptions) -> dict[str, Any]:
    """A request read into the IR, written for an `upstream` route (its drop_params applied)."""
    out = upstream.write_request(req, model, opts)
    upstream.drop_params(out, opts.drop_params)
    return out


class StreamTranslator:
    """Upstream stream events in, client SSE bytes out, event by event with constant state."""

    __slots__ = ("_ended", "_reader", "_upstream", "writer")

    def __init__(self, upstream: WireFormat, client: WireFormat, model: str, include_usage: bool) -> None:
        self._upstream = upstream
        self._reader: StreamReader = upstream.stream_reader()
        self.writer: StreamWriter = client.stream_writer(model, include_usage)
        self._ended = False

    def feed(self, obj: Any) -> bytes:
        """One decoded upstream event (`TERMINATOR` for a format's non-JSON end marker)."""
        if obj is TERMINATOR:
            obj = "[DONE]"  # how the codec readers name it
        out = b""
        for ev in self._reader.feed(obj):
            if isinstance(ev, ir.Finish | ir.Error):
                self._ended = True
            out += self.writer.write(ev)
        return out

    def finish(self) -> bytes:
        """The upstream ended complete without a terminal event the reader knew: end it cleanly."""
        if self._ended:
            return b""
        # A reader of a format with a terminator (chat) holds the finish reason and usage until
        # it; one that never came still ended a complete answer, so let the reader close with
        # what it holds.
        out = self.feed(TERMINATOR) if self._upstream.terminator else b""
        if not self._ended:
            self._ended = True
            out += self.writer.write(ir.Finish("end"))
        return out

    def error(self, message: str) -> bytes:
        """The stream broke after commit: the client's own error ending."""
        if self._ended:
            return b""
        self._ended = True
        return self.writer.write(ir.Error(message))


class Splice(StreamTranslator):
    """The rest of a broken answer, from another route, written into the client's stream where it
    broke: `writer` is the client's writer, positioned after what the client has. The new
    answer's opening is dropped (the client's stream is already open), and so is any reasoning
    (the rest is text); `seam` (whitespace the prefill lost) is dropped from its first text; the
    final usage is the whole answer's as the client sees it: `delivered`'s input, and its output
    plus the rest's."""

    __slots__ = ("_delivered", "_match", "_restarted", "_seam")

    def __init__(
        self, upstream: WireFormat, writer: StreamWriter, seam: str, delivered: Usage, match: Delivered | None = None
    ) -> None:
        self._upstream = upstream
        self._reader = upstream.stream_reader()
        self.writer = writer
        self._ended = False
        self._seam = seam
        self._delivered = delivered
        # A restarted answer (the route takes no prefill, or the cut was in a tool call): it must
        # begin with exactly what the client has, which is dropped; the rest goes on.
        self._match = _Matcher(match) if match is not None else None
        self._restarted = match is not None  # its usage is the whole answer's already

    def feed(self, obj: Any) -> bytes:
        if obj is TERMINATOR:
            obj = "[DONE]"
        out = b""
        for ev in self._reader.feed(obj):
            if self._match is not None and not self._match.done:
                events = self._match.feed(ev)
            else:
                adjusted = self._adjust(ev)
                events = [] if adjusted is None else [adjusted]
            for e in events:
                if isinstance(e, ir.Finish | ir.Error):
                    self._ended = True
                out += self.writer.write(e)
        return out

    def _adjust(self, ev: ir.Event) -> ir.Event | None:
        match ev:
            case ir.Start() | ir.ThinkingDelta() | ir.BlockEnd():
                return None  # the open text block continues; thinking is not part of the rest
            case ir.TextDelta(text=text) if self._seam:
                seam, self._seam = self._seam, ""
                return ir.TextDelta(text[len(seam) :] if text.startswith(seam) else text)
            case ir.Finish(usage=usage) if usage is not None and not self._restarted:
                return ir.Finish(ev.stop, ev.stop_sequence, self._whole(usage))
            case ir.UsageUpdate(usage=usage) if not self._restarted:
                return ir.UsageUpdate(self._whole(usage))
        return ev

    def _whole(self, rest: Usage) -> Usage:
        d = self._delivered
        return Usage(
            d.input_tokens,
            d.cached_tokens,
            d.cache_write_tokens,
            d.output_tokens + rest.output_tokens,
            d.reasoning_tokens + rest.reasoning_tokens,
            d.estimated,
        )


_DIVERGED = "the restarted answer diverged from what was delivered"


class _Matcher:
    """A restarted answer checked against what the client has: first its text, then each tool
    call it has (the same name, arguments beginning with those delivered). What matches is
    dropped; past the last delivered piece, the rest of the open text or arguments goes on, and
    `done` turns true. A mismatch, or an end before the match, is an error event."""

    __slots__ = ("_args", "_call", "_calls", "_text", "done")

    def __init__(self, delivered: Delivered) -> None:
        self._text = delivered.text  # still to be matched
        self._calls = delivered.calls
        self._call = -1  # the delivered call being matched
        self._args = ""
        self.done = False

    def feed(self, ev: ir.Event) -> list[ir.Event]:
        match ev:
            case ir.Start() | ir.ThinkingDelta() | ir.BlockEnd() | ir.UsageUpdate():
                return []
            case ir.TextDelta(text=text) if self._call < 0:
                return self._text_delta(text)
            case ir.ToolStart(index=index, name=name) if not self._text and index == self._call + 1:
                if index >= len(self._calls) or self._calls[index][0] != name or self._args_short():
                    return self._diverged()
                self._call, self._args = index, ""
                return self._args_delta("")
            case ir.ToolArgs(index=index, fragment=fragment) if index == self._call:
                return self._args_delta(fragment)
        return self._diverged()

    def _text_delta(self, text: str) -> list[ir.Event]:
        want = self._text
        if len(text) < len(want):
            if not want.startswith(text):
                return self._diverged()
            self._text = want[len(text) :]
            return []
        if not text.startswith(want):
            return self._diverged()
        self._text, rest = "", text[len(want) :]
        if self._calls:  # text beyond what the client had, before its tool call
            return self._diverged() if rest else []
        self.done = True
        return [ir.TextDelta(rest)] if rest else []

    def _args_short(self) -> bool:
        """The call being matched ended before its delivered arguments did."""
        return self._call >= 0 and self._args != self._calls[self._call][1]

    def _args_delta(self, fragment: str) -> list[ir.Event]:
        self._args += fragment
        want = self._calls[self._call][1]
        if len(self._args) < len(want):
            return [] if want.startswith(self._args) else self._diverged()
        if not self._args.startswith(want):
            return self._diverged()
        if self._call < len(self._calls) - 1:  # an earlier call: complete as delivered, nothing more
            return [] if self._args == want else self._diverged()
        self.done = True
        rest = self._args[len(want) :]
        return [ir.ToolArgs(self._call, rest)] if rest else []

    def _diverged(self) -> list[ir.Event]:
        self.done = True
        return [ir.Error(_DIVERGED)]
