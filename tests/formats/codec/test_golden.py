"""Golden stream fixtures: every stream direction, byte for byte, and read back by the official SDKs.

README
------
Inputs:  golden/upstream/<upstream format>/<scenario>.sse, hand-written transcripts of what the real
         APIs stream (protocols.md A.4, B.4, C.3); test_upstream_transcript_is_real checks each event
         against the SDK's own types so they cannot drift from the real wire shapes.
Outputs: golden/<client format>__from__<upstream format>/<scenario>.sse, what
         router.formats.translate.StreamTranslator writes for a client of <client format> when the
         upstream streamed the input: each input event's JSON (chat's terminator as the string
         "[DONE]") goes through feed(), then finish() when the stream ended complete (not in the
         `error` scenario, which ends with the upstream's own error event).

Regenerate the outputs after an intended change to a writer or reader, and review the diff:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/formats/codec/test_golden.py

Scenarios: `text` (plain text with non-ASCII), `tools` (two parallel calls whose JSON arguments come
in fragments), `thinking` (reasoning, then text), `error` (an error event after some text).

Determinism: the only values the writers make up per run are normalised before comparing (and
before writing goldens), by regex in `normalise`:
- `created` / `created_at`: an Anthropic upstream sends no timestamp, so the chat and responses
  writers use the wall clock; for that upstream only they are replaced with 1700000000.
- a uuid4 hex after an id prefix the writers use (chatcmpl-, msg_, resp_, rs_, fc_), what they fall
  back to when an upstream sent no id -> <prefix><uuid>; no fixture needs it today, the rule keeps
  the goldens stable if one ever does (a bare hex run is left alone: it may be upstream text).
Every other id is derived from the upstream's own ids and is compared as written.

Goldens alone only prove stability, so test_sdk_reads_golden also reads every golden output with
the SDK's own stream machinery (openai/anthropic SSEDecoder, then anthropic `accumulate_event`,
openai `ChatCompletionStreamState`, or `TypeAdapter(ResponseStreamEvent)` + `ResponseStreamState`)
and checks the final object: text, tool calls with parsed arguments, thinking, stop reason, usage;
for `error`, that the stream ends in the client format's error ending with nothing after it.
test_sdk_stream_helper_accepts_golden then runs each golden through the client's own stream
helper (messages.stream / chat.completions.stream / responses.stream) over an httpx2 MockTransport.
A direction the SDK rejects goes in KNOWN_BUGS (xfail strict) instead of being fixed here.
"""

from __future__ import annotations

import json
import os
import re
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import anthropic
import httpx2
import openai
import orjson
import pytest
from anthropic._streaming import SSEDecoder as AnthropicDecoder
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import ErrorResponse, Message, RawMessageStreamEvent
from openai import omit
from openai._streaming import SSEDecoder as OpenAIDecoder
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.chat import ChatCompletionChunk
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from router.formats import wire
from router.formats.codec import carry
from router.formats.sse import SSEParser
from router.formats.translate import StreamTranslator

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
CHAT, MESSAGES, RESPONSES = "openai-chat", "anthropic-messages", "openai-responses"
FORMATS = (CHAT, MESSAGES, RESPONSES)
SCENARIOS = ("text", "tools", "thinking", "error")

# (client, upstream, scenario) -> the bug, for directions whose output the SDK rejects.
KNOWN_BUGS: dict[tuple[str, str, str], str] = {}

RAW_EVENT = TypeAdapter[Any](RawMessageStreamEvent)
RESPONSES_EVENT = TypeAdapter[Any](ResponseStreamEvent)
# The union is not discriminated for pydantic: a failure lists all 59 members. Validating with the
# member its `type` names first keeps the error readable.
RESPONSES_BY_TYPE = {
    get_args(m.model_fields["type"].annotation)[0]: m for m in get_args(get_args(ResponseStreamEvent)[0])
}


def responses_event(data: dict[str, Any]) -> Any:
    model = RESPONSES_BY_TYPE.get(data.get("type"))
    assert model is not None, f"not a Responses stream event type: {data.get('type')!r}"
    model.model_validate(data)
    return RESPONSES_EVENT.validate_python(data)


