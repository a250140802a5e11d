"""openai-responses streams <-> IR events (router/formats/codec/responses_stream.py): the reader on
realistic upstream sequences, the writer checked event by event against the SDK's types and as a
whole by the SDK's own stream accumulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import openai
import orjson
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from router.config import Format
from router.formats import wire
from router.formats.codec import carry, ir
from router.formats.codec.responses_stream import ResponsesStreamReader, ResponsesStreamWriter
from router.formats.sse import SSEParser
from router.formats.translate import StreamTranslator
from router.types import Usage
from tests.formats.sdk_events import responses_events

R: Format = "openai-responses"
EVENT = TypeAdapter(ResponseStreamEvent)
USAGE = {
    "input_tokens": 50,
    "input_tokens_details": {"cached_tokens": 20, "cache_write_tokens": 0},
    "output_tokens": 80,
    "output_tokens_details": {"reasoning_tokens": 30},
    "total_tokens": 130,
}
IR_USAGE = Usage(input_tokens=30, cached_tokens=20, output_tokens=80, reasoning_tokens=30)


def envelope(status: str, output: list[Any] | None = None, **kw: Any) -> dict[str, Any]:
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1764000000,
        "status": status,
        "model": "gpt-x",
        "output": output or [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        **kw,
    }


def upstream(*events: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Events as an upstream sends them, numbered."""
    return [{"type": t, "sequence_number": i, **body} for i, (t, body) in enumerate(events)]


def read(objs: list[Any]) -> list[ir.Event]:
    reader = ResponsesStreamReader()
    return [ev for obj in objs for ev in reader.feed(obj)]


def frames(raw: bytes) -> list[dict[str, Any]]:
    """Split the writer's SSE into data objects, checking the framing on the way."""
    assert raw == b"" or raw.endswith(b"\n\n")
    out = []
    for block in raw.split(b"\n\n")[:-1]:
        name, data = block.split(b"\n")
        obj = orjson.loads(data.removeprefix(b"data: "))
        assert name == b"event: " + obj["type"].encode()
        out.append(obj)
    return out


def write(events: list[ir.Event], model: str = "gpt-x") -> bytes:
    writer = ResponsesStreamWriter(model)
    return b"".join(writer.write(ev) for ev in events)


def sdk_stream(raw: bytes) -> tuple[list[Any], Response | None]:
    """What `client.responses.stream(...)` yields for these bytes, and its final response (None
    when the stream has no response.completed)."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=raw)

    with httpx2.Client(transport=httpx2.MockTransport(handler)) as http:
        client = openai.OpenAI(api_key="k", base_url="http://t/v1", http_client=http, _strict_response_validation=True)
        with client.responses.stream(model="gpt-x", input="hi") as stream:
            events = list(stream)
            try:
                final: Response | None = stream.get_final_response()
            except RuntimeError:  # "Didn't receive a `response.completed` event."
                final = None
            return events, final


# ---------------------------------------------------------------- reader

TEXT = upstream(
    ("response.created", {"response": envelope("in_progress")}),
    ("response.in_progress", {"response": envelope("in_progress")}),
    (
        "response.output_item.added",
        {
            "output_index": 0,
            "item": {"type": "message", "id": "msg_1", "role": "assistant", "status": "in_progress", "content": []},
        },
    ),
    (
        "response.content_part.added",
        {
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "part": {"type": "output_text", "text": "", "annotations": []},
        },
    ),
    (
        "response.output_text.delta",
        {"item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "Hel", "logprobs": []},
    ),
    (
        "response.output_text.delta",
        {"item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "lo", "logprobs": []},
    ),
    (
        "response.output_text.done",
        {"item_id": "msg_1", "output_index": 0, "content_index": 0, "text": "Hello", "logprobs": []},
    ),
    (
        "response.content_part.done",
        {
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "part": {"type": "output_text", "text": "Hello", "annotations": []},
        },
    ),
    (
        "response.output_item.done",
        {
            "output_index": 0,
            "item": {
                "type": "message",
                "id": "msg_1",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "Hello", "annotations": []}],
            },
        },
    ),
    ("response.completed", {"response": envelope("completed", usage=USAGE)}),
)


def test_read_text() -> None:
    """A text answer: Start, its deltas, the block's end, Finish with usage (cached split out)."""
    assert read(TEXT) == [
        ir.Start("resp_1", "gpt-x", 1764000000),
        ir.TextDelta("Hel"),
        ir.TextDelta("lo"),
        ir.BlockEnd(),
        ir.Finish("end", usage=IR_USAGE),
    ]


