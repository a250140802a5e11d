"""What a wire format is, as one interface: `WireFormat`. The rest of the router asks a format
object (one per format: `chat.py`, `messages.py`, `responses.py`) and never compares format names
or event strings. A new format (Gemini, Bedrock) is one new module implementing this, plus its
codec under `codec/`, registered in `formats/__init__.py`.

Also here: the parsed client request (which carries its format), `EventKind` (where a stream
event stands) and `StreamState`, the per-stream record of usage and of what an error ending needs.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Protocol

from router.config import Format
from router.formats.codec import ir
from router.types import Usage

# Characters of delivered output per estimated token. BPE tokenizers average ~4 characters of
# English per token; code and non-Latin text run denser, so a cut stream may be under-billed a
# little, never billed zero (see `StreamState.usage`).
CHARS_PER_TOKEN = 4
# Bytes of request body per estimated input token. The body is JSON: its framing (keys, quotes,
# escapes) is counted as if it were prompt text, and /3 sits below the ~4 bytes per token of
# English, so the estimate errs high. It is what a budget reserves, and what a stream cut before
# its usage report bills: over-reserving only holds budget until settle; under-reserving would
# let a key overspend.
BYTES_PER_INPUT_TOKEN = 3


def estimate_input_tokens(body_bytes: int) -> int:
    """An upper-bound-ish input token count for a request body of `body_bytes`."""
    return max(0, -(-body_bytes // BYTES_PER_INPUT_TOKEN))


class EventKind(enum.Enum):
    PRELUDE = "prelude"  # opening events held back until content arrives (role chunk, message_start, ping, created)
    CONTENT = "content"  # the answer has begun: from here on the stream is committed to this route
    FINAL = "final"  # the answer is complete (finish_reason, message_stop, response.completed)
    TRAILER = "trailer"  # after content but not content: chat's usage chunk, message_delta, output_*.done
    ERROR = "error"  # the upstream reports a failure inside the stream
    DONE = "done"  # a terminator line that is not JSON (chat's `data: [DONE]`)


class Terminator:
    """A stream's non-JSON end marker (chat's `[DONE]`), as a parsed event."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<terminator>"


TERMINATOR = Terminator()


def empty_shell(block: Any) -> bool:
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


@dataclass(slots=True)
class ClientRequest:
    """A validated client request: parsed once at the endpoint, never re-parsed."""

    fmt: WireFormat
    model: str
    stream: bool
    body: dict[str, Any]
    headers: dict[str, str]  # lower-cased; credentials are dropped before anything goes upstream
    request_id: str


class Prepared(NamedTuple):  # built per attempt: a tuple is the cheapest record
    """A client body made ready for an upstream of the same format."""

    body: dict[str, Any]
    hide_usage: bool = False  # the router asked for a usage report the client did not: hide it


class Continuation(NamedTuple):
    """A request asking for the rest of a broken answer, in the client's format."""

    body: dict[str, Any]
    seam: str  # whitespace the prefill lost: dropped from the start of the rest, if it starts so


@dataclass(frozen=True, slots=True)
class Delivered:
    """What the client has of a cut answer: its visible text, and each tool call started, in order."""

    text: str
    calls: tuple[tuple[str, str], ...]  # (name, arguments delivered so far), by IR tool-call index


def delivered(text: list[str], names: list[str], args: list[list[str]]) -> Delivered:
    """A `Delivered` from the pieces a stream state keeps: text deltas, and per tool call its
    name and argument fragments."""
    calls = tuple((name, "".join(frags)) for name, frags in zip(names, args, strict=True))
    return Delivered("".join(text), calls)


