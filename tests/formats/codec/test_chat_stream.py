"""openai-chat streams <-> IR events (router/formats/codec/chat_stream.py): realistic upstream chunk
sequences read into events, and written chunks checked with the openai SDK's own chunk type,
accumulator (ChatCompletionStreamState) and `client.chat.completions.stream()` helper."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import openai
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from router.formats.codec import ir
from router.formats.codec.chat_stream import ChatStreamReader, ChatStreamWriter
from router.types import Usage

OBJ = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1764000000, "model": "gpt-x"}
USAGE_JSON = {
    "prompt_tokens": 50,
    "completion_tokens": 20,
    "total_tokens": 70,
    "prompt_tokens_details": {"cached_tokens": 10},
    "completion_tokens_details": {"reasoning_tokens": 5},
}
USAGE = Usage(input_tokens=40, cached_tokens=10, output_tokens=20, reasoning_tokens=5)
START = ir.Start("chatcmpl-1", "gpt-x", 1764000000)


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta if delta is not None else {}, "logprobs": None, "finish_reason": finish}
    return {**OBJ, "choices": [choice], "usage": None, **extra}


def usage_chunk() -> dict[str, Any]:
    return {**OBJ, "choices": [], "usage": USAGE_JSON}


def tool(index: int, args: str, call_id: str | None = None, name: str | None = None) -> dict[str, Any]:
    frag: dict[str, Any] = {"index": index, "function": {"arguments": args}}
    if call_id is not None:
        frag.update(id=call_id, type="function")
        frag["function"]["name"] = name
    return chunk({"tool_calls": [frag]})


def read(objs: list[Any]) -> list[ir.Event]:
    reader = ChatStreamReader()
    return [ev for obj in objs for ev in reader.feed(obj)]


# ---------------------------------------------------------------- reader

READS: list[tuple[str, list[Any], list[ir.Event]]] = [
    (
        "text",
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Hel"}),
            chunk({"content": ""}),
            chunk({"content": "lo"}),
            chunk({}, "stop"),
            usage_chunk(),
            "[DONE]",
        ],
        [START, ir.TextDelta("Hel"), ir.TextDelta("lo"), ir.Finish("end", usage=USAGE)],
    ),
    (
        "parallel tool calls, fragmented and interleaved arguments",
        [
            chunk({"role": "assistant", "content": None}),
            chunk({"content": "Checking."}),
            tool(0, "", "call_a", "weather"),
            tool(0, '{"city":'),
            tool(1, '{"q', "call_b", "search"),
            tool(0, '"Paris"}'),
            tool(1, '":"x"}'),
            chunk({}, "tool_calls"),
            usage_chunk(),
            "[DONE]",
        ],
        [
            START,
            ir.TextDelta("Checking."),
            ir.ToolStart(0, "call_a", "weather"),
            ir.ToolArgs(0, '{"city":'),
            ir.ToolStart(1, "call_b", "search"),
            ir.ToolArgs(1, '{"q'),
            ir.ToolArgs(0, '"Paris"}'),
            ir.ToolArgs(1, '":"x"}'),
            ir.Finish("tool_use", usage=USAGE),
        ],
    ),
    (
        "reasoning_content then content",
        [
            chunk({"role": "assistant", "reasoning_content": "Let me"}),
            chunk({"reasoning_content": " think"}),
            chunk({"content": "42"}),
            chunk({}, "length"),
            usage_chunk(),
            "[DONE]",
        ],
        [
            START,
            ir.ThinkingDelta("Let me", origin="openai-chat"),
            ir.ThinkingDelta(" think", origin="openai-chat"),
            ir.TextDelta("42"),
            ir.Finish("length", usage=USAGE),
        ],
    ),
    (
        "`reasoning` (OpenRouter style), sent along with the same reasoning_content, is read once",
        [chunk({"reasoning": "r"}), chunk({"reasoning": "s", "reasoning_content": "s"}), chunk({}, "stop"), "[DONE]"],
        [
            START,
            ir.ThinkingDelta("r", origin="openai-chat"),
            ir.ThinkingDelta("s", origin="openai-chat"),
            ir.Finish("end"),
        ],
    ),
    (
        "error chunk mid-stream ends it",
        [
            chunk({"content": "par"}),
            {"error": {"message": "overloaded", "type": "server_error", "param": None, "code": None}},
            chunk({"content": "more"}),
            "[DONE]",
        ],
        [START, ir.TextDelta("par"), ir.Error("overloaded", "api_error")],
    ),
    (
        "error before anything else",
        [{"error": {"message": "slow", "type": "requests", "code": "rate_limit_exceeded"}}],
        [ir.Error("slow", "rate_limit_error", "rate_limit_exceeded")],
    ),
    (
        "no usage chunk: Finish at [DONE] without usage",
        [chunk({"content": "x"}), chunk({}, "content_filter"), "[DONE]", "[DONE]"],
        [START, ir.TextDelta("x"), ir.Finish("content_filter")],
    ),
    (
        "usage on the finish chunk itself",
        [chunk({"content": "x"}), chunk({}, "stop", usage=USAGE_JSON), usage_chunk(), "[DONE]"],
        [START, ir.TextDelta("x"), ir.Finish("end", usage=USAGE)],
    ),
    (
        "usage before finish_reason (continuous usage stats) is an update; the last one rides on Finish",
        [
            chunk({"content": "x"}, usage={"prompt_tokens": 50, "completion_tokens": 1, "total_tokens": 51}),
            chunk({}, "stop"),
            "[DONE]",
        ],
        [
            START,
            ir.TextDelta("x"),
            ir.UsageUpdate(Usage(input_tokens=50, output_tokens=1)),
            ir.Finish("end", usage=Usage(input_tokens=50, output_tokens=1)),
        ],
    ),
    (
        "refusal deltas read as text; choices other than 0 are ignored",
        [
            chunk({"refusal": "No."}),
            {**OBJ, "choices": [{"index": 1, "delta": {"content": "other"}}]},
            chunk({}, "stop"),
            "[DONE]",
        ],
        [START, ir.TextDelta("No."), ir.Finish("end")],
    ),
    (
        "parallel calls all sent at index 0 with their own ids; fragments without index continue the last call",
        [
            tool(0, '{"a":1}', "c1", "f"),
            tool(0, "{", "c2", "g"),
            {**OBJ, "choices": [{"index": 0, "delta": {"tool_calls": [{"function": {"arguments": "}"}}]}}]},
            chunk({}, "tool_calls"),
            "[DONE]",
        ],
        [
            START,
            ir.ToolStart(0, "c1", "f"),
            ir.ToolArgs(0, '{"a":1}'),
            ir.ToolStart(1, "c2", "g"),
            ir.ToolArgs(1, "{"),
            ir.ToolArgs(1, "}"),
            ir.Finish("tool_use"),
        ],
    ),
    (
        "odd input is ignored, never raised on",
        [
            "garbage",
            None,
            3,
            [],
            {**OBJ, "choices": None},
            {**OBJ, "choices": ["x", {"index": 0, "delta": "x"}]},
            {**OBJ, "choices": [{"index": 0, "delta": {"tool_calls": ["x", {"index": 0}]}}]},
            chunk({"content": 5}),
            "[DONE]",
        ],
        [START, ir.ToolStart(0, "call_0", ""), ir.Finish("end")],
    ),
    ("a stream with no chunk at all", ["[DONE]"], []),
    (
        "a first chunk without id or created",
        [
            {
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": "stop"}],
            },
            "[DONE]",
        ],
        [ir.Start("*", "", None), ir.TextDelta("x"), ir.Finish("end")],
    ),
]


@pytest.mark.parametrize(("objs", "expected"), [pytest.param(o, e, id=name) for name, o, e in READS])
def test_reader(objs: list[Any], expected: list[ir.Event]) -> None:
    """Upstream chat chunks read into IR events: Start first, deltas, Finish carrying usage, or Error."""
    events = read(objs)
    if expected and isinstance(expected[0], ir.Start) and expected[0].id == "*":
        assert isinstance(events[0], ir.Start) and events[0].id.startswith("chatcmpl-")
        events[0].id = "*"
    assert events == expected


def test_reader_is_done_after_finish() -> None:
    """After Finish, later chunks are ignored, and repr shows the state."""
    reader = ChatStreamReader()
    reader.feed(chunk({}, "stop"))
    assert "finish=end" in repr(reader)
    assert reader.feed(usage_chunk()) == [ir.Finish("end", usage=USAGE)]
    assert reader.feed(chunk({"content": "late"})) == [] and reader.feed("[DONE]") == []


# ---------------------------------------------------------------- writer

EVENTS: list[ir.Event] = [
    ir.Start("msg_01", "claude-x", 1764000000),
    ir.ThinkingDelta("Let me think.", origin="anthropic-messages"),
    ir.ThinkingDelta(signature="sig", origin="anthropic-messages"),
    ir.BlockEnd(),
    ir.TextDelta("Checking "),
    ir.TextDelta("both."),
    ir.BlockEnd(),
    ir.ToolStart(0, "toolu_1", "weather"),
    ir.ToolArgs(0, '{"city"'),
    ir.ToolStart(1, "toolu_2", "time"),
    ir.ToolArgs(0, ': "Paris"}'),
    ir.ToolArgs(1, ""),
    ir.ToolArgs(1, '{"tz": "CET"}'),
    ir.BlockEnd(),
    ir.UsageUpdate(Usage(input_tokens=40, cached_tokens=10, output_tokens=7)),
    ir.Finish("tool_use", usage=USAGE),
]


def write(events: list[ir.Event], include_usage: bool = True) -> bytes:
    writer = ChatStreamWriter("client-model", include_usage)
    return b"".join(writer.write(ev) for ev in events)


def data_lines(raw: bytes) -> list[str]:
    """The SSE data payloads; every event must end in a blank line (protocols.md F.1)."""
    assert raw.endswith(b"\n\n")
    events = raw.decode().split("\n\n")[:-1]
    assert all(e.startswith("data: ") and "\n" not in e for e in events)
    return [e[len("data: ") :] for e in events]


def test_writer_chunks_accumulate_with_the_sdk() -> None:
    """Every chunk validates as ChatCompletionChunk with the same id/created/model, and the SDK's
    accumulator builds the final completion: text, reasoning, tool calls with parseable JSON
    arguments, finish_reason and usage."""
    lines = data_lines(write(EVENTS))
    assert lines[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate(json.loads(line)) for line in lines[:-1]]
    assert {(c.id, c.created, c.model, c.object) for c in chunks} == {
        ("msg_01", 1764000000, "client-model", "chat.completion.chunk")
    }
    assert all(c.usage is None for c in chunks[:-1]) and chunks[-1].choices == []
    assert all("usage" in json.loads(line) for line in lines[:-1])
    state: ChatCompletionStreamState[None] = ChatCompletionStreamState()
    for c in chunks:
        list(state.handle_chunk(c))
    final = state.get_final_completion()
    msg = final.choices[0].message
    assert msg.role == "assistant" and msg.content == "Checking both."
    assert msg.model_extra is not None and msg.model_extra["reasoning_content"] == "Let me think."
    assert msg.tool_calls is not None
    assert [(t.id, t.function.name, json.loads(t.function.arguments)) for t in msg.tool_calls] == [
        ("toolu_1", "weather", {"city": "Paris"}),
        ("toolu_2", "time", {"tz": "CET"}),
    ]
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.usage is not None and final.usage.model_dump(exclude_none=True) == USAGE_JSON


def test_writer_through_the_sdk_stream_helper() -> None:
    """`client.chat.completions.stream()` over the written bytes gives the whole completion."""
    raw = write(
        [
            ir.Start("", "m"),
            ir.TextDelta("Hi"),
            ir.ToolStart(0, "c1", "f"),
            ir.ToolArgs(0, '{"a": [1, 2]}'),
            ir.Finish("tool_use"),
        ]
    )
    client = _client(raw)
    with client.chat.completions.stream(model="client-model", messages=[{"role": "user", "content": "x"}]) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    assert final.id.startswith("chatcmpl-") and final.choices[0].message.content == "Hi"
    assert final.choices[0].finish_reason == "tool_calls" and final.usage is None
    tc = (final.choices[0].message.tool_calls or [])[0]
    assert tc.type == "function" and json.loads(tc.function.arguments) == {"a": [1, 2]}


def test_writer_error_is_raised_by_the_sdk() -> None:
    """An Error ends the stream with a chat error line the SDK raises as APIError; no [DONE] follows."""
    writer = ChatStreamWriter("m")
    raw = writer.write(ir.Start("id1", "m")) + writer.write(ir.TextDelta("par"))
    err = writer.write(ir.Error("upstream died", "overloaded_error"))
    assert json.loads(data_lines(err)[0]) == {
        "error": {"message": "upstream died", "type": "server_error", "param": None, "code": None}
    }
    assert writer.write(ir.TextDelta("late")) == b"" and writer.write(ir.Finish("end")) == b""
    with pytest.raises(openai.APIError, match="upstream died"):
        for _ in _client(raw + err).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}], stream=True
        ):
            pass


def test_writer_without_include_usage() -> None:
    """Without include_usage no chunk has a usage key and no usage chunk is sent, even if known."""
    lines = data_lines(write([START, ir.TextDelta("x"), ir.Finish("end", usage=USAGE)], include_usage=False))
    assert lines[-1] == "[DONE]"
    objs = [json.loads(line) for line in lines[:-1]]
    assert all("usage" not in o for o in objs) and len(objs) == 3
    assert objs[-1]["choices"] == [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]


START_USAGE_JSON = {
    "prompt_tokens": 9,
    "completion_tokens": 0,
    "total_tokens": 9,
    "prompt_tokens_details": {"cached_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0},
}


@pytest.mark.parametrize(
    ("events", "usage"),
    [
        ([START, ir.UsageUpdate(USAGE), ir.Finish("end")], USAGE_JSON),
        ([ir.Start("a", "m", usage=Usage(input_tokens=9)), ir.Finish("end")], START_USAGE_JSON),
        ([START, ir.Finish("end")], None),
    ],
)
def test_writer_usage_sources(events: list[ir.Event], usage: dict[str, Any] | None) -> None:
    """The usage chunk comes from Finish, else the latest UsageUpdate, else Start; none when unknown."""
    objs = [json.loads(line) for line in data_lines(write(events))[:-1]]
    assert (objs[-1]["usage"] if objs[-1]["choices"] == [] else None) == usage


def test_writer_quiet_events_and_implicit_start() -> None:
    """BlockEnd, empty deltas and signature-only thinking write nothing; a first event other than
    Start gets a role chunk made up for it; writes after Finish are empty."""
    writer = ChatStreamWriter("m")
    first = data_lines(writer.write(ir.TextDelta("x")))
    assert [json.loads(x)["choices"][0]["delta"] for x in first] == [
        {"role": "assistant", "content": ""},
        {"content": "x"},
    ]
    assert writer.response_id is not None and writer.response_id.startswith("chatcmpl-")
    quiet: list[ir.Event] = [
        ir.BlockEnd(),
        ir.TextDelta(""),
        ir.ThinkingDelta(signature="s"),
        ir.ToolArgs(0, ""),
        ir.UsageUpdate(USAGE),
    ]
    assert [writer.write(ev) for ev in quiet] == [b""] * len(quiet)
    assert writer.write(ir.Finish("end")).endswith(b"data: [DONE]\n\n")
    assert writer.write(ir.TextDelta("late")) == b"" and "started=True ended=True" in repr(writer)


def test_writer_error_before_start() -> None:
    """An Error as the first event is the only line written."""
    assert write([ir.Error("bad", "invalid_request_error", "x")]) == (
        b'data: {"error":{"message":"bad","type":"invalid_request_error","param":null,"code":"x"}}\n\n'
    )


# ---------------------------------------------------------------- round trip

ROUND_TRIPS: list[list[ir.Event]] = [
    [
        START,
        ir.ThinkingDelta("hmm", origin="openai-chat"),
        ir.TextDelta("Hello"),
        ir.ToolStart(0, "call_a", "f"),
        ir.ToolArgs(0, '{"x":'),
        ir.ToolStart(1, "call_b", "g"),
        ir.ToolArgs(1, "{}"),
        ir.ToolArgs(0, "1}"),
        ir.Finish("tool_use", usage=USAGE),
    ],
    [START, ir.TextDelta("cut"), ir.Finish("length")],
    [START, ir.TextDelta("par"), ir.Error("slow down", "rate_limit_error", "rate_limit_exceeded")],
]


@pytest.mark.parametrize("events", ROUND_TRIPS)
@pytest.mark.parametrize("include_usage", [True, False])
def test_round_trip(events: list[ir.Event], include_usage: bool) -> None:
    """reader(writer(events)) == events for sequences chat can express (usage needs include_usage)."""
    reader = ChatStreamReader()
    got: list[ir.Event] = []
    for line in data_lines(write(events, include_usage)):
        got.extend(reader.feed("[DONE]" if line == "[DONE]" else json.loads(line)))
    expected = list(events)
    if not include_usage and isinstance(expected[-1], ir.Finish):
        expected[-1] = ir.Finish(expected[-1].stop)
    assert got == [ir.Start(START.id, "client-model", START.created), *expected[1:]]


def _client(raw: bytes) -> openai.OpenAI:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=raw)

    return openai.OpenAI(
        api_key="k", base_url="http://test/v1", http_client=httpx2.Client(transport=httpx2.MockTransport(handler))
    )
