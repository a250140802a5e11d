"""The fake provider's tool-call, tool-result and reasoning answers over a real loopback socket,
in the three formats, stream and not, checked against the official SDKs' types and clients;
the cached-tokens knob; and GET /_admin/last, the bodies the fake received."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from router.fake_upstream import RunningServer, start_in_thread
from router.fake_upstream.answers import ARGUMENTS, Prompt, plan
from router.fake_upstream.formats_anthropic import MessagesFormat
from router.fake_upstream.formats_chat import ChatFormat
from router.fake_upstream.formats_responses import ResponsesFormat
from router.formats.sse import SSEParser

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
RESPONSES = "/v1/responses"
PATHS = [CHAT, MESSAGES, RESPONSES]
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}
STOP = {CHAT: ("stop", "tool_calls"), MESSAGES: ("end_turn", "tool_use"), RESPONSES: ("completed", "completed")}
CHUNK = TypeAdapter(ChatCompletionChunk)
ANTHROPIC_EVENT: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
RESPONSES_EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


def request(path: str, text: str, *, tools: bool = False, reasoning: bool = False, **extra: Any) -> dict[str, Any]:
    """A request in `path`'s format: one user message, optionally two tools and reasoning on."""
    names = ["get_weather", "get_time"]
    body: dict[str, Any]
    if path == CHAT:
        body = {"model": "gpt-t", "messages": [{"role": "user", "content": text}]}
        if tools:
            body["tools"] = [{"type": "function", "function": {"name": n, "parameters": SCHEMA}} for n in names]
        if reasoning:
            body["reasoning_effort"] = "medium"
    elif path == MESSAGES:
        body = {"model": "claude-t", "max_tokens": 2048, "messages": [{"role": "user", "content": text}]}
        if tools:
            body["tools"] = [{"name": n, "input_schema": SCHEMA} for n in names]
        if reasoning:
            body["thinking"] = {"type": "adaptive"}
    else:
        body = {"model": "resp-t", "input": [{"role": "user", "content": [{"type": "input_text", "text": text}]}]}
        if tools:
            body["tools"] = [{"type": "function", "name": n, "parameters": SCHEMA, "strict": None} for n in names]
        if reasoning:
            body["reasoning"] = {"effort": "low", "summary": "auto"}
    return {**body, **extra}


@dataclass
class Seen:
    """One answer, normalised across formats: what a client ends up with."""

    text: str = ""
    reasoning: str | None = None
    proof: str | None = None  # anthropic signature / responses encrypted_content
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (id, name, arguments)
    fragments: dict[str, int] = field(default_factory=dict)  # stream: argument pieces per call id
    stop: str | None = None
    reasoning_tokens: int = 0
    cached_tokens: int = 0


def seen_complete(path: str, raw: bytes) -> Seen:
    """Validate a non-stream body with the SDK's model and normalise it."""
    s = Seen()
    if path == CHAT:
        cc = ChatCompletion.model_validate_json(raw)
        msg = cc.choices[0].message
        s.text, s.stop = msg.content or "", cc.choices[0].finish_reason
        s.reasoning = (msg.model_extra or {}).get("reasoning_content")
        s.calls = [(c.id, c.function.name, c.function.arguments) for c in msg.tool_calls or [] if c.type == "function"]
        assert cc.usage is not None and cc.usage.completion_tokens_details and cc.usage.prompt_tokens_details
        s.reasoning_tokens = cc.usage.completion_tokens_details.reasoning_tokens or 0
        s.cached_tokens = cc.usage.prompt_tokens_details.cached_tokens or 0
    elif path == MESSAGES:
        m = Message.model_validate_json(raw)
        s.stop = m.stop_reason
        for b in m.content:
            if b.type == "thinking":
                s.reasoning, s.proof = b.thinking, b.signature
            elif b.type == "text":
                s.text += b.text
            elif b.type == "tool_use":
                s.calls.append((b.id, b.name, orjson.dumps(b.input).decode()))
        s.reasoning_tokens = m.usage.output_tokens_details.thinking_tokens if m.usage.output_tokens_details else 0
        s.cached_tokens = m.usage.cache_read_input_tokens or 0
    else:
        r = Response.model_validate_json(raw)
        s.text, s.stop = r.output_text, r.status
        for item in r.output:
            if item.type == "reasoning":
                s.reasoning, s.proof = "".join(p.text for p in item.summary), item.encrypted_content
            elif item.type == "function_call":
                s.calls.append((item.call_id, item.name, item.arguments))
        assert r.usage is not None
        s.reasoning_tokens = r.usage.output_tokens_details.reasoning_tokens
        s.cached_tokens = r.usage.input_tokens_details.cached_tokens
    return s


