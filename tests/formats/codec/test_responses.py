"""openai-responses requests, answers and error bodies <-> IR (router/formats/codec/responses.py),
checked against the openai SDK's own types."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.responses import Response
from openai.types.responses.response_create_params import ResponseCreateParamsStreaming
from pydantic import TypeAdapter

from router.config import Format
from router.errors import BadRequest
from router.formats.codec import carry, ir, responses, responses_read
from router.formats.codec.reasoning import effort_for
from router.types import Usage

OPTS = ir.RequestOptions()
R: Format = "openai-responses"


class _Log:
    """Stands in for the module's structlog logger, whatever the global structlog config is."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def debug(self, event: str, **kw: Any) -> None:
        self.lines.append((event, kw))


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> _Log:
    log = _Log()
    monkeypatch.setattr(responses_read, "log", log)
    return log


def body(**kw: Any) -> dict[str, Any]:
    return {"model": "gpt-x", "input": "hi"} | kw


# ---------------------------------------------------------------- read_request


def test_string_input_and_instructions() -> None:
    """A string input is one user message; instructions come first among the system texts."""
    req = responses.read_request(body(instructions="be brief", input=[{"role": "developer", "content": "dev"}]))
    assert req.system == ["be brief", "dev"]
    req = responses.read_request(body(input="hello"))
    assert req.messages == [ir.Message("user", [ir.Text("hello")])]
    assert req.model == "gpt-x" and req.system == []


@pytest.mark.parametrize(
    ("item", "parts"),
    [
        ({"role": "user", "content": "plain"}, [ir.Text("plain")]),
        ({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a"}]}, [ir.Text("a")]),
        (
            {"role": "user", "content": [{"type": "input_image", "image_url": "https://x/i.png", "detail": "low"}]},
            [ir.Image(url="https://x/i.png", detail="low")],
        ),
        (
            {"role": "user", "content": [{"type": "input_image", "image_url": "data:image/jpeg;base64,QUJD"}]},
            [ir.Image(data="QUJD", media_type="image/jpeg")],
        ),
    ],
)
def test_user_parts(item: dict[str, Any], parts: list[ir.Part]) -> None:
    """User content: a string, input_text, input_image by URL or split data URL."""
    assert responses.read_request(body(input=[item])).messages == [ir.Message("user", parts)]


@pytest.mark.parametrize(
    ("content", "parts"),
    [
        ("said", [ir.Text("said")]),
        ([{"type": "output_text", "text": "t", "annotations": []}], [ir.Text("t")]),
        ([{"type": "refusal", "refusal": "no"}], [ir.Text("no")]),
    ],
)
def test_assistant_parts(content: Any, parts: list[ir.Part]) -> None:
    """Assistant history: output_text and refusal parts are text."""
    req = responses.read_request(body(input=[{"type": "message", "role": "assistant", "content": content}]))
    assert req.messages == [ir.Message("assistant", parts)]


def test_empty_content_adds_nothing() -> None:
    """Empty strings and empty text parts make no message and no part."""
    items = [{"role": "user", "content": ""}, {"role": "user", "content": [{"type": "input_text", "text": ""}]}]
    assert responses.read_request(body(input=items)).messages == []


def test_tool_turns_merge() -> None:
    """Assistant text, reasoning and calls form one assistant message; outputs and the next user
    message form one user message (Anthropic's shape)."""
    items = [
        {"role": "user", "content": "weather?"},
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [{"type": "summary_text", "text": "a"}, {"type": "summary_text", "text": "b"}],
            "encrypted_content": "ENC",
        },
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "checking"}]},
        {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "w", "arguments": '{"c":"P"}'},
        {"type": "function_call", "call_id": "call_2", "name": "w", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {
            "type": "function_call_output",
            "call_id": "call_2",
            "output": [{"type": "input_text", "text": "x"}, {"type": "input_image", "image_url": "https://i"}],
        },
        {"role": "user", "content": "thanks"},
    ]
    assert responses.read_request(body(input=items)).messages == [
        ir.Message("user", [ir.Text("weather?")]),
        ir.Message(
            "assistant",
            [
                ir.Thinking(text="a\n\nb", encrypted="ENC", id="rs_1", origin=R),
                ir.Text("checking"),
                ir.ToolCall("call_1", "w", '{"c":"P"}'),
                ir.ToolCall("call_2", "w", "{}"),
            ],
        ),
        ir.Message(
            "user",
            [
                ir.ToolResult("call_1", [ir.Text("sunny")]),
                ir.ToolResult("call_2", [ir.Text("x"), ir.Image(url="https://i")]),
                ir.Text("thanks"),
            ],
        ),
    ]


