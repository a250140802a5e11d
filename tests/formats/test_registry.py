"""The format registry: names, API paths, the nearest spoken format, and the client headers each
API forwards."""

from __future__ import annotations

import pytest

from router.config.schema import NEVER_FORWARDED
from router.formats import (
    ALL,
    CHAT,
    MESSAGES,
    RESPONSES,
    WireFormat,
    for_path,
    upstream_format,
    wire,
)


def test_each_format_is_one_object_found_by_its_config_name() -> None:
    """`wire(name)` returns the one shared object; an unknown name is a KeyError."""
    assert [f.name for f in ALL] == ["openai-chat", "anthropic-messages", "openai-responses"]
    assert all(wire(f.name) is f and isinstance(f, WireFormat) for f in ALL)
    with pytest.raises(KeyError):
        wire("gemini")


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        ("/v1/chat/completions", CHAT),
        ("/v1/messages", MESSAGES),
        ("/v1/messages/count_tokens", MESSAGES),
        ("/v1/responses", RESPONSES),
        ("/v1/nothing", CHAT),
        ("/", CHAT),
    ],
)
def test_the_envelope_of_a_path(path: str, fmt: WireFormat) -> None:
    """An answer on a path uses its API's envelope; anything else gets the OpenAI one."""
    assert for_path(path) is fmt


@pytest.mark.parametrize(
    ("client", "spoken", "expected"),
    [
        (CHAT, ("openai-chat", "anthropic-messages"), CHAT),
        (CHAT, ("anthropic-messages", "openai-responses"), RESPONSES),
        (CHAT, ("anthropic-messages",), MESSAGES),
        (RESPONSES, ("anthropic-messages", "openai-chat"), CHAT),
        (MESSAGES, ("openai-responses", "openai-chat"), CHAT),
        (MESSAGES, ("openai-responses",), RESPONSES),
        (MESSAGES, (), None),
    ],
)
def test_upstream_format_prefers_the_clients_own_then_the_nearest(client, spoken, expected) -> None:
    """The client's format when the provider speaks it, else the nearest it does speak."""
    assert upstream_format(client, spoken) is expected


def test_each_format_forwards_only_its_own_apis_headers() -> None:
    """The client headers each API defines as changing the answer, and nothing that picks who
    pays or carries a credential."""
    assert MESSAGES.forward_headers == {"anthropic-version", "anthropic-beta"}
    assert CHAT.forward_headers == RESPONSES.forward_headers == {"openai-beta"}
    for fmt in ALL:
        assert not fmt.forward_headers & NEVER_FORWARDED, fmt


def test_terminators_and_final_events() -> None:
    """Chat ends with `[DONE]` after its final chunk; the other two end at their final event."""
    assert CHAT.terminator == b"data: [DONE]\n\n" and not CHAT.ends_at_final
    assert CHAT.load_terminator(b"[DONE]") and not CHAT.load_terminator(b'{"x":1}')
    assert MESSAGES.terminator == b"" and MESSAGES.ends_at_final and not MESSAGES.load_terminator(b"[DONE]")
    assert RESPONSES.ends_at_final
    assert RESPONSES.error_is_final({"type": "response.failed"}) and not RESPONSES.error_is_final({"type": "error"})
    assert CHAT.error_is_final({"error": {}}) and MESSAGES.error_is_final({"type": "error"})


def test_credentials_go_where_each_format_expects_them() -> None:
    """OpenAI formats: a Bearer token; Anthropic: x-api-key and a version unless the client sent one."""
    for fmt in (CHAT, RESPONSES):
        h: dict[str, str] = {}
        fmt.auth_headers("sk-1", h, anthropic_version="2023-06-01")
        assert h == {"authorization": "Bearer sk-1"}
    h = {"anthropic-version": "2024-01-01"}
    MESSAGES.auth_headers("sk-2", h, anthropic_version="2023-06-01")
    assert h == {"anthropic-version": "2024-01-01", "x-api-key": "sk-2"}
    h = {}
    MESSAGES.auth_headers(None, h, anthropic_version="2023-06-01")
    assert h == {"anthropic-version": "2023-06-01"}


def test_prepare_rewrites_the_model_drops_params_and_asks_chat_for_usage() -> None:
    """Same-format bodies: model rewritten, dropped params gone, the client's dict untouched; a chat
    stream that did not ask for usage gets include_usage, and the usage chunk is hidden."""
    body = {"model": "public", "messages": [], "temperature": 0.2, "stream": True}
    p = CHAT.prepare(body, "upstream-id", frozenset({"temperature"}), stream=True)
    assert p.body == {"model": "upstream-id", "messages": [], "stream": True, "stream_options": {"include_usage": True}}
    assert p.hide_usage and body["model"] == "public" and "temperature" in body
    asked = {**body, "stream_options": {"include_usage": True}}
    assert not CHAT.prepare(asked, "u", frozenset(), stream=True).hide_usage
    assert not CHAT.prepare(body, "u", frozenset(), stream=False).hide_usage
    m = MESSAGES.prepare({"model": "x", "top_k": 3, "messages": []}, "y", frozenset({"top_k"}), stream=False)
    assert m.body == {"model": "y", "messages": []} and not m.hide_usage
