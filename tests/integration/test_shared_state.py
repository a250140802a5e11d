"""Two router instances sharing one real redis-server; Redis outages under fail_closed and
fail_open, a Redis restart, and recovery when Redis returns. Over real loopback sockets."""

from __future__ import annotations

import concurrent.futures
import uuid
from typing import Any

import pytest
import redis
from structlog.testing import capture_logs

from router.clock import ManualClock
from tests.conftest import ANTHROPIC, CHAT, RESPONSES
from tests.integration.test_limits import KEY_PRO, auth, ledger, limited_config


def shared(config_factory, tmp_path, redis_server, on_unavailable: str = "fail_closed", **kw: Any):
    """A config on the shared Redis, with a key prefix of its own so tests never see each other."""
    state = {
        "backend": "redis",
        "url": redis_server.url,
        "key_prefix": f"t-{uuid.uuid4().hex[:8]}",
        "timeout_s": 0.3,
        "on_unavailable": on_unavailable,
    }
    return limited_config(config_factory, tmp_path, state=state, **kw)


def test_two_routers_share_one_budget(fakes, config_factory, router_server, tmp_path, redis_server):
    """What one replica spends, the other sees: once spent, both answer 402 with the same reset."""
    config = shared(config_factory, tmp_path, redis_server, budget=0.001, window="10m")
    clock = ManualClock(wall_start=1_900_000_000.0)
    a, b = router_server(config, clock=clock), router_server(config, clock=clock)
    first = a.post("/v1/chat/completions", CHAT, headers=auth())
    assert first.status_code == 200  # admitted below the budget; its cost takes the window over
    for rs in (a, b):
        r = rs.post("/v1/chat/completions", CHAT, headers=auth())
        assert r.status_code == 402, r.text
        assert float(r.headers["x-ratelimit-remaining"]) == 0.0
        assert int(r.headers["x-ratelimit-reset"]) == 1_900_000_000 + 600
    clock.advance(601)
    assert b.post("/v1/chat/completions", CHAT, headers=auth()).status_code == 200


def test_two_routers_share_one_rpm(fakes, config_factory, router_server, tmp_path, redis_server):
    """rpm 4 across two replicas: four requests pass in any mix, the fifth is 429 on either."""
    config = shared(config_factory, tmp_path, redis_server, budget=None, rpm=4)
    clock = ManualClock()
    a, b = router_server(config, clock=clock), router_server(config, clock=clock)
    statuses = [rs.post("/v1/responses", RESPONSES, headers=auth()).status_code for rs in (a, b, a, b)]
    assert statuses == [200] * 4
    for rs in (a, b):
        r = rs.post("/v1/responses", RESPONSES, headers=auth())
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    clock.advance(61)
    assert a.post("/v1/responses", RESPONSES, headers=auth()).status_code == 200


def test_redis_down_fail_closed_is_503_then_recovers(fakes, config_factory, router_server, tmp_path, redis_server):
    """fail_closed: 503 with a clear message while Redis is gone, logged once; back by itself."""
    rs = router_server(shared(config_factory, tmp_path, redis_server))
    assert rs.post("/v1/chat/completions", CHAT, headers=auth()).status_code == 200
    # Its settle is not waited for: the budget read behind it, on the same connection, is, so the
    # outage below is not first met (and logged) by that settle.
    assert rs.client.get("/v1/models", headers=auth()).status_code == 200
    redis_server.stop()
    try:
        with capture_logs() as logs:
            down = [rs.post("/v1/chat/completions", CHAT, headers=auth()) for _ in range(3)]
    finally:
        redis_server.start()
    for r in down:
        assert r.status_code == 503
        assert "state store is unreachable" in r.json()["error"]["message"]
    assert [e["event"] for e in logs].count("state_unavailable") == 1
    assert fakes.served("alpha") == 1, "nothing went upstream uncounted"
    with capture_logs() as logs:
        rs.wait_until(lambda: rs.post("/v1/chat/completions", CHAT, headers=auth()).status_code == 200)
    assert "state_recovered" in [e["event"] for e in logs]


