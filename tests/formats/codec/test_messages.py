"""IR -> anthropic-messages requests, and answers and errors both ways; written bodies are checked
against the anthropic SDK's own types (reading requests: test_messages_read.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pydantic
import pytest
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming, MessageCreateParamsStreaming
from structlog.testing import capture_logs

from router.config import Format
from router.formats.codec import ir
from router.formats.codec.messages import read_answer, read_error, read_request, write_answer, write_request
from router.types import Usage

FMT: Format = "anthropic-messages"
OPTS = ir.RequestOptions()
_PARAMS: dict[bool, pydantic.TypeAdapter[Any]] = {
    False: pydantic.TypeAdapter(MessageCreateParamsNonStreaming),
    True: pydantic.TypeAdapter(MessageCreateParamsStreaming),
}


def _force(v: Any) -> Any:
    """Pydantic validates the SDK's Iterable fields lazily: walk them so every item is checked."""
    if isinstance(v, dict):
        return {k: _force(x) for k, x in v.items()}
    if isinstance(v, list | tuple | Iterator):
        return [_force(x) for x in v]
    return v


def valid_request(body: dict[str, Any]) -> dict[str, Any]:
    """`body` as the SDK's MessageCreateParams accepts it (raises ValidationError otherwise)."""
    _force(_PARAMS[bool(body.get("stream"))].validate_python(body))
    return body


def req(messages: list[dict[str, Any]] | None = None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "claude-x", "max_tokens": 1024}
    body["messages"] = messages if messages is not None else [{"role": "user", "content": "hi"}]
    body.update(fields)
    return body


def user(*parts: ir.Part) -> ir.Message:
    return ir.Message("user", list(parts))


def assistant(*parts: ir.Part) -> ir.Message:
    return ir.Message("assistant", list(parts))


def ir_req(*messages: ir.Message, **fields: Any) -> ir.Request:
    return ir.Request(model="gpt-x", messages=list(messages) or [user(ir.Text("hi"))], **fields)


# ---------------------------------------------------------------- write_request


def test_write_request_basic() -> None:
    """Model, default max_tokens, joined system, stream and metadata; a valid SDK request."""
    r = ir_req(system=["A", "B"], user="u-1", stream=True)
    body = valid_request(write_request(r, "claude-up", OPTS))
    assert body == {
        "model": "claude-up",
        "max_tokens": OPTS.default_max_tokens,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "system": "A\n\nB",
        "metadata": {"user_id": "u-1"},
        "stream": True,
    }


def test_write_request_turns() -> None:
    """Same-role turns merge, tool results open their user turn, blank text and foreign thinking are dropped."""
    r = ir_req(
        user(ir.Text("q1")),
        user(ir.Text("q2")),
        assistant(ir.Thinking(text="from gpt", origin="openai-chat"), ir.Text("")),
        assistant(
            ir.Thinking(text="mine", signature="sig", origin=FMT),
            ir.Thinking(redacted="opaque", origin=FMT),
            ir.Thinking(text="unsigned", origin=FMT),
            ir.Thinking(encrypted="enc", id="rs_1", origin="openai-responses"),
            ir.Text("  "),
            ir.ToolCall("call.1", "get", '{"city": "Paris"}'),
            ir.ToolCall("call_2", "now", ""),
        ),
        user(ir.Text("and"), ir.ToolResult("call.1", [ir.Text("sunny")]), ir.ToolResult("call_2", [], is_error=True)),
    )
    body = valid_request(write_request(r, "claude-up", ir.RequestOptions(default_max_tokens=100)))
    assert body["max_tokens"] == 100
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "q1"}, {"type": "text", "text": "q2"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "mine", "signature": "sig"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "tool_use", "id": "call_1", "name": "get", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "now", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": [{"type": "text", "text": "sunny"}]},
                {"type": "tool_result", "tool_use_id": "call_2", "is_error": True},
                {"type": "text", "text": "and"},
            ],
        },
    ]


def test_write_request_starts_with_assistant_as_is() -> None:
    """A history opening with an assistant turn is written as it is (no invented user turn)."""
    body = write_request(ir_req(assistant(ir.Text("hello")), user(ir.Text("hi"))), "m", OPTS)
    assert [m["role"] for m in body["messages"]] == ["assistant", "user"]


