"""Where each stream event stands (`WireFormat.event_kind`): opening, content, final, trailer or
error, per format; odd shapes never raise."""

from __future__ import annotations

import pytest

from router.formats import EventKind, wire

CHAT_KINDS = [
    ({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}, EventKind.PRELUDE),
    ({"choices": [{"index": 0, "delta": {"content": "Hi"}}]}, EventKind.CONTENT),
    ({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0}]}}]}, EventKind.CONTENT),
    ({"choices": [{"index": 0, "delta": {"reasoning_content": "hm"}}]}, EventKind.CONTENT),
    ({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}, EventKind.FINAL),
    ({"choices": [], "usage": {"prompt_tokens": 1}}, EventKind.TRAILER),
    ({"error": {"message": "boom"}}, EventKind.ERROR),
]
ANTHROPIC_KINDS = [
    ({"type": "message_start", "message": {}}, EventKind.PRELUDE),
    ({"type": "ping"}, EventKind.PRELUDE),
    ({"type": "content_block_start", "content_block": {"type": "text", "text": ""}}, EventKind.PRELUDE),
    ({"type": "content_block_start", "content_block": {"type": "tool_use", "name": "f"}}, EventKind.CONTENT),
    ({"type": "content_block_delta", "delta": {"type": "text_delta", "text": "x"}}, EventKind.CONTENT),
    ({"type": "message_delta", "delta": {"stop_reason": "end_turn"}}, EventKind.TRAILER),
    ({"type": "message_stop"}, EventKind.FINAL),
    ({"type": "error", "error": {"type": "overloaded_error"}}, EventKind.ERROR),
]
RESPONSES_KINDS = [
    ({"type": "response.created", "response": {}}, EventKind.PRELUDE),
    ({"type": "response.in_progress", "response": {}}, EventKind.PRELUDE),
    ({"type": "response.output_item.added", "item": {"type": "message", "content": []}}, EventKind.PRELUDE),
    ({"type": "response.content_part.added", "part": {"type": "output_text", "text": ""}}, EventKind.PRELUDE),
    ({"type": "response.output_item.added", "item": {"type": "function_call"}}, EventKind.CONTENT),
    ({"type": "response.output_text.delta", "delta": "x"}, EventKind.CONTENT),
    ({"type": "response.output_text.done", "text": "x"}, EventKind.TRAILER),
    ({"type": "response.completed", "response": {}}, EventKind.FINAL),
    ({"type": "response.incomplete", "response": {}}, EventKind.FINAL),
    ({"type": "response.failed", "response": {}}, EventKind.ERROR),
    ({"type": "error", "message": "x"}, EventKind.ERROR),
]


@pytest.mark.parametrize(
    ("fmt", "obj", "kind"),
    [("openai-chat", o, k) for o, k in CHAT_KINDS]
    + [("anthropic-messages", o, k) for o, k in ANTHROPIC_KINDS]
    + [("openai-responses", o, k) for o, k in RESPONSES_KINDS],
)
def test_event_kind(fmt, obj, kind):
    """Each format's events sort into opening, content, final, trailer and error."""
    assert wire(fmt).event_kind(obj) is kind


MALFORMED_KINDS = [
    ("openai-chat", [1, 2], EventKind.TRAILER),
    ("openai-chat", "text", EventKind.TRAILER),
    ("openai-chat", {"choices": ["junk", {"index": 0, "delta": {"content": "Hi"}}]}, EventKind.CONTENT),
    ("openai-chat", {"choices": ["junk"]}, EventKind.PRELUDE),
    ("openai-chat", {"choices": [{"index": 0, "delta": "Hi"}]}, EventKind.PRELUDE),
    ("openai-chat", {"error": None, "choices": [{"index": 0, "delta": {"content": "Hi"}}]}, EventKind.CONTENT),
    ("anthropic-messages", {"no": "type"}, EventKind.TRAILER),
    ("anthropic-messages", {"type": 7}, EventKind.TRAILER),
    ("anthropic-messages", ["message_stop"], EventKind.TRAILER),
    ("anthropic-messages", {"type": "content_block_start", "content_block": "text"}, EventKind.CONTENT),
    (
        "anthropic-messages",
        {"type": "content_block_start", "content_block": {"type": "thinking", "thinking": ""}},
        EventKind.PRELUDE,
    ),
    (
        "anthropic-messages",
        {"type": "content_block_start", "content_block": {"type": "thinking", "thinking": "hm"}},
        EventKind.CONTENT,
    ),
    (
        "anthropic-messages",
        {"type": "content_block_start", "content_block": {"type": "text", "text": "Hi"}},
        EventKind.CONTENT,
    ),
    ("anthropic-messages", {"type": "some_future_event"}, EventKind.CONTENT),
    ("openai-responses", {"type": None}, EventKind.TRAILER),
    ("openai-responses", None, EventKind.TRAILER),
    (
        "openai-responses",
        {"type": "response.output_item.added", "item": {"type": "message", "content": [{"type": "output_text"}]}},
        EventKind.CONTENT,
    ),
    (
        "openai-responses",
        {"type": "response.content_part.added", "part": {"type": "output_text", "text": "Hi"}},
        EventKind.CONTENT,
    ),
    ("openai-responses", {"type": "response.output_item.added", "item": None}, EventKind.CONTENT),
    ("openai-responses", {"type": "response.function_call_arguments.done"}, EventKind.TRAILER),
]


@pytest.mark.parametrize(("fmt", "obj", "kind"), MALFORMED_KINDS)
def test_event_kind_of_odd_and_malformed_events(fmt, obj, kind):
    """Events of the wrong shape never raise: they sort as trailer/prelude, and unknown types as content."""
    assert wire(fmt).event_kind(obj) is kind
