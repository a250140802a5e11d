"""Keys, plans, budgets and rate limits over real sockets, on the memory backend."""

from __future__ import annotations

import concurrent.futures
import math
from typing import Any

import httpx
import orjson
import pytest
from structlog.testing import capture_logs

from router.billing.auth import hash_key
from router.clock import ManualClock
from tests.conftest import ANTHROPIC, BODIES, CHAT, RESPONSES, RouterServer

PATHS = list(BODIES)
KEY_PRO = "toc-pro-" + "p" * 40
KEY_LITE = "toc-lite-" + "l" * 40
PRICE = {"input_per_mtok": 1000.0, "output_per_mtok": 2000.0, "cached_input_per_mtok": 100.0}


def limited_config(
    config_factory,
    tmp_path,
    budget: float | None = 1.0,
    rpm: int | None = None,
    max_concurrent: int | None = None,
    window: str = "1h",
    **kw: Any,
):
    pro: dict[str, Any] = {"name": "pro", "models": ["m*"]}
    if budget is not None:
        pro["budget"] = {"usd": budget, "window": window}
    if rpm is not None:
        pro["rpm"] = rpm
    if max_concurrent is not None:
        pro["max_concurrent"] = max_concurrent
    return config_factory(
        {"m": [("alpha", 0)], "m-other": [("beta", 0)], "x": [("gamma", 0)]},
        plans=[pro, {"name": "lite", "models": ["x"]}],
        keys=[
            {"id": "acme-pro", "hash": hash_key(KEY_PRO), "plan": "pro"},
            {"id": "acme-lite", "hash": hash_key(KEY_LITE), "plan": "lite"},
        ],
        prices={"m": PRICE, "m-other": PRICE, "x": PRICE},
        server={"allow_anonymous": False},
        ledger={"path": str(tmp_path / "usage.jsonl")},
        **kw,
    )


def auth(key: str = KEY_PRO, style: str = "bearer") -> dict[str, str]:
    return {"authorization": f"Bearer {key}"} if style == "bearer" else {"x-api-key": key}


def ledger(tmp_path) -> list[dict[str, Any]]:
    path = tmp_path / "usage.jsonl"
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def cost_of(usage: dict[str, Any], fmt: str) -> float:
    inp: int
    out: int
    if fmt == "/v1/messages" or fmt == "/v1/responses":
        inp, out = usage["input_tokens"], usage["output_tokens"]
    else:
        inp, out = usage["prompt_tokens"], usage["completion_tokens"]
    return (inp * PRICE["input_per_mtok"] + out * PRICE["output_per_mtok"]) / 1e6


@pytest.mark.parametrize("path", PATHS)
def test_missing_or_unknown_key_is_401_in_the_envelope(fakes, config_factory, router_server, tmp_path, path):
    """No key, or a key the router does not know: 401, nothing forwarded, the key never echoed."""
    rs = router_server(limited_config(config_factory, tmp_path))
    for headers in ({}, auth("toc-unknown-" + "u" * 40), auth("toc-unknown-" + "u" * 40, "x-api-key")):
        r = rs.post(path, BODIES[path], headers=headers)
        assert r.status_code == 401
        body = r.json()
        message = body["error"]["message"]
        assert ("type" in body["error"]) and "toc-unknown" not in r.text
        assert body["type"] == "error" if path == "/v1/messages" else "code" in body["error"]
        assert "key" in message.lower()
    assert fakes.served("alpha") == 0
    assert rs.client.get("/v1/models").status_code == 401
    assert rs.client.get("/health/live").status_code == 200 and rs.ready().status_code == 200


@pytest.mark.parametrize("path", PATHS)
def test_a_key_without_the_bearer_scheme_gets_a_401_saying_how(fakes, config_factory, router_server, tmp_path, path):
    """`Authorization: toc-...` (a valid key, no scheme), another scheme, or an empty Bearer: a 401
    in the endpoint's envelope saying to send `Bearer <key>` or x-api-key; the key never echoed."""
    rs = router_server(limited_config(config_factory, tmp_path))
    for value in (KEY_PRO, f"Token {KEY_PRO}", "Bearer", f"toc-{'z' * 40}"):
        r = rs.post(path, BODIES[path], headers={"authorization": value})
        assert r.status_code == 401, value
        body = r.json()
        message = body["error"]["message"]
        assert "'Authorization: Bearer <key>'" in message and "'x-api-key: <key>'" in message
        assert "no API key in the Authorization header" in message
        assert KEY_PRO not in r.text and "zzzz" not in r.text
        assert body["error"]["type"] == "authentication_error"
        assert body["type"] == "error" if path == "/v1/messages" else body["error"]["code"] == "invalid_api_key"
    assert rs.post(path, BODIES[path], headers={}).json()["error"]["message"].startswith("missing API key: send")
    assert fakes.served("alpha") == 0


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("style", ["bearer", "x-api-key"])
def test_either_key_header_works_on_any_endpoint(fakes, config_factory, router_server, tmp_path, path, style):
    """Bearer and x-api-key are both accepted everywhere; neither goes upstream."""
    rs = router_server(limited_config(config_factory, tmp_path))
    r = rs.post(path, BODIES[path], headers=auth(KEY_PRO, style))
    assert r.status_code == 200
    assert KEY_PRO not in orjson.dumps(fakes.stats("alpha")["last_request"]["headers"]).decode()