def test_fields(logs: _Log) -> None:
    """Sampling, limits, stream, user and the one debug line listing what was dropped."""
    req = responses.read_request(
        body(
            max_output_tokens=100,
            temperature=0.5,
            top_p=1,
            stream=True,
            parallel_tool_calls=False,
            safety_identifier="u1",
            user="old",
            store=False,
            include=["reasoning.encrypted_content"],
            text={"format": {"type": "text"}},
            prompt_cache_key="k",
        )
    )
    assert (req.max_tokens, req.temperature, req.top_p, req.stream) == (100, 0.5, 1.0, True)
    assert req.parallel_tool_calls is False and req.user == "u1"
    assert logs.lines == [
        (
            "fields_dropped",
            {"fmt": R, "fields": ["store", "include", "text", "prompt_cache_key"]},
        )
    ]
    assert responses.read_request(body(user="old")).user == "old"


@pytest.mark.parametrize("field", ["previous_response_id", "conversation", "prompt"])
def test_server_side_state_is_refused_not_dropped(field: str) -> None:
    """Dropping a pointer to stored history would silently change the question: a clear 400."""
    with pytest.raises(BadRequest, match="whole conversation") as info:
        responses.read_request(body(**{field: "resp_0"}))
    assert info.value.param == field


def test_nothing_dropped_logs_nothing(logs: _Log) -> None:
    """A request that maps fully logs no drop line."""
    responses.read_request(body())
    assert logs.lines == []


def test_tools(logs: _Log) -> None:
    """Function tools map; hosted, custom and namespace tools and their history items are dropped."""
    tools = [
        {"type": "function", "name": "f", "description": "d", "parameters": {"type": "object"}, "strict": True},
        {"type": "function", "name": "g", "parameters": None},
        {"type": "web_search"},
        {"type": "namespace", "name": "mcp", "description": "", "tools": []},
        {"type": "custom", "name": "apply_patch"},
    ]
    items = [{"type": "local_shell_call", "call_id": "c"}, {"role": "user", "content": "x"}]
    req = responses.read_request(body(tools=tools, input=items))
    assert req.tools == [ir.Tool("f", "d", {"type": "object"}, True), ir.Tool("g")]
    assert req.messages == [ir.Message("user", [ir.Text("x")])]
    fields = ["input.local_shell_call", "tools.web_search", "tools.namespace", "tools.custom"]
    assert logs.lines[0][1]["fields"] == fields


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", ir.ToolChoice("auto")),
        ("none", ir.ToolChoice("none")),
        ("required", ir.ToolChoice("required")),
        ({"type": "function", "name": "f"}, ir.ToolChoice("tool", "f")),
        ({"type": "allowed_tools", "mode": "required", "tools": []}, ir.ToolChoice("required")),
        ({"type": "web_search"}, None),
        (None, None),
    ],
)
def test_tool_choice(choice: Any, expected: ir.ToolChoice | None) -> None:
    """tool_choice strings and objects; a hosted tool's choice is dropped with its tool."""
    assert responses.read_request(body(tool_choice=choice)).tool_choice == expected


@pytest.mark.parametrize(
    ("reasoning", "expected"),
    [
        ({"effort": "high"}, ir.Reasoning(effort="high")),
        ({"effort": "none"}, ir.Reasoning(enabled=False, effort="none")),
        ({"summary": "auto"}, ir.Reasoning(summary="auto")),  # what Codex sends
        ({"effort": "low", "generate_summary": "concise"}, ir.Reasoning(effort="low", summary="concise")),
        (None, None),
    ],
)
def test_reasoning(reasoning: Any, expected: ir.Reasoning | None) -> None:
    """reasoning {effort, summary} -> ir.Reasoning; effort none turns it off."""
    assert responses.read_request(body(reasoning=reasoning)).reasoning == expected