def seen_stream(path: str, raw: bytes) -> Seen:
    """Validate every stream event with the SDK's types and accumulate them as a client would."""
    s = Seen()
    ids: dict[int, str] = {}  # chat tool index / anthropic block index / responses item id -> call id
    for ev in SSEParser().feed(raw):
        if ev.data == b"[DONE]" or ev.event == "ping":  # the SDKs skip both
            continue
        if path == CHAT:
            ch = CHUNK.validate_json(ev.data)
            if ch.usage is not None:
                assert ch.usage.completion_tokens_details and ch.usage.prompt_tokens_details
                s.reasoning_tokens = ch.usage.completion_tokens_details.reasoning_tokens or 0
                s.cached_tokens = ch.usage.prompt_tokens_details.cached_tokens or 0
            for choice in ch.choices:
                d = choice.delta
                s.text += d.content or ""
                if (piece := (d.model_extra or {}).get("reasoning_content")) is not None:
                    s.reasoning = (s.reasoning or "") + piece
                for tc in d.tool_calls or []:
                    if tc.id is not None:
                        assert tc.function and tc.function.name
                        ids[tc.index] = tc.id
                        s.calls.append((tc.id, tc.function.name, ""))
                    elif tc.function and tc.function.arguments:
                        i = [c[0] for c in s.calls].index(ids[tc.index])
                        s.calls[i] = (*s.calls[i][:2], s.calls[i][2] + tc.function.arguments)
                        s.fragments[ids[tc.index]] = s.fragments.get(ids[tc.index], 0) + 1
                s.stop = choice.finish_reason or s.stop
        elif path == MESSAGES:
            e = ANTHROPIC_EVENT.validate_json(ev.data)
            assert e.type == ev.event
            if e.type == "message_start":
                s.cached_tokens = e.message.usage.cache_read_input_tokens or 0
            elif e.type == "content_block_start" and e.content_block.type == "tool_use":
                ids[e.index] = e.content_block.id
                s.calls.append((e.content_block.id, e.content_block.name, ""))
            elif e.type == "content_block_delta":
                d = e.delta
                if d.type == "text_delta":
                    s.text += d.text
                elif d.type == "thinking_delta":
                    s.reasoning = (s.reasoning or "") + d.thinking
                elif d.type == "signature_delta":
                    s.proof = d.signature
                elif d.type == "input_json_delta" and d.partial_json:
                    s.calls[-1] = (*s.calls[-1][:2], s.calls[-1][2] + d.partial_json)
                    s.fragments[ids[e.index]] = s.fragments.get(ids[e.index], 0) + 1
            elif e.type == "message_delta":
                s.stop = e.delta.stop_reason
                details = e.usage.output_tokens_details
                s.reasoning_tokens = details.thinking_tokens if details else 0
        else:
            e = RESPONSES_EVENT.validate_json(ev.data)
            assert e.type == ev.event
            if e.type == "response.output_text.delta":
                s.text += e.delta
            elif e.type == "response.reasoning_summary_text.delta":
                s.reasoning = (s.reasoning or "") + e.delta
            elif e.type == "response.output_item.done" and e.item.type == "reasoning":
                s.proof = e.item.encrypted_content
            elif e.type == "response.output_item.added" and e.item.type == "function_call":
                s.calls.append((e.item.call_id, e.item.name, ""))
                assert e.item.id is not None
                ids[len(ids)] = e.item.id
            elif e.type == "response.function_call_arguments.delta":
                assert e.item_id == ids[len(ids) - 1]
                s.calls[-1] = (*s.calls[-1][:2], s.calls[-1][2] + e.delta)
                s.fragments[s.calls[-1][0]] = s.fragments.get(s.calls[-1][0], 0) + 1
            elif e.type == "response.function_call_arguments.done":
                assert e.arguments == s.calls[-1][2]
            elif e.type == "response.completed":
                s.stop = e.response.status
                assert e.response.usage is not None
                s.reasoning_tokens = e.response.usage.output_tokens_details.reasoning_tokens
                s.cached_tokens = e.response.usage.input_tokens_details.cached_tokens
    return s


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    running = start_in_thread("delta")
    yield running
    running.stop()


@pytest.fixture
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=5.0) as c:
        assert c.post("/_admin/reset").status_code == 200
        yield c


def ask(client: httpx.Client, path: str, body: dict[str, Any], stream: bool) -> Seen:
    if stream:
        body = {**body, "stream": True}
        if path == CHAT:
            body["stream_options"] = {"include_usage": True}
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    return seen_stream(path, response.content) if stream else seen_complete(path, response.content)


