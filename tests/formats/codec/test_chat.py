"""openai-chat requests, answers and errors <-> IR (router/formats/codec/chat.py, chat_read.py):
table-driven, each mapping both ways, written bodies checked against the openai SDK's types."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam
from structlog.testing import capture_logs

from router.errors import BadRequest
from router.formats.codec import chat, ir
from router.formats.codec.reasoning import effort_for
from router.types import Usage

OPTS = ir.RequestOptions()
_MESSAGE = pydantic.TypeAdapter(ChatCompletionMessageParam)


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}


def user(*parts: ir.Part) -> ir.Message:
    return ir.Message("user", list(parts))


def assistant(*parts: ir.Part) -> ir.Message:
    return ir.Message("assistant", list(parts))


# ---------------------------------------------------------------- read_request: fields

FIELDS: list[tuple[dict[str, Any], str, Any]] = [
    ({"max_completion_tokens": 100}, "max_tokens", 100),
    ({"max_tokens": 50}, "max_tokens", 50),
    ({"max_completion_tokens": 7, "max_tokens": 50}, "max_tokens", 7),
    ({"temperature": 0.5}, "temperature", 0.5),
    ({"temperature": 1}, "temperature", 1.0),
    ({"top_p": 0.9}, "top_p", 0.9),
    ({"stop": "END"}, "stop", ["END"]),
    ({"stop": ["a", "b"]}, "stop", ["a", "b"]),
    ({"stop": None}, "stop", []),
    ({"stream": True}, "stream", True),
    ({"parallel_tool_calls": False}, "parallel_tool_calls", False),
    ({"reasoning_effort": "high"}, "reasoning", ir.Reasoning(effort="high")),
    ({"reasoning_effort": "none"}, "reasoning", ir.Reasoning(enabled=False, effort="none")),
    ({"user": "u1"}, "user", "u1"),
    ({"safety_identifier": "s1", "user": "u1"}, "user", "s1"),
    ({"tool_choice": "auto"}, "tool_choice", ir.ToolChoice("auto")),
    ({"tool_choice": "none"}, "tool_choice", ir.ToolChoice("none")),
    ({"tool_choice": "required"}, "tool_choice", ir.ToolChoice("required")),
    ({"tool_choice": {"type": "function", "function": {"name": "f"}}}, "tool_choice", ir.ToolChoice("tool", "f")),
    (
        {"tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": []}}},
        "tool_choice",
        ir.ToolChoice("required"),
    ),
    (
        {
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "f", "description": "d", "parameters": {"type": "object"}, "strict": True},
                }
            ]
        },
        "tools",
        [ir.Tool("f", "d", {"type": "object"}, True)],
    ),
    ({"tools": [{"type": "function", "function": {"name": "g"}}]}, "tools", [ir.Tool("g")]),
]


@pytest.mark.parametrize(("extra", "attr", "expected"), FIELDS)
def test_read_request_fields(extra: dict[str, Any], attr: str, expected: Any) -> None:
    """Each top-level chat field lands in its IR field."""
    assert getattr(chat.read_request(body(**extra)), attr) == expected


# ---------------------------------------------------------------- read_request: messages

MESSAGES: list[tuple[list[dict[str, Any]], list[str], list[ir.Message]]] = [
    (
        [
            {"role": "system", "content": "s1"},
            {"role": "user", "content": "hi"},
            {"role": "developer", "content": [{"type": "text", "text": "d1"}, {"type": "text", "text": "d2"}]},
        ],
        ["s1", "d1", "d2"],
        [user(ir.Text("hi"))],
    ),
    (
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "high"}},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}},
                ],
            }
        ],
        [],
        [
            user(
                ir.Text("look"),
                ir.Image(url="https://x/a.png", detail="high"),
                ir.Image(data="QUJD", media_type="image/jpeg"),
            )
        ],
    ),
    (
        [
            {
                "role": "assistant",
                "content": "ok",
                "reasoning_content": "think",
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}],
            }
        ],
        [],
        [assistant(ir.Thinking("think", origin="openai-chat"), ir.Text("ok"), ir.ToolCall("c1", "f", '{"a":1}'))],
    ),
    (
        [
            {
                "role": "assistant",
                "content": None,
                "reasoning": "r",
                "tool_calls": [{"id": "c1", "function": {"name": "f"}}],
            }
        ],
        [],
        [assistant(ir.Thinking("r", origin="openai-chat"), ir.ToolCall("c1", "f", "{}"))],
    ),
    (
        [
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "a"}, {"type": "refusal", "refusal": "no"}],
                "refusal": "nope",
            }
        ],
        [],
        [assistant(ir.Text("a"), ir.Text("no"), ir.Text("nope"))],
    ),
    (  # consecutive tool messages merge into one user turn; the next user message joins it
        [
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                    {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{}"}},
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "r1"},
            {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "r2"}]},
            {"role": "user", "content": "thanks"},
            {"role": "user", "content": "more"},
        ],
        [],
        [
            assistant(ir.ToolCall("c1", "f", "{}"), ir.ToolCall("c2", "g", "{}")),
            user(ir.ToolResult("c1", [ir.Text("r1")]), ir.ToolResult("c2", [ir.Text("r2")]), ir.Text("thanks")),
            user(ir.Text("more")),
        ],
    ),
    (  # lenient where the meaning is plain: image_url as a bare string, arguments as an object, null system content
        [
            {"role": "system", "content": None},
            {"role": "user", "content": [{"type": "image_url", "image_url": "http://x/b.png"}]},
            {
                "role": "assistant",
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}],
            },
        ],
        [],
        [user(ir.Image(url="http://x/b.png")), assistant(ir.ToolCall("c1", "f", '{"a":1}'))],
    ),
    (  # an empty assistant turn carries nothing
        [{"role": "user", "content": "a"}, {"role": "assistant", "content": ""}, {"role": "user", "content": "b"}],
        [],
        [user(ir.Text("a")), user(ir.Text("b"))],
    ),
]


@pytest.mark.parametrize(("messages", "system", "expected"), MESSAGES)
def test_read_request_messages(messages: list[dict[str, Any]], system: list[str], expected: list[ir.Message]) -> None:
    """Roles, content parts, reasoning and tool results read into IR messages and system texts."""
    req = chat.read_request({"model": "m", "messages": messages})
    assert req.system == system
    assert req.messages == expected


BAD: list[tuple[dict[str, Any], str]] = [
    ({"model": "m", "messages": None}, "messages"),
    ({"model": "m", "messages": {"role": "user"}}, "messages"),
    ({"messages": []}, "model"),
    ({"model": "m", "messages": ["hi"]}, "messages[0]"),
    ({"model": "m", "messages": [{"role": "function", "content": "x"}]}, "messages[0].role"),
    ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ({"model": "m", "messages": [{"role": "user"}]}, "messages[0].content"),
    (
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
        "messages[0].content[0].type",
    ),
    (
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "file", "file": {}}]}]},
        "messages[0].content[0].type",
    ),
    ({"model": "m", "messages": [{"role": "user", "content": [{"type": "video"}]}]}, "messages[0].content[0].type"),
    (
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": 3}]}]},
        "messages[0].content[0].text",
    ),
    (
        {
            "model": "m",
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}],
        },
        "messages[0].content[0].image_url.url",
    ),
    (
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}]}
            ],
        },
        "messages[0].content[0].image_url.url",
    ),
    (
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
        "messages[0].content[0].image_url",
    ),
    ({"model": "m", "messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
    (
        {"model": "m", "messages": [{"role": "system", "content": [{"type": "image_url"}]}]},
        "messages[0].content[0].type",
    ),
    ({"model": "m", "messages": [{"role": "system", "content": 5}]}, "messages[0].content"),
    ({"model": "m", "messages": [{"role": "assistant", "content": 5}]}, "messages[0].content"),
    (
        {"model": "m", "messages": [{"role": "assistant", "content": [{"type": "image_url"}]}]},
        "messages[0].content[0].type",
    ),
    ({"model": "m", "messages": [{"role": "assistant", "tool_calls": {"id": "c"}}]}, "messages[0].tool_calls"),
    ({"model": "m", "messages": [{"role": "assistant", "tool_calls": ["c"]}]}, "messages[0].tool_calls[0]"),
    (
        {"model": "m", "messages": [{"role": "assistant", "content": [{"type": "text", "text": None}]}]},
        "messages[0].content[0].text",
    ),
    (
        {
            "model": "m",
            "messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "custom", "custom": {}}]}],
        },
        "messages[0].tool_calls[0].type",
    ),
    (
        {
            "model": "m",
            "messages": [{"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f"}}]}],
        },
        "messages[0].tool_calls[0].id",
    ),
    (body(tools={"type": "function"}), "tools"),
    (body(tools=[{"type": "custom", "custom": {"name": "x"}}]), "tools[0].type"),
    (body(tools=["f"]), "tools[0]"),
    (body(tools=[{"type": "function", "function": {}}]), "tools[0].function.name"),
    (body(tools=[{"type": "function", "function": {"name": "f", "parameters": "x"}}]), "tools[0].function.parameters"),
    (body(tools=[{"type": "function", "function": {"name": "f", "description": 1}}]), "tools[0].function.description"),
    (body(tools=[{"type": "function", "function": {"name": "f", "strict": "yes"}}]), "tools[0].function.strict"),
    (body(tool_choice="any"), "tool_choice"),
    (body(tool_choice={"type": "custom", "custom": {"name": "x"}}), "tool_choice.type"),
    (body(temperature="hot"), "temperature"),
    (body(top_p=True), "top_p"),
    (body(max_tokens=-1), "max_tokens"),
    (body(max_completion_tokens=1.5), "max_completion_tokens"),
    (body(stop=[1]), "stop[0]"),
    (body(stream="yes"), "stream"),
    (body(reasoning_effort="extreme"), "reasoning_effort"),
    (body(reasoning_effort=["high"]), "reasoning_effort"),
    ({"model": "m", "messages": [{"role": ["user"], "content": "x"}]}, "messages[0].role"),
    (body(tool_choice=["auto"]), "tool_choice"),
    (body(user=5), "user"),
    (body(parallel_tool_calls="no"), "parallel_tool_calls"),
    # Values of an unexpected type anywhere: a list where a key is looked up, an
    # object where a string is expected, and so on; a 400 naming the path, never a crash.
    (body(messages=[{"role": "user", "content": [{"type": ["text"]}]}]), "messages[0].content[0].type"),
    (
        body(
            messages=[
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x", "detail": {}}}]}
            ]
        ),
        "messages[0].content[0].image_url.detail",
    ),
    (body(messages=[{"role": "assistant", "refusal": ["no"]}]), "messages[0].refusal"),
    (
        body(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": "ftp://x"}]}]),
        "messages[0].content[0].image_url",
    ),
    (
        body(
            messages=[{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": [1]}}]}]
        ),
        "messages[0].tool_calls[0].function.arguments",
    ),
    (
        body(messages=[{"role": "assistant", "tool_calls": [{"id": "c", "function": "f"}]}]),
        "messages[0].tool_calls[0].function",
    ),
    (body(messages=[{"role": "tool", "tool_call_id": "c", "content": [{"type": {}}]}]), "messages[0].content[0].type"),
    (body(tools=[{"type": {"x": 1}}]), "tools[0].type"),
    (body(tool_choice={"type": "function", "function": {"name": {}}}), "tool_choice.function.name"),
    (
        body(tool_choice={"type": "allowed_tools", "allowed_tools": {"mode": ["auto"]}}),
        "tool_choice.allowed_tools.mode",
    ),
    (body(tool_choice={"type": "allowed_tools", "allowed_tools": []}), "tool_choice.allowed_tools"),
    (body(tool_choice={"type": ["function"]}), "tool_choice.type"),
    (body(stop={"x": 1}), "stop"),
]


@pytest.mark.parametrize(("request_body", "param"), BAD)
def test_read_request_rejects(request_body: dict[str, Any], param: str) -> None:
    """Wrong types and content that cannot be carried raise BadRequest naming the field."""
    with pytest.raises(BadRequest) as info:
        chat.read_request(request_body)
    assert info.value.param == param


def test_read_request_rejects_a_body_that_is_not_an_object() -> None:
    """A JSON array body is a BadRequest, not a crash."""
    with pytest.raises(BadRequest):
        chat.read_request([])  # type: ignore[arg-type]


def test_read_request_logs_dropped_fields_once() -> None:
    """Fields with no IR counterpart are dropped with one debug line naming them; nulls are not noise."""
    extra = {
        "n": 2,
        "logprobs": True,
        "response_format": {"type": "json_object"},
        "seed": None,
        "stream_options": {"include_usage": True},
    }
    msgs = [
        {"role": "user", "content": "hi", "name": "bob"},
        {"role": "assistant", "content": "x", "reasoning": {"a": 1}},
    ]
    with capture_logs() as logs:
        chat.read_request({"model": "m", "messages": msgs, **extra})
    assert logs == [
        {
            "event": "fields_dropped",
            "log_level": "debug",
            "fmt": "openai-chat",
            "fields": ["logprobs", "messages.name", "messages.reasoning", "n", "response_format"],
        }
    ]


def test_read_request_logs_nothing_when_nothing_is_dropped() -> None:
    """A request the IR carries whole logs no drop line."""
    with capture_logs() as logs:
        chat.read_request(body(temperature=0.2, stream=True, stream_options={"include_usage": True}))
    assert logs == []


# ---------------------------------------------------------------- write_request


def write(req: ir.Request, opts: ir.RequestOptions = OPTS) -> dict[str, Any]:
    out = chat.write_request(req, "up-model", opts)
    for m in out["messages"]:
        _MESSAGE.validate_python(m)
    return out


def test_write_request_roles_tool_results_and_thinking() -> None:
    """System texts lead; tool results become tool messages before the user's text; images from a
    tool result move to that user message; only chat-made thinking goes back as reasoning_content."""
    req = ir.Request(
        model="client-model",
        system=["s1", "s2"],
        messages=[
            user(ir.Text("hi")),
            assistant(
                ir.Thinking("mine", origin="openai-chat"), ir.Text("a"), ir.Text("b"), ir.ToolCall("c1", "f", "{}")
            ),
            user(
                ir.ToolResult("c1", [ir.Text("r"), ir.Image(url="https://x/i.png")]),
                ir.ToolResult("c2", [ir.Text("boom")], is_error=True),
                ir.Text("next"),
                ir.Image(data="QUJD", media_type="image/gif", detail="low"),
            ),
            assistant(ir.Thinking("", signature="sig", origin="anthropic-messages")),
            assistant(
                ir.Thinking("theirs", signature="sig", origin="anthropic-messages"), ir.ToolCall("c3", "g", '{"x":1}')
            ),
        ],
    )
    assert write(req)["messages"] == [
        {"role": "system", "content": "s1"},
        {"role": "system", "content": "s2"},
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": "ab",
            "reasoning_content": "mine",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "r"},
        {"role": "tool", "tool_call_id": "c2", "content": "Error: boom"},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "https://x/i.png"}},
                {"type": "text", "text": "next"},
                {"type": "image_url", "image_url": {"url": "data:image/gif;base64,QUJD", "detail": "low"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c3", "type": "function", "function": {"name": "g", "arguments": '{"x":1}'}}],
        },
    ]


REQ = ir.Request(model="c", messages=[user(ir.Text("hi"))])
WRITES: list[tuple[dict[str, Any], ir.RequestOptions, dict[str, Any]]] = [
    ({}, OPTS, {}),
    ({"stream": True}, OPTS, {"stream": True, "stream_options": {"include_usage": True}}),
    ({"max_tokens": 300}, OPTS, {"max_completion_tokens": 300}),
    ({"temperature": 0.3, "top_p": 0.8, "top_k": 5}, OPTS, {"temperature": 0.3, "top_p": 0.8}),
    (
        {"temperature": 0.3, "top_p": 0.8, "max_tokens": 9},
        ir.RequestOptions(drop_params=frozenset({"temperature", "top_p", "max_tokens"})),
        {},
    ),
    ({"stop": ["1", "2", "3", "4", "5"]}, OPTS, {"stop": ["1", "2", "3", "4"]}),
    ({"user": "u"}, OPTS, {"user": "u"}),
    ({"reasoning": ir.Reasoning(effort="xhigh")}, OPTS, {"reasoning_effort": "xhigh"}),
    ({"reasoning": ir.Reasoning(budget_tokens=5000)}, OPTS, {"reasoning_effort": effort_for(5000)}),
    ({"reasoning": ir.Reasoning(budget_tokens=20000)}, OPTS, {"reasoning_effort": "high"}),
    ({"reasoning": ir.Reasoning(enabled=False)}, OPTS, {"reasoning_effort": "none"}),
    ({"reasoning": ir.Reasoning()}, OPTS, {}),
    ({"tool_choice": ir.ToolChoice("required"), "parallel_tool_calls": True}, OPTS, {}),  # no tools: both left out
    (
        {
            "tools": [ir.Tool("f", "d", {"type": "object"}, False)],
            "tool_choice": ir.ToolChoice("tool", "f"),
            "parallel_tool_calls": False,
        },
        OPTS,
        {
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "f", "description": "d", "parameters": {"type": "object"}, "strict": False},
                }
            ],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "parallel_tool_calls": False,
        },
    ),
    (
        {"tools": [ir.Tool("f")], "tool_choice": ir.ToolChoice("none")},
        OPTS,
        {"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "none"},
    ),
]


@pytest.mark.parametrize(("changes", "opts", "expected"), WRITES)
def test_write_request_fields(changes: dict[str, Any], opts: ir.RequestOptions, expected: dict[str, Any]) -> None:
    """Each IR field lands in its chat field (and nothing else appears)."""
    req = ir.Request(**{"model": "c", "messages": [user(ir.Text("hi"))], **changes})
    out = write(req, opts)
    assert {k: v for k, v in out.items() if k != "messages"} == {"model": "up-model", "stream": False, **expected}


def test_request_round_trip() -> None:
    """A request chat can express reads back to the same IR after writing."""
    req = ir.Request(
        model="up-model",
        system=["be brief"],
        messages=[
            user(
                ir.Text("hi"),
                ir.Image(url="https://x/a.png", detail="auto"),
                ir.Image(data="QUJD", media_type="image/png"),
            ),
            assistant(
                ir.Thinking("t", origin="openai-chat"),
                ir.Text("calling"),
                ir.ToolCall("c1", "f", '{"q":"x"}'),
                ir.ToolCall("c2", "f", "{}"),
            ),
            user(ir.ToolResult("c1", [ir.Text("one")]), ir.ToolResult("c2", [ir.Text("two")]), ir.Text("go on")),
            assistant(ir.Text("done")),
        ],
        tools=[ir.Tool("f", "find", {"type": "object", "properties": {"q": {"type": "string"}}})],
        tool_choice=ir.ToolChoice("auto"),
        parallel_tool_calls=True,
        max_tokens=256,
        temperature=0.7,
        top_p=0.9,
        stop=["STOP"],
        stream=True,
        reasoning=ir.Reasoning(effort="low"),
        user="u-1",
    )
    assert chat.read_request(write(req)) == req


# ---------------------------------------------------------------- answers

USAGE = {
    "prompt_tokens": 100,
    "completion_tokens": 40,
    "total_tokens": 140,
    "prompt_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 10},
    "completion_tokens_details": {"reasoning_tokens": 12},
}


def completion(message: dict[str, Any], finish: str = "stop", **extra: Any) -> dict[str, Any]:
    choice = {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish, "logprobs": None}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1764000000,
        "model": "gpt-x",
        "choices": [choice],
        **extra,
    }


ANSWERS: list[tuple[dict[str, Any], list[ir.Text | ir.Thinking | ir.ToolCall]]] = [
    (completion({"content": "hello"}), [ir.Text("hello")]),
    (
        completion({"content": "a", "reasoning_content": "why"}),
        [ir.Thinking("why", origin="openai-chat"), ir.Text("a")],
    ),
    (completion({"content": "a", "reasoning": "why"}), [ir.Thinking("why", origin="openai-chat"), ir.Text("a")]),
    (completion({"content": None, "refusal": "I can't"}), [ir.Text("I can't")]),
    (
        completion(
            {
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}},
                    {"id": "c2", "type": "custom", "custom": {"name": "x", "input": "y"}},
                ],
            },
            "tool_calls",
        ),
        [ir.ToolCall("c1", "f", '{"a":1}')],
    ),
    ({"choices": []}, []),
    ({"choices": [{"message": None}]}, []),
    ({"choices": [{"message": {"tool_calls": 5, "content": 7}}]}, []),
    (
        {"choices": [{"message": {"tool_calls": [{"function": {"name": "f", "arguments": None}}]}}]},
        [ir.ToolCall("call_0", "f", "{}")],
    ),
]


@pytest.mark.parametrize(("answer", "parts"), ANSWERS)
def test_read_answer_parts(answer: dict[str, Any], parts: list[Any]) -> None:
    """choices[0].message reads into Thinking, Text and ToolCall parts; odd shapes read as empty."""
    assert chat.read_answer(answer).parts == parts


@pytest.mark.parametrize(
    ("finish", "stop"),
    [
        ("stop", "end"),
        ("length", "length"),
        ("tool_calls", "tool_use"),
        ("function_call", "tool_use"),
        ("content_filter", "content_filter"),
        (None, "end"),
    ],
)
def test_read_answer_finish_reason(finish: str | None, stop: str) -> None:
    """finish_reason maps to the IR stop reason."""
    assert chat.read_answer(completion({"content": "x"}, finish)).stop == stop  # type: ignore[arg-type]


def test_read_answer_ids_and_usage() -> None:
    """id, model, created and usage (prompt_tokens includes cache reads and writes) are read."""
    ans = chat.read_answer(completion({"content": "x"}, usage=USAGE))
    assert (ans.id, ans.model, ans.created) == ("chatcmpl-1", "gpt-x", 1764000000)
    assert ans.usage == Usage(
        input_tokens=60, cached_tokens=30, cache_write_tokens=10, output_tokens=40, reasoning_tokens=12
    )
    assert chat.read_answer([]).parts == []  # type: ignore[arg-type]
    bare = chat.read_answer({"choices": []})
    assert bare.id.startswith("chatcmpl-") and bare.created is None and bare.usage is None


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end", "stop"),
        ("stop_sequence", "stop"),
        ("length", "length"),
        ("tool_use", "tool_calls"),
        ("content_filter", "content_filter"),
        ("refusal", "content_filter"),
        ("pause", "length"),
    ],
)
def test_write_answer_finish_reason(stop: ir.Stop, finish: str) -> None:
    """Every IR stop reason has a chat finish_reason."""
    out = chat.write_answer(ir.Answer("msg_1", "m", [ir.Text("x")], stop=stop), "client-model")
    assert ChatCompletion.model_validate(out).choices[0].finish_reason == finish


def test_write_answer_shape() -> None:
    """The answer validates as the SDK's ChatCompletion: content None with only tool calls,
    reasoning_content from thinking, usage with prompt_tokens = input + cache reads + writes."""
    usage = Usage(input_tokens=60, cached_tokens=30, cache_write_tokens=10, output_tokens=40, reasoning_tokens=12)
    ans = ir.Answer(
        "msg_1",
        "upstream",
        [ir.Thinking("hm", signature="s"), ir.ToolCall("c1", "f", '{"a":1}')],
        "tool_use",
        usage=usage,
    )
    out = chat.write_answer(ans, "client-model")
    cc = ChatCompletion.model_validate(out)
    assert (cc.id, cc.object, cc.model) == ("msg_1", "chat.completion", "client-model")
    assert isinstance(cc.created, int) and cc.created > 1_700_000_000
    msg = cc.choices[0].message
    assert msg.content is None and msg.model_extra == {"reasoning_content": "hm"}
    assert msg.tool_calls is not None and msg.tool_calls[0].model_dump() == {
        "id": "c1",
        "type": "function",
        "function": {"name": "f", "arguments": '{"a":1}'},
    }
    assert out["usage"] == USAGE
    plain = chat.write_answer(ir.Answer("x", "m", [ir.Text("a"), ir.Text("b")], created=5), "m")
    assert plain["created"] == 5 and plain["choices"][0]["message"]["content"] == "ab" and "usage" not in plain
    empty = ChatCompletion.model_validate(chat.write_answer(ir.Answer("x", "m", []), "m"))
    assert empty.choices[0].message.content == ""


def test_answer_round_trip() -> None:
    """read_answer(write_answer(a)) == a for an answer chat can express."""
    usage = Usage(input_tokens=5, cached_tokens=2, output_tokens=9, reasoning_tokens=4)
    parts: list[ir.Text | ir.Thinking | ir.ToolCall] = [
        ir.Thinking("t", origin="openai-chat"),
        ir.Text("x"),
        ir.ToolCall("c", "f", "{}"),
    ]
    ans = ir.Answer("chatcmpl-9", "m", parts, "tool_use", usage=usage, created=1764000000)
    assert chat.read_answer(chat.write_answer(ans, "m")) == ans


# ---------------------------------------------------------------- errors

ERRORS: list[tuple[bytes, ir.Error]] = [
    (
        b'{"error":{"message":"slow down","type":"requests","param":null,"code":"rate_limit_exceeded"}}',
        ir.Error("slow down", "rate_limit_error", "rate_limit_exceeded"),
    ),
    (b'{"error":{"message":"boom","type":"server_error","param":null,"code":null}}', ir.Error("boom", "api_error")),
    (
        b'{"error":{"message":"bad","type":"invalid_request_error","param":"messages","code":"invalid_value"}}',
        ir.Error("bad", "invalid_request_error", "invalid_value"),
    ),
    (
        b'{"error":{"message":"no model","type":"invalid_request_error","code":"model_not_found"}}',
        ir.Error("no model", "not_found_error", "model_not_found"),
    ),
    (
        b'{"error":{"message":"key","type":"invalid_request_error","code":"invalid_api_key"}}',
        ir.Error("key", "authentication_error", "invalid_api_key"),
    ),
    (
        b'{"error":{"message":"quota","type":"insufficient_quota","code":"insufficient_quota"}}',
        ir.Error("quota", "rate_limit_error", "insufficient_quota"),
    ),
    (b'{"error":{"message":"busy","code":503,"status":"UNAVAILABLE"}}', ir.Error("busy", "overloaded_error", "503")),
    (b'{"error":{"message":"busy","type":"overloaded_error"}}', ir.Error("busy", "overloaded_error")),
    (b'{"error":{"message":"who","type":"permission_error"}}', ir.Error("who", "permission_error")),
    (b'{"error":"plain text"}', ir.Error("plain text")),
    (b'{"message":"top level","type":"rate_limit_error"}', ir.Error("top level", "rate_limit_error")),
    (b'{"error":{"type":"weird","code":true}}', ir.Error("upstream error")),
    (b'{"error":[1]}', ir.Error("upstream error")),
    (b"<html>502 Bad Gateway</html>", ir.Error("<html>502 Bad Gateway</html>")),
    (b"[1, 2]", ir.Error("[1, 2]")),
    (b"", ir.Error("upstream error")),
    (b"\xff\xfe", ir.Error("\ufffd\ufffd")),
]


@pytest.mark.parametrize(("raw", "expected"), ERRORS)
def test_read_error(raw: bytes, expected: ir.Error) -> None:
    """Error bodies (JSON or not) read into message, Anthropic-style kind and code; never raises."""
    assert chat.read_error(raw) == expected


def test_read_error_cuts_long_pages() -> None:
    """A long non-JSON error page is cut, not carried whole into the client's error."""
    assert len(chat.read_error(b"x" * 5000).message) == 1000