@pytest.mark.parametrize("path", PATHS)
def test_model_outside_plan_is_403_unknown_model_is_404(fakes, config_factory, router_server, tmp_path, path):
    """403 names the model and the plan; a model the router does not serve is 404 for any plan."""
    rs = router_server(limited_config(config_factory, tmp_path))
    r = rs.post(path, {**BODIES[path], "model": "x"}, headers=auth())
    assert r.status_code == 403
    text = r.text
    assert "'x'" in text and "'pro'" in text
    assert "x-ratelimit-remaining" in r.headers and "x-ratelimit-reset" in r.headers
    for key in (KEY_PRO, KEY_LITE):
        assert rs.post(path, {**BODIES[path], "model": "nope"}, headers=auth(key)).status_code == 404
    assert fakes.served("gamma") == 0


def test_models_lists_only_the_keys_models(fakes, config_factory, router_server, tmp_path):
    """/v1/models shows each key its plan's models."""
    rs = router_server(limited_config(config_factory, tmp_path))
    pro = rs.client.get("/v1/models", headers=auth(KEY_PRO)).json()
    lite = rs.client.get("/v1/models", headers=auth(KEY_LITE, "x-api-key")).json()
    assert sorted(m["id"] for m in pro["data"]) == ["m", "m-other"]
    assert [m["id"] for m in lite["data"]] == ["x"]


@pytest.mark.parametrize("path", PATHS)
def test_non_stream_cost_is_billed_and_remaining_is_after_it(fakes, config_factory, router_server, tmp_path, path):
    """The answer's usage × price is settled; x-ratelimit-remaining already reflects it."""
    clock = ManualClock(wall_start=1_800_000_000.0)
    rs = router_server(limited_config(config_factory, tmp_path, budget=1.0), clock=clock)
    r = rs.post(path, BODIES[path], headers=auth())
    assert r.status_code == 200
    cost = cost_of(r.json()["usage"], path)
    assert float(r.headers["x-ratelimit-remaining"]) == pytest.approx(1.0 - cost, abs=1e-6)
    assert int(r.headers["x-ratelimit-reset"]) == 1_800_000_000 + 3600
    [rec] = ledger(tmp_path)
    assert rec["key"] == "acme-pro" and rec["model"] == "m" and rec["provider"] == "alpha"
    assert rec["status"] == 200 and rec["request_id"] == r.headers["x-request-id"]
    assert rec["cost_usd"] == pytest.approx(cost, abs=1e-6)


