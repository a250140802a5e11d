"""Hostile input over real sockets (the first hardening changes): every answer is the endpoint's own
error envelope, never a 500, and nothing from the request is echoed without a limit."""

from __future__ import annotations

import socket
import time

import orjson
import pytest
from structlog.testing import capture_logs

from tests.conftest import BODIES

CHAT, MESSAGES = "/v1/chat/completions", "/v1/messages"


def deep(levels: int) -> bytes:
    return b'{"model": "m", "messages": [' + b"[" * levels + b"]" * levels + b"]}"


@pytest.mark.parametrize("path", [CHAT, MESSAGES])
@pytest.mark.parametrize("levels", [100, 300, 1000])
def test_deeply_nested_json_is_a_400_in_the_endpoints_envelope(fakes, config_factory, router_server, path, levels):
    """Nested past 64 levels (254+ used to crash the serializer with a 500): a 400, the
    endpoint's own error shape, nothing sent upstream."""
    rs = router_server(config_factory({"m": [("alpha", 0)]}))
    r = rs.client.post(path, content=deep(levels), headers={"content-type": "application/json"})
    assert r.status_code == 400
    body = r.json()
    message = body["error"]["message"]
    assert "deeper than 64 levels" in message
    assert (body["type"] == "error") if path == MESSAGES else (body["error"]["type"] == "invalid_request_error")
    assert fakes.served("alpha") == 0


def test_a_huge_model_name_is_refused_and_never_echoed(fakes, config_factory, router_server):
    """A model name of 1,500 characters: a 400 whose message and access line stay short."""
    rs = router_server(config_factory({"m": [("alpha", 0)]}))
    with capture_logs() as logs:
        r = rs.post(CHAT, {**BODIES[CHAT], "model": "x" * 1500})
        # the access line is written once the answer has left, so it may trail the client
        rs.wait_until(lambda: any(e["event"] == "request" for e in logs))
    assert r.status_code == 400 and len(r.content) < 500 and "longer than 256" in r.text
    [line] = [e for e in logs if e["event"] == "request"]
    assert len(str(line)) < 2000


def test_a_huge_unknown_path_is_echoed_cut(fakes, config_factory, router_server):
    """An unknown path of 20,000 characters: a 404 whose message carries at most 256 of them."""
    rs = router_server(config_factory({"m": [("alpha", 0)]}))
    with capture_logs() as logs:
        r = rs.client.get("/v1/" + "a" * 20_000)
        rs.wait_until(lambda: any(e["event"] == "request" for e in logs))
    assert r.status_code == 404 and len(r.json()["error"]["message"]) < 400
    assert all(len(str(e.get("path", ""))) <= 300 for e in logs)


@pytest.mark.parametrize("status", [401, 403])
def test_a_provider_refusing_the_routers_key_fails_over_and_is_taken_out(fakes, config_factory, router_server, status):
    """alpha answers 401/403 (the operator's key for it is wrong or revoked): the client gets
    beta's answer, never a 401 about its own key; alpha's route breaker opens at once; the log
    names the provider at error level."""
    rs = router_server(config_factory({"m": [("alpha", 0), ("beta", 1)]}))
    fakes.set("alpha", status=status)
    with capture_logs() as logs:
        r = rs.post(CHAT, BODIES[CHAT])
    assert r.status_code == 200 and r.headers["x-router-provider"] == "beta"
    assert rs.ready().json()["providers"]["alpha"]["routes"]["alpha/alpha-m"]["breaker"] == "open"
    [refused] = [e for e in logs if e["event"] == "provider_credential_refused"]
    assert refused["log_level"] == "error" and refused["provider"] == "alpha"
    assert rs.post(CHAT, BODIES[CHAT]).headers["x-router-provider"] == "beta"
    assert fakes.served("alpha") == 1, "not asked again while its breaker is open"


def test_every_provider_refusing_the_routers_key_is_a_503(fakes, config_factory, router_server):
    """No route left: 503 in the endpoint's envelope, naming the attempts; never the upstream's 401."""
    rs = router_server(config_factory({"m": [("alpha", 0), ("beta", 1)]}))
    fakes.set("alpha", status=401)
    fakes.set("beta", status=403)
    r = rs.post(MESSAGES, BODIES[MESSAGES])
    assert r.status_code == 503 and r.json()["type"] == "error"
    assert "status_401" in r.json()["error"]["message"] and "status_403" in r.json()["error"]["message"]


@pytest.mark.parametrize("path", [CHAT, MESSAGES])
def test_an_upstream_error_never_echoes_the_providers_key(fakes, config_factory, router_server, path):
    """A provider whose 400 message echoes part of the router's key for it (and a key-shaped
    string): the client gets the error's type and message with both masked, in its envelope."""
    rs = router_server(config_factory({"m": [("alpha", 0)]}))
    fakes.set("alpha", status=400, text="invalid request for key provider-key-alpha (acct sk-live-12345678)")
    r = rs.post(path, BODIES[path])
    assert r.status_code == 400
    assert "provider-key-alpha" not in r.text and "sk-live-12345678" not in r.text and "[redacted]" in r.text
    assert "invalid request for key" in r.text


