"""Tests for router.server.parse.parse_request: pure checks of client request bodies per format."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from router.config import Format
from router.errors import BadRequest
from router.formats import wire
from router.server.parse import parse_request

CHAT: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
ANTHROPIC: dict[str, Any] = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
RESPONSES: dict[str, Any] = {"model": "m", "input": "hi"}
BODIES: dict[Format, dict[str, Any]] = {
    "openai-chat": CHAT,
    "anthropic-messages": ANTHROPIC,
    "openai-responses": RESPONSES,
}


def _parse(fmt: Format, body: Any) -> Any:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return parse_request(wire(fmt), raw, {"user-agent": "t"}, "rid")


def _bad(fmt: Format, body: Any) -> BadRequest:
    with pytest.raises(BadRequest) as info:
        _parse(fmt, body)
    assert info.value.status == 400 and info.value.code == "invalid_request"
    return info.value


@pytest.mark.parametrize("fmt", list(BODIES))
def test_valid_minimal_bodies(fmt: Format) -> None:
    """The minimal valid body of each format parses into a ClientRequest carrying everything."""
    req = parse_request(wire(fmt), orjson.dumps(BODIES[fmt]), {"user-agent": "t"}, "rid-7")
    assert (req.fmt.name, req.model, req.stream, req.request_id) == (fmt, "m", False, "rid-7")
    assert req.body == BODIES[fmt]
    assert req.headers == {"user-agent": "t"} and type(req.headers) is dict


@pytest.mark.parametrize("stream", [True, False, None])
def test_stream_flag(stream: bool | None) -> None:
    """stream true/false is kept; an explicit null means false."""
    assert _parse("openai-chat", {**CHAT, "stream": stream}).stream is bool(stream)


@pytest.mark.parametrize("raw", [b"", b"   \n\t", b"\n"])
def test_empty_body(raw: bytes) -> None:
    """An empty or blank body asks for a JSON object."""
    assert _bad("openai-chat", raw).message == "the request body is empty; expected a JSON object"


@pytest.mark.parametrize("raw", [b"{", b"{'model': 'm'}", b"\xff\xfe", b'{"model": "m",}'])
def test_invalid_json(raw: bytes) -> None:
    """Malformed JSON (or bytes that are not UTF-8) is a 400 naming the problem."""
    assert _bad("openai-chat", raw).message.startswith("the request body is not valid JSON: ")


@pytest.mark.parametrize(
    ("body", "kind"), [([CHAT], "an array"), ("m", "a string"), (3, "a number"), (None, "null"), (True, "a boolean")]
)
def test_body_must_be_an_object(body: Any, kind: str) -> None:
    """A JSON value other than an object is refused, naming what it was."""
    err = _bad("openai-chat", body)
    assert err.message == f"the request body must be a JSON object, not {kind}"
    assert err.param is None


@pytest.mark.parametrize("body", [{"messages": []}, {"model": None, "messages": []}])
def test_missing_model(body: dict[str, Any]) -> None:
    """No model (or a null one) is a missing required field with param=model."""
    err = _bad("openai-chat", body)
    assert err.message == "missing required field 'model'" and err.param == "model"


@pytest.mark.parametrize(
    ("model", "kind"), [(5, "a number"), (["m"], "an array"), ({}, "an object"), (True, "a boolean")]
)
def test_model_must_be_a_string(model: Any, kind: str) -> None:
    """A non-string model is refused with param=model, naming what it was."""
    err = _bad("openai-chat", {**CHAT, "model": model})
    assert err.param == "model"
    assert err.message == f"'model' must be a string, not {kind}"


def test_model_must_not_be_empty() -> None:
    """An empty model string is refused with param=model."""
    err = _bad("openai-chat", {**CHAT, "model": ""})
    assert err.param == "model" and err.message == "'model' must not be empty"


@pytest.mark.parametrize(
    ("stream", "kind"), [("true", "a string"), (1, "a number"), (0, "a number"), ({}, "an object")]
)
def test_stream_must_be_boolean(stream: Any, kind: str) -> None:
    """stream as a string or number is refused rather than coerced."""
    err = _bad("openai-chat", {**CHAT, "stream": stream})
    assert err.param == "stream" and err.message == f"'stream' must be a boolean, not {kind}"


@pytest.mark.parametrize("fmt", ["openai-chat", "anthropic-messages"])
def test_messages_required_for_chat_and_anthropic(fmt: Format) -> None:
    """openai-chat and anthropic-messages require messages; null counts as missing."""
    body = {k: v for k, v in BODIES[fmt].items() if k != "messages"}
    assert _bad(fmt, body).param == "messages"
    assert _bad(fmt, {**body, "messages": None}).message == "missing required field 'messages'"


def test_responses_input_is_optional() -> None:
    """openai-responses needs no input (previous_response_id or a stored prompt may stand in)."""
    assert _parse("openai-responses", {"model": "m"}).model == "m"


@pytest.mark.parametrize(
    ("fmt", "field", "value", "message"),
    [
        ("openai-chat", "messages", {"role": "user"}, "'messages' must be an array, not an object"),
        ("openai-chat", "max_tokens", "64", "'max_tokens' must be an integer, not a string"),
        ("openai-chat", "max_tokens", 6.5, "'max_tokens' must be an integer, not a number"),
        ("openai-chat", "max_tokens", True, "'max_tokens' must be an integer, not a boolean"),
        ("openai-chat", "max_completion_tokens", "1", "'max_completion_tokens' must be an integer, not a string"),
        ("openai-chat", "tools", {}, "'tools' must be an array, not an object"),
        ("anthropic-messages", "max_tokens", [1], "'max_tokens' must be an integer, not an array"),
        ("anthropic-messages", "system", 3, "'system' must be a string or an array, not a number"),
        ("anthropic-messages", "system", False, "'system' must be a string or an array, not a boolean"),
        ("anthropic-messages", "tools", "x", "'tools' must be an array, not a string"),
        ("openai-responses", "input", {"x": 1}, "'input' must be a string or an array, not an object"),
        ("openai-responses", "instructions", ["x"], "'instructions' must be a string, not an array"),
        ("openai-responses", "max_output_tokens", "9", "'max_output_tokens' must be an integer, not a string"),
        ("openai-responses", "tools", 1, "'tools' must be an array, not a number"),
    ],
)
def test_field_types_per_format(fmt: Format, field: str, value: Any, message: str) -> None:
    """Each format's core fields are type-checked (booleans never pass for integers) with param set."""
    err = _bad(fmt, {**BODIES[fmt], field: value})
    assert err.message == message and err.param == field