@pytest.mark.parametrize(
    ("image", "source"),
    [
        (ir.Image(data="AA", media_type="image/webp"), {"type": "base64", "media_type": "image/webp", "data": "AA"}),
        (ir.Image(data="/9j/4AAQ"), {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}),
        (ir.Image(data="R0lGODlh"), {"type": "base64", "media_type": "image/gif", "data": "R0lGODlh"}),
        (ir.Image(data="UklGRiQ"), {"type": "base64", "media_type": "image/webp", "data": "UklGRiQ"}),
        (ir.Image(data="????"), {"type": "base64", "media_type": "image/png", "data": "????"}),
        (ir.Image(url="https://x/y.png", detail="high"), {"type": "url", "url": "https://x/y.png"}),
        (ir.Image(url="data:image/jpeg;base64,/9j/"), {"type": "base64", "media_type": "image/jpeg", "data": "/9j/"}),
        (ir.Image(url="data:;base64,iVBOR"), {"type": "base64", "media_type": "image/png", "data": "iVBOR"}),
    ],
)
def test_write_images(image: ir.Image, source: dict[str, Any]) -> None:
    """Base64 images (media type named or sniffed), URLs and data: URLs become image sources."""
    body = valid_request(write_request(ir_req(user(image)), "m", OPTS))
    assert body["messages"][0]["content"] == [{"type": "image", "source": source}]


def test_write_image_without_source_dropped_and_tool_result_image() -> None:
    """An image with neither url nor data is skipped; images inside tool results are kept."""
    img = ir.Image(data="iVBOR", media_type="image/png")
    r = ir_req(user(ir.Image(), ir.Text("x")), assistant(ir.ToolCall("t", "f", "{}")), user(ir.ToolResult("t", [img])))
    body = valid_request(write_request(r, "m", OPTS))
    assert body["messages"][0]["content"] == [{"type": "text", "text": "x"}]
    assert body["messages"][2]["content"][0]["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}}
    ]


@pytest.mark.parametrize("arguments", ["{broken", "[1, 2]", '"text"'])
def test_write_tool_arguments_not_an_object(arguments: str) -> None:
    """Arguments that are not a JSON object are sent as {} (a debug line says so)."""
    with capture_logs() as logs:
        body = write_request(ir_req(assistant(ir.ToolCall("t1", "f", arguments))), "m", OPTS)
    assert body["messages"][0]["content"][0]["input"] == {}
    assert logs[0]["fields"] == ["tool_use.input"]


def test_write_tools() -> None:
    """Tool definitions: input_schema from parameters (an object schema when missing), strict only when true."""
    tools = [
        ir.Tool("a", "does a", {"type": "object", "properties": {"x": {"type": "integer"}}}, strict=True),
        ir.Tool("b"),
        ir.Tool("c", parameters={}, strict=False),
        ir.Tool("d", parameters={"properties": {}}),
    ]
    body = valid_request(write_request(ir_req(tools=tools), "m", OPTS))
    assert body["tools"] == [
        {
            "name": "a",
            "input_schema": {"type": "object", "properties": {"x": {"type": "integer"}}},
            "description": "does a",
            "strict": True,
        },
        {"name": "b", "input_schema": {"type": "object", "properties": {}}},
        {"name": "c", "input_schema": {"type": "object", "properties": {}}},
        {"name": "d", "input_schema": {"properties": {}, "type": "object"}},
    ]
    assert "tool_choice" not in body


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        (None, None, None),
        (ir.ToolChoice("auto"), None, {"type": "auto"}),
        (ir.ToolChoice("required"), None, {"type": "any"}),
        (ir.ToolChoice("tool", "get"), None, {"type": "tool", "name": "get"}),
        (ir.ToolChoice("tool"), None, {"type": "any"}),
        (ir.ToolChoice("none"), None, {"type": "none"}),
        (ir.ToolChoice("none"), False, {"type": "none"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        (ir.ToolChoice("required"), False, {"type": "any", "disable_parallel_tool_use": True}),
        (ir.ToolChoice("auto"), True, {"type": "auto"}),
    ],
)
def test_write_tool_choice(choice: ir.ToolChoice | None, parallel: bool | None, expected: Any) -> None:
    """IR tool choice and parallel_tool_calls -> Anthropic tool_choice."""
    r = ir_req(tools=[ir.Tool("get")], tool_choice=choice, parallel_tool_calls=parallel)
    body = valid_request(write_request(r, "m", OPTS))
    assert body.get("tool_choice") == expected