@dataclass(frozen=True)
class Expect:
    """What the upstream transcript said, in neutral terms."""

    text: str
    usage: tuple[int, int] | None  # (input tokens incl. cache, output tokens); None: no usage (error)
    stop: str = "end"
    thinking: str = ""
    calls: tuple[tuple[str, str, dict[str, Any]], ...] = ()  # (call id, name, arguments)
    error: str | None = None  # the upstream's error message


HELLO = "Hello! Here is a café ☕ for you."
PARIS, TOKYO = {"city": "Paris", "unit": "celsius"}, {"city": "Tokyo", "unit": "celsius"}
THOUGHT = "The user wants 17 × 23. 17 × 20 = 340, 17 × 3 = 51, so 391."
ANSWER = "17 × 23 = **391**."
OPENAI_500 = (
    "An error occurred while processing your request. You can retry your request, or contact us through our "
    "help center at help.openai.com if the error persists. Please include the request ID "
    "req_4f2c9a7b1e3d5f6a8b0c2d4e6f8a0b1c in your message."
)
EXPECT: dict[tuple[str, str], Expect] = {
    (CHAT, "text"): Expect(HELLO, (19, 11)),
    (CHAT, "tools"): Expect(
        "",
        (84, 52),
        "tool_use",
        calls=(
            ("call_Wq3Xb8kLmN2pQr5sT7uV9yZa", "get_weather", PARIS),
            ("call_Jh4Kd6Fg8Hs0Lz2Xc5Vb7NmQ", "get_weather", TOKYO),
        ),
    ),
    (CHAT, "thinking"): Expect(ANSWER, (15, 48), thinking=THOUGHT),
    (CHAT, "error"): Expect(
        "The answer begins", None, error="The server had an error while processing your request. Sorry about that!"
    ),
    (MESSAGES, "text"): Expect(HELLO, (19, 14)),
    (MESSAGES, "tools"): Expect(
        "I'll check the weather in both cities.",
        (412, 118),
        "tool_use",
        calls=(
            ("toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather", PARIS),
            ("toolu_01Lq8mZyXk3BvNs4RcDe9FgH", "get_weather", TOKYO),
        ),
    ),
    (MESSAGES, "thinking"): Expect(ANSWER, (48, 97), thinking=THOUGHT),
    (MESSAGES, "error"): Expect("The answer begins", None, error="Overloaded"),
    (RESPONSES, "text"): Expect(HELLO, (19, 11)),
    (RESPONSES, "tools"): Expect(
        "",
        (96, 46),
        "tool_use",
        calls=(
            ("call_Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8", "get_weather", PARIS),
            ("call_Qr9St0Uv1Wx2Yz3Ab4Cd5Ef6", "get_weather", TOKYO),
        ),
    ),
    (RESPONSES, "thinking"): Expect(
        ANSWER,
        (15, 210),
        thinking=("**Multiplying 17 by 23**\n\n17 × 20 = 340 and 17 × 3 = 51.\n\n**Adding up**\n\n340 + 51 = 391."),
    ),
    (RESPONSES, "error"): Expect("The answer begins", None, error=OPENAI_500),
}


CASES = [
    pytest.param(
        c,
        u,
        s,
        id=f"{c}<-{u}-{s}",
        marks=[pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[c, u, s])] if (c, u, s) in KNOWN_BUGS else [],
    )
    for c in FORMATS
    for u in FORMATS
    if c != u
    for s in SCENARIOS
]
UPSTREAMS = [pytest.param(u, s, id=f"{u}-{s}") for u in FORMATS for s in SCENARIOS]


# ---------------------------------------------------------------- translation


def upstream_events(upstream: str, scenario: str) -> list[Any]:
    """The transcript's events as the relay hands them to the translator: decoded JSON."""
    raw = (GOLDEN / "upstream" / upstream / f"{scenario}.sse").read_bytes()
    parser = SSEParser()
    events = parser.feed(raw)
    assert parser.pending() == b"", "the transcript must end with a blank line"
    return ["[DONE]" if ev.data == b"[DONE]" else orjson.loads(ev.data) for ev in events if not ev.is_comment]


