"""Streams that survive their provider (over real sockets): a stream that breaks after content
reached the client is finished on another route, and the client sees one stream with the whole
answer exactly once, as the official SDKs' stream helpers read it."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import orjson
import pytest
from structlog.testing import capture_logs

from tests.integration.test_streams import is_error, stream, text_of

TEXT = "The quick brown fox jumps over the lazy dog, and keeps running far away."
CHAT, MESSAGES, RESPONSES = "/v1/chat/completions", "/v1/messages", "/v1/responses"
FAULTS = [{"reset_after_chunks": 3}, {"truncate_after_chunks": 3}, {"error_after_chunks": 3}]


def setup(
    fakes,
    config_factory,
    router_server,
    fault: dict[str, Any],
    beta_formats: list[str] | None = None,
    alpha_formats: list[str] | None = None,
    **cfg,
):
    """alpha (tier 0) breaks mid-answer once; beta (tier 1) is healthy; both give the same text."""
    formats = {k: v for k, v in (("alpha", alpha_formats), ("beta", beta_formats)) if v} or None
    rs = router_server(config_factory({"m": [("alpha", 0), ("beta", 1)]}, formats=formats, **cfg))
    fakes.set("alpha", text=TEXT, chunks=8, **fault)
    fakes.set("beta", text=TEXT, chunks=8)
    return rs


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("path", [CHAT, MESSAGES, RESPONSES])
@pytest.mark.parametrize(
    "beta", [None, ["openai-responses"], ["anthropic-messages"]], ids=["native", "to-resp", "to-anth"]
)
def test_a_broken_stream_is_finished_on_another_route(fakes, config_factory, router_server, path, fault, beta):
    """The client's stream carries the whole text once, one opening, one clean end, no error."""
    rs = setup(fakes, config_factory, router_server, fault, beta)
    r, events = stream(rs, path)
    assert r.status_code == 200 and r.headers["x-router-provider"] == "alpha"
    assert text_of(path, events) == TEXT
    assert not any(is_error(path, e) for e in events)
    names = [e[0] for e in events]
    if path == RESPONSES:
        assert names.count("response.created") == 1 and names[-1] == "response.completed"
        assert len({e[1]["response"]["id"] for e in events if e[0] in ("response.created", "response.completed")}) == 1
        seqs = [e[1]["sequence_number"] for e in events]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "contiguous sequence numbers"
    elif path == CHAT:
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
    upstream = {None: path, "openai-responses": RESPONSES, "anthropic-messages": MESSAGES}[beta[0] if beta else None]
    assert fakes.last("beta", upstream) is not None, "the continuation went to beta, in beta's format"


@pytest.mark.parametrize("fault", [*FAULTS, {"stall_after_chunks": 3}])
@pytest.mark.parametrize("beta", [None, ["openai-chat"]], ids=["native", "translated"])
def test_the_sdk_stream_helpers_get_the_whole_answer(fakes, config_factory, router_server, fault, beta):
    """chat.completions.stream(...).get_final_completion(), messages.stream(...).get_final_message()
    and responses.stream(...).get_final_response() return the whole answer, as if nothing had
    broken, whether the rest came in the client's format or translated."""
    rs = setup(fakes, config_factory, router_server, fault, beta, timeouts={"idle_s": 0.3})
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
    fakes.set("alpha", text=TEXT, chunks=8, **fault)
    oai = openai.OpenAI(base_url=rs.url + "/v1", api_key="unused", max_retries=0, _strict_response_validation=True)
    with oai, oai.responses.stream(model="m", input="hi") as rsp:
        response = rsp.get_final_response()
    assert response.output_text == TEXT and response.status == "completed"


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


@pytest.mark.parametrize("path", [CHAT, MESSAGES, RESPONSES])
def test_a_stall_past_idle_s_is_continued(fakes, config_factory, router_server, path):
    """A provider that goes silent mid-answer: after timeouts.idle_s the rest comes from beta."""
    rs = setup(fakes, config_factory, router_server, {"stall_after_chunks": 3}, timeouts={"idle_s": 0.3})
    r, events = stream(rs, path)
    assert r.status_code == 200 and text_of(path, events) == TEXT
    assert not any(is_error(path, e) for e in events)


TOOLS_CHAT: list[Any] = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
TOOLS_ANTHROPIC: list[Any] = [{"name": "weather", "input_schema": {"type": "object"}}]
TOOLS_RESPONSES: list[Any] = [{"type": "function", "name": "weather", "parameters": {"type": "object"}}]


