"""anthropic-messages stream events <-> IR events: the reader on realistic upstream sequences
(protocols.md B.4), the writer checked against the anthropic SDK's own event types and its
`messages.stream()` accumulator, and reader(writer(events)) == events."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
import orjson
import pydantic
import pytest

from router.config import Format
from router.formats.codec import ir
from router.formats.codec.messages_stream import MessagesStreamReader, MessagesStreamWriter
from router.formats.sse import SSEParser
from router.types import Usage

FMT: Format = "anthropic-messages"
_EVENT = pydantic.TypeAdapter(anthropic.types.RawMessageStreamEvent)


# ---------------------------------------------------------------- upstream event builders


def start(usage: dict[str, Any] | None = None) -> dict[str, Any]:
    if usage is None:
        usage = {"input_tokens": 40, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 10}
        usage["output_tokens"] = 1
    message: dict[str, Any] = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    return {"type": "message_start", "message": message}


def block(index: int, content_block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": content_block}


def delta(index: int, **d: Any) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": d}


def stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def message_delta(reason: str, usage: dict[str, Any], seq: str | None = None) -> dict[str, Any]:
    return {"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": seq}, "usage": usage}


PING = {"type": "ping"}
MESSAGE_STOP = {"type": "message_stop"}
START_USAGE = Usage(input_tokens=40, cached_tokens=10, output_tokens=1)


def read_all(events: list[Any]) -> list[ir.Event]:
    reader = MessagesStreamReader()
    return [ev for obj in events for ev in reader.feed(obj)]


# ---------------------------------------------------------------- reader


def test_read_text_stream() -> None:
    """Text deltas between Start and Finish; pings are ignored; usage combines start and delta."""
    events = [
        start(),
        block(0, {"type": "text", "text": ""}),
        PING,
        delta(0, type="text_delta", text="Hello"),
        delta(0, type="text_delta", text=", world"),
        stop(0),
        message_delta("end_turn", {"output_tokens": 12}),
        MESSAGE_STOP,
    ]
    assert read_all(events) == [
        ir.Start("msg_1", "claude-x", usage=START_USAGE),
        ir.TextDelta("Hello"),
        ir.TextDelta(", world"),
        ir.BlockEnd(),
        ir.Finish("end", None, Usage(40, 10, 0, 12)),
    ]


def test_read_two_tool_calls_with_fragments() -> None:
    """tool_use blocks -> ToolStart indexed by tool call (not block); input_json fragments -> ToolArgs."""
    events = [
        start(),
        block(0, {"type": "text", "text": ""}),
        delta(0, type="text_delta", text="Checking."),
        stop(0),
        block(1, {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}),
        delta(1, type="input_json_delta", partial_json=""),
        delta(1, type="input_json_delta", partial_json='{"city": "Pa'),
        delta(1, type="input_json_delta", partial_json='ris"}'),
        stop(1),
        block(2, {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}}),
        delta(2, type="input_json_delta", partial_json='{"tz":'),
        delta(2, type="input_json_delta", partial_json=' "CET"}'),
        stop(2),
        message_delta("tool_use", {"output_tokens": 60}),
        MESSAGE_STOP,
    ]
    assert read_all(events)[1:] == [
        ir.TextDelta("Checking."),
        ir.BlockEnd(),
        ir.ToolStart(0, "toolu_1", "get_weather"),
        ir.ToolArgs(0, '{"city": "Pa'),
        ir.ToolArgs(0, 'ris"}'),
        ir.BlockEnd(),
        ir.ToolStart(1, "toolu_2", "get_time"),
        ir.ToolArgs(1, '{"tz":'),
        ir.ToolArgs(1, ' "CET"}'),
        ir.BlockEnd(),
        ir.Finish("tool_use", None, Usage(40, 10, 0, 60)),
    ]


def test_read_thinking_with_signature_and_redacted() -> None:
    """Thinking text, its signature and redacted blocks carry origin anthropic-messages."""
    events = [
        start(),
        block(0, {"type": "thinking", "thinking": "", "signature": ""}),
        delta(0, type="thinking_delta", thinking="User wants"),
        delta(0, type="thinking_delta", thinking=" weather."),
        delta(0, type="signature_delta", signature="EqQB"),
        stop(0),
        block(1, {"type": "redacted_thinking", "data": "opaque"}),
        stop(1),
        block(2, {"type": "text", "text": ""}),
        delta(2, type="text_delta", text="Sunny."),
        stop(2),
        message_delta("end_turn", {"output_tokens": 80, "output_tokens_details": {"thinking_tokens": 50}}),
        MESSAGE_STOP,
    ]
    assert read_all(events)[1:] == [
        ir.ThinkingDelta(text="User wants", origin=FMT),
        ir.ThinkingDelta(text=" weather.", origin=FMT),
        ir.ThinkingDelta(signature="EqQB", origin=FMT),
        ir.BlockEnd(),
        ir.ThinkingDelta(redacted="opaque", origin=FMT),
        ir.BlockEnd(),
        ir.TextDelta("Sunny."),
        ir.BlockEnd(),
        ir.Finish("end", None, Usage(40, 10, 0, 80, 50)),
    ]


def test_read_error_event_ends_stream() -> None:
    """An error event becomes Error with the error type as kind; nothing follows it."""
    reader = MessagesStreamReader()
    reader.feed(start())
    reader.feed(block(0, {"type": "text", "text": ""}))
    err = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert reader.feed(err) == [ir.Error("Overloaded", "overloaded_error")]
    assert reader.feed(delta(0, type="text_delta", text="late")) == []
    assert reader.feed(MESSAGE_STOP) == []
    assert read_all([{"type": "error", "error": None}]) == [ir.Error("upstream error", "api_error")]


def test_read_usage_overlay_and_stop_sequence() -> None:
    """message_delta usage replaces (never adds) the held counts; the stop sequence is kept."""
    events = [
        start({"input_tokens": 0, "output_tokens": 0}),
        message_delta("max_tokens", {"output_tokens": 3}),
        message_delta(
            "stop_sequence",
            {"output_tokens": 9, "input_tokens": 100, "cache_read_input_tokens": 20, "cache_creation_input_tokens": 5},
            seq="END",
        ),
        MESSAGE_STOP,
    ]
    assert read_all(events) == [
        ir.Start("msg_1", "claude-x", usage=Usage()),
        ir.Finish("stop_sequence", "END", Usage(100, 20, 5, 9)),
    ]


def test_read_start_usage_is_not_mutated() -> None:
    """The Start event keeps the counts message_start said, whatever message_delta says later."""
    events = read_all([start(), message_delta("end_turn", {"output_tokens": 99}), MESSAGE_STOP])
    assert events[0] == ir.Start("msg_1", "claude-x", usage=START_USAGE)


@pytest.mark.parametrize(
    "events",
    [
        [start({}), MESSAGE_STOP],
        [{"type": "message_start", "message": {"id": "msg_1", "model": "claude-x"}}, MESSAGE_STOP],
    ],
)
def test_read_without_usage(events: list[Any]) -> None:
    """No usage anywhere: Finish carries None (the meter estimates), stop defaults to end."""
    assert read_all(events)[-1] == ir.Finish("end", None, None)


def test_read_ignores_odd_input() -> None:
    """Non-dicts, unknown events, unknown blocks and mismatched deltas yield nothing, never raise."""
    events = [
        "[DONE]",
        None,
        {"type": "message_start", "message": "x"},
        start(),
        {"type": "future_event"},
        block("0", {"type": "text"}),  # type: ignore[arg-type]
        block(0, None),  # type: ignore[arg-type]
        block(0, {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}),
        delta(0, type="input_json_delta", partial_json='{"q":1}'),
        stop(0),
        block(1, {"type": "text", "text": ""}),
        delta(1, type="thinking_delta", thinking="wrong block"),
        delta(1, type="citations_delta", citation={}),
        delta(1, type="text_delta", text=""),
        {"type": "content_block_delta", "index": 1, "delta": "x"},
        delta(7, type="text_delta", text="no block"),
        stop(1),
        stop(1),
        {"type": "message_delta", "delta": None, "usage": None},
        MESSAGE_STOP,
    ]
    assert read_all(events) == [
        ir.Start("msg_1", "claude-x", usage=START_USAGE),
        ir.BlockEnd(),
        ir.Finish("end", None, START_USAGE),
    ]


def test_read_blocks_that_start_with_content() -> None:
    """Blocks whose start already carries text, thinking or tool input (non-Anthropic upstreams) keep it."""
    events = [
        start(),
        block(0, {"type": "text", "text": "Hi"}),
        block(1, {"type": "thinking", "thinking": "t", "signature": "s"}),
        block(2, {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}),
    ]
    assert read_all(events)[1:] == [
        ir.TextDelta("Hi"),
        ir.ThinkingDelta(text="t", signature="s", origin=FMT),
        ir.ToolStart(0, "t1", "f"),
        ir.ToolArgs(0, '{"a":1}'),
    ]


# ---------------------------------------------------------------- writer helpers


def write_all(events: list[ir.Event], model: str = "claude-alias") -> bytes:
    writer = MessagesStreamWriter(model)
    return b"".join(writer.write(ev) for ev in events)


def sse(data: bytes) -> list[dict[str, Any]]:
    """Parse the writer's bytes as a client would; every event's name equals its data.type."""
    parsed = SSEParser().feed(data)
    out = []
    for e in parsed:
        obj = orjson.loads(e.data)
        assert e.event == obj["type"]
        out.append(obj)
    return out


def validate(objs: list[dict[str, Any]]) -> None:
    """Each event is a RawMessageStreamEvent (or the error event's ErrorResponse)."""
    for obj in objs:
        if obj["type"] == "error":
            anthropic.types.ErrorResponse.model_validate(obj)
        else:
            _EVENT.validate_python(obj)


def sdk_client(data: bytes) -> anthropic.Anthropic:
    """An SDK client whose HTTP answer is `data` as an event stream (no sockets)."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=data)

    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    return anthropic.Anthropic(api_key="k", base_url="http://upstream.test", http_client=http, max_retries=0)


def final_message(data: bytes) -> anthropic.types.Message:
    with sdk_client(data) as client:
        with client.messages.stream(model="m", max_tokens=100, messages=[{"role": "user", "content": "hi"}]) as s:
            return s.get_final_message()


# A chat upstream's shape: reasoning_content first, text, then two parallel calls whose argument
# fragments interleave, no BlockEnd anywhere, usage on Finish.
CHAT_LIKE: list[ir.Event] = [
    ir.Start("chatcmpl-1", "gpt-x"),
    ir.ThinkingDelta(text="Think", origin="openai-chat"),
    ir.ThinkingDelta(text="ing.", origin="openai-chat"),
    ir.TextDelta(""),
    ir.TextDelta("Let me check."),
    ir.ToolStart(0, "call_a", "get_weather"),
    ir.ToolArgs(0, ""),
    ir.ToolArgs(0, '{"city": '),
    ir.ToolStart(1, "call.b", "get_time"),
    ir.ToolArgs(1, '{"tz": "CET"}'),
    ir.ToolArgs(0, '"Paris"}'),
    ir.ToolArgs(5, "{}"),
    ir.Finish("tool_use", usage=Usage(input_tokens=30, cached_tokens=4, output_tokens=50, reasoning_tokens=20)),
]


# ---------------------------------------------------------------- writer


def test_writer_events_validate() -> None:
    """Every written event is named and shaped as the SDK types say; indexes run 0, 1, 2, ..."""
    objs = sse(write_all(CHAT_LIKE))
    validate(objs)
    assert [o["type"] for o in objs] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    starts = [o["index"] for o in objs if o["type"] == "content_block_start"]
    assert starts == [0, 1, 2, 3]
    assert objs[0]["message"]["id"] == "msg_chatcmpl-1"
    assert objs[0]["message"]["model"] == "claude-alias"


def test_writer_feeds_sdk_accumulator() -> None:
    """client.messages.stream() accumulates the written stream into a whole Message."""
    msg = final_message(write_all(CHAT_LIKE))
    assert [b.type for b in msg.content] == ["thinking", "text", "tool_use", "tool_use"]
    thinking, text, call_a, call_b = msg.content
    assert isinstance(thinking, anthropic.types.ThinkingBlock)
    assert (thinking.thinking, thinking.signature) == ("Thinking.", "")  # never an invented signature
    assert isinstance(text, anthropic.types.TextBlock) and text.text == "Let me check."
    assert isinstance(call_a, anthropic.types.ToolUseBlock) and isinstance(call_b, anthropic.types.ToolUseBlock)
    assert (call_a.id, call_a.name, call_a.input) == ("call_a", "get_weather", {"city": "Paris"})
    assert (call_b.id, call_b.name, call_b.input) == ("call_b", "get_time", {"tz": "CET"})
    assert (msg.stop_reason, msg.stop_sequence) == ("tool_use", None)
    assert msg.usage.input_tokens == 30
    assert msg.usage.cache_read_input_tokens == 4
    assert msg.usage.output_tokens == 50
    assert msg.usage.output_tokens_details is not None and msg.usage.output_tokens_details.thinking_tokens == 20


def test_writer_anthropic_thinking_keeps_signature() -> None:
    """Anthropic-origin signature and redacted data pass through; other origins' opaque parts do not."""
    events: list[ir.Event] = [
        ir.Start("msg_2", "claude-up", usage=Usage(input_tokens=5)),
        ir.ThinkingDelta(text="hmm", origin=FMT),
        ir.ThinkingDelta(signature="EqQB", origin=FMT),
        ir.ThinkingDelta(redacted="opaque", origin=FMT),
        ir.ThinkingDelta(redacted="not ours", origin="openai-chat"),
        ir.ThinkingDelta(signature="not ours", origin="openai-chat"),
        ir.ThinkingDelta(encrypted="enc", origin="openai-responses"),
        ir.TextDelta("ok"),
        ir.Finish("end", usage=Usage(input_tokens=5, output_tokens=7)),
    ]
    data = write_all(events)
    validate(sse(data))
    msg = final_message(data)
    assert [b.type for b in msg.content] == ["thinking", "redacted_thinking", "text"]
    assert isinstance(msg.content[0], anthropic.types.ThinkingBlock) and msg.content[0].signature == "EqQB"
    assert isinstance(msg.content[1], anthropic.types.RedactedThinkingBlock) and msg.content[1].data == "opaque"
    assert b"not ours" not in data and b'"enc"' not in data


def test_writer_text_golden() -> None:
    """The exact bytes of a short text stream."""
    events: list[ir.Event] = [
        ir.Start("msg_1", "up", usage=Usage(input_tokens=3)),
        ir.TextDelta("Hi"),
        ir.BlockEnd(),
        ir.Finish("stop_sequence", "END", Usage(input_tokens=3, output_tokens=2)),
    ]
    usage0 = '{"input_tokens":3,"output_tokens":0,"cache_read_input_tokens":0,"cache_creation_input_tokens":0}'
    usage1 = '{"input_tokens":3,"output_tokens":2,"cache_read_input_tokens":0,"cache_creation_input_tokens":0}'
    expected = (
        "event: message_start\n"
        'data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"m",'
        f'"content":[],"stop_reason":null,"stop_sequence":null,"usage":{usage0}}}}}\n\n'
        "event: content_block_start\n"
        'data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n'
        "event: content_block_delta\n"
        'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}\n\n'
        "event: content_block_stop\n"
        'data: {"type":"content_block_stop","index":0}\n\n'
        "event: message_delta\n"
        'data: {"type":"message_delta","delta":{"stop_reason":"stop_sequence","stop_sequence":"END"},'
        f'"usage":{usage1}}}\n\n'
        "event: message_stop\n"
        'data: {"type":"message_stop"}\n\n'
    )
    assert write_all(events, model="m").decode() == expected


def test_writer_error_mid_stream() -> None:
    """Error closes the open block, ends with event: error (the SDK raises it), then writes nothing."""
    writer = MessagesStreamWriter("m")
    data = writer.write(ir.Start("msg_1", "up"))
    data += writer.write(ir.TextDelta("partial"))
    tail = writer.write(ir.Error("Overloaded", "overloaded_error"))
    objs = sse(tail)
    validate(objs)
    assert objs == [
        {"type": "content_block_stop", "index": 0},
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    ]
    assert writer.write(ir.TextDelta("late")) == b""
    assert writer.write(ir.Finish("end")) == b""
    with pytest.raises(anthropic.APIStatusError) as exc:
        final_message(data + tail)
    assert exc.value.status_code == 200
    assert isinstance(exc.value.body, dict) and exc.value.body["error"]["type"] == "overloaded_error"


def test_writer_error_before_start() -> None:
    """An Error as the first event is the error event alone."""
    objs = sse(write_all([ir.Error("bad gateway")]))
    assert objs == [{"type": "error", "error": {"type": "api_error", "message": "bad gateway"}}]


def test_writer_finish_without_start_or_usage() -> None:
    """A stream cut to a bare Finish still opens the message (SDK-valid); UsageUpdate fills usage."""
    writer = MessagesStreamWriter("m")
    assert writer.write(ir.UsageUpdate(Usage(input_tokens=9, output_tokens=4))) == b""
    assert writer.response_id is None
    data = writer.write(ir.Finish("length"))
    assert writer.response_id is not None and writer.response_id.startswith("msg_")
    validate(sse(data))
    msg = final_message(data)
    assert (msg.stop_reason, msg.usage.input_tokens, msg.usage.output_tokens, msg.content) == ("max_tokens", 9, 4, [])
    assert writer.write(ir.Start("late", "m")) == b""


def test_writer_block_end_and_late_args() -> None:
    """BlockEnd closes the latest open block; args for a closed call are dropped; a repeated Start is ignored."""
    events: list[ir.Event] = [
        ir.Start("msg_1", "up", usage=Usage(input_tokens=2, output_tokens=1)),
        ir.Start("msg_other", "up"),
        ir.BlockEnd(),
        ir.ToolStart(0, "t0", "f"),
        ir.ToolStart(1, "t1", "g"),
        ir.BlockEnd(),
        ir.ToolArgs(1, '{"late": true}'),
        ir.ToolArgs(0, '{"x": 1}'),
        ir.BlockEnd(),
        ir.ToolStart(0, "t0-again", "f"),
        ir.ToolStart(0, "t0-third", "f"),
        ir.Finish("tool_use"),
    ]
    data = write_all(events)
    objs = sse(data)
    validate(objs)
    assert sum(o["type"] == "message_start" for o in objs) == 1
    msg = final_message(data)
    inputs = [(b.id, b.input) for b in msg.content if isinstance(b, anthropic.types.ToolUseBlock)]
    assert inputs == [("t0", {"x": 1}), ("t1", {}), ("t0-again", {}), ("t0-third", {})]
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (2, 1)  # Start's usage when Finish has none


@pytest.mark.parametrize(
    "events",
    [
        [
            ir.Start("msg_rt", "claude-x", usage=Usage(input_tokens=40, cached_tokens=10, output_tokens=1)),
            ir.ThinkingDelta(text="Let me think", origin=FMT),
            ir.ThinkingDelta(text=" about it.", origin=FMT),
            ir.ThinkingDelta(signature="EqQB", origin=FMT),
            ir.BlockEnd(),
            ir.ThinkingDelta(redacted="opaque", origin=FMT),
            ir.BlockEnd(),
            ir.TextDelta("Checking"),
            ir.TextDelta(" now."),
            ir.BlockEnd(),
            ir.ToolStart(0, "toolu_1", "get_weather"),
            ir.ToolArgs(0, '{"city": "Pa'),
            ir.ToolArgs(0, 'ris"}'),
            ir.BlockEnd(),
            ir.ToolStart(1, "toolu_2", "get_time"),
            ir.ToolArgs(1, "{}"),
            ir.BlockEnd(),
            ir.Finish("tool_use", None, Usage(40, 10, 3, 75, 20)),
        ],
        [
            ir.Start("msg_err", "claude-x", usage=Usage(input_tokens=1)),
            ir.TextDelta("cut"),
            ir.BlockEnd(),
            ir.Error("Overloaded", "overloaded_error"),
        ],
    ],
)
def test_round_trip(events: list[ir.Event]) -> None:
    """reader(writer(events)) == events for a representative Anthropic-shaped sequence."""
    assert read_all(sse(write_all(events, model="claude-x"))) == events
