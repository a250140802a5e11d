"""Reading anthropic-messages requests into the IR (router/formats/codec/messages_read.py): every
carried field and block, what is dropped (and logged), and BadRequest for what cannot be read."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from router.config import Format
from router.errors import BadRequest
from router.formats.codec import ir
from router.formats.codec.messages import read_request

FMT: Format = "anthropic-messages"


def req(messages: list[dict[str, Any]] | None = None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "claude-x", "max_tokens": 1024}
    body["messages"] = messages if messages is not None else [{"role": "user", "content": "hi"}]
    body.update(fields)
    return body


def user(*parts: ir.Part) -> ir.Message:
    return ir.Message("user", list(parts))


def assistant(*parts: ir.Part) -> ir.Message:
    return ir.Message("assistant", list(parts))


def test_read_request_minimal() -> None:
    """A string content is one text part; scalar fields default to absent."""
    r = read_request(req())
    assert r == ir.Request(model="claude-x", messages=[user(ir.Text("hi"))], max_tokens=1024)


@pytest.mark.parametrize(
    ("system", "inline", "expected"),
    [
        ("Be brief.", None, ["Be brief."]),
        (
            [{"type": "text", "text": "A", "cache_control": {"type": "ephemeral"}}, {"type": "text", "text": "B"}],
            None,
            ["A", "B"],
        ),
        (None, "Inline.", ["Inline."]),
        ("Top.", [{"type": "text", "text": "Inline."}], ["Top.", "Inline."]),
        ("", None, []),
    ],
)
def test_read_system(system: Any, inline: Any, expected: list[str]) -> None:
    """Top-level system (string or text blocks) and system-role messages become ir system texts, in order."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "hi"}]
    if inline is not None:
        messages.insert(0, {"role": "system", "content": inline})
    r = read_request(req(messages, system=system))
    assert r.system == expected
    assert r.messages == [user(ir.Text("hi"))]


def test_read_content_blocks() -> None:
    """Every carried block type maps to its IR part."""
    messages: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look", "cache_control": {"type": "ephemeral"}},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
                {"type": "image", "source": {"type": "url", "url": "https://x/y.jpg"}},
                {"type": "image", "source": {"type": "url", "url": "data:image/gif;base64,R0lG"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig1"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "text", "text": "calling"},
                {"type": "tool_use", "id": "toolu_1", "name": "get", "input": {"city": "Paris", "n": 2}},
                {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "is_error": True,
                    "content": [
                        {"type": "text", "text": "boom"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/"}},
                    ],
                },
                {"type": "tool_result", "tool_use_id": "toolu_3"},
                {"type": "text", "text": "go on"},
            ],
        },
    ]
    r = read_request(req(messages))
    assert r.messages == [
        user(
            ir.Text("look"),
            ir.Image(data="iVBOR", media_type="image/png"),
            ir.Image(url="https://x/y.jpg"),
            ir.Image(data="R0lG", media_type="image/gif"),
        ),
        assistant(
            ir.Thinking(text="hmm", signature="sig1", origin=FMT),
            ir.Thinking(redacted="opaque", origin=FMT),
            ir.Text("calling"),
            ir.ToolCall("toolu_1", "get", '{"city":"Paris","n":2}'),
            ir.ToolCall("toolu_2", "now", "{}"),
        ),
        user(
            ir.ToolResult("toolu_1", [ir.Text("sunny")]),
            ir.ToolResult("toolu_2", [ir.Text("boom"), ir.Image(data="/9j/", media_type="image/jpeg")], is_error=True),
            ir.ToolResult("toolu_3", []),
            ir.Text("go on"),
        ),
    ]