def _call(n: int, status: str = "in_progress", args: str = "") -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": f"fc_{n}",
        "call_id": f"call_{n}",
        "name": f"f{n}",
        "arguments": args,
        "status": status,
    }


TOOLS = upstream(
    ("response.created", {"response": envelope("in_progress")}),
    ("response.output_item.added", {"output_index": 0, "item": _call(1)}),
    ("response.function_call_arguments.delta", {"item_id": "fc_1", "output_index": 0, "delta": '{"ci'}),
    ("response.function_call_arguments.delta", {"item_id": "fc_1", "output_index": 0, "delta": 'ty":"P"}'}),
    ("response.function_call_arguments.done", {"item_id": "fc_1", "output_index": 0, "arguments": '{"city":"P"}'}),
    ("response.output_item.done", {"output_index": 0, "item": _call(1, "completed", '{"city":"P"}')}),
    ("response.output_item.added", {"output_index": 1, "item": _call(2)}),
    ("response.function_call_arguments.delta", {"item_id": "other", "output_index": 1, "delta": "{"}),
    ("response.function_call_arguments.delta", {"item_id": "fc_2", "output_index": 1, "delta": "}"}),
    ("response.output_item.done", {"output_index": 1, "item": _call(2, "completed", "{}")}),
    ("response.completed", {"response": envelope("completed", [_call(1, "completed"), _call(2, "completed")])}),
)


def test_read_two_calls() -> None:
    """Two calls, fragmented arguments found by item_id or output_index; tool_use at the end."""
    assert read(TOOLS) == [
        ir.Start("resp_1", "gpt-x", 1764000000),
        ir.ToolStart(0, "call_1", "f1"),
        ir.ToolArgs(0, '{"ci'),
        ir.ToolArgs(0, 'ty":"P"}'),
        ir.BlockEnd(),
        ir.ToolStart(1, "call_2", "f2"),
        ir.ToolArgs(1, "{"),
        ir.ToolArgs(1, "}"),
        ir.BlockEnd(),
        ir.Finish("tool_use"),
    ]


REASONING = upstream(
    ("response.created", {"response": envelope("in_progress")}),
    ("response.output_item.added", {"output_index": 0, "item": {"type": "reasoning", "id": "rs_1", "summary": []}}),
    (
        "response.reasoning_summary_part.added",
        {"item_id": "rs_1", "output_index": 0, "summary_index": 0, "part": {"type": "summary_text", "text": ""}},
    ),
    (
        "response.reasoning_summary_text.delta",
        {"item_id": "rs_1", "output_index": 0, "summary_index": 0, "delta": "First"},
    ),
    (
        "response.reasoning_summary_text.done",
        {"item_id": "rs_1", "output_index": 0, "summary_index": 0, "text": "First"},
    ),
    (
        "response.reasoning_summary_part.added",
        {"item_id": "rs_1", "output_index": 0, "summary_index": 1, "part": {"type": "summary_text", "text": ""}},
    ),
    (
        "response.reasoning_summary_text.delta",
        {"item_id": "rs_1", "output_index": 0, "summary_index": 1, "delta": "Second"},
    ),
    (
        "response.output_item.done",
        {
            "output_index": 0,
            "item": {
                "type": "reasoning",
                "id": "rs_1",
                "encrypted_content": "ENC",
                "summary": [{"type": "summary_text", "text": "First"}, {"type": "summary_text", "text": "Second"}],
            },
        },
    ),
    ("response.incomplete", {"response": envelope("incomplete", incomplete_details={"reason": "max_output_tokens"})}),
)