@pytest.mark.parametrize(
    ("fmt", "extra"),
    [
        ("anthropic-messages", {"system": "be brief"}),
        ("anthropic-messages", {"system": [{"type": "text", "text": "be brief"}]}),
        ("openai-responses", {"input": [{"role": "user", "content": "hi"}], "instructions": "x"}),
        ("openai-chat", {"max_tokens": None, "tools": None, "temperature": 0.2, "unknown_field": {"a": 1}}),
    ],
)
def test_accepted_variants(fmt: Format, extra: dict[str, Any]) -> None:
    """Alternative types, null optional fields and unknown fields pass through untouched."""
    req = _parse(fmt, {**BODIES[fmt], **extra})
    assert req.body == {**BODIES[fmt], **extra}


def test_fields_of_another_format_are_not_checked() -> None:
    """A field that only another format defines is not checked against that format's type."""
    assert _parse("openai-chat", {**CHAT, "system": 3, "input": 5}).model == "m"


@pytest.mark.parametrize("depth", [64, 65, 254, 1000])
def test_nesting_is_limited_at_parse_time(depth: int) -> None:
    """JSON nested deeper than 64 levels is a 400 naming the limit; 64 levels parse."""
    inner = "[" * (depth - 2) + "]" * (depth - 2)  # the body object and the messages array are two levels
    raw = b'{"model": "m", "messages": [' + inner.encode() + b"]}"
    if depth <= 64:
        assert parse_request(wire("openai-chat"), raw, {}, "rid").model == "m"
    else:
        with pytest.raises(BadRequest, match="deeper than 64 levels"):
            parse_request(wire("openai-chat"), raw, {}, "rid")


def test_many_shallow_containers_are_fine() -> None:
    """A long conversation has hundreds of brackets but little depth: it parses."""
    body = {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}] * 300}
    assert len(parse_request(wire("openai-chat"), orjson.dumps(body), {}, "rid").body["messages"]) == 300
