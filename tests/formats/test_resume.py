"""Resuming a native stream (`StreamState.resume_text`, `StreamState.resume_writer`): the upstream's
own bytes up to a cut, then the resumed writer's bytes for the rest of the answer, read as ONE
stream by the official SDKs' accumulators and stream helpers: the whole text exactly once, the
upstream's ids, one terminal event. Every cut point of the recorded transcripts
(tests/formats/codec/golden/upstream/) is tried; the cuts that cannot resume are checked too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import orjson
import pytest

from router.formats import wire
from router.formats.base import TERMINATOR, StreamState
from router.formats.codec import ir
from router.formats.sse import SSEParser
from router.types import Usage
from tests.formats.codec.test_golden import ANSWER, EXPECT, HELLO, read_chat, read_messages, read_responses
from tests.formats.sdk_events import responses_events

UPSTREAM = Path(__file__).parent / "codec" / "golden" / "upstream"
CHAT, MESSAGES, RESPONSES = "openai-chat", "anthropic-messages", "openai-responses"
FORMATS = (CHAT, MESSAGES, RESPONSES)
READERS = {CHAT: read_chat, MESSAGES: read_messages, RESPONSES: read_responses}
WHOLE = {"text": HELLO, "thinking": ANSWER}  # the answer text of each transcript
USAGE = Usage(input_tokens=19, output_tokens=11)
IDS = {  # the id each transcript's client sees
    (CHAT, "text"): "chatcmpl-CZ7kqLr0Vd2cYx1kz9JtqUe3aB4Fh",
    (CHAT, "thinking"): "0b9f3c2e-6a41-4d8e-9f55-3c1a7e2b8d40",
    (MESSAGES, "text"): "msg_01XFDUDYJgAACzvnptvVoYEL",
    (MESSAGES, "thinking"): "msg_01Thk7Yq2Zr4Xs6Wv8Ut0Ps3N",
    (RESPONSES, "text"): "resp_68f9a1b2c3d4e5f60718293a4b5c6d7e0f1a2b3c0a1b2c3d",
    (RESPONSES, "thinking"): "resp_68f9a1b2c3d4e5f60718293a4b5c6d7e0f1a2b3c5c6d7e8f",
}


def transcript(fmt: str, scenario: str) -> list[tuple[bytes, Any]]:
    """Each event of a recorded upstream stream: its exact bytes (what the relay passes to a
    native client) and its decoded JSON (what the stream state is fed)."""
    raw = (UPSTREAM / fmt / f"{scenario}.sse").read_bytes()
    out = []
    for block in raw.split(b"\n\n"):
        if not block.strip():
            continue
        data = block + b"\n\n"
        (ev,) = SSEParser().feed(data)
        out.append((data, TERMINATOR if ev.data == b"[DONE]" else orjson.loads(ev.data)))
    return out


def cut(fmt: str, scenario: str, n: int) -> tuple[StreamState, bytes]:
    """The stream state after the first `n` events, and the bytes the client has by then."""
    state = wire(fmt).stream_state(100)
    delivered = b""
    for data, obj in transcript(fmt, scenario)[:n]:
        state.feed(obj)
        delivered += data
    return state, delivered


def resume(state: StreamState, rest: list[str], end: ir.Event, include_usage: bool = True) -> bytes:
    """The resumed writer's bytes: a Start (ignored), the rest of the text, then `end`."""
    writer = state.resume_writer(include_usage)
    events: list[ir.Event] = [ir.Start("other-id", "other-model", 1), *(ir.TextDelta(t) for t in rest), end]
    return b"".join(writer.write(ev) for ev in events)


def sdk(fmt: str, raw: bytes) -> Any:
    """The official client whose transport answers every request with `raw` as SSE."""
    hc = httpx2.Client(
        transport=httpx2.MockTransport(
            lambda _: httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=raw)
        )
    )
    if fmt == MESSAGES:
        return anthropic.Anthropic(api_key="k", base_url="http://t", http_client=hc, max_retries=0)
    return openai.OpenAI(
        api_key="k", base_url="http://t/v1", http_client=hc, max_retries=0, _strict_response_validation=True
    )


def helper_reads(fmt: str, raw: bytes) -> tuple[str, str]:
    """(text, id) of the final object the client's own stream helper makes of `raw`."""
    client = sdk(fmt, raw)
    ask: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    if fmt == MESSAGES:
        with client.messages.stream(max_tokens=1024, **ask) as s:
            message = s.get_final_message()
            return "".join(b.text for b in message.content if b.type == "text"), message.id
    if fmt == CHAT:
        with client.chat.completions.stream(stream_options={"include_usage": True}, **ask) as s:
            for _ in s:
                pass
            completion = s.get_final_completion()
            return completion.choices[0].message.content or "", completion.id
    with client.responses.stream(model="m", input="hi") as s:
        types = [e.type for e in s]
        assert types.count("response.completed") == 1 and types[-1] == "response.completed"
        response = s.get_final_response()
        return response.output_text, response.id


