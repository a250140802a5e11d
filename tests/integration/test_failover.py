"""Failover before the first byte, over real sockets: each trigger, cooldowns, priorities,
breakers, probes, the latency-weighted choice and the 503 when everything is down."""

from __future__ import annotations

import socket
import time

import pytest

from router.clock import ManualClock
from tests.conftest import BODIES, CHAT, RESPONSES

PATHS = list(BODIES)


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]  # (host, port) for AF_INET
    s.close()
    return port


@pytest.mark.parametrize("status", [500, 502, 503, 504, 529, 429])
def test_failover_on_upstream_status(fakes, config_factory, router_server, status):
    """A 5xx, 529 or 429 from the first route moves the request to the next one."""
    rs = router_server(config_factory({"m": [("alpha", 0), ("beta", 1)]}))
    fakes.set("alpha", status=status)
    r = rs.post("/v1/chat/completions", CHAT)
    assert r.status_code == 200
    assert r.headers["x-router-provider"] == "beta"
    assert int(r.headers["x-router-attempts"]) >= 2


def test_failover_on_connection_refused(fakes, config_factory, router_server):
    """A provider whose port is closed is skipped for the next route."""
    dead = {
        "name": "dead",
        "base_url": f"http://127.0.0.1:{_closed_port()}",
        "formats": ["openai-chat"],
        "health": {"enabled": False},
    }
    rs = router_server(config_factory({"m": [("dead", 0), ("beta", 1)]}, extra_providers=[dead]))
    r = rs.post("/v1/chat/completions", CHAT)
    assert r.status_code == 200 and r.headers["x-router-provider"] == "beta"


@pytest.mark.parametrize("fault", ["hang", "hang_after_headers"])
def test_failover_on_first_token_timeout(fakes, config_factory, router_server, fault):
    """No answer within first_token_s (even after prompt headers) counts as no answer."""
    rs = router_server(config_factory({"m": [("alpha", 0), ("beta", 1)]}, timeouts={"first_token_s": 0.3}))
    fakes.set("alpha", **{fault: True})
    start = time.monotonic()
    r = rs.post("/v1/chat/completions", CHAT)
    assert r.status_code == 200 and r.headers["x-router-provider"] == "beta"
    assert time.monotonic() - start < 2.0


def test_transient_failure_retries_same_route_once_when_alone(fakes, config_factory, router_server):
    """With one route, a single 500 is retried once on it after a backoff."""
    rs = router_server(config_factory({"m": [("alpha", 0)]}))
    fakes.set("alpha", status=500, times=1)
    r = rs.post("/v1/chat/completions", CHAT)
    assert r.status_code == 200 and r.headers["x-router-attempts"] == "2"
    assert fakes.served("alpha") == 2


def test_timed_out_route_is_not_retried_in_the_same_request(fakes, config_factory, router_server):
    """A timeout excludes the route for the rest of the request."""
    rs = router_server(config_factory({"m": [("alpha", 0)]}, timeouts={"first_token_s": 0.2}))
    fakes.set("alpha", hang=True)
    r = rs.post("/v1/chat/completions", CHAT)
    assert r.status_code == 503
    assert fakes.served("alpha") == 1


def test_retry_after_puts_route_in_cooldown(fakes, config_factory, router_server):
    """A 429 with retry-after keeps the route out of rotation for that long."""
    rs = router_server(config_factory({"m": [("alpha", 0), ("beta", 1)]}))
    fakes.set("alpha", status=429, retry_after=30)
    assert rs.post("/v1/chat/completions", CHAT).headers["x-router-provider"] == "beta"
    assert rs.post("/v1/chat/completions", CHAT).headers["x-router-provider"] == "beta"
    assert fakes.served("alpha") == 1
    route = rs.ready().json()["providers"]["alpha"]["routes"]["alpha/alpha-m"]
    assert route["cooldown_s"] > 25


def test_short_retry_after_is_waited_out_when_no_other_route_is_ready(fakes, config_factory, router_server):
    """A 503 whose retry-after is within max_retry_wait_s, on the only route: waited for, then served."""
    rs = router_server(config_factory({"m": [("alpha", 0)]}, routing={"max_retry_wait_s": 1}))
    fakes.set("alpha", status=503, retry_after=0.2, times=1)
    r = rs.post("/v1/chat/completions", CHAT)
    assert r.status_code == 200 and r.headers["x-router-provider"] == "alpha"
    assert r.headers["x-router-attempts"] == "2"