def test_read_reasoning_summary() -> None:
    """Summary parts are thinking text, a blank line apart; encrypted content comes from .done."""
    assert read(REASONING) == [
        ir.Start("resp_1", "gpt-x", 1764000000),
        ir.ThinkingDelta("First", origin=R),
        ir.ThinkingDelta("\n\n", origin=R),
        ir.ThinkingDelta("Second", origin=R),
        ir.ThinkingDelta(encrypted="ENC", origin=R),
        ir.BlockEnd(),
        ir.Finish("length"),
    ]


def test_read_error_and_failed_is_one_error() -> None:
    """An error event then response.failed is one Error; nothing is read after it."""
    objs = upstream(
        ("response.created", {"response": envelope("in_progress")}),
        ("error", {"code": "rate_limit_exceeded", "message": "slow down", "param": None}),
        ("response.failed", {"response": envelope("failed", error={"code": "server_error", "message": "x"})}),
        ("response.output_text.delta", {"item_id": "m", "output_index": 0, "content_index": 0, "delta": "late"}),
    )
    assert read(objs)[1:] == [ir.Error("slow down", "rate_limit_error", "rate_limit_exceeded")]


def test_read_failed_alone() -> None:
    """response.failed without an error event still ends the stream with an Error."""
    objs = upstream(
        ("response.created", {"response": envelope("in_progress")}),
        ("response.failed", {"response": envelope("failed", error={"code": "server_error", "message": "boom"})}),
    )
    assert read(objs)[1:] == [ir.Error("boom", "api_error", "server_error")]
    assert read([{"type": "response.failed", "response": None}]) == [ir.Error("upstream error")]


@pytest.mark.parametrize(
    ("response", "finish"),
    [
        (envelope("incomplete", incomplete_details={"reason": "content_filter"}), ir.Finish("content_filter")),
        (envelope("completed", [_call(1, "completed")]), ir.Finish("tool_use")),  # calls seen only at the end
        (None, ir.Finish("end")),
    ],
)
def test_read_finish(response: Any, finish: ir.Finish) -> None:
    """Terminal events map status and incomplete reason to the stop."""
    kind = "response.incomplete" if response and response["status"] == "incomplete" else "response.completed"
    assert read([{"type": kind, "response": response}]) == [finish]


def test_read_whole_items_without_deltas() -> None:
    """Items that arrive whole (no deltas) still give their text, arguments and reasoning."""
    objs = upstream(
        ("response.created", {"response": envelope("in_progress")}),
        ("response.output_item.added", {"output_index": 0, "item": _call(1, args='{"a":1}')}),
        ("response.output_item.done", {"output_index": 0, "item": _call(1, "completed", '{"a":1}')}),
        ("response.output_item.done", {"output_index": 1, "item": _call(2, "completed", "{}")}),
        ("response.output_item.added", {"output_index": 3, "item": _call(3)}),
        ("response.output_item.done", {"output_index": 3, "item": _call(3, "completed", '{"b":2}')}),
        (
            "response.output_item.done",
            {
                "output_index": 4,
                "item": {
                    "type": "message",
                    "id": "m",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "refusal", "refusal": "no"}],
                },
            },
        ),
        (
            "response.output_item.done",
            {
                "output_index": 5,
                "item": {"type": "reasoning", "id": "r", "summary": [{"type": "summary_text", "text": "why"}]},
            },
        ),
        ("response.output_item.done", {"output_index": 6, "item": {"type": "web_search_call", "id": "w"}}),
    )
    assert read(objs)[1:] == [
        ir.ToolStart(0, "call_1", "f1"),
        ir.ToolArgs(0, '{"a":1}'),
        ir.BlockEnd(),
        ir.ToolStart(1, "call_2", "f2"),
        ir.ToolArgs(1, "{}"),
        ir.BlockEnd(),
        ir.ToolStart(2, "call_3", "f3"),
        ir.ToolArgs(2, '{"b":2}'),
        ir.BlockEnd(),
        ir.TextDelta("no"),
        ir.BlockEnd(),
        ir.ThinkingDelta("why", origin=R),
        ir.BlockEnd(),
    ]