def ids_seen(fmt: str, raw: bytes) -> set[str]:
    """Every id of the message/response/chunk in the bytes (one, for one stream)."""
    out = set()
    for ev in SSEParser().feed(raw):
        if ev.data == b"[DONE]":
            continue
        obj = orjson.loads(ev.data)
        if fmt == CHAT and "error" not in obj:  # the error line is the only chunk without one
            out.add(obj["id"])
        elif fmt == MESSAGES and obj["type"] == "message_start":
            out.add(obj["message"]["id"])
        elif fmt == RESPONSES and "response" in obj:
            out.add(obj["response"]["id"])
    return out


# ---------------------------------------------------------------- every cut of every transcript

CASES = [(f, s) for f in FORMATS for s in ("text", "thinking")]


@pytest.mark.parametrize(("fmt", "scenario"), CASES)
def test_every_cut_resumes_into_one_stream(fmt: str, scenario: str) -> None:
    """At each cut where resume_text() gives a string, the delivered bytes plus the resumed
    writer's are one stream the SDK reads into the whole text, once, with the upstream's id; the
    other cuts are before any answer text, inside thinking, or after the answer's end."""
    whole, events = WHOLE[scenario], transcript(fmt, scenario)
    resumed = 0
    for n in range(len(events) + 1):
        state, delivered = cut(fmt, scenario, n)
        text = state.resume_text()
        if text is None:
            continue
        assert whole.startswith(text) and text, f"cut {n}: {text!r}"
        rest = whole[len(text) :]
        raw = delivered + resume(state, [rest[:3], rest[3:]] if rest else [], ir.Finish("end", usage=USAGE))
        seen = READERS[fmt](raw)  # the accumulator: one terminal event, nothing after it
        assert (seen.text, seen.stop, seen.usage, seen.error) == (whole, "end", (19, 11), None), f"cut {n}"
        assert seen.thinking == EXPECT[fmt, scenario].thinking  # the thinking the client saw, kept
        assert helper_reads(fmt, raw) == (whole, IDS[fmt, scenario]), f"cut {n}"
        assert ids_seen(fmt, raw) == {IDS[fmt, scenario]}
        if fmt == RESPONSES:
            _check_responses(responses_events(raw), len(transcript(fmt, scenario)[:n]), whole)
        resumed += 1
    assert resumed >= 2  # mid-text cuts exist in every transcript


def _check_responses(events: list[dict[str, Any]], delivered: int, whole: str) -> None:
    """Every event validated strictly (responses_events); one created; the text's .done events
    and the terminal event carry the whole text; the terminal output has every item the client
    saw (the upstream's done items, the same objects); the sequence numbers run on."""
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events].count("response.created") == 1
    done_text = [e["text"] for e in events if e["type"] == "response.output_text.done"]
    assert "".join(done_text) == whole and len(done_text) == 1
    final = events[-1]["response"]
    seen = {e["item"]["id"]: e["item"] for e in events[:delivered] if e["type"] == "response.output_item.done"}
    assert all(item in final["output"] for item in seen.values())
    added = [e["item"]["id"] for e in events if e["type"] == "response.output_item.added"]
    assert [item["id"] for item in final["output"]] == added


# ---------------------------------------------------------------- exact cuts


def _until(fmt: str, scenario: str, needle: str) -> int:
    """The number of events up to and including the first whose bytes contain `needle`."""
    for n, (data, _) in enumerate(transcript(fmt, scenario), 1):
        if needle.encode() in data:
            return n
    raise AssertionError(needle)


@pytest.mark.parametrize("fmt", FORMATS)
def test_text_cut_mid_answer(fmt: str) -> None:
    state, _ = cut(fmt, "text", _until(fmt, "text", "Hello"))
    assert state.resume_text() == "Hello"


@pytest.mark.parametrize("fmt", FORMATS)
def test_thinking_then_text_resumes_the_text_only(fmt: str) -> None:
    state, _ = cut(fmt, "thinking", _until(fmt, "thinking", '17 × 23"'))
    assert state.resume_text() == "17 × 23"


@pytest.mark.parametrize("fmt", FORMATS)
def test_inside_thinking_before_text_is_not_resumable(fmt: str) -> None:
    state, _ = cut(fmt, "thinking", _until(fmt, "thinking", "17 × 20 = 340"))
    assert state.resume_text() is None