def test_codex_like_request() -> None:
    """The shape Codex sends (section H): developer messages, ids on items, store false, include."""
    req = responses.read_request(
        {
            "model": "gpt-5-codex",
            "stream": True,
            "store": False,
            "include": ["reasoning.encrypted_content"],
            "reasoning": {"summary": "auto"},
            "prompt_cache_key": "s",
            "client_metadata": {},
            "tool_choice": "auto",
            "parallel_tool_calls": True,
            "tools": [
                {
                    "type": "function",
                    "name": "shell",
                    "parameters": {"type": "object", "properties": {}},
                    "strict": False,
                }
            ],
            "input": [
                {"type": "message", "id": "m0", "role": "developer", "content": [{"type": "input_text", "text": "D"}]},
                {"type": "message", "id": "m1", "role": "user", "content": [{"type": "input_text", "text": "ls"}]},
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "E"},
                {"type": "function_call", "id": "fc_1", "call_id": "c1", "name": "shell", "arguments": "{}"},
                {"type": "function_call_output", "id": "o1", "call_id": "c1", "output": "a.txt"},
            ],
        }
    )
    assert req.system == ["D"] and req.stream and req.tool_choice == ir.ToolChoice("auto")
    assert [m.role for m in req.messages] == ["user", "assistant", "user"]
    assert req.messages[1].parts[0] == ir.Thinking(encrypted="E", id="rs_1", origin=R)


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"model": None}, "model"),
        ({"input": None}, "input"),
        ({"input": {"role": "user"}}, "input"),
        ({"input": ["x"]}, "input[0]"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
        ({"input": [{"role": "user", "content": 3}]}, "input[0].content"),
        ({"input": [{"role": "user", "content": ["x"]}]}, "input[0].content[0]"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input[0].content[0].type",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0].file_id",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "data:x,y"}]}]},
            "input[0].content[0].image_url",
        ),
        ({"input": [{"role": "user", "content": [{"type": "input_image"}]}]}, "input[0].content[0].image_url"),
        (
            {"input": [{"role": "system", "content": [{"type": "input_image", "image_url": "u"}]}]},
            "input[0].content[0].type",
        ),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
        ({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input[0].call_id"),
        ({"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]}, "input[0].arguments"),
        ({"input": [{"type": "function_call_output", "call_id": "c", "output": None}]}, "input[0].output"),
        ({"instructions": ["x"]}, "instructions"),
        ({"tools": {}}, "tools"),
        ({"tools": [1]}, "tools[0]"),
        ({"tools": [{"type": "function"}]}, "tools[0].name"),
        ({"tools": [{"type": "function", "name": "f", "parameters": "x"}]}, "tools[0].parameters"),
        ({"tool_choice": "any"}, "tool_choice"),
        ({"tool_choice": {"type": "function"}}, "tool_choice.name"),
        ({"temperature": "1"}, "temperature"),
        ({"top_p": True}, "top_p"),
        ({"max_output_tokens": True}, "max_output_tokens"),
        ({"max_output_tokens": 1.5}, "max_output_tokens"),
        ({"stream": "yes"}, "stream"),
        ({"reasoning": "high"}, "reasoning"),
        ({"reasoning": {"effort": "huge"}}, "reasoning.effort"),
        # Values of an unexpected type anywhere: a 400 naming the path, never a crash.
        ({"reasoning": {"effort": ["low"]}}, "reasoning.effort"),
        ({"reasoning": {"summary": ["auto"]}}, "reasoning.summary"),
        ({"input": [{"type": ["message"], "role": "user", "content": "x"}]}, "input[0].type"),
        ({"input": [{"role": {}, "content": "x"}]}, "input[0].role"),
        ({"input": [{"role": "user", "content": [{"type": []}]}]}, "input[0].content[0].type"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "https://x", "detail": {}}]}]},
            "input[0].content[0].detail",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": ["u"]}]}]},
            "input[0].content[0].image_url",
        ),
        ({"input": [{"type": "reasoning", "summary": "x"}]}, "input[0].summary"),
        (
            {"input": [{"type": "reasoning", "summary": [{"type": "summary_text", "text": 1}]}]},
            "input[0].summary[0].text",
        ),
        ({"input": [{"type": "reasoning", "summary": ["x"]}]}, "input[0].summary[0]"),
        ({"input": [{"type": "reasoning", "summary": [], "encrypted_content": 5}]}, "input[0].encrypted_content"),
        ({"input": [{"type": "function_call_output", "call_id": {}, "output": "x"}]}, "input[0].call_id"),
        ({"tools": [{"type": {"x": 1}}]}, "tools[0].type"),
        ({"tools": [{"type": "function", "name": "f", "description": {}}]}, "tools[0].description"),
        ({"tools": [{"type": "function", "name": "f", "strict": "yes"}]}, "tools[0].strict"),
        ({"tool_choice": ["auto"]}, "tool_choice"),
        ({"tool_choice": {"type": {}}}, "tool_choice.type"),
        ({"tool_choice": {"type": "allowed_tools", "mode": ["auto"]}}, "tool_choice.mode"),
        ({"user": ["u"]}, "user"),
    ],
)
def test_bad_requests(changes: dict[str, Any], param: str) -> None:
    """Wrong types and parts that cannot be carried are a BadRequest naming the field."""
    with pytest.raises(BadRequest) as exc:
        responses.read_request(body(**changes))
    assert exc.value.param == param


