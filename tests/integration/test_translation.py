"""Translation over real sockets, beyond the SDK round trips: failover through a translator,
upstream errors in the client's envelope, a broken translated stream, billing of translated
answers, and the per-route options (default max_tokens, thinking form, dropped sampling fields).
What the router sent upstream is read back from the fake's /_admin/last."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from structlog.testing import capture_logs

from tests.conftest import ANTHROPIC, CHAT, RESPONSES

CLIENT_BODIES: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": CHAT,
    "/v1/messages": ANTHROPIC,
    "/v1/responses": RESPONSES,
}
UPSTREAM_PATH = {
    "openai-chat": "/v1/chat/completions",
    "anthropic-messages": "/v1/messages",
    "openai-responses": "/v1/responses",
}


def sent(fakes, name: str, fmt: str) -> dict[str, Any]:
    r = httpx.get(f"{fakes[name].url}/_admin/last", params={"path": UPSTREAM_PATH[fmt]}, timeout=5)
    assert r.status_code == 200, f"{name} got nothing on {UPSTREAM_PATH[fmt]}"
    body: dict[str, Any] = r.json()
    return body


def text_of(path: str, body: dict[str, Any]) -> str:
    if path == "/v1/chat/completions":
        return str(body["choices"][0]["message"]["content"])
    if path == "/v1/messages":
        return "".join(b["text"] for b in body["content"] if b["type"] == "text")
    return "".join(p["text"] for o in body["output"] if o["type"] == "message" for p in o["content"])


@pytest.mark.parametrize("stream", [False, True])
def test_failover_lands_on_a_provider_that_needs_translation(fakes, config_factory, router_server, stream):
    """The native provider fails before its first byte; the translated one serves."""
    config = config_factory(
        {"m": [("alpha", 0), ("beta", 1)]}, formats={"alpha": ["openai-chat"], "beta": ["anthropic-messages"]}
    )
    rs = router_server(config)
    fakes.set("alpha", status=503)
    r = rs.post("/v1/chat/completions", {**CHAT, "stream": stream})
    assert r.status_code == 200
    assert r.headers["x-router-provider"] == "beta" and r.headers["x-router-attempts"] == "2"
    if stream:
        assert "Hello from beta." in "".join(
            orjson.loads(line[6:])["choices"][0]["delta"].get("content") or ""
            for line in r.text.splitlines()
            if line.startswith("data: {") and orjson.loads(line[6:])["choices"]
        )
        assert r.text.rstrip().endswith("data: [DONE]")
    else:
        assert text_of("/v1/chat/completions", r.json()) == "Hello from beta."


@pytest.mark.parametrize(
    ("path", "upstream"),
    [
        ("/v1/chat/completions", "anthropic-messages"),
        ("/v1/messages", "openai-chat"),
        ("/v1/responses", "anthropic-messages"),
    ],
)
def test_upstream_client_error_comes_back_in_the_clients_envelope(fakes, config_factory, router_server, path, upstream):
    config = config_factory({"m": [("alpha", 0)]}, formats={"alpha": [upstream]})
    rs = router_server(config)
    fakes.set("alpha", status=400)
    r = rs.post(path, CLIENT_BODIES[path])
    assert r.status_code == 400
    body = r.json()
    if path == "/v1/messages":
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
        assert body["error"]["message"]
    else:
        assert set(body["error"]) >= {"message", "type", "code"} and body["error"]["message"]


@pytest.mark.parametrize(
    ("path", "upstream", "ending"),
    [
        ("/v1/chat/completions", "anthropic-messages", 'data: {"error"'),
        ("/v1/messages", "openai-responses", "event: error"),
        ("/v1/responses", "openai-chat", "event: response.failed"),
    ],
)
def test_a_translated_stream_cut_mid_way_ends_with_the_clients_error(
    fakes, config_factory, router_server, path, upstream, ending
):
    config = config_factory({"m": [("alpha", 0)]}, formats={"alpha": [upstream]})
    rs = router_server(config)
    fakes.set("alpha", reset_after_chunks=2, chunks=4)
    r = rs.post(path, {**CLIENT_BODIES[path], "stream": True})
    assert r.status_code == 200
    events = [e for e in r.text.split("\n\n") if e.strip()]
    assert events[-1].startswith(ending), events[-3:]
    assert "[DONE]" not in r.text


def test_translated_answers_are_billed_from_the_upstreams_usage(fakes, config_factory, router_server, tmp_path):
    """The ledger counts what the upstream reported, whatever format the client saw."""
    from router.billing.auth import hash_key

    key = "toc-bill-" + "b" * 40
    config = config_factory(
        {"m": [("alpha", 0)]},
        formats={"alpha": ["anthropic-messages"]},
        plans=[{"name": "p", "models": ["*"], "budget": {"usd": 10, "window": "1h"}}],
        keys=[{"id": "bill", "hash": hash_key(key), "plan": "p"}],
        server={"allow_anonymous": False},
        prices={"m": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}},
        ledger={"path": str(tmp_path / "u.jsonl")},
    )
    rs = router_server(config)
    fakes.set("alpha", cached_tokens=3)
    whole = rs.post("/v1/chat/completions", CHAT, headers={"authorization": f"Bearer {key}"}).json()
    streamed = rs.post("/v1/responses", {**RESPONSES, "stream": True}, headers={"x-api-key": key})
    assert streamed.status_code == 200
    first, second = [orjson.loads(x) for x in (tmp_path / "u.jsonl").read_bytes().splitlines()]
    usage = whole["usage"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == 3
    assert first["cached_tokens"] == 3 and first["input_tokens"] == usage["prompt_tokens"] - 3
    assert first["output_tokens"] == usage["completion_tokens"] > 0
    assert first["cost_usd"] == pytest.approx((first["input_tokens"] + 3) * 1e-6 + first["output_tokens"] * 2e-6)
    assert second["output_tokens"] > 0 and second["estimated"] is False and second["cost_usd"] > 0


def test_anthropic_upstream_gets_the_routes_default_max_tokens(fakes, config_factory, router_server):
    config = config_factory(
        {"m": [("alpha", 0)]},
        formats={"alpha": ["anthropic-messages"]},
        route_options={"alpha": {"default_max_tokens": 1234}},
    )
    rs = router_server(config)
    assert rs.post("/v1/responses", RESPONSES).status_code == 200
    assert sent(fakes, "alpha", "anthropic-messages")["max_tokens"] == 1234
    assert rs.post("/v1/chat/completions", {**CHAT, "max_completion_tokens": 99}).status_code == 200
    assert sent(fakes, "alpha", "anthropic-messages")["max_tokens"] == 99


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ("budget", {"type": "enabled", "budget_tokens": 16000}),
        ("adaptive", {"type": "adaptive"}),
    ],
)
def test_the_route_says_which_thinking_form_its_upstream_takes(fakes, config_factory, router_server, form, expected):
    config = config_factory(
        {"m": [("alpha", 0)]},
        formats={"alpha": ["anthropic-messages"]},
        route_options={"alpha": {"thinking": form, "default_max_tokens": 32000}},
    )
    rs = router_server(config)
    r = rs.post("/v1/chat/completions", {**CHAT, "reasoning_effort": "high"})
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["reasoning_content"].startswith("Thinking about: hi")
    body = sent(fakes, "alpha", "anthropic-messages")
    assert {k: v for k, v in body["thinking"].items() if k in expected} == expected
    if form == "adaptive":
        assert body["output_config"]["effort"] == "high"


@pytest.mark.parametrize("upstream", ["openai-chat", "anthropic-messages"])
def test_rejected_sampling_fields_are_dropped_per_route(fakes, config_factory, router_server, upstream):
    """drop_params works on native pass-through and on translated requests alike."""
    config = config_factory(
        {"m": [("alpha", 0)]},
        formats={"alpha": [upstream]},
        route_options={"alpha": {"drop_params": ["temperature", "top_p"]}},
    )
    rs = router_server(config)
    r = rs.post("/v1/chat/completions", {**CHAT, "temperature": 0.3, "top_p": 0.9, "max_tokens": 50})
    assert r.status_code == 200
    body = sent(fakes, "alpha", upstream)
    assert "temperature" not in body and "top_p" not in body


def test_a_signed_thinking_block_never_reaches_another_provider(fakes, config_factory, router_server):
    """Anthropic history with a signed thinking block: kept for an Anthropic upstream, dropped for chat."""
    history = {
        **ANTHROPIC,
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig-secret"},
                    {"type": "text", "text": "hello"},
                ],
            },
            {"role": "user", "content": "and?"},
        ],
    }
    config = config_factory(
        {"m": [("alpha", 0)], "n": [("beta", 0)]}, formats={"alpha": ["openai-chat"], "beta": ["anthropic-messages"]}
    )
    rs = router_server(config)
    assert rs.post("/v1/messages", history).status_code == 200
    assert "sig-secret" not in orjson.dumps(sent(fakes, "alpha", "openai-chat")).decode()
    assert rs.post("/v1/messages", {**history, "model": "n"}).status_code == 200
    assert sent(fakes, "beta", "anthropic-messages")["messages"][1]["content"][0]["signature"] == "sig-secret"


def test_fields_without_a_counterpart_are_dropped_with_a_debug_line(fakes, config_factory, router_server):
    config = config_factory({"m": [("alpha", 0)]}, formats={"alpha": ["anthropic-messages"]})
    rs = router_server(config)
    with capture_logs() as logs:
        r = rs.post("/v1/chat/completions", {**CHAT, "logprobs": True, "n": 1, "seed": 7})
    assert r.status_code == 200
    body = sent(fakes, "alpha", "anthropic-messages")
    assert not {"logprobs", "n", "seed"} & set(body)
    dropped = [e for e in logs if e["event"] == "fields_dropped"]
    assert dropped and {"logprobs", "seed"} <= set(dropped[0]["fields"])


@pytest.mark.parametrize(
    "body",
    [
        {**CHAT, "messages": "not a list"},
        {**CHAT, "messages": [{"role": "user", "content": 5}]},
        {**CHAT, "tools": [{"type": "function"}]},
    ],
)
def test_a_body_that_cannot_be_translated_is_a_clear_400(fakes, config_factory, router_server, body):
    config = config_factory({"m": [("alpha", 0)]}, formats={"alpha": ["anthropic-messages"]})
    rs = router_server(config)
    r = rs.post("/v1/chat/completions", body)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert "Traceback" not in r.text
    assert fakes.served("alpha") == 0