_UUID = re.compile(rb"(?<![0-9A-Za-z])(chatcmpl-|msg_|resp_|rs_|fc_)[0-9a-f]{32}(?![0-9A-Za-z])")
_CLOCK = re.compile(rb'"(created|created_at)":\d+')


def normalise(upstream: str, out: bytes) -> bytes:
    out = _UUID.sub(rb"\1<uuid>", out)
    if upstream == MESSAGES:  # no upstream timestamp: the writer used the wall clock
        out = _CLOCK.sub(rb'"\1":1700000000', out)
    return out


def translate(client: str, upstream: str, scenario: str) -> bytes:
    t = StreamTranslator(wire(upstream), wire(client), "client-model", True)
    out = b"".join(t.feed(obj) for obj in upstream_events(upstream, scenario))
    if scenario != "error":  # the upstream stream ended complete
        out += t.finish()
    return normalise(upstream, out)


def golden_path(client: str, upstream: str, scenario: str) -> Path:
    return GOLDEN / f"{client}__from__{upstream}" / f"{scenario}.sse"


# ---------------------------------------------------------------- reading outputs back with the SDKs


@dataclass
class Seen:
    """What a client's SDK made of a stream, in the same neutral terms as Expect."""

    text: str = ""
    usage: tuple[int, int] | None = None
    stop: str | None = None
    thinking: str = ""
    calls: tuple[tuple[str, str, dict[str, Any]], ...] = ()
    error: str | None = None
    opaque: tuple[str, ...] = ()  # signatures / encrypted reasoning (router tokens too) the client received


def read_chat(raw: bytes) -> Seen:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    seen, done = Seen(), False
    for sse in OpenAIDecoder().iter_bytes(iter([raw])):
        assert not done and seen.error is None, f"an event after the end: {sse.data!r}"
        if sse.data.startswith("[DONE]"):
            done = True
            continue
        data = sse.json()
        if isinstance(data, dict) and data.get("error"):  # the SDK raises APIError here
            assert isinstance(data["error"], dict) and isinstance(data["error"]["message"], str)
            seen.error = data["error"]["message"]
            continue
        state.handle_chunk(ChatCompletionChunk.model_validate(data))
    assert done != (seen.error is not None), "a chat stream ends in [DONE] xor an error line"
    snap = state.current_completion_snapshot
    msg = snap.choices[0].message
    seen.text = msg.content or ""
    seen.thinking = (msg.model_extra or {}).get("reasoning_content") or ""
    if seen.error is None:
        final = state.get_final_completion()
        choice = final.choices[0]
        seen.stop = {"stop": "end", "tool_calls": "tool_use", "length": "length"}[choice.finish_reason]
        calls = choice.message.tool_calls or []
        seen.calls = tuple((c.id, c.function.name, json.loads(c.function.arguments)) for c in calls)
        assert final.usage is not None
        seen.usage = (final.usage.prompt_tokens, final.usage.completion_tokens)
    return seen


def read_messages(raw: bytes) -> Seen:
    snapshot: Any = None
    bufs: dict[int, bytes] = {}
    seen, last = Seen(), None
    for sse in AnthropicDecoder().iter_bytes(iter([raw])):
        assert seen.error is None, f"an event after the error: {sse.event}"
        data = sse.json()
        assert sse.event == data["type"], "event: names the data's type"
        if sse.event == "error":  # the SDK raises APIStatusError with this body
            seen.error = ErrorResponse.model_validate(data).error.message
            continue
        if sse.event != "ping":
            assert last != "message_stop", f"{sse.event} after message_stop"
            event = RAW_EVENT.validate_python(data)
            snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=bufs)
        last = sse.event
    assert snapshot is not None and (seen.error is not None or last == "message_stop")
    blocks = snapshot.content
    seen.text = "".join(b.text for b in blocks if b.type == "text")
    seen.thinking = "".join(b.thinking for b in blocks if b.type == "thinking")
    if seen.error is None:
        message = Message.model_validate(snapshot.to_dict())
        seen.stop = {"end_turn": "end", "tool_use": "tool_use", "max_tokens": "length"}[str(message.stop_reason)]
        seen.calls = tuple((b.id, b.name, b.input) for b in message.content if b.type == "tool_use")
        seen.opaque = tuple(b.signature for b in message.content if b.type == "thinking" and b.signature)
        u = message.usage
        seen.usage = (
            u.input_tokens + (u.cache_read_input_tokens or 0) + (u.cache_creation_input_tokens or 0),
            u.output_tokens,
        )
    return seen