# ---------------------------------------------------------------- write_request

FULL = ir.Request(
    model="claude-x",
    system=["one", "two"],
    messages=[
        ir.Message("user", [ir.Text("look"), ir.Image(data="QUJD", media_type="image/png"), ir.Image(url="https://i")]),
        ir.Message(
            "assistant",
            [
                ir.Thinking(text="mine", encrypted="E", id="rs_9", origin=R),
                ir.Thinking(text="theirs", signature="sig", origin="anthropic-messages"),
                ir.Thinking(text="no blob", origin=R),
                ir.Text("ok"),
                ir.ToolCall("call_1", "f", '{"a":1}'),
                ir.ToolCall("call_2", "g", "{}"),
            ],
        ),
        ir.Message(
            "user",
            [
                ir.ToolResult("call_1", [ir.Text("r1"), ir.Text("r2")]),
                ir.ToolResult("call_2", [ir.Text("bad")], is_error=True),
                ir.Text("next"),
            ],
        ),
    ],
    tools=[ir.Tool("f", "d", {"type": "object", "properties": {"a": {"type": "integer"}}}), ir.Tool("g", strict=True)],
    tool_choice=ir.ToolChoice("tool", "f"),
    parallel_tool_calls=True,
    max_tokens=500,
    temperature=0.2,
    top_p=0.9,
    top_k=5,
    stop=["END"],
    stream=True,
    reasoning=ir.Reasoning(budget_tokens=9000),
    user="u1",
)


def test_write_request_full() -> None:
    """Every IR field in its Responses place; only this format's encrypted reasoning goes back."""
    out = responses.write_request(FULL, "gpt-up", OPTS)
    assert out == {
        "model": "gpt-up",
        "instructions": "one\n\ntwo",
        "input": [
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "look"},
                    {"type": "input_image", "image_url": "data:image/png;base64,QUJD", "detail": "auto"},
                    {"type": "input_image", "image_url": "https://i", "detail": "auto"},
                ],
            },
            {
                "type": "reasoning",
                "id": "rs_9",
                "summary": [{"type": "summary_text", "text": "mine"}],
                "encrypted_content": "E",
            },
            {"type": "message", "role": "assistant", "content": "ok"},
            {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": '{"a":1}'},
            {"type": "function_call", "call_id": "call_2", "name": "g", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "r1\nr2"},
            {"type": "function_call_output", "call_id": "call_2", "output": "Error: bad"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "next"}]},
        ],
        "tools": [
            {
                "type": "function",
                "name": "f",
                "description": "d",
                "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}},
                "strict": False,
            },
            {
                "type": "function",
                "name": "g",
                "description": None,
                "parameters": {"type": "object", "properties": {}},
                "strict": True,
            },
        ],
        "tool_choice": {"type": "function", "name": "f"},
        "parallel_tool_calls": True,
        "max_output_tokens": 500,
        "temperature": 0.2,
        "top_p": 0.9,
        "reasoning": {"effort": effort_for(9000), "summary": "auto"},
        "include": ["reasoning.encrypted_content"],
        "user": "u1",
        "store": False,
        "stream": True,
    }
    TypeAdapter(ResponseCreateParamsStreaming).validate_python(out)