def test_redis_down_fail_open_serves_uncounted(fakes, config_factory, router_server, tmp_path, redis_server):
    """fail_open: requests pass while Redis is gone (without limit headers), and are counted again after."""
    rs = router_server(shared(config_factory, tmp_path, redis_server, on_unavailable="fail_open"))
    redis_server.stop()
    try:
        with capture_logs() as logs:
            r = rs.post("/v1/chat/completions", CHAT, headers=auth(KEY_PRO, "x-api-key"))
    finally:
        redis_server.start()
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"]
    assert "x-ratelimit-remaining" not in r.headers
    [err] = [e for e in logs if e["event"] == "state_unavailable"]
    assert "fail_open" in err["policy"]
    rs.wait_until(lambda: "x-ratelimit-remaining" in rs.post("/v1/chat/completions", CHAT, headers=auth()).headers)


@pytest.mark.parametrize("policy", ["fail_closed", "fail_open"])
def test_hung_redis_is_bounded_by_its_timeout(fakes, config_factory, router_server, tmp_path, redis_server, policy):
    """A Redis that accepts but never answers costs at most state.timeout_s, never a hung request."""
    rs = router_server(shared(config_factory, tmp_path, redis_server, on_unavailable=policy))
    assert rs.post("/v1/chat/completions", CHAT, headers=auth()).status_code == 200
    redis_server.pause()
    try:
        r = rs.post("/v1/chat/completions", CHAT, headers=auth(), timeout=5)
    finally:
        redis_server.resume()
    assert r.status_code == (503 if policy == "fail_closed" else 200)


def _clients(redis_server) -> int:
    """How many connections redis-server has, not counting the one asking."""
    with redis.Redis.from_url(redis_server.url, protocol=2) as client:
        return len(client.client_list()) - 1


def test_a_redis_restart_fails_no_request(fakes, config_factory, router_server, tmp_path, redis_server):
    """A warm connection (one per process, pipelined: a burst of parallel requests opens no more),
    redis-server restarted on its port, then another burst: all pass (fail_closed, so a state
    error would be a 503), each billed once."""
    rs = router_server(shared(config_factory, tmp_path, redis_server, budget=1000.0))
    fakes.set("alpha", latency_ms=100)  # parallel requests overlap, and settle together
    with concurrent.futures.ThreadPoolExecutor(8) as pool:

        def burst() -> list[int]:
            return list(pool.map(lambda _: rs.post("/v1/chat/completions", CHAT, headers=auth()).status_code, range(8)))

        assert burst() == [200] * 8
        assert _clients(redis_server) == 1
        redis_server.stop()
        redis_server.start()
        assert burst() == [200] * 8
    remaining = float(rs.post("/v1/chat/completions", CHAT, headers=auth()).headers["x-ratelimit-remaining"])
    spent = sum(rec["cost_usd"] for rec in ledger(tmp_path)[8:])  # since the restart emptied Redis
    assert spent > 0 and abs(1000.0 - spent - remaining) < 1e-5


def test_a_repeated_request_id_holds_its_own_slot(fakes, config_factory, router_server, tmp_path, redis_server):
    """max_concurrent 1 across two replicas: a second request reusing the first's x-request-id is
    still a second request (429), not a retry of the first."""
    config = shared(config_factory, tmp_path, redis_server, budget=None, max_concurrent=1)
    a, b = router_server(config), router_server(config)
    fakes.set("alpha", chunk_delay_ms=100, chunks=3)
    same = {**auth(), "x-request-id": "client-chosen-id"}
    body = {**ANTHROPIC, "stream": True}
    with a.client.stream("POST", "/v1/messages", json=body, headers=same) as held:
        for rs in (a, b):
            r = rs.post("/v1/messages", ANTHROPIC, headers=same)
            assert r.status_code == 429 and r.headers["x-request-id"] == "client-chosen-id"
        held.read()
    assert b.post("/v1/messages", ANTHROPIC, headers=same).status_code == 200