# --- tool calls and reasoning, every format, stream and not ----------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("path", PATHS)
def test_tool_call(client: httpx.Client, path: str, stream: bool) -> None:
    """Defined tools: a short text, then one call of the first tool with {"city": "Paris"}."""
    s = ask(client, path, request(path, "What is the weather?", tools=True), stream)
    assert s.text == "Let me check." and s.reasoning is None and s.reasoning_tokens == 0
    ((call_id, name, arguments),) = s.calls
    assert name == "get_weather" and orjson.loads(arguments) == {"city": "Paris"} and call_id
    assert s.stop == STOP[path][1]
    if stream:
        assert s.fragments[call_id] >= 3


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("path", PATHS)
def test_parallel_tool_calls(client: httpx.Client, path: str, stream: bool) -> None:
    """ "parallel" in the last user text: the first tool is called twice, with two different ids."""
    s = ask(client, path, request(path, "Weather in parallel, please", tools=True), stream)
    assert [(c[1], orjson.loads(c[2])) for c in s.calls] == [("get_weather", {"city": "Paris"})] * 2
    assert len({c[0] for c in s.calls}) == 2 and s.stop == STOP[path][1]


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("path", PATHS)
def test_reasoning(client: httpx.Client, path: str, stream: bool) -> None:
    """Reasoning asked for: the answer opens with "Thinking about: <40 chars>" and counts its tokens."""
    text = "Explain why the sky is blue, in one short paragraph"
    s = ask(client, path, request(path, text, reasoning=True), stream)
    assert s.reasoning == "Thinking about: " + text[:40]
    assert s.text == "Hello from delta." and s.calls == [] and s.stop == STOP[path][0]
    assert s.reasoning_tokens > 0
    if path == MESSAGES:
        assert s.proof is not None and s.proof.startswith("sig-fake-")
    elif path == RESPONSES:
        assert s.proof is not None and s.proof.startswith("enc-fake-")


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("path", PATHS)
def test_reasoning_with_tools(client: httpx.Client, path: str, stream: bool) -> None:
    """Reasoning and tools together: reasoning, text, then the call."""
    s = ask(client, path, request(path, "weather?", tools=True, reasoning=True), stream)
    assert s.reasoning == "Thinking about: weather?" and s.text == "Let me check." and len(s.calls) == 1


@pytest.mark.parametrize(
    ("path", "off"),
    [
        (CHAT, {"reasoning_effort": "none"}),
        (MESSAGES, {"thinking": {"type": "disabled"}}),
        (RESPONSES, {"reasoning": {"effort": "none"}}),
        (RESPONSES, {"reasoning": {"summary": "auto"}}),
    ],
)
def test_no_reasoning_unless_asked(client: httpx.Client, path: str, off: dict[str, Any]) -> None:
    """Effort "none", thinking disabled or no effort at all: no reasoning in the answer."""
    s = ask(client, path, {**request(path, "hi"), **off}, False)
    assert s.reasoning is None and s.reasoning_tokens == 0


def tool_result_request(path: str, result: str) -> dict[str, Any]:
    """A second turn: the user's question, the assistant's call, the tool's result."""
    body = request(path, "What is the weather?", tools=True, reasoning=True)
    if path == CHAT:
        call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ARGUMENTS}}
        body["messages"] += [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": result}]},
        ]
    elif path == MESSAGES:
        use = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
        body["messages"] += [
            {"role": "assistant", "content": [use]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": result}]},
        ]
    else:
        body["input"] += [
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": ARGUMENTS},
            {"type": "function_call_output", "call_id": "call_1", "output": result},
        ]
    return body


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("path", PATHS)
def test_tool_result_is_echoed(client: httpx.Client, path: str, stream: bool) -> None:
    """The last turn is a tool result: text quoting it, no new call, reasoning about the question."""
    s = ask(client, path, tool_result_request(path, "18C and sunny"), stream)
    assert s.text == "The tool said: 18C and sunny" and s.calls == [] and s.stop == STOP[path][0]
    assert s.reasoning == "Thinking about: What is the weather?"


# --- the official SDK clients and their stream helpers ---------------------------------------


def test_openai_chat_round_trip_with_sdk(server: RunningServer) -> None:
    """openai's chat stream helper accumulates the calls and reasoning; the result round-trips."""
    with openai.OpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0) as client:
        body = request(CHAT, "weather in parallel?", tools=True, reasoning=True)
        with client.chat.completions.stream(
            model="m", messages=body["messages"], tools=body["tools"], reasoning_effort="high"
        ) as st:
            final = st.get_final_completion()
        message = final.choices[0].message
        assert final.choices[0].finish_reason == "tool_calls" and (message.model_extra or {})["reasoning_content"]
        calls = message.tool_calls or []
        assert [c.function.name for c in calls if c.type == "function"] == ["get_weather"] * 2
        history = [*body["messages"], message.model_dump(exclude_none=True, exclude={"parsed"})]
        history += [{"role": "tool", "tool_call_id": c.id, "content": f"sunny {i}"} for i, c in enumerate(calls)]
        again = client.chat.completions.create(model="m", messages=history, tools=body["tools"])
        assert again.choices[0].message.content == "The tool said: sunny 0; sunny 1"