def test_write_tool_choice_needs_tools() -> None:
    """Without tools no tool_choice is sent (Anthropic refuses one)."""
    r = ir_req(tool_choice=ir.ToolChoice("required"), parallel_tool_calls=False)
    assert "tool_choice" not in write_request(r, "m", OPTS)


BUDGET = ir.RequestOptions(thinking="budget")
ADAPTIVE = ir.RequestOptions(thinking="adaptive")


@pytest.mark.parametrize(
    ("reasoning", "max_tokens", "opts", "thinking", "output_config"),
    [
        (None, None, BUDGET, None, None),
        (ir.Reasoning(enabled=False), None, BUDGET, None, None),
        (ir.Reasoning(effort="none"), None, ADAPTIVE, None, None),
        (ir.Reasoning(effort="low"), None, BUDGET, {"type": "enabled", "budget_tokens": 2048}, None),
        (ir.Reasoning(effort="high"), 40000, BUDGET, {"type": "enabled", "budget_tokens": 16384}, None),
        # an effort's budget takes at most half of max_tokens: the answer keeps room
        (ir.Reasoning(effort="high"), 32000, BUDGET, {"type": "enabled", "budget_tokens": 16000}, None),
        (ir.Reasoning(effort="max"), 20000, BUDGET, {"type": "enabled", "budget_tokens": 10000}, None),
        (ir.Reasoning(effort="high"), 2047, BUDGET, None, None),
        # medium (8192) under the default max_tokens (16384)
        (ir.Reasoning(), None, BUDGET, {"type": "enabled", "budget_tokens": 8192}, None),
        (
            ir.Reasoning(budget_tokens=3000, effort="low"),
            None,
            BUDGET,
            {"type": "enabled", "budget_tokens": 3000},
            None,
        ),
        (ir.Reasoning(budget_tokens=3000), 2000, BUDGET, {"type": "enabled", "budget_tokens": 1999}, None),
        (ir.Reasoning(budget_tokens=3000), 1000, BUDGET, None, None),
        (ir.Reasoning(effort="minimal"), None, ADAPTIVE, {"type": "adaptive"}, {"effort": "low"}),
        (ir.Reasoning(effort="xhigh"), None, ADAPTIVE, {"type": "adaptive"}, {"effort": "xhigh"}),
        (ir.Reasoning(budget_tokens=16384), None, ADAPTIVE, {"type": "adaptive"}, {"effort": "high"}),
        (ir.Reasoning(), None, ADAPTIVE, {"type": "adaptive"}, None),
    ],
)
def test_write_thinking(
    reasoning: ir.Reasoning | None, max_tokens: int | None, opts: ir.RequestOptions, thinking: Any, output_config: Any
) -> None:
    """Effort or budget -> the route's thinking form, budgets kept below max_tokens (reasoning.py thresholds)."""
    body = valid_request(write_request(ir_req(reasoning=reasoning, max_tokens=max_tokens), "m", opts))
    assert body.get("thinking") == thinking
    assert body.get("output_config") == output_config


@pytest.mark.parametrize("opts", [BUDGET, ADAPTIVE])
def test_write_thinking_constraints(opts: ir.RequestOptions) -> None:
    """With thinking on, sampling changes are dropped and forced tool use degrades to auto."""
    r = ir_req(
        reasoning=ir.Reasoning(effort="high"),
        max_tokens=32000,
        temperature=0.5,
        top_p=0.9,
        top_k=4,
        stop=["END"],
        tools=[ir.Tool("get")],
        tool_choice=ir.ToolChoice("tool", "get"),
        parallel_tool_calls=False,
    )
    with capture_logs() as logs:
        body = valid_request(write_request(r, "m", opts))
    assert not {"temperature", "top_p", "top_k"} & body.keys()
    assert body["stop_sequences"] == ["END"]
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert logs == [
        {
            "event": "fields_dropped",
            "fmt": FMT,
            "fields": ["temperature", "tool_choice", "top_k", "top_p"],
            "side": "write",
            "log_level": "debug",
        }
    ]


