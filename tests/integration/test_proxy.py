"""Forwarding over real sockets: each format passes through, credentials are swapped, bad
input gets a clear error in the endpoint's own envelope."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from tests.conftest import ANTHROPIC, BODIES, CHAT, RESPONSES

PATHS = list(BODIES)


@pytest.mark.parametrize("path", PATHS)
def test_non_stream_answer_passes_through_with_model_rewritten(fakes, config_factory, router_server, path):
    """The upstream gets the route's model id; the client gets the upstream's answer."""
    rs = router_server(config_factory({"m": [("alpha", 0)]}))
    r = rs.post(path, BODIES[path])
    assert r.status_code == 200, r.text
    assert "Hello from alpha" in r.text
    assert r.headers["x-router-provider"] == "alpha"
    assert fakes.stats("alpha")["last_request"]["body"]["model"] == "alpha-m"


@pytest.mark.parametrize("path", PATHS)
def test_client_key_never_goes_upstream_provider_key_does(fakes, config_factory, router_server, path):
    """Authorization and x-api-key from the client are replaced by the provider's credentials."""
    rs = router_server(config_factory({"m": [("alpha", 0)]}))
    secret = "toc-client-secret-0123456789abcdefghijklmnop"
    r = rs.post(path, BODIES[path], headers={"authorization": f"Bearer {secret}", "x-api-key": secret})
    assert r.status_code == 200
    sent = fakes.stats("alpha")["last_request"]["headers"]
    assert secret not in orjson.dumps(sent).decode()
    if path == "/v1/messages":
        assert sent["x-api-key"] == "provider-key-alpha" and "anthropic-version" in sent
    else:
        assert sent["authorization"] == "Bearer provider-key-alpha"


def test_request_id_is_forwarded_and_echoed(fakes, config_factory, router_server):
    """A client's x-request-id reaches the upstream and comes back; one is made when absent."""
    rs = router_server(config_factory({"m": [("alpha", 0)]}))
    r = rs.post("/v1/chat/completions", CHAT, headers={"x-request-id": "req-123"})
    assert r.headers["x-request-id"] == "req-123"
    assert fakes.stats("alpha")["last_request"]["headers"]["x-request-id"] == "req-123"
    assert len(rs.post("/v1/chat/completions", CHAT).headers["x-request-id"]) == 32


def test_beta_headers_pass_through_hop_by_hop_do_not(fakes, config_factory, router_server):
    """anthropic-beta reaches the upstream; hop-by-hop and cookies do not."""
    rs = router_server(config_factory({"m": [("alpha", 0)]}))
    rs.post("/v1/messages", ANTHROPIC, headers={"anthropic-beta": "x-2025", "te": "trailers", "cookie": "a=b"})
    sent = fakes.stats("alpha")["last_request"]["headers"]
    assert sent["anthropic-beta"] == "x-2025"
    assert "te" not in sent and "cookie" not in sent


def test_the_clients_trace_context_passes_through_unchanged(fakes, config_factory, router_server):
    """Tracing off: the client's W3C traceparent and tracestate reach the upstream as they came
    (its spans join the client's trace); baggage does not."""
    rs = router_server(config_factory({"m": [("alpha", 0)]}))
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    trace = {"traceparent": parent, "tracestate": "congo=t61rcWkgMzE", "baggage": "user=alice"}
    assert rs.post("/v1/messages", ANTHROPIC, headers=trace).status_code == 200
    sent = fakes.stats("alpha")["last_request"]["headers"]
    assert sent["traceparent"] == parent and sent["tracestate"] == "congo=t61rcWkgMzE"
    assert "baggage" not in sent


def test_models_lists_public_models_in_openai_format(fakes, config_factory, router_server):
    """GET /v1/models returns the public names, not upstream ids."""
    rs = router_server(config_factory({"m": [("alpha", 0)], "n": [("beta", 0)]}))
    body = rs.client.get("/v1/models").json()
    assert body["object"] == "list"
    assert sorted(m["id"] for m in body["data"]) == ["m", "n"]
    assert all(m["object"] == "model" and isinstance(m["created"], int) for m in body["data"])