@pytest.mark.parametrize(
    "obj",
    [
        "[DONE]",
        None,
        3,
        [],
        {},
        {"type": "response.output_text.delta"},
        {"type": "response.output_text.delta", "delta": ""},
        {"type": "response.web_search_call.searching"},
        {"type": "response.output_item.added", "item": None},
        {"type": "response.output_item.done", "item": "x"},
        {"type": "response.function_call_arguments.delta", "delta": "{"},
        {"type": "response.reasoning_summary_part.added", "summary_index": 0},
        {"type": "response.created", "response": 1},
        {"type": "response.output_text.annotation.added"},
    ],
)
def test_read_odd_input(obj: Any) -> None:
    """Anything odd or unknown yields nothing and never raises."""
    assert ResponsesStreamReader().feed(obj) == []


def test_read_refusal_and_raw_reasoning() -> None:
    """Refusal deltas are text; raw reasoning_text deltas are thinking; a second created is ignored."""
    objs = upstream(
        ("response.created", {"response": envelope("in_progress", created_at=None)}),
        ("response.created", {"response": envelope("in_progress")}),
        ("response.reasoning_text.delta", {"item_id": "r", "output_index": 0, "content_index": 0, "delta": "raw"}),
        ("response.refusal.delta", {"item_id": "m", "output_index": 1, "content_index": 0, "delta": "no"}),
    )
    assert read(objs) == [ir.Start("resp_1", "gpt-x"), ir.ThinkingDelta("raw", origin=R), ir.TextDelta("no")]


# ---------------------------------------------------------------- writer

MIXED: list[ir.Event] = [
    ir.Start("resp_7", "gpt-x", 1700000000),
    ir.ThinkingDelta("Think", origin=R),
    ir.ThinkingDelta("ing", origin=R),
    ir.ThinkingDelta(encrypted="ENC", origin=R),
    ir.BlockEnd(),
    ir.TextDelta("Hello"),
    ir.TextDelta(" world"),
    ir.BlockEnd(),
    ir.ToolStart(0, "call_a", "get"),
    ir.ToolArgs(0, '{"q":'),
    ir.ToolArgs(0, '"x"}'),
    ir.BlockEnd(),
    ir.ToolStart(1, "call_b", "put"),
    ir.ToolArgs(1, "{}"),
    ir.BlockEnd(),
    ir.Finish("tool_use", usage=IR_USAGE),
]


def test_writer_events_validate() -> None:
    """Every written event is a valid SDK stream event, numbered from 0 with no gap."""
    objs = frames(write(MIXED))
    assert [o["sequence_number"] for o in objs] == list(range(len(objs)))
    for obj in objs:
        EVENT.validate_python(obj)
    assert [o["type"] for o in objs][:2] == ["response.created", "response.in_progress"]
    assert objs[-1]["type"] == "response.completed"


def test_writer_sdk_accumulates() -> None:
    """The SDK's responses.stream() helper builds the final response: text, calls, reasoning, usage."""
    events, final = sdk_stream(write(MIXED))
    assert final is not None
    assert final.id == "resp_7" and final.output_text == "Hello world"
    calls = [(o.call_id, o.name, o.arguments) for o in final.output if o.type == "function_call"]
    assert calls == [("call_a", "get", '{"q":"x"}'), ("call_b", "put", "{}")]
    reasoning = final.output[0]
    assert reasoning.type == "reasoning" and reasoning.encrypted_content == "ENC"
    assert [s.text for s in reasoning.summary] == ["Thinking"]
    assert final.usage is not None and (final.usage.input_tokens, final.usage.total_tokens) == (50, 130)
    deltas = [e.snapshot for e in events if e.type == "response.output_text.delta"]
    assert deltas == ["Hello", "Hello world"]