@pytest.mark.parametrize("cut", [9, 10, 11], ids=["at-call", "mid-args", "args-nearly-done"])
def test_a_cut_inside_a_tool_call_is_restarted_and_matched(fakes, config_factory, router_server, cut):
    """A stream cut in a tool call's arguments (8 text pieces, then the call's 3 argument pieces):
    beta is asked the original request, its text and call are matched against what the client
    has, and the client gets the rest of the arguments: one call, whole and valid."""
    rs = setup(fakes, config_factory, router_server, {"reset_after_chunks": cut})
    oai = openai.OpenAI(base_url=rs.url + "/v1", api_key="unused", max_retries=0)
    messages: list[Any] = [{"role": "user", "content": "hi"}]
    with oai, oai.chat.completions.stream(model="m", messages=messages, tools=TOOLS_CHAT) as s:
        final = s.get_final_completion()
    choice = final.choices[0]
    assert choice.message.content == TEXT and choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.function.name == "weather" and orjson.loads(call.function.arguments) == {"city": "Paris"}
    assert fakes.last("beta", CHAT)["messages"][-1]["role"] == "user", "restarted, not prefilled"


def test_tool_calls_restart_in_every_client_format(fakes, config_factory, router_server):
    """The same through the Anthropic and Responses stream helpers."""
    rs = setup(fakes, config_factory, router_server, {"reset_after_chunks": 10})
    ant = anthropic.Anthropic(base_url=rs.url, api_key="unused", max_retries=0)
    body: dict[str, Any] = {"model": "m", "max_tokens": 200, "messages": [{"role": "user", "content": "hi"}]}
    with ant, ant.messages.stream(**body, tools=TOOLS_ANTHROPIC) as m:
        message = m.get_final_message()
    assert [b.type for b in message.content] == ["text", "tool_use"] and message.stop_reason == "tool_use"
    assert message.content[1].input == {"city": "Paris"}  # type: ignore[union-attr]
    fakes.set("alpha", text=TEXT, chunks=8, reset_after_chunks=10)
    oai = openai.OpenAI(base_url=rs.url + "/v1", api_key="unused", max_retries=0, _strict_response_validation=True)
    with oai, oai.responses.stream(model="m", input="hi", tools=TOOLS_RESPONSES) as r:
        response = r.get_final_response()
    calls = [o for o in response.output if o.type == "function_call"]
    assert response.output_text == TEXT and len(calls) == 1 and orjson.loads(calls[0].arguments) == {"city": "Paris"}


def test_a_restarted_tool_call_that_diverges_ends_cleanly(fakes, config_factory, router_server):
    """beta's answer does not begin with the client's text: the clean error ending, never a call
    spliced onto another answer."""
    rs = setup(fakes, config_factory, router_server, {"reset_after_chunks": 10})
    fakes.set("beta", text="Another text entirely, before the call.", chunks=8)
    _, events = stream(rs, CHAT, tools=TOOLS_CHAT)
    assert is_error(CHAT, events[-1]) and fakes.served("beta") == 1


def test_the_limit_ends_the_stream_cleanly(fakes, config_factory, router_server):
    """Every route breaks: after routing.max_continuations the error ending, never a spliced mess."""
    rs = setup(fakes, config_factory, router_server, {"reset_after_chunks": 3}, routing={"max_continuations": 1})
    fakes.set("beta", text=TEXT, chunks=8, reset_after_chunks=3)
    _, events = stream(rs, CHAT)
    assert is_error(CHAT, events[-1])
    assert TEXT.startswith(text_of(CHAT, events)) and fakes.served("beta") == 1


@pytest.mark.parametrize("path", [MESSAGES, RESPONSES])
@pytest.mark.parametrize("fault", FAULTS)
def test_a_translated_stream_continues_in_its_own_writer(fakes, config_factory, router_server, path, fault):
    """alpha speaks only chat, so the client's stream was translated when it broke: the same
    translated stream goes on with beta's rest."""
    rs = setup(fakes, config_factory, router_server, fault, alpha_formats=["openai-chat"])
    r, events = stream(rs, path)
    assert r.status_code == 200 and text_of(path, events) == TEXT
    assert not any(is_error(path, e) for e in events)
    names = [e[0] for e in events]
    assert names.count("message_start" if path == MESSAGES else "response.created") == 1