def test_health_endpoints_report_state(fakes, config_factory, router_server):
    """/health/live is 200; /health/ready shows providers, breakers, EWMA, in-flight, routes."""
    rs = router_server(config_factory({"m": [("alpha", 0), ("beta", 0)]}))
    assert rs.client.get("/health/live").status_code == 200
    rs.post("/v1/chat/completions", CHAT)
    body = rs.ready().json()
    assert body["status"] == "ready"
    alpha = body["providers"]["alpha"]
    assert alpha["healthy"] is True and alpha["breaker"] == "closed" and alpha["inflight"] == 0
    assert "alpha/alpha-m" in alpha["routes"]
    assert body["models"] == {"m": 2}
    served = [p for p in ("alpha", "beta") if body["providers"][p]["routes"][f"{p}/{p}-m"]["ewma_ms"] is not None]
    assert served, "the provider that served has a latency sample"


BAD_INPUTS = [
    (b"{not json", 400, "not valid JSON"),
    (b"[1,2]", 400, "must be a JSON object"),
    (b"", 400, "empty"),
    (b'{"messages": []}', 400, "missing required field 'model'"),
    (b'{"model": 5, "messages": []}', 400, "'model' must be a string, not a number"),
    (b'{"model": "", "messages": []}', 400, "'model' must not be empty"),
    (b'{"model": "m", "stream": "yes", "messages": [], "input": "x"}', 400, "'stream' must be a boolean"),
    (b'{"model": "nope", "messages": [], "input": "x", "max_tokens": 5}', 404, "not served"),
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("raw", "status", "needle"), BAD_INPUTS)
def test_bad_input_gets_clear_error_in_the_endpoints_envelope(
    fakes, config_factory, router_server, path, raw, status, needle
):
    """Malformed JSON, wrong types, missing or unknown model: a clear error, never a traceback."""
    rs = router_server(config_factory({"m": [("alpha", 0)]}))
    r = rs.post(path, content=raw, headers={"content-type": "application/json"})
    assert r.status_code == status
    body = r.json()
    if path == "/v1/messages":
        assert body["type"] == "error" and needle in body["error"]["message"]
    else:
        assert needle in body["error"]["message"] and "type" in body["error"] and "code" in body["error"]
    assert "Traceback" not in r.text
    assert fakes.served("alpha") == 0


@pytest.mark.parametrize("path", PATHS)
def test_body_over_the_limit_is_413(fakes, config_factory, router_server, path):
    """server.max_body_bytes caps the body, declared or streamed."""
    rs = router_server(config_factory({"m": [("alpha", 0)]}))
    big = {**BODIES[path], "pad": "x" * 70000}
    r = rs.post(path, big)
    assert r.status_code == 413
    assert "limit" in r.text

    def chunks() -> Iterator[bytes]:
        yield orjson.dumps(BODIES[path])[:-1] + b', "pad": "'
        for _ in range(10):
            yield b"x" * 8000
        yield b'"}'

    r = rs.post(path, content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_wrong_field_types_per_format(fakes, config_factory, router_server):
    """Core fields of each format are type-checked before anything goes upstream."""
    rs = router_server(config_factory({"m": [("alpha", 0)]}))
    r = rs.post("/v1/chat/completions", {"model": "m", "messages": "hi"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
    r = rs.post("/v1/messages", {"model": "m", "messages": [], "max_tokens": "many"})
    assert r.status_code == 400 and "max_tokens" in r.json()["error"]["message"]
    r = rs.post("/v1/responses", {"model": "m", "input": 42})
    assert r.status_code == 400 and "input" in r.json()["error"]["message"]


def test_upstream_client_error_is_returned_as_is_without_failover(fakes, config_factory, router_server):
    """An upstream 400/404/422 is the client's fault: same status and body, no other route tried."""
    rs = router_server(config_factory({"m": [("alpha", 0), ("beta", 1)]}))
    fakes.set("alpha", status=422)
    r = rs.post("/v1/responses", RESPONSES)
    assert r.status_code == 422
    assert r.json()["error"]["message"]
    assert fakes.served("beta") == 0
    assert rs.ready().json()["providers"]["alpha"]["breaker"] == "closed"
