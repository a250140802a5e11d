"""Anthropic's signed thinking carried through a Responses client (router/formats/codec/carry.py):
the token itself, and the whole loop without sockets: an Anthropic answer (whole or streamed) is
written for a Responses client, the client sends its output back on the next turn (as Codex does,
and as the SDK's `input += response.output` does), and the request read from it gives Anthropic
the same signed block, so thinking stays on across the tool turn."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx2
import openai
import orjson
import pytest
from openai.types.responses import Response

from router.config import Format
from router.formats import wire
from router.formats.codec import carry, chat, ir, messages, responses
from router.formats.responses import RESPONSES, strip_carried_thinking
from router.formats.sse import SSEParser
from router.formats.translate import StreamTranslator, translate_answer

A: Format = "anthropic-messages"
R: Format = "openai-responses"
SIG = "EqQBCkgIARABGAIiQL7vZ3m0xW1cYQ2m9mVt3Hk4oX6pB9rJ2sN5tE8uC1dF0gH3iK6lM9nO2pQ5rS8tU1vW4xY7zA0bC3dE6fG9hI"
THOUGHT = 'Paris first: call get_weather. Café ☕, "quoted" and\nnew lines survive.'
REDACTED = "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpPkNRj2YfWXGmKDxH4mPnZ5sQ7vB8URo"
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


# ---------------------------------------------------------------- the token


@pytest.mark.parametrize(
    "thinking",
    [
        ir.Thinking(text=THOUGHT, signature=SIG, origin=A),
        ir.Thinking(text="", signature=SIG, origin=A),  # thinking not displayed: the signature alone
        ir.Thinking(redacted=REDACTED, origin=A),
    ],
    ids=["signed", "signature-only", "redacted"],
)
def test_token_round_trip(thinking: ir.Thinking) -> None:
    token = carry.write(thinking)
    assert token is not None and token.startswith("rtr1.") and carry.is_token(token)
    raw = token.removeprefix("rtr1.")
    assert "=" not in raw and set(raw) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    body = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    assert body["o"] == A
    assert carry.read(token) == thinking


@pytest.mark.parametrize(
    "thinking",
    [
        ir.Thinking(text="unsigned", origin=A),  # nothing Anthropic could verify
        ir.Thinking(text="chat reasoning", origin="openai-chat"),
        ir.Thinking(text="own", encrypted="gAAAAABo", origin=R),  # needs no token: it is the real thing
        ir.Thinking(text="no origin", signature="sig"),
    ],
)
def test_nothing_to_carry(thinking: ir.Thinking) -> None:
    assert carry.write(thinking) is None


def _token(body: Any) -> str:
    return "rtr1." + base64.urlsafe_b64encode(orjson.dumps(body)).rstrip(b"=").decode()


GOOD = carry.write(ir.Thinking(text="t", signature="s", origin=A))
assert GOOD is not None
NOT_OURS = [
    GOOD[:-3],  # truncated: no longer JSON
    GOOD[:12] + "*" + GOOD[13:],  # a character that is not base64url
    GOOD + "é",  # not ASCII
    "rtr1.",
    "rtr1.!!!!",
    _token([1, 2]),
    _token({"o": "openai-chat", "t": "t", "s": "s"}),  # a format that signs nothing
    _token({"o": A, "t": "t"}),  # no signature
    _token({"o": A, "t": "t", "s": ""}),
    _token({"o": A, "t": 1, "s": "s"}),
    _token({"o": A, "r": "data", "s": "s"}),  # both shapes at once
    _token({"o": A, "r": 5}),
    "gAAAAABoRealOpenAIEncryptedContent==",  # another provider's real encrypted_content
    None,
    7,
]


@pytest.mark.parametrize("value", NOT_OURS)
def test_read_rejects_what_is_not_a_token(value: Any) -> None:
    assert carry.read(value) is None


# ---------------------------------------------------------------- the loop, helpers


def anthropic_answer(*thinking: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic answer: the given thinking blocks, a line of text, one get_weather call."""
    return {
        "id": "msg_01Carry",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [
            *thinking,
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 40, "output_tokens": 30},
    }


SIGNED_BLOCK = {"type": "thinking", "thinking": THOUGHT, "signature": SIG}
REDACTED_BLOCK = {"type": "redacted_thinking", "data": REDACTED}