def test_a_continued_stream_bills_every_attempt_and_says_so(fakes, config_factory, router_server, tmp_path):
    """The ledger line costs both attempts' usage and counts the continuation; the access line
    names it; the counter counts it; the final usage the client sees covers the whole answer."""
    price = {"input_per_mtok": 1000.0, "output_per_mtok": 2000.0}
    rs = router_server(
        config_factory(
            {"m": [("alpha", 0), ("beta", 1)]}, prices={"m": price}, ledger={"path": str(tmp_path / "usage.jsonl")}
        )
    )
    fakes.set("alpha", text=TEXT, chunks=8, reset_after_chunks=3)
    fakes.set("beta", text=TEXT, chunks=8)
    with capture_logs() as logs:
        _, events = stream(rs, MESSAGES)
        # The access line follows the stream's last byte: the client can finish reading first.
        rs.wait_until(lambda: any(e["event"] == "request" for e in logs))
    assert text_of(MESSAGES, events) == TEXT
    [line] = [e for e in logs if e["event"] == "request"]
    assert line["continuations"] == ["upstream_reset:ok"] and line["stream_end"] == "ok" and line["provider"] == "beta"
    [rec] = [orjson.loads(x) for x in (tmp_path / "usage.jsonl").read_bytes().splitlines()]
    assert rec["continuations"] == 1 and rec["provider"] == "beta"
    beta_sent = fakes.last("beta", MESSAGES)
    assert rec["input_tokens"] > 0 and rec["output_tokens"] >= (len(TEXT) + 3) // 4, "both attempts' output"
    assert rec["cost_usd"] > 0 and beta_sent is not None
    [final] = [e[1] for e in events if e[0] == "message_delta"]
    assert final["usage"]["output_tokens"] >= (len(TEXT) + 3) // 4, "the whole answer's output, not the rest's"
    metrics = rs.client.get("/metrics").text
    assert 'router_continuations_total{outcome="ok",reason="upstream_reset"} 1.0' in metrics


@pytest.mark.parametrize("path", [CHAT, MESSAGES, RESPONSES])
def test_a_route_that_refuses_prefill_restarts_and_matches(fakes, config_factory, router_server, path):
    """beta answers a prefill with a 400: the router learns it, asks beta the original request,
    and drops the text the client already has from the start of the new answer."""
    rs = setup(fakes, config_factory, router_server, {"reset_after_chunks": 3})
    fakes.set("beta", text=TEXT, chunks=8, refuse_prefill=True)
    _, events = stream(rs, path)
    assert text_of(path, events) == TEXT and not any(is_error(path, e) for e in events)
    assert fakes.served("beta") == 2, "the refused prefill, then the restart"


def test_a_route_declared_without_prefill_restarts_and_a_diverging_answer_ends_cleanly(
    fakes, config_factory, router_server
):
    """route prefill: false: the original request is sent (no assistant message); an answer that
    does not begin with the delivered text is never spliced: the clean error ending instead."""
    rs = setup(
        fakes, config_factory, router_server, {"reset_after_chunks": 3}, route_options={"beta": {"prefill": False}}
    )
    _, events = stream(rs, CHAT)
    assert text_of(CHAT, events) == TEXT
    assert fakes.last("beta", CHAT)["messages"][-1]["role"] == "user"
    fakes.set("alpha", text=TEXT, chunks=8, reset_after_chunks=3)
    fakes.set("beta", text="Something else entirely, said differently.", chunks=8)
    _, events = stream(rs, CHAT)
    assert is_error(CHAT, events[-1]) and TEXT.startswith(text_of(CHAT, events))


def test_a_route_that_broke_is_not_asked_again_in_the_request(fakes, config_factory, router_server):
    """alpha and beta both cut every stream, gamma does not: alpha -> beta -> gamma, never back."""
    rs = router_server(config_factory({"m": [("alpha", 0), ("beta", 1), ("gamma", 2)]}))
    for name in ("alpha", "beta"):
        fakes.set(name, text=TEXT, chunks=8, reset_after_chunks=3)
    fakes.set("gamma", text=TEXT, chunks=8)
    _, events = stream(rs, CHAT)
    assert text_of(CHAT, events) == TEXT and not any(is_error(CHAT, e) for e in events)
    assert (fakes.served("alpha"), fakes.served("beta"), fakes.served("gamma")) == (1, 1, 1)