def test_writer_implicit_closes_and_interleaved_calls() -> None:
    """Without BlockEnd (a chat upstream) blocks close when the next begins, and arguments of
    parallel calls may interleave; the SDK still gets each call whole."""
    raw = write(
        [
            ir.Start("x", "m"),
            ir.TextDelta(""),  # nothing to open
            ir.ThinkingDelta("hm"),
            ir.TextDelta("A"),
            ir.ToolStart(0, "c0", "f"),
            ir.ToolStart(1, "c1", "g"),
            ir.ToolStart(1, "c1", "g"),  # a repeat is ignored
            ir.ToolArgs(0, '{"a":'),
            ir.ToolArgs(1, "{}"),
            ir.ToolArgs(0, "1}"),
            ir.ToolArgs(7, "lost"),
            ir.UsageUpdate(Usage(input_tokens=3, output_tokens=4)),
            ir.Finish("tool_use"),
            ir.TextDelta("after the end"),
        ]
    )
    for obj in frames(raw):
        EVENT.validate_python(obj)
    _, final = sdk_stream(raw)
    assert final is not None and final.id == "resp_x" and final.output_text == "A"
    assert [o.type for o in final.output] == ["reasoning", "message", "function_call", "function_call"]
    assert [o.arguments for o in final.output if o.type == "function_call"] == ['{"a":1}', "{}"]
    assert final.usage is not None and final.usage.total_tokens == 7


def test_writer_text_after_calls_closes_them() -> None:
    """Text after tool calls closes the calls first, so every item is done before it ends."""
    raw = write(
        [ir.Start("x", "m"), ir.ToolStart(0, "c0", "f"), ir.ToolArgs(0, "{}"), ir.TextDelta("t"), ir.Finish("end")]
    )
    types = [o["type"] for o in frames(raw)]
    assert types.index("response.function_call_arguments.done") < types.index("response.output_text.delta")
    _, final = sdk_stream(raw)
    assert final is not None and final.output_text == "t"


def test_writer_foreign_thinking() -> None:
    """Thinking from Anthropic becomes summary text; its signature reaches the client only inside
    the router's token, in output_item.done and response.completed (never in .added: it comes last).
    A block that is only a signature (thinking not displayed) is an item with an empty summary."""
    raw = write(
        [
            ir.Start("x", "m"),
            ir.ThinkingDelta("pl", origin="anthropic-messages"),
            ir.ThinkingDelta("an", origin="anthropic-messages"),
            ir.ThinkingDelta(signature="sig-1", origin="anthropic-messages"),
            ir.BlockEnd(),
            ir.ThinkingDelta(signature="sig-2", origin="anthropic-messages"),
            ir.BlockEnd(),
            ir.Finish("end"),
        ]
    )
    objs = frames(raw)
    added = [o["item"] for o in objs if o["type"] == "response.output_item.added"]
    done = [o["item"] for o in objs if o["type"] == "response.output_item.done"]
    assert all("encrypted_content" not in item for item in added)
    assert [item["summary"] for item in done] == [[{"type": "summary_text", "text": "plan"}], []]
    assert [carry.read(item["encrypted_content"]) for item in done] == [
        ir.Thinking(text="plan", signature="sig-1", origin="anthropic-messages"),
        ir.Thinking(signature="sig-2", origin="anthropic-messages"),
    ]
    assert objs[-1]["type"] == "response.completed" and objs[-1]["response"]["output"] == done
    assert b"sig-" not in raw  # the signatures only inside the tokens
    _, final = sdk_stream(raw)
    assert final is not None
    assert [o.encrypted_content for o in final.output if o.type == "reasoning"] == [
        i["encrypted_content"] for i in done
    ]