@pytest.mark.parametrize("status", [503, 429])
def test_a_refusing_first_tier_never_starves_a_healthy_fallback(fakes, config_factory, router_server, status):
    """Tier 0 keeps refusing with a short retry-after (within max_retry_wait_s): every request is
    served by tier 1 at once, and tier 0 is asked again only once its cooldown has passed."""
    rs = router_server(config_factory({"m": [("alpha", 0), ("beta", 1)]}, routing={"max_retry_wait_s": 3}))
    fakes.set("alpha", status=status, retry_after=2)
    for _ in range(5):
        r = rs.post("/v1/chat/completions", CHAT)
        assert r.status_code == 200 and r.headers["x-router-provider"] == "beta"
    assert fakes.served("alpha") == 1, "one refusal, then the cooldown keeps it out"
    assert fakes.served("beta") == 5


@pytest.mark.parametrize("path", PATHS)
def test_all_down_is_503_naming_model_and_attempts(fakes, config_factory, router_server, path):
    """Every attempt failing gives 503 in the endpoint's envelope, saying what was tried."""
    rs = router_server(config_factory({"m": [("alpha", 0), ("beta", 0)]}))
    fakes.set("alpha", status=500)
    fakes.set("beta", status=429, retry_after=20)
    r = rs.post(path, BODIES[path])
    assert r.status_code == 503
    text = r.json()["error"]["message"]
    assert "'m'" in text and "alpha/alpha-m" in text and "beta/beta-m" in text
    assert 1 <= int(r.headers["retry-after"]) <= 20


def test_attempts_are_bounded_by_max_attempts(fakes, config_factory, router_server):
    """routing.max_attempts caps the number of upstream calls."""
    rs = router_server(config_factory({"m": [("alpha", 0), ("beta", 0), ("gamma", 0)]}, routing={"max_attempts": 2}))
    for name in ("alpha", "beta", "gamma"):
        fakes.set(name, status=502)
    assert rs.post("/v1/chat/completions", CHAT).status_code == 503
    assert sum(fakes.served(n) for n in ("alpha", "beta", "gamma")) == 2


def test_request_never_hangs_past_its_deadline(fakes, config_factory, router_server):
    """routing.deadline_s bounds the whole request, across attempts."""
    rs = router_server(
        config_factory({"m": [("alpha", 0), ("beta", 0)]}, timeouts={"first_token_s": 5}, routing={"deadline_s": 0.5})
    )
    fakes.set("alpha", hang=True)
    fakes.set("beta", hang=True)
    start = time.monotonic()
    r = rs.post("/v1/chat/completions", CHAT)
    assert r.status_code == 503
    assert time.monotonic() - start < 2.0


def test_priority_tiers_lower_first_next_only_when_none_available(fakes, config_factory, router_server):
    """Tier 1 gets no traffic while tier 0 is up, and all of it when tier 0 is out."""
    rs = router_server(config_factory({"m": [("alpha", 0), ("beta", 1)]}))
    for _ in range(10):
        assert rs.post("/v1/chat/completions", CHAT).headers["x-router-provider"] == "alpha"
    assert fakes.served("beta") == 0
    fakes.set("alpha", status=503, retry_after=60)
    for _ in range(5):
        assert rs.post("/v1/chat/completions", CHAT).headers["x-router-provider"] == "beta"
    assert fakes.served("alpha") == 11, "tier 0 was tried once, then cooled down"


def test_context_overflow_falls_back_to_the_configured_model(fakes, config_factory, router_server):
    """A context-window 400 is retried once on context_fallback; other 400s are returned."""
    cfg = config_factory(
        {"m": [("alpha", 0)], "m-long": [("beta", 0)]}, models_extra={"m": {"context_fallback": "m-long"}}
    )
    rs = router_server(cfg)
    fakes.set("alpha", status=400, text="This model's maximum context length is 10 tokens (context_length_exceeded)")
    r = rs.post("/v1/chat/completions", CHAT)
    assert r.status_code == 200 and r.headers["x-router-provider"] == "beta"
    assert fakes.stats("beta")["last_request"]["body"]["model"] == "beta-m-long"