TOOL_LOOP = [
    user(ir.Text("weather?")),
    assistant(ir.Text("Checking."), ir.ToolCall("call_1", "get", "{}")),
    user(ir.ToolResult("call_1", [ir.Text("sunny")])),
]


@pytest.mark.parametrize(
    ("history", "on"),
    [
        (TOOL_LOOP, False),
        (
            [
                *TOOL_LOOP[:1],
                assistant(ir.Thinking(text="t", signature="s", origin=FMT), ir.ToolCall("call_1", "g", "{}")),
                *TOOL_LOOP[2:],
            ],
            True,
        ),
        (
            [
                *TOOL_LOOP[:1],
                assistant(ir.Thinking(redacted="r", origin=FMT), ir.ToolCall("call_1", "get", "{}")),
                *TOOL_LOOP[2:],
            ],
            True,
        ),
        ([*TOOL_LOOP, assistant(ir.Text("Sunny.")), user(ir.Text("thanks"))], True),
        ([user(ir.Text("hi"))], True),
    ],
)
def test_write_thinking_needs_signed_tool_turn(history: list[ir.Message], on: bool) -> None:
    """The last assistant turn that called tools must open with Anthropic thinking, else thinking stays off."""
    r = ir_req(
        *history,
        reasoning=ir.Reasoning(effort="low"),
        temperature=0.3,
        tools=[ir.Tool("get")],
        tool_choice=ir.ToolChoice("required"),
    )
    with capture_logs() as logs:
        body = valid_request(write_request(r, "m", BUDGET))
    assert ("thinking" in body) is on
    assert ("temperature" in body) is not on
    assert body["tool_choice"] == ({"type": "auto"} if on else {"type": "any"})
    dropped = logs[0]["fields"] if logs else []
    assert ("thinking" in dropped) is not on


@pytest.mark.parametrize(
    ("prefill", "expected"),
    [
        (
            assistant(ir.Thinking(text="t", signature="s", origin=FMT), ir.Text("The answer is")),
            [{"role": "assistant", "content": [{"type": "text", "text": "The answer is"}]}],
        ),
        (assistant(ir.Thinking(redacted="r", origin=FMT)), []),
    ],
)
def test_write_prefill_without_thinking(prefill: ir.Message, expected: list[dict[str, Any]]) -> None:
    """With thinking off, thinking blocks leave a final assistant (prefill) turn, and an emptied turn goes."""
    body = valid_request(write_request(ir_req(user(ir.Text("q")), prefill), "m", OPTS))
    assert body["messages"][1:] == expected


@pytest.mark.parametrize(
    ("drop", "kept"),
    [
        (frozenset(), {"temperature": 0.5, "top_p": 0.9, "top_k": 4, "stop_sequences": ["END"]}),
        (frozenset({"top_p", "top_k"}), {"temperature": 0.5, "stop_sequences": ["END"]}),
        (frozenset({"temperature", "stop"}), {"top_p": 0.9, "top_k": 4}),
        (frozenset({"stop_sequences"}), {"temperature": 0.5, "top_p": 0.9, "top_k": 4}),
    ],
)
def test_write_sampling_and_drop_params(drop: frozenset[str], kept: dict[str, Any]) -> None:
    """Sampling fields are written unless the route's drop_params names them; blank stop sequences never are."""
    r = ir_req(temperature=0.5, top_p=0.9, top_k=4, stop=["END", " ", "\n"])
    body = valid_request(write_request(r, "m", ir.RequestOptions(drop_params=drop)))
    assert {k: body[k] for k in ("temperature", "top_p", "top_k", "stop_sequences") if k in body} == kept


def test_request_round_trip() -> None:
    """An Anthropic request read and written back keeps its meaning."""
    body = req(
        [
            {"role": "user", "content": [{"type": "text", "text": "weather?"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "use the tool", "signature": "s1"},
                    {"type": "tool_use", "id": "toolu_1", "name": "get", "input": {"city": "Paris"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "sunny"}]}
                ],
            },
        ],
        system="Be brief.",
        max_tokens=20000,
        stop_sequences=["END"],
        tools=[{"name": "get", "description": "Weather", "input_schema": {"type": "object", "properties": {}}}],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        thinking={"type": "enabled", "budget_tokens": 16384},
        metadata={"user_id": "u"},
        stream=False,
    )
    assert valid_request(write_request(read_request(body), "claude-x", BUDGET)) == body