@pytest.mark.parametrize("fmt", FORMATS)
def test_before_any_content_is_not_resumable(fmt: str) -> None:
    for n in range(_until(fmt, "text", "Hello")):
        assert cut(fmt, "text", n)[0].resume_text() is None


@pytest.mark.parametrize("fmt", FORMATS)
def test_tool_call_arguments_are_not_resumable(fmt: str) -> None:
    """Cut inside a tool call's arguments (after text, for Anthropic's transcript), or after the
    call: never resumed, the arguments may be cut and a prefill cannot carry them."""
    events = transcript(fmt, "tools")
    for n in range(_until(fmt, "tools", "get_weather"), len(events) + 1):
        assert cut(fmt, "tools", n)[0].resume_text() is None, n
    if fmt == MESSAGES:  # its text before the calls could resume
        assert cut(fmt, "tools", _until(fmt, "tools", "I'll check"))[0].resume_text() == "I'll check the weather"


@pytest.mark.parametrize("fmt", FORMATS)
def test_after_the_answer_ended_is_not_resumable(fmt: str) -> None:
    events = transcript(fmt, "text")
    assert cut(fmt, "text", len(events))[0].resume_text() is None


@pytest.mark.parametrize("fmt", FORMATS)
def test_error_ends_the_resumed_stream_in_its_format(fmt: str) -> None:
    state, delivered = cut(fmt, "text", _until(fmt, "text", "Hello"))
    assert state.resume_text() == "Hello"
    raw = delivered + resume(state, [" there"], ir.Error("the route failed", "api_error"))
    seen = READERS[fmt](raw)  # the accumulator: the error ending, nothing after it
    assert (seen.text, seen.error) == ("Hello there", "the route failed")
    assert ids_seen(fmt, raw) == {IDS[fmt, "text"]}
    if fmt == RESPONSES:
        responses_events(raw)


def test_chat_without_include_usage_writes_no_usage_chunk() -> None:
    state, _ = cut(CHAT, "text", _until(CHAT, "text", "Hello"))
    tail = resume(state, ["!"], ir.Finish("end", usage=USAGE), include_usage=False)
    assert b'"usage"' not in tail and tail.endswith(b"data: [DONE]\n\n")
    assert b'"role"' not in tail  # no second role chunk


def test_anthropic_resume_writes_no_second_message_start_or_block_start() -> None:
    state, _ = cut(MESSAGES, "text", _until(MESSAGES, "text", "Hello"))
    tail = resume(state, [" you"], ir.Finish("end", usage=USAGE))
    kinds = [ev.event for ev in SSEParser().feed(tail)]
    assert kinds == ["content_block_delta", "content_block_stop", "message_delta", "message_stop"]


def test_responses_inside_the_items_closing_events_is_not_resumable() -> None:
    """After output_text.done the client has the item's closing events in part: a writer would
    repeat them. After output_item.done the text resumes again, into a new message item."""
    at = _until(RESPONSES, "text", "response.output_text.done")
    assert cut(RESPONSES, "text", at)[0].resume_text() is None
    assert cut(RESPONSES, "text", at + 1)[0].resume_text() is None
    state, delivered = cut(RESPONSES, "text", at + 2)
    assert state.resume_text() == HELLO
    raw = delivered + resume(state, [" More."], ir.Finish("end", usage=USAGE))
    events = responses_events(raw)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    final = events[-1]["response"]
    assert [item["content"][0]["text"] for item in final["output"]] == [HELLO, " More."]
    assert helper_reads(RESPONSES, raw) == (HELLO + " More.", IDS[RESPONSES, "text"])


def test_anthropic_after_the_text_block_stopped_resumes_into_a_new_block() -> None:
    state, delivered = cut(MESSAGES, "text", _until(MESSAGES, "text", "content_block_stop"))
    assert state.resume_text() == HELLO
    raw = delivered + resume(state, [" More."], ir.Finish("end", usage=USAGE))
    starts = [orjson.loads(ev.data)["index"] for ev in SSEParser().feed(raw) if ev.event == "content_block_start"]
    assert starts == [0, 1]
    assert helper_reads(MESSAGES, raw) == (HELLO + " More.", IDS[MESSAGES, "text"])


def test_chat_finish_without_a_delta_ends_resuming() -> None:
    state, _ = cut(CHAT, "text", _until(CHAT, "text", "Hello"))
    state.feed({"id": "x", "choices": [{"index": 0, "finish_reason": "stop"}]})
    assert state.resume_text() is None