def test_latency_weighted_choice_prefers_the_faster_provider(fakes, config_factory, router_server):
    """With one provider 10x slower, the faster one serves most of the traffic."""
    rs = router_server(config_factory({"m": [("alpha", 0), ("beta", 0)]}))
    fakes.set("alpha", latency_ms=5)
    fakes.set("beta", latency_ms=80)
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        providers = list(
            ex.map(lambda _: rs.post("/v1/chat/completions", CHAT).headers["x-router-provider"], range(60))
        )
    assert providers.count("alpha") >= 0.7 * len(providers), providers


def test_breaker_opens_after_fail_max_and_recovers_half_open(fakes, config_factory, router_server):
    """fail_max failures open the route's breaker; after reset_timeout one trial closes it."""
    clock = ManualClock()
    cfg = config_factory({"m": [("alpha", 0), ("beta", 1)]}, breaker={"fail_max": 3, "reset_timeout_s": 30})
    rs = router_server(cfg, clock=clock)
    fakes.set("alpha", status=500)
    for _ in range(3):
        assert rs.post("/v1/chat/completions", CHAT).headers["x-router-provider"] == "beta"
    assert rs.ready().json()["providers"]["alpha"]["routes"]["alpha/alpha-m"]["breaker"] == "open"
    served = fakes.served("alpha")
    fakes.set("alpha", status=None)
    assert rs.post("/v1/chat/completions", CHAT).headers["x-router-provider"] == "beta"
    assert fakes.served("alpha") == served, "an open breaker sends nothing"
    clock.advance(31)
    assert rs.post("/v1/chat/completions", CHAT).headers["x-router-provider"] == "alpha"
    assert rs.ready().json()["providers"]["alpha"]["routes"]["alpha/alpha-m"]["breaker"] == "closed"


def test_client_errors_never_open_the_breaker(fakes, config_factory, router_server):
    """Many upstream 400s leave the breaker closed."""
    rs = router_server(config_factory({"m": [("alpha", 0)]}, breaker={"fail_max": 2}))
    fakes.set("alpha", status=400)
    for _ in range(4):
        assert rs.post("/v1/responses", RESPONSES).status_code == 400
    assert rs.ready().json()["providers"]["alpha"]["breaker"] == "closed"


def test_health_probes_take_a_provider_out_and_back_in(fakes, config_factory, router_server):
    """Failing probes mark a provider unhealthy (no traffic); passing ones bring it back."""
    cfg = config_factory(
        {"m": [("alpha", 0), ("beta", 1)]},
        health={"interval_s": 0.05, "timeout_s": 0.5, "unhealthy_after": 2, "healthy_after": 1},
    )
    rs = router_server(cfg)
    fakes.set("alpha", health_status=503)
    rs.wait_until(lambda: rs.ready().json()["providers"]["alpha"]["healthy"] is False)
    assert rs.post("/v1/chat/completions", CHAT).headers["x-router-provider"] == "beta"
    assert fakes.served("alpha") == 0
    fakes.set("alpha", health_status=200)
    rs.wait_until(lambda: rs.ready().json()["providers"]["alpha"]["healthy"] is True)
    assert rs.post("/v1/chat/completions", CHAT).headers["x-router-provider"] == "alpha"


def test_not_ready_until_a_provider_is_healthy(fakes, config_factory, router_server):
    """/health/ready is 503 while every provider fails its probes."""
    cfg = config_factory({"m": [("alpha", 0)]}, health={"interval_s": 0.05, "unhealthy_after": 1})
    fakes.set("alpha", health_status=500)
    fakes.set("beta", health_status=500)
    fakes.set("gamma", health_status=500)
    rs = router_server(cfg, wait_ready=False)
    rs.wait_until(lambda: rs.ready().json()["providers"]["alpha"]["probed"])
    r = rs.ready()
    assert r.status_code == 503 and r.json()["status"] == "not_ready"
    assert r.json()["models"] == {"m": 0}
