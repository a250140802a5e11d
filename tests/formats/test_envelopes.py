"""Error envelopes and stream error endings, per client format."""

from __future__ import annotations

import orjson

from router.formats import CHAT, MESSAGES, RESPONSES
from router.formats.sse import SSEParser


def test_openai_envelope_has_message_type_code_param() -> None:
    """Chat and Responses clients get OpenAI's error object."""
    for fmt in (CHAT, RESPONSES):
        body = orjson.loads(fmt.error_body(404, "no such model", "model_not_found", "model"))
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
    body = orjson.loads(MESSAGES.error_body(503, "all down", "no_route_available"))
    assert body == {"type": "error", "error": {"type": "overloaded_error", "message": "all down"}}
    assert orjson.loads(MESSAGES.error_body(404, "x", "c"))["error"]["type"] == "not_found_error"


def test_chat_stream_error_is_a_data_line_with_error_key() -> None:
    """The OpenAI SDK raises on a data line whose JSON has a truthy `error`."""
    (ev,) = SSEParser().feed(CHAT.stream_state(0).error_tail("cut", after_error=False))
    assert ev.event is None and orjson.loads(ev.data)["error"]["message"] == "cut"
    assert CHAT.stream_state(0).error_tail("cut", after_error=True) == b""


def test_anthropic_stream_error_is_a_named_error_event() -> None:
    """Anthropic's SDK routes `event: error` to an exception."""
    (ev,) = SSEParser().feed(MESSAGES.stream_state(0).error_tail("cut", after_error=False))
    assert ev.event == "error" and orjson.loads(ev.data)["error"]["type"] == "api_error"
    assert MESSAGES.stream_state(0).error_tail("cut", after_error=True) == b""


def test_responses_stream_error_then_response_failed_with_stream_id() -> None:
    """Responses gets `error`, then `response.failed` carrying the stream's own response id and
    the sequence number after the last one seen; after the upstream's own `error`, only the latter."""
    state = RESPONSES.stream_state(0)
    state.feed({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_1"}})
    state.feed({"type": "response.output_text.delta", "sequence_number": 7, "delta": "Hi"})
    events = SSEParser().feed(state.error_tail("cut", after_error=False))
    assert [e.event for e in events] == ["error", "response.failed"]
    failed = orjson.loads(events[1].data)
    assert failed["response"]["id"] == "resp_1" and failed["sequence_number"] == 9
    assert orjson.loads(events[0].data)["sequence_number"] == 8
    only = SSEParser().feed(RESPONSES.stream_state(0).error_tail("cut", after_error=True))
    assert [e.event for e in only] == ["response.failed"]
    assert orjson.loads(only[0].data)["response"]["id"] == "resp_router_error"
