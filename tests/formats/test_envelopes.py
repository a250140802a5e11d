"""Error envelopes and stream error endings, per client format."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from router.formats import CHAT, MESSAGES, RESPONSES
from router.formats.sse import SSEParser
from tests.formats.sdk_events import responses_events


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


CREATED = {
    "type": "response.created",
    "sequence_number": 0,
    "response": {"id": "resp_1", "object": "response", "created_at": 1764000000, "model": "gpt-up", "status": "queued"},
}
DELTA = {"type": "response.output_text.delta", "sequence_number": 7, "delta": "Hi"}
SLOW = {"type": "error", "sequence_number": 8, "code": "rate_limit_exceeded", "message": "slow down", "param": None}


def _failed(error: dict[str, Any], seq: int = 8) -> dict[str, Any]:
    return {"type": "response.failed", "sequence_number": seq, "response": {"id": "resp_1", "error": error}}


# (fed events, after_error) -> (event names written, response.failed's error). The router's
# reason is "cut"; the upstream's own message wins when it sent one.
TAILS: dict[str, tuple[list[dict[str, Any]], bool, list[str], dict[str, str]]] = {
    "router_cut": ([CREATED, DELTA], False, ["error", "response.failed"], {"code": "server_error", "message": "cut"}),
    "after_upstream_error": (
        [CREATED, DELTA, SLOW],
        True,
        ["response.failed"],
        {"code": "rate_limit_exceeded", "message": "slow down"},
    ),
    "upstream_code_outside_the_sdk_set": (
        [CREATED, DELTA, {**SLOW, "code": "context_length_exceeded", "message": "too long"}],
        True,
        ["response.failed"],
        {"code": "invalid_prompt", "message": "too long"},
    ),
    "upstream_error_without_code": (
        [CREATED, DELTA, {"type": "error", "sequence_number": 8, "message": "boom"}],
        True,
        ["response.failed"],
        {"code": "server_error", "message": "boom"},
    ),
    "upstream_error_without_message": (
        [CREATED, DELTA, {"type": "error", "sequence_number": 8, "code": "server_error"}],
        True,
        ["response.failed"],
        {"code": "server_error", "message": "cut"},
    ),
    "upstream_failed_error": (
        [CREATED, DELTA, _failed({"code": "server_error", "message": "upstream broke"})],
        True,
        ["response.failed"],
        {"code": "server_error", "message": "upstream broke"},
    ),
    "broke_after_upstream_error": (  # the router's error event says what it saw; the failure, why
        [CREATED, DELTA, SLOW],
        False,
        ["error", "response.failed"],
        {"code": "rate_limit_exceeded", "message": "slow down"},
    ),
}


@pytest.mark.parametrize(("fed", "after_error", "names", "error"), list(TAILS.values()), ids=list(TAILS))
def test_responses_error_tail(
    fed: list[dict[str, Any]], after_error: bool, names: list[str], error: dict[str, str]
) -> None:
    """Responses: `error` (unless the upstream's own was relayed), then `response.failed` carrying
    the stream's own id, created_at and model, the sequence numbers after the last one seen, and
    the upstream's own error when it sent one. Every event validates against the SDK's types."""
    state = RESPONSES.stream_state(0)
    for obj in fed:
        state.feed(obj)
    events = responses_events(state.error_tail("cut", after_error=after_error))
    assert [e["type"] for e in events] == names
    last_seen = max(obj["sequence_number"] for obj in fed)
    assert [e["sequence_number"] for e in events] == list(range(last_seen + 1, last_seen + 1 + len(events)))
    if not after_error:
        assert events[0]["message"] == "cut" and events[0]["code"] == "upstream_error"
    response = events[-1]["response"]
    assert response["error"] == error
    assert (response["id"], response["created_at"], response["model"]) == ("resp_1", 1764000000, "gpt-up")
    assert (response["status"], response["output"]) == ("failed", [])
    # Not known to the relay (they are the request's): valid defaults.
    assert (response["tools"], response["tool_choice"], response["parallel_tool_calls"]) == ([], "auto", True)


def test_responses_error_tail_of_a_stream_it_knows_nothing_of() -> None:
    """Before any response object (or fed nothing usable), the failure still validates: a
    placeholder id, the current time, an empty model name."""
    state = RESPONSES.stream_state(0)
    for obj in ("[DONE]", {"type": "response.created", "response": {"created_at": 5}}, {"type": 1}):
        state.feed(obj)
    before = int(time.time())
    (failed,) = responses_events(state.error_tail("cut", after_error=True))
    response = failed["response"]
    assert (response["id"], response["model"], failed["sequence_number"]) == ("resp_router_error", "", 1)
    assert before <= response["created_at"] <= time.time()
    assert response["error"] == {"code": "server_error", "message": "cut"}


def test_responses_state_keeps_the_first_response_it_names() -> None:
    """The id, created_at and model come from the first response object with an id; later ones
    (the terminal response's) do not replace them."""
    state = RESPONSES.stream_state(0)
    state.feed({"type": "response.in_progress", "response": {"id": "resp_1", "created_at": 1.5, "model": "a"}})
    state.feed({"type": "response.failed", "response": {"id": "resp_2", "created_at": 9, "model": "b"}})
    (failed,) = responses_events(state.error_tail("cut", after_error=True))
    response = failed["response"]
    assert (response["id"], response["created_at"], response["model"]) == ("resp_1", 1.5, "a")