def test_write_request_minimal() -> None:
    """No optional field is invented; store is always false, stream follows the request."""
    req = ir.Request(model="m", messages=[ir.Message("user", [ir.Text("hi")])])
    assert responses.write_request(req, "up", OPTS) == {
        "model": "up",
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
        "store": False,
        "stream": False,
    }


def test_write_odd_parts() -> None:
    """An image on an assistant turn has no Responses place; reasoning without an id omits it."""
    req = ir.Request(
        model="m",
        messages=[ir.Message("assistant", [ir.Image(url="u"), ir.Thinking(encrypted="E", origin=R), ir.Text("t")])],
    )
    assert responses.write_request(req, "up", OPTS)["input"] == [
        {"type": "reasoning", "summary": [], "encrypted_content": "E"},
        {"type": "message", "role": "assistant", "content": "t"},
    ]


def test_tool_result_with_image() -> None:
    """A tool result with an image keeps it as an output content list."""
    req = ir.Request(
        model="m",
        messages=[
            ir.Message(
                "user", [ir.ToolResult("c", [ir.Text("see"), ir.Image(url="https://i"), ir.Image()], is_error=True)]
            )
        ],
    )
    assert responses.write_request(req, "up", OPTS)["input"] == [
        {
            "type": "function_call_output",
            "call_id": "c",
            "output": [
                {"type": "input_text", "text": "Error: "},
                {"type": "input_text", "text": "see"},
                {"type": "input_image", "image_url": "https://i", "detail": "auto"},
            ],
        }
    ]


@pytest.mark.parametrize(
    ("reasoning", "expected"),
    [
        (ir.Reasoning(effort="high"), {"effort": "high", "summary": "auto"}),
        (ir.Reasoning(effort="low", summary="detailed"), {"effort": "low", "summary": "detailed"}),
        (ir.Reasoning(budget_tokens=2048), {"effort": "low", "summary": "auto"}),
        (ir.Reasoning(), {"summary": "auto"}),
        (ir.Reasoning(enabled=False), {"effort": "none"}),
    ],
)
def test_write_reasoning(reasoning: ir.Reasoning, expected: dict[str, Any]) -> None:
    """Effort as given, or from the thinking budget; disabled is effort none (no include)."""
    out = responses.write_request(ir.Request(model="m", messages=[], reasoning=reasoning), "up", OPTS)
    assert out["reasoning"] == expected
    assert ("include" in out) == reasoning.enabled


@pytest.mark.parametrize("mode", ["auto", "none", "required"])
def test_write_tool_choice_modes(mode: Any) -> None:
    """auto, none and required are plain strings."""
    req = ir.Request(model="m", messages=[], tool_choice=ir.ToolChoice(mode))
    assert responses.write_request(req, "up", OPTS)["tool_choice"] == mode


def test_drop_params() -> None:
    """The route's drop_params leave sampling fields out."""
    out = responses.write_request(FULL, "up", ir.RequestOptions(drop_params=frozenset({"temperature", "top_p"})))
    assert "temperature" not in out and "top_p" not in out


def test_request_round_trip() -> None:
    """read_request(write_request(req)) keeps what Responses can carry."""
    back = responses.read_request(responses.write_request(FULL, "claude-x", OPTS))
    assert back.system == ["one\n\ntwo"]
    assert back.messages[1].parts == [
        ir.Thinking(text="mine", encrypted="E", id="rs_9", origin=R),
        ir.Text("ok"),
        ir.ToolCall("call_1", "f", '{"a":1}'),
        ir.ToolCall("call_2", "g", "{}"),
    ]
    # The image detail the SDK requires comes back as "auto", the API's default.
    assert back.messages[0].parts == [
        ir.Text("look"),
        ir.Image(data="QUJD", media_type="image/png", detail="auto"),
        ir.Image(url="https://i", detail="auto"),
    ]
    assert back.messages[2].parts == [
        ir.ToolResult("call_1", [ir.Text("r1\nr2")]),
        ir.ToolResult("call_2", [ir.Text("Error: bad")]),
        ir.Text("next"),
    ]
    assert back.tools[0] == ir.Tool("f", "d", FULL.tools[0].parameters, False)
    assert (back.tool_choice, back.max_tokens, back.user, back.stream) == (ir.ToolChoice("tool", "f"), 500, "u1", True)