@pytest.mark.parametrize(("path", "etype"), [(CHAT, "invalid_request_error"), (MESSAGES, "invalid_request_error")])
def test_405_carries_allow_and_an_invalid_request_type(fakes, config_factory, router_server, path, etype):
    """A GET on a POST endpoint: 405 with `Allow: POST`, in the endpoint's envelope."""
    rs = router_server(config_factory({"m": [("alpha", 0)]}))
    r = rs.client.get(path)
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert r.json()["error"]["type"] == etype


def test_no_redirect_is_built_from_the_host_header(fakes, config_factory, router_server):
    """A trailing slash is not redirected (a Location from the client's Host header would be an
    open redirect behind a gateway): a 404 in the envelope."""
    rs = router_server(config_factory({"m": [("alpha", 0)]}))
    r = rs.client.get("/v1/models/", headers={"host": "evil.example"}, follow_redirects=False)
    assert r.status_code == 404 and "location" not in r.headers


@pytest.mark.parametrize(
    ("path", "field"), [(CHAT, "max_tokens"), (CHAT, "max_completion_tokens"), (MESSAGES, "max_tokens")]
)
@pytest.mark.parametrize("value", [2**63, 10**30, -1, 1e30])
def test_an_absurd_output_cap_is_refused_before_any_budget_arithmetic(
    fakes, config_factory, router_server, path, field, value
):
    """max_tokens of 2**63 or 1e30 (which overflowed the reservation arithmetic): a 400 naming the
    field; nothing reserved, nothing sent upstream, and the next request is served."""
    rs = router_server(config_factory({"m": [("alpha", 0)]}))
    r = rs.post(path, {**BODIES[path], field: value})
    assert r.status_code == 400 and field in r.text and fakes.served("alpha") == 0
    assert rs.post(path, BODIES[path]).status_code == 200


HOSTILE_HEADERS = {
    "openai-organization": "org-the-operator-pays",
    "openai-project": "proj-x",
    "x-forwarded-for": "10.1.2.3",
    "cookie": "session=abc",
    "x-custom": "y" * 30_000,
    "anthropic-beta": "tools-2025",
    "openai-beta": "responses=v1",
    "x-title": "my-app",
}


@pytest.mark.parametrize(
    ("path", "speaks", "passed"),
    [
        (CHAT, "openai-chat", {"openai-beta"}),
        (MESSAGES, "anthropic-messages", {"anthropic-beta"}),
        (MESSAGES, "openai-chat", {"openai-beta"}),  # translated: anthropic-* stays behind
        (CHAT, "anthropic-messages", {"anthropic-beta"}),
    ],
)
def test_only_allow_listed_client_headers_reach_the_provider(
    fakes, config_factory, router_server, path, speaks, passed
):
    """Of the client's headers, only those the upstream's API defines (and the provider's
    `forward_headers`) go upstream: never organisation or project selectors, cookies,
    forwarding or custom headers."""
    cfg = config_factory(
        {"m": [("alpha", 0)]}, formats={"alpha": [speaks]}, provider_options={"alpha": {"forward_headers": ["x-title"]}}
    )
    rs = router_server(cfg)
    r = rs.post(path, BODIES[path], headers=HOSTILE_HEADERS)
    assert r.status_code == 200, r.text
    sent = fakes.stats("alpha")["last_request"]["headers"]
    assert set(HOSTILE_HEADERS) & set(sent) == passed | {"x-title"}


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_leaving_before_the_first_byte_cancels_the_upstream_request(
    fakes, config_factory, router_server, tmp_path, stream
):
    """The provider takes 3 s to answer; the client leaves after 0.3 s. The attempt is cancelled
    at once (alpha's in-flight count drops to 0 long before the answer would have come), the
    access line and the metrics say 499, and the ledger bills the input estimate, marked so."""
    price = {"m": {"input_per_mtok": 1000.0, "output_per_mtok": 2000.0}}
    cfg = config_factory({"m": [("alpha", 0)]}, prices=price, ledger={"path": str(tmp_path / "usage.jsonl")})
    rs = router_server(cfg)
    fakes.set("alpha", latency_ms=3000)
    body = orjson.dumps({**BODIES[CHAT], "stream": stream})
    host, port = rs.url.removeprefix("http://").split(":")
    with capture_logs() as logs:
        with socket.create_connection((host, int(port))) as sock:
            head = f"POST {CHAT} HTTP/1.1\r\nhost: x\r\ncontent-length: {len(body)}\r\n\r\n"
            sock.sendall(head.encode() + body)
            rs.wait_until(lambda: rs.ready().json()["providers"]["alpha"]["inflight"] == 1)
        started = time.monotonic()
        rs.wait_until(lambda: rs.ready().json()["providers"]["alpha"]["inflight"] == 0)
        assert time.monotonic() - started < 2.0, "the upstream request was left running"
        rs.wait_until(lambda: any(e["event"] == "request" for e in logs))
    [line] = [e for e in logs if e["event"] == "request"]
    assert line["status"] == 499
    metric = 'router_requests_total{endpoint="/v1/chat/completions",model="m",provider="none",status="499"} 1.0'
    assert metric in rs.client.get("/metrics").text
    [rec] = [orjson.loads(x) for x in (tmp_path / "usage.jsonl").read_bytes().splitlines()]
    assert rec["status"] == 499 and rec["estimated"] is True and rec["input_tokens"] > 0 and rec["cost_usd"] > 0