@pytest.mark.parametrize(("stop", "reason"), [("length", "max_output_tokens"), ("refusal", "content_filter")])
def test_writer_incomplete(stop: ir.Stop, reason: str) -> None:
    """length and content filtering end with response.incomplete and its reason."""
    objs = frames(write([ir.Start("x", "m"), ir.TextDelta("cut"), ir.Finish(stop)]))
    last = objs[-1]
    EVENT.validate_python(last)
    assert last["type"] == "response.incomplete"
    assert last["response"]["incomplete_details"] == {"reason": reason}
    assert last["response"]["output"][0]["content"][0]["text"] == "cut"
    events, final = sdk_stream(write([ir.Start("x", "m"), ir.TextDelta("cut"), ir.Finish(stop)]))
    assert final is None and events[-1].type == "response.incomplete"


def test_writer_error_mid_stream() -> None:
    """An error closes open items as incomplete, then sends `error` and response.failed; the end."""
    writer = ResponsesStreamWriter("m")
    events: list[ir.Event] = [ir.Start("resp_e", "m"), ir.TextDelta("par"), ir.Error("overloaded", "overloaded_error")]
    raw = b"".join(writer.write(ev) for ev in events)
    objs = frames(raw)
    for obj in objs:
        EVENT.validate_python(obj)
    assert [o["type"] for o in objs][-3:] == ["response.output_item.done", "error", "response.failed"]
    assert objs[-3]["item"]["status"] == "incomplete"
    assert objs[-2] == {
        "type": "error",
        "sequence_number": len(objs) - 2,
        "code": "server_error",
        "message": "overloaded",
        "param": None,
    }
    assert objs[-1]["response"]["status"] == "failed"
    assert objs[-1]["response"]["error"] == {"code": "server_error", "message": "overloaded"}
    assert writer.write(ir.TextDelta("more")) == b"" and writer.write(ir.Finish("end")) == b""
    assert writer.response_id == "resp_e"
    seen, final = sdk_stream(raw)
    assert final is None and [e.type for e in seen][-2:] == ["error", "response.failed"]


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ir.Error("slow", "rate_limit_error"), "rate_limit_exceeded"),
        (ir.Error("bad", "invalid_request_error", "context_length_exceeded"), "invalid_prompt"),
        (ir.Error("x", "api_error", "rate_limit_exceeded"), "rate_limit_exceeded"),
    ],
)
def test_writer_error_codes(error: ir.Error, code: str) -> None:
    """response.failed carries a code from the SDK's closed set; the error event keeps the upstream's
    own code, else the same OpenAI-style code (never an Anthropic error type)."""
    objs = frames(write([error]))  # an error before any Start still opens the response first
    assert [o["type"] for o in objs] == ["response.created", "response.in_progress", "error", "response.failed"]
    for obj in objs:
        EVENT.validate_python(obj)
    assert objs[2]["code"] == (error.code or code)
    assert objs[3]["response"]["error"]["code"] == code
    assert objs[3]["response"]["id"] == objs[0]["response"]["id"]


def test_writer_start_once_and_usage_from_start() -> None:
    """A second Start is ignored; Start's usage stands when nothing newer comes."""
    objs = frames(
        write([ir.Start("a", "m", usage=Usage(input_tokens=9)), ir.Start("b", "m"), ir.Finish("end")], model="shown")
    )
    assert [o["type"] for o in objs] == ["response.created", "response.in_progress", "response.completed"]
    final = objs[-1]["response"]
    assert (final["id"], final["model"], final["usage"]["input_tokens"], final["output"]) == ("resp_a", "shown", 9, [])
    assert isinstance(objs[0]["response"]["created_at"], int)


# ---------------------------------------------------------------- round trips