# ---------------------------------------------------------------- answers

ANSWER_BODY: dict[str, Any] = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1764000000,
    "status": "completed",
    "model": "gpt-x",
    "output": [
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [{"type": "summary_text", "text": "plan"}],
            "encrypted_content": "ENC",
        },
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "status": "completed",
            "content": [
                {"type": "output_text", "text": "Let me check.", "annotations": []},
                {"type": "refusal", "refusal": "partly no"},
            ],
        },
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_1",
            "name": "w",
            "arguments": '{"c":"P"}',
            "status": "completed",
        },
        {"type": "web_search_call", "id": "ws_1", "status": "completed"},
    ],
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
    "usage": {
        "input_tokens": 50,
        "input_tokens_details": {"cached_tokens": 20, "cache_write_tokens": 5},
        "output_tokens": 80,
        "output_tokens_details": {"reasoning_tokens": 30},
        "total_tokens": 130,
    },
}


def test_read_answer() -> None:
    """Output items -> parts; function calls make tool_use; input_tokens includes cached ones."""
    ans = responses.read_answer(ANSWER_BODY)
    assert ans == ir.Answer(
        id="resp_1",
        model="gpt-x",
        parts=[
            ir.Thinking(text="plan", encrypted="ENC", id="rs_1", origin=R),
            ir.Text("Let me check."),
            ir.Text("partly no"),
            ir.ToolCall("call_1", "w", '{"c":"P"}'),
        ],
        stop="tool_use",
        usage=Usage(input_tokens=25, cached_tokens=20, cache_write_tokens=5, output_tokens=80, reasoning_tokens=30),
        created=1764000000,
    )


@pytest.mark.parametrize(
    ("status", "details", "stop"),
    [
        ("completed", None, "end"),
        ("incomplete", {"reason": "max_output_tokens"}, "length"),
        ("incomplete", {"reason": "content_filter"}, "content_filter"),
    ],
)
def test_read_answer_stop(status: str, details: Any, stop: ir.Stop) -> None:
    """status and incomplete_details.reason -> stop."""
    ans = responses.read_answer({"id": "r", "model": "m", "status": status, "incomplete_details": details})
    assert ans.stop == stop and ans.usage is None and ans.created is None


def test_read_answer_odd_body() -> None:
    """Missing or odd fields give an empty answer, not an exception."""
    assert responses.read_answer({"output": "x"}) == ir.Answer(id="", model="", parts=[])
    odd = {
        "output": [
            "x",
            {"type": "message", "content": [{"type": "input_audio"}, {"type": "refusal"}]},
            {"type": "function_call", "arguments": None},
        ]
    }
    assert responses.read_answer(odd).parts == [ir.ToolCall("", "", "")]


