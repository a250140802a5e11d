"""Streams that survive their provider (over real sockets): a stream that breaks after content
reached the client is finished on another route, and the client sees one stream with the whole
answer exactly once, as the official SDKs' stream helpers read it."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

from tests.integration.test_streams import is_error, stream, text_of

TEXT = "The quick brown fox jumps over the lazy dog, and keeps running far away."
CHAT, MESSAGES, RESPONSES = "/v1/chat/completions", "/v1/messages", "/v1/responses"
FAULTS = [{"reset_after_chunks": 3}, {"truncate_after_chunks": 3}, {"error_after_chunks": 3}]


def setup(fakes, config_factory, router_server, fault: dict[str, Any], beta_formats: list[str] | None = None, **cfg):
    """alpha (tier 0) breaks mid-answer once; beta (tier 1) is healthy; both give the same text."""
    formats = {"beta": beta_formats} if beta_formats else None
    rs = router_server(config_factory({"m": [("alpha", 0), ("beta", 1)]}, formats=formats, **cfg))
    fakes.set("alpha", text=TEXT, chunks=8, **fault)
    fakes.set("beta", text=TEXT, chunks=8)
    return rs


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("path", [CHAT, MESSAGES])
@pytest.mark.parametrize("beta", [None, ["openai-responses"]], ids=["native", "translated"])
def test_a_broken_stream_is_finished_on_another_route(fakes, config_factory, router_server, path, fault, beta):
    """The client's stream carries the whole text once, one opening, one clean end, no error."""
    rs = setup(fakes, config_factory, router_server, fault, beta)
    r, events = stream(rs, path)
    assert r.status_code == 200 and r.headers["x-router-provider"] == "alpha"
    assert text_of(path, events) == TEXT
    assert not any(is_error(path, e) for e in events)
    names = [e[0] for e in events]
    if path == CHAT:
        assert events[-1] == (None, "[DONE]")
        assert len({e[1]["id"] for e in events if isinstance(e[1], dict)}) == 1, "one completion id"
        roles = [
            e for e in events if isinstance(e[1], dict) and e[1]["choices"] and "role" in e[1]["choices"][0]["delta"]
        ]
        assert len(roles) == 1
    else:
        assert names.count("message_start") == 1 and names.count("message_stop") == 1 and names[-1] == "message_stop"
        starts = [e[1]["index"] for e in events if e[0] == "content_block_start"]
        assert starts == [0], "the open text block continues; no second block"
    assert fakes.served("beta") == 1
    sent = fakes.last("beta", path if beta is None else RESPONSES)
    assert sent is not None


@pytest.mark.parametrize("fault", FAULTS)
def test_the_sdk_stream_helpers_get_the_whole_answer(fakes, config_factory, router_server, fault):
    """chat.completions.stream(...).get_final_completion() and messages.stream(...).get_final_message()
    return the whole answer, as if nothing had broken."""
    rs = setup(fakes, config_factory, router_server, fault)
    oai = openai.OpenAI(base_url=rs.url + "/v1", api_key="unused", max_retries=0)
    with oai, oai.chat.completions.stream(model="m", messages=[{"role": "user", "content": "hi"}]) as s:
        final = s.get_final_completion()
    assert final.choices[0].message.content == TEXT and final.choices[0].finish_reason == "stop"
    fakes.set("alpha", text=TEXT, chunks=8, **fault)
    ant = anthropic.Anthropic(base_url=rs.url, api_key="unused", max_retries=0)
    with ant, ant.messages.stream(model="m", max_tokens=200, messages=[{"role": "user", "content": "hi"}]) as m:
        message = m.get_final_message()
    assert [b.text for b in message.content if b.type == "text"] == [TEXT]
    assert message.stop_reason == "end_turn"


def test_the_continuation_asks_for_the_rest_with_a_prefill(fakes, config_factory, router_server):
    """The continuation request carries the delivered text as the last, assistant, message, its
    trailing whitespace cut, and no reasoning; its output cap is lowered by what was delivered."""
    # 8 reasoning deltas, then the text's: cut after 3 of the text
    rs = setup(fakes, config_factory, router_server, {"reset_after_chunks": 11})
    _, events = stream(rs, CHAT, max_tokens=500, reasoning_effort="low")
    assert text_of(CHAT, events) == TEXT
    sent = fakes.last("beta", CHAT)
    assert sent["messages"][-1]["role"] == "assistant"
    assert (
        TEXT.startswith(sent["messages"][-1]["content"])
        and sent["messages"][-1]["content"] == sent["messages"][-1]["content"].rstrip()
    )
    assert "reasoning_effort" not in sent and 0 < sent["max_tokens"] < 500


def test_off_switch_and_the_limit(fakes, config_factory, router_server):
    """routing.continue_streams false: the error ending as before; with the limit reached (both
    routes break), the stream ends with the error ending after the allowed continuations."""
    rs = setup(fakes, config_factory, router_server, {"reset_after_chunks": 3}, routing={"continue_streams": False})
    _, events = stream(rs, CHAT)
    assert is_error(CHAT, events[-1]) and fakes.served("beta") == 0


@pytest.mark.parametrize("path", [CHAT, MESSAGES])
def test_a_stall_past_idle_s_is_continued(fakes, config_factory, router_server, path):
    """A provider that goes silent mid-answer: after timeouts.idle_s the rest comes from beta."""
    rs = setup(fakes, config_factory, router_server, {"stall_after_chunks": 3}, timeouts={"idle_s": 0.3})
    r, events = stream(rs, path)
    assert r.status_code == 200 and text_of(path, events) == TEXT
    assert not any(is_error(path, e) for e in events)


def test_a_cut_inside_a_tool_call_is_not_continued(fakes, config_factory, router_server):
    """Arguments cut mid-call are never spliced: the clean error ending, as without continuation."""
    rs = setup(fakes, config_factory, router_server, {"reset_after_chunks": 9})
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
    _, events = stream(rs, CHAT, tools=tools)
    assert is_error(CHAT, events[-1]) and fakes.served("beta") == 0


def test_the_limit_ends_the_stream_cleanly(fakes, config_factory, router_server):
    """Every route breaks: after routing.max_continuations the error ending, never a spliced mess."""
    rs = setup(fakes, config_factory, router_server, {"reset_after_chunks": 3}, routing={"max_continuations": 1})
    fakes.set("beta", text=TEXT, chunks=8, reset_after_chunks=3)
    _, events = stream(rs, CHAT)
    assert is_error(CHAT, events[-1])
    assert TEXT.startswith(text_of(CHAT, events)) and fakes.served("beta") == 1
