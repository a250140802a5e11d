"""Translation between formats, through the IR: an upstream's answer, error body and stream
events, written in the client's format. Same-format routes never come here: their bodies are
forwarded as they came, unknown fields and all.

One reader and one writer per format (in each format object, from `codec/`) rather than six
direct pairs: three formats need three readers and three writers, each written and tested once.
"""

from __future__ import annotations

from typing import Any

from router.formats.base import TERMINATOR, StreamReader, StreamWriter, WireFormat
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

    __slots__ = ("_buffer", "_delivered", "_match", "_restarted", "_seam")

    def __init__(
        self, upstream: WireFormat, writer: StreamWriter, seam: str, delivered: Usage, match: str | None = None
    ) -> None:
        self._upstream = upstream
        self._reader = upstream.stream_reader()
        self.writer = writer
        self._ended = False
        self._seam = seam
        self._delivered = delivered
        # A restarted answer (the route takes no prefill): `match` is the text the client has,
        # which the new answer must begin with exactly; it is dropped, the rest goes on.
        self._match = match
        self._restarted = match is not None  # its usage is the whole answer's already
        self._buffer = ""

    def feed(self, obj: Any) -> bytes:
        if obj is TERMINATOR:
            obj = "[DONE]"
        out = b""
        for ev in self._reader.feed(obj):
            adjusted = self._adjust(ev)
            if adjusted is None:
                continue
            if isinstance(adjusted, ir.Finish | ir.Error):
                self._ended = True
            out += self.writer.write(adjusted)
        return out

    def _adjust(self, ev: ir.Event) -> ir.Event | None:
        if self._match is not None:
            return self._matched(ev)
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

    def _matched(self, ev: ir.Event) -> ir.Event | None:
        """A restarted answer, until it has passed the text the client has."""
        match = self._match
        assert match is not None
        if isinstance(ev, ir.Start | ir.ThinkingDelta | ir.BlockEnd | ir.UsageUpdate):
            return None
        if not isinstance(ev, ir.TextDelta):  # ended, or a tool call, before the match: diverged
            self._match = None
            return ev if isinstance(ev, ir.Error) else ir.Error("the restarted answer diverged from the delivered text")
        self._buffer += ev.text
        if len(self._buffer) < len(match):
            if match.startswith(self._buffer):
                return None
        elif self._buffer.startswith(match):
            rest, self._match, self._buffer = self._buffer[len(match) :], None, ""
            return ir.TextDelta(rest) if rest else None
        self._match = None
        return ir.Error("the restarted answer diverged from the delivered text")

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