def test_anthropic_round_trip_with_sdk(server: RunningServer) -> None:
    """anthropic's messages.stream final message has the signed thinking and the parsed input."""
    with anthropic.Anthropic(base_url=server.url, api_key="k", max_retries=0) as client:
        body = request(MESSAGES, "weather?", tools=True)
        with client.messages.stream(
            model="c", max_tokens=2048, messages=body["messages"], tools=body["tools"], thinking={"type": "adaptive"}
        ) as st:
            final = st.get_final_message()
        assert [b.type for b in final.content] == ["thinking", "text", "tool_use"]
        use = final.content[2]
        assert use.type == "tool_use" and use.input == {"city": "Paris"} and final.stop_reason == "tool_use"
        history = [*body["messages"], {"role": "assistant", "content": [b.model_dump() for b in final.content]}]
        history.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "rain"}]})
        again = client.messages.create(model="c", max_tokens=64, messages=history, tools=body["tools"])
        assert again.content[0].type == "text" and again.content[0].text == "The tool said: rain"


def test_openai_responses_round_trip_with_sdk(server: RunningServer) -> None:
    """openai's responses stream helper completes with reasoning and the call; the output round-trips."""
    with openai.OpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0) as client:
        tools = request(RESPONSES, "", tools=True)["tools"]
        with client.responses.stream(model="r", input="weather?", tools=tools, reasoning={"effort": "medium"}) as st:
            final = st.get_final_response()
        assert [i.type for i in final.output] == ["reasoning", "message", "function_call"]
        call = final.output[2]
        assert call.type == "function_call" and orjson.loads(call.arguments) == {"city": "Paris"}
        echoed = call.model_dump(exclude_none=True, exclude={"parsed_arguments"})
        history: list[Any] = [{"role": "user", "content": "weather?"}, echoed]
        history.append({"type": "function_call_output", "call_id": call.call_id, "output": "windy"})
        again = client.responses.create(model="r", input=history, tools=tools)
        assert again.output_text == "The tool said: windy"


# --- faults on the new answers ---------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_chunk_delay_spaces_every_delta(client: httpx.Client, path: str) -> None:
    """chunk_delay_ms waits before each reasoning, text and argument delta (2 + 2 + 3 here) and the end."""
    client.post("/_admin/faults", json={"chunk_delay_ms": 20, "chunks": 2}).raise_for_status()
    started = time.perf_counter()
    s = ask(client, path, request(path, "weather?", tools=True, reasoning=True), True)
    assert time.perf_counter() - started >= 8 * 0.02 * 0.9
    assert s.calls[0][2] == ARGUMENTS and s.reasoning == "Thinking about: weather?"


@pytest.mark.parametrize("path", PATHS)
def test_truncate_inside_the_arguments(client: httpx.Client, path: str) -> None:
    """truncate_after_chunks counts argument fragments too: the stream stops mid-arguments, and
    every event sent is still well-formed."""
    client.post("/_admin/faults", json={"truncate_after_chunks": 6, "chunks": 4}).raise_for_status()
    s = ask(client, path, request(path, "weather?", tools=True), True)
    assert s.text == "Let me check." and len(s.calls) == 1
    assert s.calls[0][2] == '{"city": "Par' and s.stop is None


@pytest.mark.parametrize("path", PATHS)
def test_cached_tokens_knob(client: httpx.Client, path: str) -> None:
    """faults.cached_tokens is reported as cached input (capped at the input), in each format's field."""
    assert ask(client, path, request(path, "hi"), False).cached_tokens == 0
    client.post("/_admin/faults", json={"cached_tokens": 7}).raise_for_status()
    assert ask(client, path, request(path, "hi"), False).cached_tokens == 7
    assert ask(client, path, request(path, "hi"), True).cached_tokens == 7
    client.post("/_admin/faults", json={"cached_tokens": 10**6}).raise_for_status()
    raw = client.post(path, json=request(path, "hi")).json()
    if path == MESSAGES:
        assert raw["usage"]["input_tokens"] == 0 and raw["usage"]["cache_read_input_tokens"] > 0
    else:
        usage = raw["usage"]
        total, cached = (
            (usage["prompt_tokens"], usage["prompt_tokens_details"]["cached_tokens"])
            if path == CHAT
            else (usage["input_tokens"], usage["input_tokens_details"]["cached_tokens"])
        )
        assert cached == total