def _round_trip(events: list[ir.Event]) -> list[ir.Event]:
    return read(frames(write(events)))


def test_round_trip_writer_then_reader() -> None:
    """reader(writer(events)) == events for a representative stream. Documented differences:
    the Start id gains resp_, Start.model is the writer's model, Start.usage is folded into the
    final usage, and BlockEnd appears where the writer closed a block implicitly."""
    assert _round_trip(MIXED) == MIXED
    implicit: list[ir.Event] = [
        ir.Start("resp_1", "gpt-x", 5),
        ir.TextDelta("a"),
        ir.ToolStart(0, "c", "f"),
        ir.Finish("tool_use"),
    ]
    assert _round_trip(implicit) == [implicit[0], implicit[1], ir.BlockEnd(), implicit[2], ir.BlockEnd(), implicit[3]]


@pytest.mark.parametrize("stream", [TEXT, TOOLS, REASONING], ids=["text", "tools", "reasoning"])
def test_upstream_through_reader_and_writer(stream: list[dict[str, Any]]) -> None:
    """An upstream Responses stream read and written again gives the same IR events."""
    first = read(stream)
    assert _round_trip(first)[1:] == first[1:]


def test_sequence_numbers_continue_across_writes() -> None:
    """sequence_number increments across separate write() calls."""
    writer = ResponsesStreamWriter("m")
    seqs = [o["sequence_number"] for ev in MIXED for o in frames(writer.write(ev))]
    assert seqs == list(range(len(seqs)))


def test_writer_small_cases() -> None:
    """BlockEnd with nothing open and empty arguments write nothing; a tool started and ended at
    once closes at its BlockEnd; encrypted-only reasoning has an empty summary."""
    writer = ResponsesStreamWriter("m")
    assert writer.response_id is None
    writer.write(ir.Start("resp_s", "m"))
    assert writer.write(ir.BlockEnd()) == b""
    assert frames(writer.write(ir.ToolStart(0, "c", "f")))[0]["type"] == "response.output_item.added"
    assert writer.write(ir.ToolArgs(0, "")) == b""
    assert [o["type"] for o in frames(writer.write(ir.BlockEnd()))] == [
        "response.function_call_arguments.done",
        "response.output_item.done",
    ]
    objs = frames(writer.write(ir.ThinkingDelta(encrypted="E", origin=R)) + writer.write(ir.BlockEnd()))
    assert objs[-1]["item"] == {"type": "reasoning", "id": "rs_s_1", "summary": [], "encrypted_content": "E"}
    for obj in objs:
        EVENT.validate_python(obj)


def test_read_without_positions() -> None:
    """Deltas and items without output_index or item id still map."""
    objs: list[Any] = [
        {
            "type": "response.output_item.added",
            "item": {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
        },
        {"type": "response.output_text.delta", "delta": "t"},
        {"type": "response.output_item.done", "item": {"type": "message", "content": [{"type": "other"}, "x"]}},
    ]
    assert read(objs) == [ir.ToolStart(0, "c", "f"), ir.ToolArgs(0, "{}"), ir.TextDelta("t"), ir.BlockEnd()]


# ---------------------------------------------------------------- every written event, by the SDK's types

ENVELOPES = ("response.created", "response.in_progress", "response.completed", "response.incomplete", "response.failed")
CUT = "upstream prov failed mid-stream: timeout_idle"  # a reason the relay gives translator.error()


def _check_stream(raw: bytes) -> list[dict[str, Any]]:
    """Every event validates against the SDK's types (as its strict client does, and in pydantic's
    strict mode), numbered from 0; it opens with created and in_progress, and ends with one
    terminal event; every response object is the same response's."""
    objs = responses_events(raw)
    types = [o["type"] for o in objs]
    assert [o["sequence_number"] for o in objs] == list(range(len(objs)))
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] in ENVELOPES[2:] and not any(t in ENVELOPES[2:] for t in types[:-1])
    heads = {
        (o["response"]["id"], o["response"]["created_at"], o["response"]["model"]) for o in objs if "response" in o
    }
    assert len(heads) == 1
    return objs