# ---------------------------------------------------------------- answers


ANSWER = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": "claude-x",
    "content": [
        {"type": "thinking", "thinking": "User wants weather", "signature": "EqQB"},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 40,
        "output_tokens": 60,
        "cache_creation_input_tokens": 5,
        "cache_read_input_tokens": 10,
        "output_tokens_details": {"thinking_tokens": 30},
    },
}


def test_read_answer() -> None:
    """Content blocks, stop reason and usage (input excludes cache) read into IR."""
    ans = read_answer(ANSWER)
    assert ans == ir.Answer(
        id="msg_01",
        model="claude-x",
        parts=[
            ir.Thinking(text="User wants weather", signature="EqQB", origin=FMT),
            ir.Thinking(redacted="opaque", origin=FMT),
            ir.Text("Let me check."),
            ir.ToolCall("toolu_1", "get_weather", '{"city":"Paris"}'),
        ],
        stop="tool_use",
        usage=Usage(40, 10, 5, 60, 30),
    )


def test_answer_round_trip() -> None:
    """read_answer then write_answer gives the same Message back, valid for the SDK."""
    out = write_answer(read_answer(ANSWER), "claude-x")
    assert anthropic.types.Message.model_validate(out, strict=False)
    assert out == ANSWER


def test_read_answer_lenient() -> None:
    """Odd answers read as empty rather than raise; server-tool blocks are skipped."""
    content = [None, {"type": "server_tool_use"}, {"type": "tool_use", "input": None}]
    ans = read_answer({"content": content, "stop_reason": 3})
    assert ans == ir.Answer(id="", model="", parts=[ir.ToolCall("", "", "{}")], stop="end", usage=None)
    assert read_answer({}).parts == []


@pytest.mark.parametrize(
    ("wire", "stop"),
    [
        ("end_turn", "end"),
        ("max_tokens", "length"),
        ("stop_sequence", "stop_sequence"),
        ("tool_use", "tool_use"),
        ("pause_turn", "pause"),
        ("refusal", "refusal"),
        ("model_context_window_exceeded", "length"),
        ("something_new", "end"),
    ],
)
def test_read_stop_reasons(wire: str, stop: str) -> None:
    """Every Anthropic stop_reason maps to an ir Stop."""
    assert read_answer({"stop_reason": wire, "stop_sequence": "X"}).stop == stop


@pytest.mark.parametrize(
    ("stop", "wire"),
    [
        ("end", "end_turn"),
        ("length", "max_tokens"),
        ("stop_sequence", "stop_sequence"),
        ("tool_use", "tool_use"),
        ("content_filter", "refusal"),
        ("refusal", "refusal"),
        ("pause", "pause_turn"),
    ],
)
def test_write_stop_reasons(stop: ir.Stop, wire: str) -> None:
    """Every ir Stop maps to an Anthropic stop_reason the SDK accepts."""
    out = write_answer(ir.Answer("chatcmpl-1", "gpt", [ir.Text("x")], stop=stop, stop_sequence="X"), "claude-x")
    msg = anthropic.types.Message.model_validate(out)
    assert (msg.stop_reason, msg.stop_sequence) == (wire, "X")