# --- what the fake received ------------------------------------------------------------------


def test_last_bodies_per_endpoint(client: httpx.Client) -> None:
    """GET /_admin/last maps each generation path to the last body it received; ?path= gives one."""
    assert client.get("/_admin/last").json() == {}
    first = request(MESSAGES, "one", tools=True, reasoning=True)
    client.post(MESSAGES, json=first)
    client.post(CHAT, json=request(CHAT, "chat"))
    second = request(MESSAGES, "two")
    client.post(MESSAGES, json={**second, "stream": True})
    client.post(RESPONSES, content=b"{broken")
    last = client.get("/_admin/last").json()
    assert last == {MESSAGES: {**second, "stream": True}, CHAT: request(CHAT, "chat"), RESPONSES: None}
    one = client.get("/_admin/last", params={"path": MESSAGES})
    assert one.status_code == 200 and one.json()["messages"][0]["content"] == "two"
    client.post(MESSAGES, json=first)
    sent = client.get("/_admin/last", params={"path": MESSAGES}).json()
    assert sent["max_tokens"] == 2048 and sent["thinking"] == {"type": "adaptive"} and len(sent["tools"]) == 2
    missing = client.get("/_admin/last", params={"path": "/v1/nope"})
    assert missing.status_code == 404 and "/v1/nope" in missing.json()["error"]
    client.post("/_admin/reset")
    assert client.get("/_admin/last").json() == {}


# --- the readers, without sockets ------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"messages": "nope", "tools": "nope"},
        {"messages": [1, None, {"role": "user", "content": 5}], "tools": [1, {"type": "function"}]},
        {"input": 3, "reasoning": "high", "thinking": [], "reasoning_effort": 1},
    ],
)
def test_readers_tolerate_odd_shapes(body: dict[str, Any]) -> None:
    """Odd shapes never crash a reader: they read as a plain prompt (no tools, results or reasoning)."""
    for fmt in (ChatFormat(), MessagesFormat(), ResponsesFormat()):
        assert fmt.prompt(body) == Prompt()


def test_readers_find_the_first_function_tool() -> None:
    """Tools of other kinds (custom, server, namespace) are skipped; the first function tool is called."""
    chat = {"tools": [{"type": "custom", "custom": {"name": "x"}}, {"type": "function", "function": {"name": "f"}}]}
    assert ChatFormat().prompt(chat).tool == "f"
    server_tool = {"type": "web_search_20250305", "name": "web_search"}
    anthropic_body = {"tools": [server_tool, {"name": "g", "input_schema": {}}]}
    assert MessagesFormat().prompt(anthropic_body).tool == "g"
    responses = {"tools": [{"type": "namespace", "name": "ns", "tools": []}, {"type": "function", "name": "h"}]}
    assert ResponsesFormat().prompt(responses).tool == "h"
    assert ResponsesFormat().prompt({"input": "plain text"}).user_text == "plain text"


@pytest.mark.parametrize(
    ("reader", "body", "cap"),
    [
        (ChatFormat(), {"messages": [], "max_completion_tokens": 7, "max_tokens": 9}, 7),
        (ChatFormat(), {"messages": [], "max_tokens": 9}, 9),
        (MessagesFormat(), {"messages": [], "max_tokens": 5}, 5),
        (ResponsesFormat(), {"input": "hi", "max_output_tokens": 3}, 3),
        (ResponsesFormat(), {"input": "hi"}, None),
    ],
)
def test_output_tokens_are_capped_at_the_requests_max_tokens(reader: Any, body: dict[str, Any], cap: int | None):
    """The `output_tokens` knob reports a long answer, cut at the request's cap as a model cuts it."""
    prompt = reader.prompt(body)
    assert prompt.max_output == cap
    knobs: dict[str, Any] = {"default_text": "hi", "text": None, "chunks": 1, "cached_tokens": 0}
    answer = plan(prompt, **knobs, model="m", rid="r", created=0, prompt_tokens=1, no_done=False, output_tokens=1000)
    assert answer.completion_tokens == (cap if cap is not None else 1000)