def anthropic_stream(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The stream events Anthropic sends for `answer` (thinking text and tool input in pieces)."""
    start = {**answer, "content": [], "stop_reason": None, "usage": {"input_tokens": 40, "output_tokens": 1}}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for i, block in enumerate(answer["content"]):
        kind = block["type"]
        shell: dict[str, Any] = block  # redacted_thinking arrives whole
        deltas: list[dict[str, Any]] = []
        if kind == "thinking":
            shell = {"type": "thinking", "thinking": "", "signature": ""}
            text = block["thinking"]
            deltas = [
                {"type": "thinking_delta", "thinking": text[:10]},
                {"type": "thinking_delta", "thinking": text[10:]},
            ]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif kind == "text":
            shell, deltas = {"type": "text", "text": ""}, [{"type": "text_delta", "text": block["text"]}]
        elif kind == "tool_use":
            shell = {**block, "input": {}}
            args = orjson.dumps(block["input"]).decode()
            deltas = [{"type": "input_json_delta", "partial_json": args[:5]}]
            deltas.append({"type": "input_json_delta", "partial_json": args[5:]})
        events.append({"type": "content_block_start", "index": i, "content_block": shell})
        events += [{"type": "content_block_delta", "index": i, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": i})
    stop = {"stop_reason": answer["stop_reason"], "stop_sequence": None}
    events.append({"type": "message_delta", "delta": stop, "usage": {"output_tokens": 30}})
    events.append({"type": "message_stop"})
    return events


def responses_client_gets(answer: dict[str, Any], stream: bool) -> Response:
    """What a Responses client holds after the router translated `answer`: the SDK's Response, read
    from the whole body, or accumulated by the SDK's stream helper from the translated SSE."""
    if not stream:
        return Response.model_validate(translate_answer(wire(A), wire(R), answer, "client-model"))
    t = StreamTranslator(wire(A), wire(R), "client-model", True)
    raw = b"".join(t.feed(ev) for ev in anthropic_stream(answer)) + t.finish()
    for ev in SSEParser().feed(raw):  # the token is on output_item.done and in response.completed
        data = orjson.loads(ev.data)
        if data["type"] == "response.output_item.done" and data["item"]["type"] == "reasoning":
            assert carry.is_token(data["item"]["encrypted_content"])

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=raw)

    with httpx2.Client(transport=httpx2.MockTransport(handler)) as http:
        client = openai.OpenAI(api_key="k", base_url="http://t/v1", http_client=http, _strict_response_validation=True)
        with client.responses.stream(model="client-model", input="weather?") as s:
            for _ in s:
                pass
            return s.get_final_response()


def replay(resp: Response, how: str) -> list[dict[str, Any]]:
    """The output items as a client sends them back: the SDK's dicts, or Codex's shape (no item id,
    summary and encrypted_content kept: codex-rs skips serializing a reasoning item's id)."""
    out = [o.to_dict() for o in resp.output]
    if how == "codex":
        out = [{k: v for k, v in o.items() if not (o["type"] == "reasoning" and k == "id")} for o in out]
    return out


def next_request(resp: Response, how: str) -> dict[str, Any]:
    """The next Responses request of the tool loop, as Codex sends it."""
    [call] = [o for o in resp.output if o.type == "function_call"]
    return {
        "model": "client-model",
        "input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
            *replay(resp, how),
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
        "tools": [{"type": "function", "name": "get_weather", "parameters": WEATHER, "strict": False}],
        "reasoning": {"effort": "high", "summary": "auto"},
        "include": ["reasoning.encrypted_content"],
        "store": False,
        "stream": True,
    }


def to_anthropic(body: dict[str, Any]) -> dict[str, Any]:
    return messages.write_request(responses.read_request(body), "claude-x", ir.RequestOptions())


# ---------------------------------------------------------------- the loop