def test_write_answer_from_other_format() -> None:
    """A translated answer: msg_ id, foreign reasoning unsigned, encrypted-only reasoning dropped, args parsed."""
    ans = ir.Answer(
        id="chatcmpl-9",
        model="gpt-x",
        parts=[
            ir.Thinking(text="reasoning_content", origin="openai-chat"),
            ir.Thinking(encrypted="enc", origin="openai-responses"),
            ir.Thinking(redacted="r", origin="openai-chat"),
            ir.Text(""),
            ir.Text("Answer"),
            ir.ToolCall("call_1", "f", '{"a": [1, 2]}'),
            ir.ToolCall("call 2", "g", ""),
        ],
        stop="tool_use",
        usage=Usage(input_tokens=7, output_tokens=3),
    )
    out = write_answer(ans, "claude-alias")
    msg = anthropic.types.Message.model_validate(out)
    assert msg.id == "msg_chatcmpl-9"
    assert msg.model == "claude-alias"
    assert out["content"] == [
        {"type": "thinking", "thinking": "reasoning_content", "signature": ""},
        {"type": "text", "text": "Answer"},
        {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": [1, 2]}},
        {"type": "tool_use", "id": "call_2", "name": "g", "input": {}},
    ]
    assert out["usage"] == {
        "input_tokens": 7,
        "output_tokens": 3,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
    }


def test_write_answer_unparsable_arguments_logged() -> None:
    """Tool arguments that are not a JSON object become input {} with one debug line."""
    with capture_logs() as logs:
        out = write_answer(ir.Answer("x", "m", [ir.ToolCall("c", "f", '{"cut": ')], stop="length"), "m")
    assert out["content"][0]["input"] == {}
    assert logs == [
        {"event": "fields_dropped", "fmt": FMT, "fields": ["tool_use.input"], "side": "answer", "log_level": "debug"}
    ]


def test_read_answer_unencodable_input() -> None:
    """A tool input orjson cannot encode (an integer past 64 bits) reads as {} instead of raising."""
    ans = read_answer({"content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"n": 2**70}}]})
    assert ans.parts == [ir.ToolCall("t", "f", "{}")]


def test_data_url_not_base64_stays_a_url() -> None:
    """Only base64 data: URLs are split into inline images; others pass as URLs."""
    url = "data:image/svg+xml,%3Csvg%3E"
    r = read_request(req([{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": url}}]}]))
    assert r.messages[0].parts == [ir.Image(url=url)]
    body = write_request(r, "m", OPTS)
    assert body["messages"][0]["content"][0]["source"] == {"type": "url", "url": url}


def test_write_answer_without_usage() -> None:
    """No usage reported: zeros, still a valid Message."""
    out = write_answer(ir.Answer("msg_x", "m", []), "m")
    assert anthropic.types.Message.model_validate(out).usage.output_tokens == 0
    assert out["id"] == "msg_x"


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}',
            ir.Error("Overloaded", "overloaded_error"),
        ),
        (
            b'{"type":"error","error":{"type":"rate_limit_error","message":"slow",'
            b'"details":{"error_code":"enforced_spend_limit_reached"}}}',
            ir.Error("slow", "rate_limit_error", "enforced_spend_limit_reached"),
        ),
        (b'{"error":{"message":"no type"}}', ir.Error("no type", "api_error")),
        (b'{"error":{"type":"invalid_request_error"}}', ir.Error("upstream error", "invalid_request_error")),
        (b'{"error":"plain"}', ir.Error("plain")),
        (b"<html>502 Bad Gateway</html>", ir.Error("<html>502 Bad Gateway</html>")),
        (b"", ir.Error("upstream error")),
        (b"[1, 2]", ir.Error("[1, 2]")),
        (b"\xff\xfe", ir.Error("\ufffd\ufffd")),
        (b"x" * 5000, ir.Error("x" * 1000)),
    ],
)
def test_read_error(body: bytes, expected: ir.Error) -> None:
    """Error bodies -> message and Anthropic error type; anything unparsable still yields an Error."""
    assert read_error(body) == expected


def test_strip_unsigned_thinking_keeps_signed_blocks_and_copies_only_what_changes() -> None:
    from router.formats.messages import strip_unsigned_thinking

    signed = {"type": "thinking", "thinking": "a", "signature": "sig"}
    unsigned = {"type": "thinking", "thinking": "b", "signature": ""}
    text = {"type": "text", "text": "t"}
    body: dict[str, Any] = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [signed, text]},
            {"role": "assistant", "content": [unsigned, text]},
        ],
    }
    out = strip_unsigned_thinking(body)
    assert out["messages"][1] is body["messages"][1]
    assert out["messages"][2]["content"] == [text]
    assert body["messages"][2]["content"] == [unsigned, text], "the client's body is not changed"
    clean = {"model": "m", "messages": [{"role": "assistant", "content": [signed]}]}
    assert strip_unsigned_thinking(clean) is clean
    assert strip_unsigned_thinking({"model": "m", "messages": "x"}) == {"model": "m", "messages": "x"}
