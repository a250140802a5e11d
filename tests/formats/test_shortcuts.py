"""The relay's per-event shortcuts agree with the full path on every stream event we have: the
golden transcripts of the real APIs and the router's own writers' output (tests/formats/codec/
golden), the fake provider's streams (text, tool calls, reasoning, usage, error events), and
hand-made edge shapes. `StreamState.feed_content` must change a state exactly as `feed` does
on the events it takes (whose kind is CONTENT), and leave it alone on the rest; the SSE
parser's fast framings must give what its line-by-line parse gives."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from router.config import Format
from router.fake_upstream.answers import Prompt, plan
from router.fake_upstream.formats import WireFormat as FakeFormat
from router.fake_upstream.formats_anthropic import MessagesFormat as FakeMessages
from router.fake_upstream.formats_chat import ChatFormat as FakeChat
from router.fake_upstream.formats_responses import ResponsesFormat as FakeResponses
from router.formats import wire
from router.formats.base import TERMINATOR, EventKind, StreamState
from router.formats.sse import SSEParser, _parse_block, _parse_lines

GOLDEN = Path(__file__).parent / "codec" / "golden"
FORMATS: tuple[Format, ...] = ("openai-chat", "anthropic-messages", "openai-responses")
FAKES: dict[Format, type[FakeFormat]] = {
    "openai-chat": FakeChat,
    "anthropic-messages": FakeMessages,
    "openai-responses": FakeResponses,
}


def _golden(fmt: Format) -> Iterator[bytes]:
    """Every golden stream whose events are in `fmt`: upstream transcripts and writer outputs."""
    for path in sorted((GOLDEN / "upstream" / fmt).glob("*.sse")):
        yield path.read_bytes()
    for path in sorted(GOLDEN.glob(f"{fmt}__from__*/*.sse")):
        yield path.read_bytes()


def _fake(fmt: Format) -> Iterator[bytes]:
    """The fake provider's streams in `fmt`: text, tool calls (one and two), reasoning, chat's
    usage chunk, an error after some text."""
    fake = FAKES[fmt]()
    prompts = [
        Prompt(user_text="hi"),
        Prompt(user_text="hi", tool="get_weather"),
        Prompt(user_text="parallel please", tool="get_weather", reasoning=True, include_usage=True),
        Prompt(user_text="think", reasoning=True, include_usage=True),
    ]
    for prompt in prompts:
        answer = plan(
            prompt,
            default_text='Hello there, ünïcode and "quotes"\n',
            text=None,
            chunks=6,
            cached_tokens=3,
            model="m",
            rid="abc123",
            created=1_700_000_000,
            prompt_tokens=40,
            no_done=False,
        )
        head, deltas, tail = fake.stream(answer)
        yield head + b"".join(deltas) + tail
        yield head + b"".join(deltas[:2]) + fake.error_event("boom")


# Shapes neither source has: several choices, a finish or usage on a text chunk, a delta with
# more than text, an empty text, a text delta before any id, and the other formats' odd cases.
EDGES: dict[Format, list[Any]] = {
    "openai-chat": [
        {"id": "c", "choices": [{"index": 0, "delta": {"content": "a"}}]},
        {"id": "c", "choices": [{"index": 0, "delta": {"content": "b", "role": "assistant"}, "finish_reason": None}]},
        {
            "id": "c",
            "choices": [{"index": 0, "delta": {"content": "c", "reasoning_content": None, "tool_calls": None}}],
        },
        {"id": "c", "choices": [{"index": 0, "delta": {"content": "d", "reasoning_content": "r"}}]},
        {"id": "c", "choices": [{"index": 0, "delta": {"content": "e", "refusal": ""}}]},
        {"id": "c", "choices": [{"index": 0, "delta": {"content": "f"}, "finish_reason": "stop"}]},
        {"id": "c", "choices": [{"index": 1, "delta": {"content": "g"}}]},
        {"id": "c", "choices": [{"delta": {"content": "h"}}, {"index": 1, "delta": {"content": "i"}}]},
        {"id": "c", "choices": [{"index": 0, "delta": {"content": "j"}}], "usage": {"completion_tokens": 3}},
        {"id": "c", "choices": [{"index": 0, "delta": {"content": "k"}}], "usage": None},
        {"id": "c", "choices": [{"index": 0, "delta": {"content": ""}}]},
        {"id": "c", "choices": [{"index": 0, "delta": {"content": 5}}]},
        {"id": "c", "choices": [{"index": 0, "delta": {"content": "l", "tool_calls": [{"index": 0, "id": "t"}]}}]},
        {"id": "c", "choices": [{"index": 0, "delta": {"content": "m"}}], "error": {"message": "x"}},
        {"id": "c", "choices": [{"index": 0, "delta": {"content": "n", "function_call": {"name": "f"}}}]},
        {"id": "c", "choices": ["not a dict"]},
        [1, 2],
        "[DONE]",
    ],
    "anthropic-messages": [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": None}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "t"}},
        {"type": "content_block_delta", "index": 0, "delta": "text"},
        {"type": "content_block_delta"},
        {"type": 7},
    ],
    "openai-responses": [
        {"type": "response.output_text.delta", "sequence_number": 9, "delta": ""},
        {"type": "response.output_text.delta", "delta": "no sequence number"},
        {"type": "response.output_text.delta", "sequence_number": True, "delta": "a bool"},
        {"type": "response.output_text.delta", "sequence_number": 10, "delta": None},
        {"type": "response.refusal.delta", "sequence_number": 11, "delta": "no"},
        {"type": "response.output_text.done", "sequence_number": 12, "text": "t"},
    ],
}
# A chat text delta before the chunk that gives the id; a text block open; a message item open.
OPENERS: dict[Format, list[Any]] = {
    "openai-chat": [{"id": "c", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}],
    "anthropic-messages": [
        {"type": "message_start", "message": {"id": "msg", "model": "m", "usage": {"input_tokens": 4}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ],
    "openai-responses": [
        {"type": "response.created", "sequence_number": 0, "response": {"id": "r", "model": "m"}},
        {
            "type": "response.output_item.added",
            "sequence_number": 1,
            "output_index": 0,
            "item": {"type": "message", "id": "i"},
        },
    ],
}


def _streams(fmt: Format) -> Iterator[list[Any]]:
    """Each stream as its parsed events (TERMINATOR for chat's [DONE])."""
    for raw in [*_golden(fmt), *_fake(fmt)]:
        events = SSEParser().feed(raw)
        yield [TERMINATOR if ev.data == b"[DONE]" else orjson.loads(ev.data) for ev in events if ev.data]
    yield [*EDGES[fmt]]  # before any opening: chat has no id yet
    yield [*OPENERS[fmt], *EDGES[fmt]]


def _snapshot(state: StreamState) -> dict[str, Any]:
    slots = [name for cls in type(state).__mro__ for name in getattr(cls, "__slots__", ())]
    return {name: copy.deepcopy(getattr(state, name)) for name in slots}


@pytest.mark.parametrize("fmt", FORMATS)
def test_feed_content_does_what_feed_does_on_every_known_event(fmt: Format) -> None:
    """On each event of each stream, one state fed by feed() and one by feed_content() (falling
    back to feed() when it declines) stay equal, and what feed_content takes is CONTENT."""
    wf = wire(fmt)
    taken = declined = 0
    for events in _streams(fmt):
        full, fast = wf.stream_state(7), wf.stream_state(7)
        for obj in events:
            kind = EventKind.DONE if obj is TERMINATOR else wf.event_kind(obj)
            before = _snapshot(fast)
            full.feed(obj)
            if fast.feed_content(obj):
                taken += 1
                assert kind is EventKind.CONTENT, obj
            else:
                declined += 1
                assert _snapshot(fast) == before, f"declined but changed the state: {obj}"
                fast.feed(obj)
            assert _snapshot(fast) == _snapshot(full), obj
        assert fast.usage() == full.usage() and fast.resume_point() == full.resume_point()
    assert taken > 20 and declined > 20  # both ways exercised, in every format


def _blocks() -> Iterator[bytes]:
    for path in sorted(GOLDEN.rglob("*.sse")):
        yield from path.read_bytes().split(b"\n\n")
    for fmt in FORMATS:
        for raw in _fake(fmt):
            yield from raw.split(b"\n\n")
    yield from [
        b"data:{}",
        b"data:  two spaces",
        b"data:",
        b"data",
        b"data: a\ndata: b",
        b"event: x\ndata: y\nid: 3",
        b"event:x\ndata: y",
        b"event: x\ndata:y",
        b"event: x",
        b"event: \ndata: y",
        b"event: x\n: comment\ndata: y",
        b": keep-alive",
        b"id: 1\ndata: z",
        b"event: \xff\ndata: y",
        b"retry: 10",
    ]


def test_sse_fast_framings_agree_with_the_line_parse() -> None:
    """Every block of every stream we have, and odd framings: the same event either way."""
    seen = 0
    for block in _blocks():
        block = block.strip(b"\n")
        if block:
            raw = block + b"\n\n"
            assert _parse_block(block, raw) == _parse_lines(block, raw), block
            seen += 1
    assert seen > 200


@pytest.mark.parametrize(
    "wire_bytes",
    [
        b'data: {"a":1}\n\n',
        b'\n\ndata: {"a":1}\n\n\n\nevent: e\ndata: 2\n\n',
        b"event: e\ndata: 1\n\n: ka\n\ndata: [DONE]\n\n",
        b"data: 1\r\n\r\nevent: e\r\ndata: 2\r\n\r\n",
    ],
)
def test_raw_is_each_event_s_own_bytes_however_the_reads_fall(wire_bytes: bytes) -> None:
    """Cut anywhere, the events and their raw bytes are those of one whole read."""
    whole = [(e.event, e.data, e.raw) for e in SSEParser().feed(wire_bytes)]
    assert whole and all(raw.endswith(b"\n\n") and not raw.startswith(b"\n") for _, _, raw in whole)
    for cut in range(1, len(wire_bytes)):
        p = SSEParser()
        parts = p.feed(wire_bytes[:cut]) + p.feed(wire_bytes[cut:])
        assert [(e.event, e.data, e.raw) for e in parts] == whole