@pytest.mark.parametrize("how", ["codex", "sdk"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(
    ("block", "summary"), [(SIGNED_BLOCK, THOUGHT), (REDACTED_BLOCK, None)], ids=["signed", "redacted"]
)
def test_thinking_survives_the_tool_turn(block: dict[str, Any], summary: str | None, stream: bool, how: str) -> None:
    """Anthropic answer -> Responses client (token in encrypted_content) -> next request -> Anthropic
    gets the same block back, first in the assistant turn, and thinking stays on."""
    resp = responses_client_gets(anthropic_answer(block), stream)
    [reasoning] = [o for o in resp.output if o.type == "reasoning"]
    assert [s.text for s in reasoning.summary] == ([summary] if summary else [])
    assert carry.is_token(reasoning.encrypted_content)
    assert SIG not in resp.to_json() and REDACTED not in resp.to_json(), "nothing bare reaches the client"

    sent = to_anthropic(next_request(resp, how))
    assert sent["thinking"]["type"] == "enabled", "thinking stays on across the tool turn"
    assistant = [m for m in sent["messages"] if m["role"] == "assistant"]
    assert len(assistant) == 1
    assert assistant[0]["content"][0] == block, "the block goes back exactly as Anthropic made it"
    assert [b["type"] for b in assistant[0]["content"][1:]] == ["text", "tool_use"]
    assert sent["messages"][-1]["content"][0]["type"] == "tool_result"


def test_summary_edited_by_the_client_does_not_change_the_block() -> None:
    """The signature covers the text: the token's text goes back, whatever the summary now says."""
    resp = responses_client_gets(anthropic_answer(SIGNED_BLOCK), stream=False)
    body = next_request(resp, "codex")
    [item] = [i for i in body["input"] if i.get("type") == "reasoning"]
    item["summary"] = [{"type": "summary_text", "text": "shortened by the client"}]
    assert to_anthropic(body)["messages"][1]["content"][0] == SIGNED_BLOCK


@pytest.mark.parametrize("value", NOT_OURS[:-2])
def test_a_tampered_token_is_handled_as_before(value: str) -> None:
    """A token that does not decode is another provider's encrypted content, as before this
    existed: kept for a Responses upstream, dropped for Anthropic, where thinking then goes off
    for the tool turn (its signed block is missing). Never an error."""
    resp = responses_client_gets(anthropic_answer(SIGNED_BLOCK), stream=False)
    body = next_request(resp, "sdk")
    [item] = [i for i in body["input"] if i.get("type") == "reasoning"]
    item["encrypted_content"] = value
    req = responses.read_request(body)
    [thinking] = [p for m in req.messages for p in m.parts if isinstance(p, ir.Thinking)]
    assert thinking == ir.Thinking(text=THOUGHT, encrypted=value, id=item["id"], origin=R)
    sent = messages.write_request(req, "claude-x", ir.RequestOptions())
    assert "thinking" not in sent
    assert all(b["type"] not in ("thinking", "redacted_thinking") for m in sent["messages"] for b in m["content"])


def test_real_encrypted_content_still_goes_to_a_responses_upstream() -> None:
    """OpenAI's own encrypted_content is not a token: read as before, written back unchanged."""
    body = {
        "model": "m",
        "input": [{"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAAABoReal"}],
    }
    written = responses.write_request(responses.read_request(body), "gpt-x", ir.RequestOptions())
    assert written["input"] == [{"type": "reasoning", "summary": [], "encrypted_content": "gAAAAABoReal", "id": "rs_1"}]


def test_carried_thinking_never_reaches_another_format() -> None:
    """Rebuilt signed thinking goes back only to Anthropic: a chat or Responses upstream (a
    translated request, or a native Responses one after a failover) gets the turn without it."""
    resp = responses_client_gets(anthropic_answer(SIGNED_BLOCK), stream=False)
    body = next_request(resp, "sdk")
    req = responses.read_request(body)
    for written in (
        chat.write_request(req, "gpt-x", ir.RequestOptions()),
        responses.write_request(req, "gpt-x", ir.RequestOptions()),
        RESPONSES.prepare(body, "gpt-x", frozenset(), stream=True).body,
    ):
        text = orjson.dumps(written).decode()
        assert SIG not in text and "rtr1." not in text
        assert all(i.get("type") != "reasoning" for i in written.get("input", []))


def test_strip_carried_thinking_copies_only_what_changes() -> None:
    carried: dict[str, Any] = {"type": "reasoning", "summary": [], "encrypted_content": GOOD}
    real = {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAAABoReal"}
    text = {"type": "message", "role": "user", "content": "hi"}
    body: dict[str, Any] = {"model": "m", "input": [text, carried, real]}
    out = strip_carried_thinking(body)
    assert out["input"] == [text, real] and out["input"][1] is real
    assert body["input"] == [text, carried, real], "the client's body is not changed"
    clean = {"model": "m", "input": [text, real]}
    assert strip_carried_thinking(clean) is clean
    assert strip_carried_thinking({"model": "m", "input": "hi"}) == {"model": "m", "input": "hi"}
