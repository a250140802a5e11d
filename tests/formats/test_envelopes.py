"""Error envelopes and stream error events, per client format."""

from __future__ import annotations

import orjson

from router.formats.envelopes import error_body, stream_error
from router.formats.sse import SSEParser


def test_openai_envelope_has_message_type_code_param() -> None:
    """Chat and Responses clients get OpenAI's error object."""
    body = orjson.loads(error_body("openai-chat", 404, "no such model", "model_not_found", "model"))
    assert body == {
        "error": {
            "message": "no such model",
            "type": "invalid_request_error",
            "code": "model_not_found",
            "param": "model",
        }
    }


def test_anthropic_envelope_uses_its_error_types() -> None:
    """Anthropic clients get {type: error, error: {type, message}}."""
    body = orjson.loads(error_body("anthropic-messages", 503, "all down", "no_route_available"))
    assert body == {"type": "error", "error": {"type": "overloaded_error", "message": "all down"}}
    assert orjson.loads(error_body("anthropic-messages", 404, "x", "c"))["error"]["type"] == "not_found_error"


def test_chat_stream_error_is_a_data_line_with_error_key() -> None:
    """The OpenAI SDK raises on a data line whose JSON has a truthy `error`."""
    (ev,) = SSEParser().feed(stream_error("openai-chat", "cut"))
    assert ev.event is None and orjson.loads(ev.data)["error"]["message"] == "cut"


def test_anthropic_stream_error_is_a_named_error_event() -> None:
    """Anthropic's SDK routes `event: error` to an exception."""
    (ev,) = SSEParser().feed(stream_error("anthropic-messages", "cut"))
    assert ev.event == "error" and orjson.loads(ev.data)["error"]["type"] == "api_error"


def test_responses_stream_error_then_response_failed_with_stream_id() -> None:
    """Responses gets `error`, then `response.failed` carrying the stream's own response id."""
    events = SSEParser().feed(stream_error("openai-responses", "cut", response_id="resp_1", sequence_number=7))
    assert [e.event for e in events] == ["error", "response.failed"]
    failed = orjson.loads(events[1].data)
    assert failed["response"]["id"] == "resp_1" and failed["sequence_number"] == 8
    only = SSEParser().feed(stream_error("openai-responses", "cut", send_error_event=False))
    assert [e.event for e in only] == ["response.failed"]