def read_responses(raw: bytes) -> Seen:
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=omit)
    seen, events, final = Seen(), [], None
    for n, sse in enumerate(OpenAIDecoder().iter_bytes(iter([raw]))):
        assert final is None, f"an event after the terminal one: {sse.event}"
        data = sse.json()
        assert sse.event == data["type"] and data["sequence_number"] == n
        event = responses_event(data)
        state.handle_event(event)  # the SDK stream helper's own consistency checks
        events.append(event)
        if event.type in ("response.completed", "response.incomplete", "response.failed"):
            final = event.response
    assert final is not None, "no terminal event"
    if final.status == "failed":
        errors = [e for e in events if e.type == "error"]
        assert [e.type for e in events[-2:]] == ["error", "response.failed"] and len(errors) == 1
        assert final.error is not None and final.error.message == errors[0].message
        seen.error = errors[0].message
    else:
        seen.stop = "length" if final.status == "incomplete" else "end"
        assert final.usage is not None
        seen.usage = (final.usage.input_tokens, final.usage.output_tokens)
    for item in final.output:
        if item.type == "message":
            seen.text += "".join(c.text for c in item.content if c.type == "output_text")
        elif item.type == "reasoning":
            seen.thinking += "\n\n".join(s.text for s in item.summary)
            seen.opaque += (item.encrypted_content,) if item.encrypted_content else ()
        elif item.type == "function_call":
            seen.calls += ((item.call_id, item.name, json.loads(item.arguments)),)
            seen.stop = "tool_use" if seen.stop == "end" else seen.stop
    return seen


READERS = {CHAT: read_chat, MESSAGES: read_messages, RESPONSES: read_responses}


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize(("upstream", "scenario"), UPSTREAMS)
def test_upstream_transcript_is_real(upstream: str, scenario: str) -> None:
    """Every input event validates against the SDK's type for that format (errors included)."""
    events = upstream_events(upstream, scenario)
    for obj in events[:-1] if upstream == CHAT and scenario != "error" else events:
        if upstream == CHAT and "error" in obj:
            assert scenario == "error" and obj is events[-1]
            assert isinstance(obj["error"]["message"], str)
        elif upstream == CHAT:
            ChatCompletionChunk.model_validate(obj)
        elif upstream == MESSAGES and obj["type"] == "error":
            ErrorResponse.model_validate(obj)
        elif upstream == MESSAGES:
            assert obj["type"] == "ping" or RAW_EVENT.validate_python(obj)
        else:
            responses_event(obj)
    if upstream == CHAT and scenario != "error":
        assert events[-1] == "[DONE]" and events[-2]["choices"] == [] and events[-2]["usage"]
    if upstream == RESPONSES:
        assert [e["sequence_number"] for e in events] == list(range(len(events)))
    # The transcript says what EXPECT says: the same readers, fed the upstream's own bytes.
    raw = (GOLDEN / "upstream" / upstream / f"{scenario}.sse").read_bytes()
    seen = READERS[upstream](raw)
    want = EXPECT[(upstream, scenario)]
    assert (seen.text, seen.thinking, seen.calls, seen.error) == (want.text, want.thinking, want.calls, want.error)
    if want.error is None:
        assert (seen.stop, seen.usage) == (want.stop, want.usage)