def test_read_unsigned_thinking_has_no_signature() -> None:
    """An empty signature (another provider's reasoning we showed the client) reads as unsigned."""
    r = read_request(req([{"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": ""}]}]))
    assert r.messages[0].parts == [ir.Thinking(text="t", origin=FMT)]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"max_tokens": 50}, {"max_tokens": 50}),
        ({"temperature": 0.2, "top_p": 1, "top_k": 5}, {"temperature": 0.2, "top_p": 1.0, "top_k": 5}),
        ({"stop_sequences": ["END", "\n\n"]}, {"stop": ["END", "\n\n"]}),
        ({"stream": True}, {"stream": True}),
        ({"metadata": {"user_id": "u-1"}}, {"user": "u-1"}),
        ({"temperature": None, "tools": None, "metadata": None}, {}),
    ],
)
def test_read_scalars(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    """Sampling and bookkeeping fields land on their IR fields."""
    r = read_request(req(**fields))
    assert r == ir.Request(model="claude-x", messages=[user(ir.Text("hi"))], **{"max_tokens": 1024, **expected})


def test_read_tools() -> None:
    """Custom tools map; server tools are dropped (they run at Anthropic)."""
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    tools = [
        {"name": "search", "description": "Find", "input_schema": schema, "cache_control": {"type": "ephemeral"}},
        {"type": "custom", "name": "strict_one", "input_schema": {"type": "object"}, "strict": True},
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
    ]
    with capture_logs() as logs:
        r = read_request(req(tools=tools))
    assert r.tools == [
        ir.Tool("search", "Find", schema),
        ir.Tool("strict_one", None, {"type": "object"}, strict=True),
    ]
    assert logs == [
        {"event": "fields_dropped", "fmt": FMT, "fields": ["tools.web_search_20250305"], "log_level": "debug"}
    ]


@pytest.mark.parametrize(
    ("choice", "expected", "parallel"),
    [
        ({"type": "auto"}, ir.ToolChoice("auto"), None),
        ({"type": "any"}, ir.ToolChoice("required"), None),
        ({"type": "tool", "name": "get"}, ir.ToolChoice("tool", "get"), None),
        ({"type": "none"}, ir.ToolChoice("none"), None),
        ({"type": "auto", "disable_parallel_tool_use": True}, ir.ToolChoice("auto"), False),
        ({"type": "any", "disable_parallel_tool_use": False}, ir.ToolChoice("required"), None),
        ({"type": "tool", "name": "get", "disable_parallel_tool_use": True}, ir.ToolChoice("tool", "get"), False),
    ],
)
def test_read_tool_choice(choice: dict[str, Any], expected: ir.ToolChoice, parallel: bool | None) -> None:
    """tool_choice types map to IR modes; disable_parallel_tool_use to parallel_tool_calls False."""
    r = read_request(req(tool_choice=choice))
    assert (r.tool_choice, r.parallel_tool_calls) == (expected, parallel)


@pytest.mark.parametrize(
    ("thinking", "output_config", "expected"),
    [
        ({"type": "enabled", "budget_tokens": 1024}, None, ir.Reasoning(effort="minimal", budget_tokens=1024)),
        ({"type": "enabled", "budget_tokens": 10000}, None, ir.Reasoning(effort="medium", budget_tokens=10000)),
        ({"type": "enabled", "budget_tokens": 16384}, None, ir.Reasoning(effort="high", budget_tokens=16384)),
        ({"type": "enabled", "budget_tokens": 4000}, {"effort": "max"}, ir.Reasoning(effort="max", budget_tokens=4000)),
        ({"type": "adaptive"}, None, ir.Reasoning(effort="medium")),
        ({"type": "adaptive", "display": "summarized"}, {"effort": "xhigh"}, ir.Reasoning(effort="xhigh")),
        ({"type": "between_tools"}, {"effort": "low"}, ir.Reasoning(effort="low")),
        ({"type": "disabled"}, None, ir.Reasoning(enabled=False)),
        (None, {"effort": "high"}, ir.Reasoning(effort="high")),
        (None, None, None),
    ],
)
def test_read_thinking(thinking: Any, output_config: Any, expected: ir.Reasoning | None) -> None:
    """Both thinking forms (budget and adaptive + effort) read into ir Reasoning."""
    fields = {k: v for k, v in (("thinking", thinking), ("output_config", output_config)) if v is not None}
    assert read_request(req(**fields)).reasoning == expected


def test_read_dropped_fields_logged_once() -> None:
    """Unmappable fields produce one debug line listing them; cache_control is dropped silently."""
    body = req(
        [{"role": "user", "content": [{"type": "text", "text": "hi", "citations": [{"x": 1}]}]}],
        service_tier="auto",
        container="c1",
        cache_control={"type": "ephemeral"},
        output_config={"format": {"type": "json_schema", "schema": {}}},
        metadata={"user_id": "u", "extra": 1},
        thinking={"type": "adaptive", "display": "omitted"},
    )
    body["messages"].append(
        {"role": "assistant", "content": [{"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}]}
    )
    body["messages"].append({"role": "assistant", "content": [{"type": "web_search_tool_result", "tool_use_id": "s"}]})
    with capture_logs() as logs:
        r = read_request(body)
    assert r.messages[1:] == [assistant(), assistant()]
    assert logs == [
        {
            "event": "fields_dropped",
            "fmt": FMT,
            "log_level": "debug",
            "fields": sorted(
                [
                    "citations",
                    "container",
                    "content.server_tool_use",
                    "content.web_search_tool_result",
                    "metadata.extra",
                    "output_config.format",
                    "service_tier",
                    "thinking.display",
                ]
            ),
        }
    ]


def test_read_nothing_dropped_logs_nothing() -> None:
    """A request that maps fully logs nothing."""
    with capture_logs() as logs:
        read_request(req(system=[{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}]))
    assert logs == []


_BAD: list[tuple[Any, str | None]] = [
    ([], None),
    ({"messages": []}, "model"),
    (req(model=""), "model"),
    (req(messages=None) | {"messages": None}, "messages"),
    (req([["user", "hi"]]), "messages[0]"),  # type: ignore[list-item]
    (req([{"role": "tool", "content": "x"}]), "messages[0].role"),
    (req([{"role": "user", "content": 5}]), "messages[0].content"),
    (req([{"role": "user", "content": None}]), "messages[0].content"),
    (req([{"role": "user", "content": ["hi"]}]), "messages[0].content[0]"),
    (req([{"role": "user", "content": [{"type": "text", "text": 3}]}]), "messages[0].content[0].text"),
    (req([{"role": "user", "content": [{"type": "document", "source": {}}]}]), "messages[0].content[0].type"),
    (
        req([{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]),
        "messages[0].content[0].source.type",
    ),
    (req([{"role": "user", "content": [{"type": "image"}]}]), "messages[0].content[0].source"),
    (
        req([{"role": "user", "content": [{"type": "tool_use", "id": "a", "name": "b", "input": {}}]}]),
        "messages[0].content[0].type",
    ),
    (
        req([{"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "a"}]}]),
        "messages[0].content[0].type",
    ),
    (
        req([{"role": "assistant", "content": [{"type": "tool_use", "name": "b", "input": {}}]}]),
        "messages[0].content[0].id",
    ),
    (
        req([{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a", "content": 5}]}]),
        "messages[0].content[0].content",
    ),
    (
        req([{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a", "content": [{"type": "x"}]}]}]),
        "messages[0].content[0].content[0].type",
    ),
    (req([{"role": "assistant", "content": [{"type": "redacted_thinking"}]}]), "messages[0].content[0].data"),
    (
        req([{"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "b", "input": {"n": 2**70}}]}]),
        "messages[0].content[0].input",
    ),
    (req(system=5), "system"),
    (req(system=[{"type": "image"}]), "system[0].type"),
    (req(tools={"name": "x"}), "tools"),
    (req(tools=[{"name": "x"}]), "tools[0].input_schema"),
    (req(tools=[{"input_schema": {}}]), "tools[0].name"),
    (req(tools=[{"name": "x", "description": 1, "input_schema": {}}]), "tools[0].description"),
    (req(tool_choice="auto"), "tool_choice"),
    (req(tool_choice={"type": "sometimes"}), "tool_choice.type"),
    (req(tool_choice={"type": "tool"}), "tool_choice.name"),
    (req(thinking={"type": "enabled"}), "thinking.budget_tokens"),
    (req(thinking={"type": "enabled", "budget_tokens": "2k"}), "thinking.budget_tokens"),
    (req(thinking={"type": "on"}), "thinking.type"),
    (req(thinking=True), "thinking"),
    (req(output_config={"effort": "extreme"}), "output_config.effort"),
    (req(output_config=[]), "output_config"),
    (req(max_tokens="10"), "max_tokens"),
    (req(max_tokens=True), "max_tokens"),
    (req(temperature="hot"), "temperature"),
    (req(top_k=1.5), "top_k"),
    (req(stop_sequences="END"), "stop_sequences"),
    (req(stop_sequences=[1]), "stop_sequences[0]"),
    (req(stream="yes"), "stream"),
    (req(metadata={"user_id": 7}), "metadata.user_id"),
    (req(metadata="u"), "metadata"),
    # Values of an unexpected type anywhere: a 400 naming the path, never a crash.
    (req([{"role": "user", "content": [{"type": ["text"], "text": "x"}]}]), "messages[0].content[0].type"),
    (req([{"role": "user", "content": [{"type": {"a": 1}}]}]), "messages[0].content[0].type"),
    (req([{"role": ["user"], "content": "x"}]), "messages[0].role"),
    (
        req([{"role": "user", "content": [{"type": "image", "source": {"type": []}}]}]),
        "messages[0].content[0].source.type",
    ),
    (req([{"role": "user", "content": [{"type": "image", "source": "u"}]}]), "messages[0].content[0].source"),
    (
        req([{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a", "is_error": "yes"}]}]),
        "messages[0].content[0].is_error",
    ),
    (
        req([{"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": {}}]}]),
        "messages[0].content[0].signature",
    ),
    (
        req([{"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "b", "input": [1]}]}]),
        "messages[0].content[0].input",
    ),
    (req(output_config={"effort": ["low"]}), "output_config.effort"),
    (req(tools=[{"type": ["custom"], "name": "x", "input_schema": {}}]), "tools[0].type"),
    (req(tools=[{"name": "x", "input_schema": {}, "strict": "yes"}]), "tools[0].strict"),
    (req(tools=[{"name": "x", "input_schema": []}]), "tools[0].input_schema"),
    (req(tool_choice={"type": ["auto"]}), "tool_choice.type"),
    (req(tool_choice={"type": "auto", "disable_parallel_tool_use": "yes"}), "tool_choice.disable_parallel_tool_use"),
    (req(tool_choice=["auto"]), "tool_choice"),
    (req(thinking={"type": {}}), "thinking.type"),
    (req(system=[{"type": "text", "text": {}}]), "system[0].text"),
]


@pytest.mark.parametrize(("body", "param"), _BAD)
def test_read_request_rejects(body: Any, param: str | None) -> None:
    """Wrong types and uncarriable blocks are a BadRequest naming the field, never a crash."""
    with pytest.raises(BadRequest) as exc:
        read_request(body)
    assert exc.value.param == param
    assert exc.value.message
