"""Resuming a native stream cut inside or after a tool call (`StreamState.resume_point`, then
`StreamState.resume_writer`): the upstream's own bytes up to the cut, then the resumed writer's
bytes for the rest (the open call's remaining arguments, the calls after it, the end), read as ONE
stream by the official SDKs' accumulators and stream helpers: the text once, each call once with
its id, name and whole JSON arguments, one terminal event. Every cut of each transcript is tried:
what the client has at each is read independently, by the format's own stream reader."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from router.formats import wire
from router.formats.base import TERMINATOR, Delivered, StreamState
from router.formats.codec import ir
from router.formats.sse import encode
from router.types import Usage
from tests.formats.sdk_events import responses_events
from tests.formats.test_resume import (
    CHAT,
    MESSAGES,
    READERS,
    RESPONSES,
    USAGE,
    _until,
    helper_reads,
    ids_seen,
    transcript,
)

Events = list[tuple[bytes, Any]]
_CHAT_ID, _CALL = "chatcmpl-Tl1", "call_One1"


def _chat_chunk(delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None) -> tuple[bytes, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    obj = {
        "id": _CHAT_ID,
        "object": "chat.completion.chunk",
        "created": 1764000000,
        "model": "gpt-4.1",
        "choices": choices,
        "usage": usage,
    }
    return encode(orjson.dumps(obj)), obj


def _chat_one() -> Events:
    """Text, then one tool call whose arguments come in fragments (the shapes of OpenAI's)."""
    fn = {"name": "get_weather", "arguments": ""}
    out = [
        _chat_chunk({"role": "assistant", "content": "", "refusal": None}),
        _chat_chunk({"content": "Checking"}),
        _chat_chunk({"content": " the weather."}),
        _chat_chunk({"tool_calls": [{"index": 0, "id": _CALL, "type": "function", "function": fn}]}),
        *(
            _chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": a}}]})
            for a in ('{"ci', 'ty": "Pa', 'ris", "unit"', ': "celsius"}')
        ),
        _chat_chunk({}, "tool_calls"),
        _chat_chunk(None, usage={"prompt_tokens": 30, "completion_tokens": 20, "total_tokens": 50}),
    ]
    return [*out, (b"data: [DONE]\n\n", TERMINATOR)]


def _messages_one() -> Events:
    """Anthropic's transcript with its second call (block 2) left out: text, then one call."""
    return [(data, obj) for data, obj in transcript(MESSAGES, "tools") if obj.get("index") != 2]


STREAMS: dict[tuple[str, str], Callable[[], Events]] = {
    (CHAT, "parallel"): lambda: transcript(CHAT, "tools"),
    (CHAT, "one"): _chat_one,
    (MESSAGES, "parallel"): lambda: transcript(MESSAGES, "tools"),
    (MESSAGES, "one"): _messages_one,
    (RESPONSES, "parallel"): lambda: transcript(RESPONSES, "tools"),
}
# The first event of the answer's end in each format: no cut from there on resumes.
_END = {CHAT: '"finish_reason":"tool_calls"', MESSAGES: "message_delta", RESPONSES: "response.completed"}


def _read(fmt: str, events: Events) -> tuple[str, list[tuple[str, str, str]]]:
    """(text, [(id, name, arguments)]) that the format's own stream reader makes of `events`."""
    reader, text, calls = wire(fmt).stream_reader(), "", []
    for _, obj in events:
        for ev in reader.feed("[DONE]" if obj is TERMINATOR else obj):
            if isinstance(ev, ir.TextDelta):
                text += ev.text
            elif isinstance(ev, ir.ToolStart):
                calls.append((ev.id, ev.name, ""))
            elif isinstance(ev, ir.ToolArgs):
                cid, name, args = calls[ev.index]
                calls[ev.index] = (cid, name, args + ev.fragment)
    return text, calls


def _cut(fmt: str, events: Events, n: int) -> tuple[StreamState, bytes]:
    state = wire(fmt).stream_state(100)
    for _, obj in events[:n]:
        state.feed(obj)
    return state, b"".join(data for data, _ in events[:n])


def _rest(state: StreamState, have: int, args_have: str, whole: list[tuple[str, str, str]]) -> bytes:
    """The resumed writer's bytes: a Start (ignored), the open call's remaining arguments in two
    fragments, every later call whole, then the end."""
    writer = state.resume_writer(True)
    open_call = have - 1
    rest = whole[open_call][2][len(args_have) :]
    events: list[ir.Event] = [ir.Start("other-id", "other-model", 1)]
    events += [ir.ToolArgs(open_call, rest[:3]), ir.ToolArgs(open_call, rest[3:])]
    for i in range(have, len(whole)):
        events += [ir.ToolStart(i, whole[i][0], whole[i][1]), ir.ToolArgs(i, whole[i][2])]
    events.append(ir.Finish("tool_use", usage=USAGE))
    return b"".join(writer.write(ev) for ev in events)


def _answer_id(fmt: str, events: Events) -> str:
    obj = events[0][1]
    return str({CHAT: obj.get("id"), MESSAGES: obj.get("message", {}).get("id")}.get(fmt) or obj["response"]["id"])


@pytest.mark.parametrize(("fmt", "scenario"), list(STREAMS))
def test_every_cut_in_the_tool_calls_resumes_into_one_stream(fmt: str, scenario: str) -> None:
    events = STREAMS[fmt, scenario]()
    whole_text, whole = _read(fmt, events)
    end = next(n for n, (data, _) in enumerate(events) if _END[fmt].encode() in data)
    resumed = 0
    for n in range(len(events) + 1):
        state, delivered = _cut(fmt, events, n)
        text, calls = _read(fmt, events[:n])
        point = state.resume_point()
        # Between a call's arguments.done and its output_item.done a writer would repeat the first.
        closing = fmt == RESPONSES and n and b"function_call_arguments.done" in events[n - 1][0]
        if not calls or n > end or closing:
            if not calls and not closing and point is not None:  # before the calls: the text-only rule
                assert point == Delivered(text, ()) and state.resume_text() == text, n
            else:
                assert point is None, n
            continue
        assert point == Delivered(text, tuple((name, args) for _, name, args in calls)), n
        assert state.resume_text() is None  # a prefill cannot carry a call
        assert all(w[2].startswith(c[2]) for w, c in zip(whole, calls, strict=False))
        raw = delivered + _rest(state, len(calls), calls[-1][2], whole)
        seen = READERS[fmt](raw)  # the accumulator: one terminal event, nothing after it
        want_calls = tuple((cid, name, json.loads(args)) for cid, name, args in whole)
        assert (seen.text, seen.calls, seen.stop, seen.usage, seen.error) == (
            whole_text,
            want_calls,
            "tool_use",
            (19, 11),
            None,
        ), n
        assert helper_reads(fmt, raw) == (whole_text, _answer_id(fmt, events)), n
        assert ids_seen(fmt, raw) == {_answer_id(fmt, events)}
        if fmt == RESPONSES:
            _check_responses(responses_events(raw), whole)
        resumed += 1
    assert resumed >= 4


def _check_responses(events: list[dict[str, Any]], whole: list[tuple[str, str, str]]) -> None:
    """Sequence numbers run on; each call's arguments.done and item.done carry its whole
    arguments, once; the terminal output lists every item added, in order."""
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    done = [e["arguments"] for e in events if e["type"] == "response.function_call_arguments.done"]
    assert done == [args for _, _, args in whole]
    items = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert [i["arguments"] for i in items if i["type"] == "function_call"] == done
    added = [e["item"]["id"] for e in events if e["type"] == "response.output_item.added"]
    assert [item["id"] for item in events[-1]["response"]["output"]] == added


# ---------------------------------------------------------------- exact cuts


@pytest.mark.parametrize("fmt", [CHAT, MESSAGES])
def test_exact_point_inside_the_first_call(fmt: str) -> None:
    events = STREAMS[fmt, "parallel"]()
    at = next(n for n, (data, _) in enumerate(events, 1) if b"Pa" in data and b"delta" in data)
    point = _cut(fmt, events, at)[0].resume_point()
    text = "I'll check the weather in both cities." if fmt == MESSAGES else ""
    args = {CHAT: '{"city":"Paris', MESSAGES: '{"city": "Pa'}[fmt]
    assert point == Delivered(text, (("get_weather", args),))


@pytest.mark.parametrize("fmt", [CHAT, MESSAGES, RESPONSES])
def test_no_resume_point_before_content_inside_thinking_or_after_the_end(fmt: str) -> None:
    for n in range(_until(fmt, "text", "Hello")):
        assert _cut(fmt, transcript(fmt, "text"), n)[0].resume_point() is None
    thinking = transcript(fmt, "thinking")
    assert _cut(fmt, thinking, _until(fmt, "thinking", "17 × 20 = 340"))[0].resume_point() is None
    assert _cut(fmt, thinking, _until(fmt, "thinking", '17 × 23"'))[0].resume_point() == Delivered("17 × 23", ())
    for scenario in ("text", "tools"):
        events = transcript(fmt, scenario)
        assert _cut(fmt, events, len(events))[0].resume_point() is None


def test_chat_text_after_a_call_has_no_resume_point() -> None:
    state, _ = _cut(CHAT, _chat_one(), 6)
    assert state.resume_point() is not None
    state.feed(_chat_chunk({"content": "more"})[1])
    assert state.resume_point() is None


def test_anthropic_finish_closes_the_open_tool_block() -> None:
    events = _messages_one()
    state, _ = _cut(MESSAGES, events, _until(MESSAGES, "tools", "ris"))
    writer = state.resume_writer(True)
    tail = writer.write(ir.ToolArgs(0, '", "unit": "celsius"}')) + writer.write(ir.Finish("tool_use", usage=Usage()))
    kinds = [orjson.loads(line[6:])["type"] for line in tail.split(b"\n") if line.startswith(b"data: ")]
    assert kinds == ["content_block_delta", "content_block_stop", "message_delta", "message_stop"]