def _stream(rs, path: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[httpx.Response, bytes]:
    with rs.client.stream("POST", path, json={**body, "stream": True}, headers=headers) as r:
        return r, r.read()


@pytest.mark.parametrize("path", PATHS)
def test_stream_is_billed_from_its_final_usage(fakes, config_factory, router_server, tmp_path, path):
    """A stream's cost comes from its usage event; its headers show the budget before it."""
    rs = router_server(limited_config(config_factory, tmp_path, budget=1.0))
    r, _raw = _stream(rs, path, BODIES[path], auth())
    assert r.status_code == 200
    assert float(r.headers["x-ratelimit-remaining"]) == pytest.approx(1.0)
    [rec] = ledger(tmp_path)
    assert rec["cost_usd"] > 0 and rec["estimated"] is False and rec["output_tokens"] > 0


def test_chat_stream_usage_is_requested_upstream_and_hidden_unless_asked(
    fakes, config_factory, router_server, tmp_path
):
    """The router asks for include_usage itself; the usage chunk reaches only clients that asked."""
    rs = router_server(limited_config(config_factory, tmp_path))
    _, raw = _stream(rs, "/v1/chat/completions", CHAT, auth())
    assert fakes.stats("alpha")["last_request"]["body"]["stream_options"]["include_usage"] is True
    assert b'"usage":{' not in raw.replace(b" ", b"")
    _, raw = _stream(rs, "/v1/chat/completions", {**CHAT, "stream_options": {"include_usage": True}}, auth())
    assert b'"usage":{' in raw.replace(b" ", b"")
    assert all(rec["cost_usd"] > 0 for rec in ledger(tmp_path))


@pytest.mark.parametrize("path", PATHS)
def test_stream_cut_short_is_billed_for_what_it_delivered(fakes, config_factory, router_server, tmp_path, path):
    """A reset mid-stream still bills the delivered output (estimated), never zero."""
    rs = router_server(limited_config(config_factory, tmp_path))
    fakes.set("alpha", reset_after_chunks=2)
    r, _raw = _stream(rs, path, BODIES[path], auth())
    assert r.status_code == 200
    [rec] = ledger(tmp_path)
    assert rec["estimated"] is True and rec["output_tokens"] >= 1 and rec["cost_usd"] > 0


@pytest.mark.parametrize("path", PATHS)
def test_spent_budget_is_402_until_the_window_ends(fakes, config_factory, router_server, tmp_path, path):
    """Over budget: 402 with retry-after = time to window end; the window's end restores it."""
    clock = ManualClock()
    rs = router_server(limited_config(config_factory, tmp_path, budget=0.001, window="10m"), clock=clock)
    assert rs.post(path, BODIES[path], headers=auth()).status_code == 200  # admitted below, goes over
    clock.advance(60)
    r = rs.post(path, BODIES[path], headers=auth())
    assert r.status_code == 402
    assert 530 <= int(r.headers["retry-after"]) <= 540
    assert float(r.headers["x-ratelimit-remaining"]) == 0.0
    assert "budget" in r.text
    clock.advance(600)
    r = rs.post(path, BODIES[path], headers=auth())
    assert r.status_code == 200
    assert fakes.served("alpha") == 2


def test_rpm_over_is_429_with_retry_after(fakes, config_factory, router_server, tmp_path):
    """rpm is a sliding 60 s window: the next request waits for the oldest to leave it."""
    clock = ManualClock()
    rs = router_server(limited_config(config_factory, tmp_path, budget=None, rpm=3), clock=clock)
    for _ in range(3):
        assert rs.post("/v1/responses", RESPONSES, headers=auth()).status_code == 200
        clock.advance(10)
    r = rs.post("/v1/responses", RESPONSES, headers=auth())
    assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limit_error"
    assert 29 <= int(r.headers["retry-after"]) <= 31
    clock.advance(31)
    assert rs.post("/v1/responses", RESPONSES, headers=auth()).status_code == 200


def test_max_concurrent_over_is_429(fakes, config_factory, router_server, tmp_path):
    """A second request while the plan's one concurrent slot is held: 429; freed after."""
    rs = router_server(limited_config(config_factory, tmp_path, budget=None, max_concurrent=1))
    fakes.set("alpha", chunk_delay_ms=150, chunks=4)
    with rs.client.stream("POST", "/v1/messages", json={**ANTHROPIC, "stream": True}, headers=auth()) as held:
        r = rs.post("/v1/messages", ANTHROPIC, headers=auth("toc-pro-" + "p" * 40, "x-api-key"))
        assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limit_error"
        assert int(r.headers["retry-after"]) >= 1
        held.read()
    assert rs.post("/v1/messages", ANTHROPIC, headers=auth()).status_code == 200


def test_parallel_requests_overspend_stays_within_one_request(fakes, config_factory, router_server, tmp_path):
    """Against a nearly spent budget, 40 parallel requests end at most one request's cost over."""
    budget = 0.05
    rs: RouterServer = router_server(limited_config(config_factory, tmp_path, budget=budget))
    one = rs.post("/v1/chat/completions", {**CHAT, "max_tokens": 20}, headers=auth())
    single = cost_of(one.json()["usage"], "/v1/chat/completions")
    fakes.set("alpha", latency_ms=30)

    def call(_: int) -> int:
        return rs.post("/v1/chat/completions", {**CHAT, "max_tokens": 20}, headers=auth()).status_code

    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        statuses = list(ex.map(call, range(40)))
    assert set(statuses) <= {200, 402} and 402 in statuses
    spent = sum(rec["cost_usd"] for rec in ledger(tmp_path))
    assert spent <= budget + single + 1e-9, (spent, budget, single)
    assert spent >= budget - single


def test_logs_never_contain_a_key(fakes, config_factory, router_server, tmp_path):
    """Access lines and errors show the key id, never the key itself."""
    rs = router_server(limited_config(config_factory, tmp_path))
    with capture_logs() as logs:
        rs.post("/v1/chat/completions", CHAT, headers=auth())
        rs.post("/v1/chat/completions", CHAT, headers=auth("toc-wrong-" + "w" * 40))
        rs.post("/v1/messages", {**ANTHROPIC, "model": "x"}, headers=auth(KEY_PRO, "x-api-key"))
    text = repr(logs)
    assert KEY_PRO not in text and "toc-wrong" not in text
    assert any(e.get("key_id") == "acme-pro" for e in logs)


def test_window_reset_header_is_a_future_unix_time(fakes, config_factory, router_server, tmp_path):
    """x-ratelimit-reset is when the current window ends, as a unix timestamp."""
    clock = ManualClock(wall_start=1_900_000_000.0)
    rs = router_server(limited_config(config_factory, tmp_path, window="2h"), clock=clock)
    r = rs.post("/v1/chat/completions", CHAT, headers=auth())
    assert int(r.headers["x-ratelimit-reset"]) == 1_900_000_000 + 7200
    clock.advance(100)
    r = rs.post("/v1/chat/completions", CHAT, headers=auth())
    assert int(r.headers["x-ratelimit-reset"]) == 1_900_000_000 + 7200, "the window does not slide"
    assert math.isfinite(float(r.headers["x-ratelimit-remaining"]))