# (IR events) -> (the terminal event, the failure's message when it failed)
WRITTEN: dict[str, tuple[list[ir.Event], str, str | None]] = {
    "completed": (MIXED, "response.completed", None),
    "incomplete": ([ir.Start("x", "m"), ir.TextDelta("cut"), ir.Finish("length")], "response.incomplete", None),
    "no_start": ([ir.TextDelta("t"), ir.Finish("end")], "response.completed", None),
    "error_with_items_open": (
        [
            ir.Start("e", "m", 5),
            ir.ThinkingDelta("hm"),
            ir.ToolStart(0, "c", "f"),
            ir.ToolArgs(0, "{"),
            ir.Error("busy"),
        ],
        "response.failed",
        "busy",
    ),
    "error_first": ([ir.Error("denied", "permission_error", "forbidden")], "response.failed", "denied"),
}


@pytest.mark.parametrize(("events", "terminal", "message"), list(WRITTEN.values()), ids=list(WRITTEN))
def test_writer_every_event_validates(events: list[ir.Event], terminal: str, message: str | None) -> None:
    """The writer's normal and error endings: every event validates, and a failure carries the
    message of the Error it was given, in both the error event and response.failed."""
    objs = _check_stream(write(events, model="client-model"))
    assert objs[-1]["type"] == terminal and objs[0]["response"]["model"] == "client-model"
    if message is not None:
        assert objs[-2]["type"] == "error" and objs[-2]["message"] == message
        assert objs[-1]["response"]["error"]["message"] == message


def _transcript(upstream_fmt: str, scenario: str) -> list[Any]:
    """A golden upstream transcript's events, decoded as the relay hands them to the translator."""
    raw = (Path(__file__).parent / "golden" / "upstream" / upstream_fmt / f"{scenario}.sse").read_bytes()
    events = SSEParser().feed(raw)
    return ["[DONE]" if ev.data == b"[DONE]" else orjson.loads(ev.data) for ev in events if not ev.is_comment]


UPSTREAM_ERRORS = {
    "openai-chat": "The server had an error while processing your request. Sorry about that!",
    "anthropic-messages": "Overloaded",
}


@pytest.mark.parametrize("scenario", ["text", "tools", "thinking", "error", "cut"])
@pytest.mark.parametrize("upstream_fmt", ["openai-chat", "anthropic-messages"])
def test_translated_streams_validate(upstream_fmt: str, scenario: str) -> None:
    """A chat or Anthropic upstream's stream as a Responses client gets it: whole, ended by the
    upstream's own error (its message carried, the router adds nothing after it), or cut by the
    router halfway (the router's reason carried). Every event validates against the SDK."""
    t = StreamTranslator(wire(upstream_fmt), wire("openai-responses"), "client-model", True)
    objs = _transcript(upstream_fmt, "text" if scenario == "cut" else scenario)
    if scenario == "cut":
        objs = objs[: len(objs) // 2]
    raw = b"".join(t.feed(obj) for obj in objs)
    if scenario == "cut":
        raw += t.error(CUT)
    elif scenario == "error":
        assert t.error("upstream stream failed") == b""  # the upstream's error already ended it
    else:
        raw += t.finish()
    out = _check_stream(raw)
    response = out[-1]["response"]
    assert response["model"] == "client-model" and isinstance(response["created_at"], int)
    if scenario in ("error", "cut"):
        message = UPSTREAM_ERRORS[upstream_fmt] if scenario == "error" else CUT
        assert [o["type"] for o in out[-2:]] == ["error", "response.failed"]
        assert out[-2]["message"] == message and response["error"]["message"] == message
        assert response["status"] == "failed" and response["output"]  # what was delivered, marked incomplete
    else:
        assert out[-1]["type"] == "response.completed" and response["usage"] is not None