@pytest.mark.parametrize(("client", "upstream", "scenario"), [pytest.param(*c.values, id=c.id) for c in CASES])
def test_golden_bytes(client: str, upstream: str, scenario: str) -> None:
    """The translator's output equals the stored golden file byte for byte (or rewrites it)."""
    out = translate(client, upstream, scenario)
    path = golden_path(client, upstream, scenario)
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(out)
        return
    assert path.exists(), f"{path} is missing: run UPDATE_GOLDEN=1 .venv/bin/pytest {__file__}"
    assert out == path.read_bytes(), f"{path} differs from the translator's output (UPDATE_GOLDEN=1 to accept)"


@pytest.mark.parametrize(("client", "upstream", "scenario"), CASES)
def test_sdk_reads_golden(client: str, upstream: str, scenario: str) -> None:
    """The SDK's accumulators read the golden into what the upstream said; nothing opaque but a token."""
    path = golden_path(client, upstream, scenario)
    assert path.exists(), f"{path} is missing: run UPDATE_GOLDEN=1 .venv/bin/pytest {__file__}"
    seen = READERS[client](path.read_bytes())
    want = EXPECT[(upstream, scenario)]
    assert seen.text == want.text
    assert seen.thinking == want.thinking
    assert seen.calls == want.calls
    assert seen.error == want.error
    if want.error is None:
        assert seen.stop == want.stop
        assert seen.usage == want.usage
    # A signature reaches another provider's client only inside the router's token (carry.py): a
    # Responses client of Anthropic thinking gets the block back to send it on the next turn.
    carried = client == RESPONSES and upstream == MESSAGES and scenario == "thinking"
    assert all(carry.is_token(o) for o in seen.opaque), "a signature or encrypted reasoning crossed bare"
    assert len(seen.opaque) == carried


def _sdk(client: str, raw: bytes) -> Any:
    """The official client whose HTTP transport answers every request with `raw` as SSE."""
    hc = httpx2.Client(
        transport=httpx2.MockTransport(
            lambda _: httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=raw)
        )
    )
    if client == MESSAGES:
        return anthropic.Anthropic(api_key="k", base_url="http://golden", http_client=hc, max_retries=0)
    return openai.OpenAI(api_key="k", base_url="http://golden/v1", http_client=hc, max_retries=0)


@pytest.mark.parametrize(("client", "upstream", "scenario"), CASES)
def test_sdk_stream_helper_accepts_golden(client: str, upstream: str, scenario: str) -> None:
    """The helpers a real client calls (protocols.md F), end to end over the golden bytes."""
    sdk, want = _sdk(client, golden_path(client, upstream, scenario).read_bytes()), EXPECT[(upstream, scenario)]
    ask: dict[str, Any] = {"model": "client-model", "messages": [{"role": "user", "content": "hi"}]}
    if client == MESSAGES:
        fails: Any = pytest.raises(anthropic.APIStatusError) if want.error else nullcontext()
        with fails as raised, sdk.messages.stream(max_tokens=1024, **ask) as s:
            blocks = s.get_final_message().content
            assert "".join(b.text for b in blocks if b.type == "text") == want.text
            assert len([b for b in blocks if b.type == "tool_use"]) == len(want.calls)
        if raised:
            assert raised.value.status_code == 200 and raised.value.body["error"]["message"] == want.error
    elif client == CHAT:
        fails = pytest.raises(openai.APIError) if want.error else nullcontext()
        with fails as raised, sdk.chat.completions.stream(stream_options={"include_usage": True}, **ask) as s:
            for _ in s:
                pass
            assert (s.get_final_completion().choices[0].message.content or "") == want.text
        if raised:
            assert raised.value.message == want.error
    else:
        with sdk.responses.stream(model="client-model", input="hi") as s:
            types = [e.type for e in s]
            if want.error:
                assert types[-2:] == ["error", "response.failed"]
                with pytest.raises(RuntimeError, match=r"response\.completed"):
                    s.get_final_response()
            else:
                assert types[-1] == "response.completed" and s.get_final_response().output_text == want.text