def test_write_answer_validates() -> None:
    """The written answer is an SDK Response; output_text, ids, status and usage as the SDK sees them."""
    ans = ir.Answer(
        id="msg_01",
        model="claude-x",
        parts=[
            ir.Thinking(text="hm", signature="sig", origin="anthropic-messages"),
            ir.Thinking(signature="only-sig", origin="anthropic-messages"),
            ir.Text("Hello "),
            ir.Text("world"),
            ir.ToolCall("toolu_1", "f", "{}"),
            ir.Thinking(encrypted="E", id="rs_7", origin=R),
        ],
        stop="tool_use",
        usage=Usage(input_tokens=10, cached_tokens=3, cache_write_tokens=2, output_tokens=7, reasoning_tokens=4),
        created=1700000000,
    )
    out = responses.write_answer(ans, "client-model")
    resp = Response.model_validate(out)
    assert resp.id == "resp_msg_01" and resp.model == "client-model" and resp.status == "completed"
    assert resp.output_text == "Hello world"
    assert [(o.type, o.id) for o in resp.output] == [
        ("reasoning", "rs_msg_01_0"),
        ("reasoning", "rs_msg_01_1"),  # signed but empty: kept, its token is what Anthropic needs back
        ("message", "msg_msg_01_2"),
        ("function_call", "fc_msg_01_3"),
        ("reasoning", "rs_7"),
    ]
    # Anthropic's signed blocks ride as the router's token; this format's own content as it came.
    assert [carry.read(o.get("encrypted_content")) for o in out["output"][:2]] == [
        ir.Thinking(text="hm", signature="sig", origin="anthropic-messages"),
        ir.Thinking(signature="only-sig", origin="anthropic-messages"),
    ]
    assert out["output"][1]["summary"] == [] and out["output"][4]["encrypted_content"] == "E"
    assert resp.usage is not None
    assert (resp.usage.input_tokens, resp.usage.total_tokens) == (15, 22)
    assert resp.usage.input_tokens_details.cached_tokens == 3
    assert resp.usage.output_tokens_details.reasoning_tokens == 4


@pytest.mark.parametrize(
    ("stop", "status", "reason"),
    [
        ("end", "completed", None),
        ("pause", "completed", None),
        ("length", "incomplete", "max_output_tokens"),
        ("content_filter", "incomplete", "content_filter"),
        ("refusal", "incomplete", "content_filter"),
    ],
)
def test_write_answer_status(stop: ir.Stop, status: str, reason: str | None) -> None:
    """stop -> status and incomplete_details; a resp_ id is kept as is."""
    out = responses.write_answer(ir.Answer(id="resp_9", model="m", parts=[ir.Text("x")], stop=stop), "m")
    resp = Response.model_validate(out)
    assert resp.id == "resp_9" and resp.status == status and resp.usage is None
    assert (resp.incomplete_details.reason if resp.incomplete_details else None) == reason
    assert isinstance(out["created_at"], int)


def test_answer_round_trip() -> None:
    """read_answer(write_answer(ans)) == ans, ids aside (the id gains its resp_ prefix)."""
    ans = responses.read_answer(ANSWER_BODY)
    again = responses.read_answer(responses.write_answer(ans, "gpt-x"))
    assert again == ans


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            b'{"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}}',
            ir.Error("slow down", "rate_limit_error", "rate_limit_exceeded"),
        ),
        (
            b'{"error": {"message": "bad key", "type": "invalid_request_error", "code": "invalid_api_key"}}',
            ir.Error("bad key", "authentication_error", "invalid_api_key"),
        ),
        (
            b'{"error": {"message": "m", "type": "invalid_request_error", "code": null}}',
            ir.Error("m", "invalid_request_error"),
        ),
        (
            b'{"error": {"message": "no model", "type": "invalid_request_error", "code": "model_not_found"}}',
            ir.Error("no model", "not_found_error", "model_not_found"),
        ),
        (
            b'{"error": {"message": "quota", "type": "insufficient_quota", "code": "insufficient_quota"}}',
            ir.Error("quota", "rate_limit_error", "insufficient_quota"),
        ),
        (b'{"error": {"message": "", "type": "server_error"}}', ir.Error("upstream error", "api_error")),
        (b'{"error": {"message": "busy", "type": "overloaded_error"}}', ir.Error("busy", "overloaded_error")),
        (b'{"error": {"message": "no", "type": "permission_denied"}}', ir.Error("no", "permission_error")),
        (b'{"error": "plain"}', ir.Error("plain")),
        (b'{"detail": "x"}', ir.Error("upstream error")),
        (b"[1]", ir.Error("upstream error")),
        (b"<html>502 Bad Gateway</html>", ir.Error("<html>502 Bad Gateway</html>")),
        (b"", ir.Error("upstream error")),
        (b"\xff\xfe", ir.Error("\ufffd\ufffd")),
    ],
)
def test_read_error(raw: bytes, expected: ir.Error) -> None:
    """Any error body gives a message and an Anthropic-style kind; never raises."""
    assert responses.read_error(raw) == expected
