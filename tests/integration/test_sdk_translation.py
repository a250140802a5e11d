"""The official SDKs as clients of the router, in front of a fake provider that speaks only
another format: all six directions, non-stream and stream (through the SDKs' own stream
helpers), plain text, a tool-call round trip, and thinking/reasoning. The SDKs' parsed objects
must come out whole: text, tool calls with JSON arguments, usage, stop reason."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import openai
import pytest

from router.billing.auth import hash_key
from router.fake_upstream import RunningServer
from router.formats.codec import carry

KEY = "toc-sdk-" + "s" * 40
FORMATS = ("openai-chat", "anthropic-messages", "openai-responses")
PAIRS = [(c, u) for c in FORMATS for u in FORMATS if c != u]
IDS = [f"{c}->{u}" for c, u in PAIRS]
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@dataclass
class Outcome:
    """What a client saw, in neutral terms."""

    text: str
    stop: str  # "end", "tool_use", ...
    calls: list[tuple[str, str, Any]]  # (id, name, parsed arguments)
    thinking: str
    input_tokens: int
    output_tokens: int


class Driver:
    """An SDK client of the router; `fake` is the provider behind its one route (set by `through`)."""

    fake: RunningServer


class Chat(Driver):
    def __init__(self, url: str) -> None:
        self.c = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=10)

    def ask(
        self,
        stream: bool,
        text: str = "hi",
        tools: bool = False,
        think: bool = False,
        history: list[dict[str, Any]] | None = None,
    ) -> Outcome:
        kw: dict[str, Any] = {"model": "m", "messages": history or [{"role": "user", "content": text}]}
        if tools:
            kw["tools"] = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
        if think:
            kw["reasoning_effort"] = "high"
        if stream:
            with self.c.chat.completions.stream(**kw, stream_options={"include_usage": True}) as s:
                for _ in s:
                    pass
                r = s.get_final_completion()
        else:
            r = self.c.chat.completions.create(**kw)
        msg = r.choices[0].message
        calls = [(t.id, t.function.name, json.loads(t.function.arguments)) for t in msg.tool_calls or []]
        stop = {"stop": "end", "tool_calls": "tool_use", "length": "length"}[r.choices[0].finish_reason]
        assert r.usage is not None
        thinking = (msg.model_extra or {}).get("reasoning_content") or ""
        return Outcome(msg.content or "", stop, calls, thinking, r.usage.prompt_tokens, r.usage.completion_tokens)

    def answer_tool(self, stream: bool, first: Outcome) -> Outcome:
        call_id, name, args = first.calls[0]
        history: list[dict[str, Any]] = [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": first.text or None,
                "tool_calls": [
                    {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
                ],
            },
            {"role": "tool", "tool_call_id": call_id, "content": "sunny"},
        ]
        return self.ask(stream, tools=True, history=history)


class Messages(Driver):
    def __init__(self, url: str) -> None:
        self.c = anthropic.Anthropic(base_url=url, api_key=KEY, max_retries=0, timeout=10)

    def ask(
        self,
        stream: bool,
        text: str = "hi",
        tools: bool = False,
        think: bool = False,
        history: list[dict[str, Any]] | None = None,
    ) -> Outcome:
        kw: dict[str, Any] = {
            "model": "m",
            "max_tokens": 4096,
            "messages": history or [{"role": "user", "content": text}],
        }
        if tools:
            kw["tools"] = [{"name": "get_weather", "description": "weather", "input_schema": WEATHER}]
        if think:
            kw["thinking"] = {"type": "enabled", "budget_tokens": 2048}
        if stream:
            with self.c.messages.stream(**kw) as s:
                for _ in s:
                    pass
                m = s.get_final_message()
        else:
            m = self.c.messages.create(**kw)
        text_out = "".join(b.text for b in m.content if b.type == "text")
        calls = [(b.id, b.name, b.input) for b in m.content if b.type == "tool_use"]
        thinking = "".join(b.thinking for b in m.content if b.type == "thinking")
        stop = {"end_turn": "end", "tool_use": "tool_use", "max_tokens": "length"}[m.stop_reason or ""]
        return Outcome(text_out, stop, calls, thinking, m.usage.input_tokens, m.usage.output_tokens)

    def answer_tool(self, stream: bool, first: Outcome) -> Outcome:
        call_id, name, args = first.calls[0]
        assistant: list[dict[str, Any]] = [{"type": "text", "text": first.text}] if first.text else []
        assistant.append({"type": "tool_use", "id": call_id, "name": name, "input": args})
        history: list[dict[str, Any]] = [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": assistant},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call_id, "content": "sunny"}]},
        ]
        return self.ask(stream, tools=True, history=history)


class Responses(Driver):
    def __init__(self, url: str) -> None:
        self.c = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=10)

    def ask(
        self,
        stream: bool,
        text: str = "hi",
        tools: bool = False,
        think: bool = False,
        history: list[dict[str, Any]] | None = None,
    ) -> Outcome:
        kw: dict[str, Any] = {"model": "m", "input": history or text}
        if tools:
            kw["tools"] = [{"type": "function", "name": "get_weather", "parameters": WEATHER, "strict": False}]
        if think:
            kw["reasoning"] = {"effort": "high", "summary": "auto"}
        if stream:
            with self.c.responses.stream(**kw) as s:
                for _ in s:
                    pass
                r = s.get_final_response()
        else:
            r = self.c.responses.create(**kw)
        calls = [(o.call_id, o.name, json.loads(o.arguments)) for o in r.output if o.type == "function_call"]
        thinking = "".join(p.text for o in r.output if o.type == "reasoning" for p in o.summary)
        stop = "tool_use" if calls else {"completed": "end", "incomplete": "length"}[r.status or ""]
        assert r.usage is not None
        return Outcome(r.output_text, stop, calls, thinking, r.usage.input_tokens, r.usage.output_tokens)

    def answer_tool(self, stream: bool, first: Outcome) -> Outcome:
        call_id, name, args = first.calls[0]
        history = [
            {"role": "user", "content": "weather?"},
            {"type": "function_call", "call_id": call_id, "name": name, "arguments": json.dumps(args)},
            {"type": "function_call_output", "call_id": call_id, "output": "sunny"},
        ]
        return self.ask(stream, tools=True, history=history)


CLIENTS: dict[str, Callable[[str], Driver]] = {
    "openai-chat": Chat,
    "anthropic-messages": Messages,
    "openai-responses": Responses,
}


@pytest.fixture
def through(fakes, config_factory, router_server) -> Iterator[Any]:
    """(client format, upstream format) -> an SDK driver whose only route speaks the upstream format."""
    drivers: list[Any] = []

    def make(client: str, upstream: str) -> Any:
        config = config_factory(
            {"m": [("alpha", 0)]},
            formats={"alpha": [upstream]},
            plans=[{"name": "p", "models": ["*"]}],
            keys=[{"id": "sdk", "hash": hash_key(KEY), "plan": "p"}],
            server={"allow_anonymous": False},
            ledger={"enabled": False},
        )
        rs = router_server(config)
        driver = CLIENTS[client](rs.url)
        driver.fake = fakes["alpha"]
        drivers.append(driver)
        return driver

    yield make
    for driver in drivers:
        driver.c.close()  # the SDK client's keep-alive connections to the router


def last_upstream(fake: RunningServer) -> dict[str, Any]:
    last: dict[str, Any] = httpx.get(f"{fake.url}/_admin/last").json()
    [(_, body)] = [(p, b) for p, b in last.items() if b is not None]
    assert isinstance(body, dict), body  # JSON from the fake: the one request body it received
    return body


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(("client", "upstream"), PAIRS, ids=IDS)
def test_text(through, client, upstream, stream):
    d = through(client, upstream)
    out = d.ask(stream)
    assert out.text == "Hello from alpha." and out.stop == "end" and not out.calls
    assert out.input_tokens > 0 and out.output_tokens > 0


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(("client", "upstream"), PAIRS, ids=IDS)
def test_tool_call_round_trip(through, client, upstream, stream):
    d = through(client, upstream)
    first = d.ask(stream, text="weather?", tools=True)
    assert first.stop == "tool_use"
    [(call_id, name, args)] = first.calls
    assert call_id and name == "get_weather" and args == {"city": "Paris"}
    second = d.answer_tool(stream, first)
    assert second.text == "The tool said: sunny" and second.stop == "end"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(("client", "upstream"), PAIRS, ids=IDS)
def test_parallel_tool_calls(through, client, upstream, stream):
    d = through(client, upstream)
    out = d.ask(stream, text="weather, parallel please", tools=True)
    assert len(out.calls) == 2 and len({c[0] for c in out.calls}) == 2
    assert all(name == "get_weather" and args == {"city": "Paris"} for _, name, args in out.calls)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(("client", "upstream"), PAIRS, ids=IDS)
def test_thinking(through, client, upstream, stream):
    d = through(client, upstream)
    out = d.ask(stream, text="why is the sky blue", think=True)
    assert out.thinking.startswith("Thinking about: why is the sky blue")
    assert out.text == "Hello from alpha."
    sent = last_upstream(d.fake)
    if upstream == "anthropic-messages":
        assert sent["thinking"]["type"] == "enabled" and sent["thinking"]["budget_tokens"] >= 1024
        assert sent["max_tokens"] > sent["thinking"]["budget_tokens"]
    elif upstream == "openai-chat":
        assert sent["reasoning_effort"] in ("low", "medium", "high")
    else:
        assert sent["reasoning"]["effort"] in ("low", "medium", "high")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_responses_client_keeps_anthropic_thinking_across_a_tool_turn(through, stream):
    """A Responses client (Codex's request shape) in front of an Anthropic provider.
    The signed thinking comes back to the client only as the router's token in encrypted_content;
    sent back with the tool result, it reaches Anthropic as the same signed block, with thinking on."""
    d = through("openai-responses", "anthropic-messages")
    kw: dict[str, Any] = {
        "model": "m",
        "tools": [{"type": "function", "name": "get_weather", "parameters": WEATHER, "strict": False}],
        "reasoning": {"effort": "high", "summary": "auto"},
        "include": ["reasoning.encrypted_content"],
        "store": False,
    }

    def ask(history: list[Any]) -> Any:
        if not stream:
            return d.c.responses.create(input=history, **kw)
        with d.c.responses.stream(input=history, **kw) as s:
            for _ in s:
                pass
            return s.get_final_response()

    history: list[Any] = [{"role": "user", "content": "weather?"}]
    first = ask(history)
    [reasoning] = [o for o in first.output if o.type == "reasoning"]
    [call] = [o for o in first.output if o.type == "function_call"]
    carried = carry.read(reasoning.encrypted_content)
    assert carried is not None and carried.signature is not None and carried.signature.startswith("sig-fake-")
    assert "sig-fake-" not in first.to_json(), "the signature reaches the client only inside the token"
    # Codex sends its output items back (a reasoning item without its id), then the tool's result.
    history += [
        {k: v for k, v in o.to_dict().items() if not (o.type == "reasoning" and k == "id")} for o in first.output
    ]
    history.append({"type": "function_call_output", "call_id": call.call_id, "output": "sunny"})
    second = ask(history)
    assert second.output_text == "The tool said: sunny"

    sent = last_upstream(d.fake)
    assert sent["thinking"]["type"] == "enabled", "thinking stays on for the tool turn"
    [assistant] = [m for m in sent["messages"] if m["role"] == "assistant"]
    thought = "".join(s.text for s in reasoning.summary)
    assert assistant["content"][0] == {"type": "thinking", "thinking": thought, "signature": carried.signature}
    assert assistant["content"][-1]["type"] == "tool_use"