class StreamState:
    """Fed every parsed upstream stream event (JSON, or `TERMINATOR`) in one format; knows the
    usage at the end, reported or estimated, and writes the error ending of the stream. It also
    keeps what continuing the stream on another route needs (`resume_text`, `resume_writer`):
    the visible answer text as the pieces the deltas carried (one list append per delta), and
    the ids and positions the client has seen. Each format subclasses `feed` and the resume pair.

    What can be resumed (the same rule in every format): the answer text, once some reached the
    client, as long as no tool call was started (its arguments may be cut, and a prefill cannot
    carry them) and the content being delivered last was text. Thinking before the text is kept
    as it was delivered and not repeated: the prefill is the text only. A stream cut inside
    thinking, a refusal or another kind of block, or after its finish, is not resumed.

    A restarted answer (not a prefill) can also take up a stream cut inside or after a tool call
    (`resume_point`): the state then keeps each call's name and argument fragments as delivered,
    and its position in the format (chat index, block index, output index and item)."""

    __slots__ = ("_chars", "_complete", "_estimate", "_reported")

    def __init__(self, input_estimate_tokens: int) -> None:
        self._estimate = input_estimate_tokens
        self._reported = Usage()  # the latest reported counts (all cumulative)
        self._complete = False
        self._chars = 0  # output characters delivered

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} complete={self._complete} chars={self._chars} "
            f"reported={self._reported.output_tokens}>"
        )

    @property
    def complete_usage(self) -> bool:
        """A final usage report arrived, and no output followed it."""
        return self._complete

    def feed(self, obj: Any) -> None:
        """Account for one event; anything unrecognised is ignored."""

    def feed_content(self, obj: Any) -> bool:
        """The relay's shortcut for most events: if `obj` is this format's plain text delta, do what
        `feed` would and return True (its kind is CONTENT); else change nothing, return False.
        One shape checked, cheaper than event_kind + feed (tests hold it to both)."""
        return False

    def error_tail(self, message: str, after_error: bool) -> bytes:
        """The event(s) that end this stream with an error (`after_error`: the upstream already
        sent its own error event, so add only what the format still needs to close)."""
        return b""

    def resume_text(self) -> str | None:
        """All visible answer text the client has received so far, when this stream can be
        continued with that text as a prefill (see the class docstring); None when it cannot
        (also once a tool call has started: no prefill carries half a call)."""
        point = self.resume_point()
        return point.text if point is not None and not point.calls else None

    def resume_point(self) -> Delivered | None:
        """What the client has when the answer can be taken up again at this point by a
        restarted answer that matches it; None when it cannot (nothing delivered, reasoning or a
        refusal being delivered last, the answer ended, several chat choices). With no tool call
        started it is the text only (resume_text() gives the same text)."""
        return None

    def resume_writer(self, include_usage: bool) -> StreamWriter:
        """A writer of this stream's format that continues it exactly where the client is: the
        ids, model, created time, block/item indexes and sequence numbers the client has seen;
        the next TextDelta continues the open text block or message item; Finish and Error end
        the stream as this format ends it. It never writes a Start (an ir.Start fed to it is
        ignored). Valid after `resume_text()` returned a string, or `resume_point()` a value: with
        tool calls, the last one is open as the client sees it (a ToolArgs of its IR index continues
        its arguments, a ToolStart of the next index starts another, Finish closes it)."""
        raise NotImplementedError(f"{type(self).__name__} cannot resume a stream")

    def _add_chars(self, n: int) -> None:
        if n:
            self._chars += n
            # Output after a usage report means that report was not the final one (providers that
            # put running usage on every chunk): fall back to the estimate unless another follows.
            self._complete = False

    def _report(self, usage: Usage | None) -> None:
        if usage is not None:
            self._reported = usage
            self._complete = True

    def usage(self) -> Usage:
        """The reported usage when complete; otherwise an estimate (`estimated=True`) that never bills
        delivered output as zero."""
        r = self._reported
        if self._complete:
            return Usage(r.input_tokens, r.cached_tokens, r.cache_write_tokens, r.output_tokens, r.reasoning_tokens)
        # Input, by case:
        # 1. the upstream reported a non-zero input (Anthropic's message_start, or a running report
        #    that output then outdated): bill that;
        # 2. nothing, or zero (translating gateways put 0 in message_start and the real counts in the
        #    final message_delta; no real request has zero input): bill the reserve-time estimate.
        # Output: the larger of what was reported so far and the delivered characters rounded up,
        # so any delivered character bills at least one token.
        out = max(r.output_tokens, -(-self._chars // CHARS_PER_TOKEN))
        if r.input_tokens or r.cached_tokens or r.cache_write_tokens:
            return Usage(r.input_tokens, r.cached_tokens, r.cache_write_tokens, out, r.reasoning_tokens, True)
        return Usage(self._estimate, 0, 0, out, r.reasoning_tokens, True)


class StreamReader(Protocol):
    """Upstream stream events of one format -> IR events, with constant state per stream."""

    def feed(self, obj: Any) -> list[ir.Event]: ...


class StreamWriter(Protocol):
    """IR events -> SSE bytes of one format, for one client stream."""

    def write(self, ev: ir.Event) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Codec:
    """A format's reader and writer to and from the IR (in `codec/`)."""

    read_request: Callable[[dict[str, Any]], ir.Request]
    write_request: Callable[[ir.Request, str, ir.RequestOptions], dict[str, Any]]
    read_answer: Callable[[dict[str, Any]], ir.Answer]
    write_answer: Callable[[ir.Answer, str], dict[str, Any]]
    read_error: Callable[[bytes], ir.Error]
    read_usage: Callable[[dict[str, Any]], Usage | None]  # a `usage` object -> Usage
    stream_reader: Callable[[], StreamReader]
    stream_writer: Callable[[str, bool], StreamWriter]  # (model, include_usage)


class WireFormat(ABC):
    """Everything the router knows about one wire format. One instance per format, shared."""

    name: Format
    codec: Codec
    path: str  # the API path, on the router and (after the provider's base_url) upstream
    # The client headers this format's API defines as changing the answer: the only client headers
    # sent upstream, and only to an upstream of this format (plus a provider's `forward_headers`).
    forward_headers: frozenset[str] = frozenset()
    terminator: bytes = b""  # sent after a complete stream whose upstream sent none
    terminator_data: bytes | None = None  # the terminator's `data:` (not JSON), when there is one
    ends_at_final: bool = True  # nothing after the final event matters
    # (field, accepted types, type name for the message, required): checked at the endpoint.
    body_fields: tuple[tuple[str, tuple[type, ...], str, bool], ...] = ()
    max_output_fields: tuple[str, ...] = ()  # the output cap's field(s), the current one first
    # drop_params names -> the body fields that carry them in this format
    param_fields: ClassVar[Mapping[str, tuple[str, ...]]] = {}

    def __repr__(self) -> str:
        return f"<WireFormat {self.name}>"

    # --- requests ---

    @abstractmethod
    def auth_headers(self, api_key: str | None, headers: dict[str, str], *, anthropic_version: str) -> None:
        """Add this format's credential (and required version) headers to `headers`, in place."""

    def wants_usage(self, body: dict[str, Any]) -> bool:
        """The client asked for a usage report in its stream (only chat makes that optional)."""
        return True

    def prepare(self, body: dict[str, Any], model: str, drop: frozenset[str], stream: bool) -> Prepared:
        """The client's body for an upstream of this same format: `model` rewritten, the route's
        `drop_params` removed. Formats override to add what they need."""
        return Prepared(self._rewritten(body, model, drop))

    def _rewritten(self, body: dict[str, Any], model: str, drop: frozenset[str]) -> dict[str, Any]:
        out = dict(body)  # a shallow copy: the client's own body is never changed
        out["model"] = model
        if drop:
            self.drop_params(out, drop)
        return out

    def drop_params(self, body: dict[str, Any], names: frozenset[str] | tuple[str, ...]) -> None:
        """Remove, in place, the fields a route's upstream model rejects (route `drop_params`)."""
        for name in names:
            for field in self.param_fields.get(name, ()):
                body.pop(field, None)

    def max_output_tokens(self, body: dict[str, Any], default: int) -> int:
        """The request's output cap; `default` when absent or not a non-negative int."""
        for key in self.max_output_fields:
            n = body.get(key)
            if type(n) is int and n >= 0:
                return n
        return default

    def capped(self, body: dict[str, Any], limit: int) -> tuple[dict[str, Any], int]:
        """`body` with an output cap of at most `limit` (`limit` itself when it set none), and
        that cap. A new dict when anything changed; the client's body is not changed."""
        cap = self.max_output_tokens(body, -1)
        over = [k for k in self.max_output_fields if type(v := body.get(k)) is int and v > limit]
        if cap >= 0 and not over:
            return body, cap
        out = dict(body)
        for key in over:
            out[key] = limit
        if cap < 0:
            out[self.max_output_fields[0]] = limit
        return out, cap if 0 <= cap <= limit else limit

    def continuation(self, body: dict[str, Any], delivered: str, cap: int | None) -> Continuation:
        """The client's request, asking for the rest of an answer of which `delivered` reached the
        client: the text as a trailing assistant message (a prefill), trailing whitespace
        stripped (Anthropic refuses it; the same whitespace is then dropped from the start of
        the rest), and the output cap lowered to `cap` when there is one. The client's body is
        not changed."""
        prefill = delivered.rstrip()
        out = self._with_assistant_text(body, prefill)
        # The rest is text: no reasoning asked for (Anthropic also refuses a prefill after
        # thinking is switched on, and a model would think again about a half-written answer).
        self.drop_params(out, ("reasoning",))
        if cap is not None:
            for key in self.max_output_fields:
                if key in out:
                    out[key] = cap
            if not any(key in out for key in self.max_output_fields) and self.max_output_fields:
                out[self.max_output_fields[0]] = cap
        return Continuation(out, delivered[len(prefill) :])

    def _with_assistant_text(self, body: dict[str, Any], text: str) -> dict[str, Any]:
        """A copy of `body` whose conversation ends with an assistant message of `text`; here for
        the formats whose conversation is a `messages` list (chat, Anthropic)."""
        messages = body.get("messages")
        turns = list(messages) if isinstance(messages, list) else []
        return {**body, "messages": [*turns, {"role": "assistant", "content": text}]}

    # --- answers and streams ---

    @abstractmethod
    def event_kind(self, obj: Any) -> EventKind:
        """Where a parsed stream event (its JSON `data`) stands in a stream of this format."""

    def load_terminator(self, data: bytes) -> bool:
        """Whether an event's data is this format's non-JSON terminator."""
        return data == self.terminator_data

    def error_is_final(self, obj: Any) -> bool:
        """Whether an error event ends the stream for the client by itself."""
        return True

    def is_usage_only(self, obj: Any) -> bool:
        """An event that only carries the usage report the router asked for."""
        return False

    @abstractmethod
    def stream_state(self, input_estimate_tokens: int) -> StreamState: ...

    # --- errors ---

    @abstractmethod
    def error_body(self, status: int, message: str, code: str, param: str | None = None) -> bytes:
        """The JSON body of an error response of `status` in this format's envelope."""

    # --- the codec: to and from the IR ---

    def read_request(self, body: dict[str, Any]) -> ir.Request:
        """The client's body as IR; raises BadRequest (naming the field) for shapes it cannot read."""
        return self.codec.read_request(body)

    def write_request(self, req: ir.Request, model: str, opts: ir.RequestOptions) -> dict[str, Any]:
        return self.codec.write_request(req, model, opts)

    def read_answer(self, body: dict[str, Any]) -> ir.Answer:
        return self.codec.read_answer(body)

    def write_answer(self, ans: ir.Answer, model: str) -> dict[str, Any]:
        return self.codec.write_answer(ans, model)

    def read_error(self, body: bytes) -> ir.Error:
        """An upstream error body (any bytes, maybe not JSON) as IR. Never raises."""
        return self.codec.read_error(body)

    def read_usage(self, body: Any) -> Usage | None:
        """The usage of a non-stream answer body (parsed JSON); None when it reports none."""
        u = body.get("usage") if isinstance(body, dict) else None
        return self.codec.read_usage(u) if isinstance(u, dict) else None

    def stream_reader(self) -> StreamReader:
        return self.codec.stream_reader()

    def stream_writer(self, model: str, include_usage: bool) -> StreamWriter:
        return self.codec.stream_writer(model, include_usage)
