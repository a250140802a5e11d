"""Breakers' capped trial schedule, over real sockets: a route whose requests fail while its provider's health
probe stays green. The router runs on an injected clock with the default breaker settings, so
two simulated minutes take about a second and the times asserted are the defaults' own."""

from __future__ import annotations

from typing import Any

from router.clock import ManualClock
from router.config import BreakerConfig
from tests.conftest import CHAT

TICK_S = 0.5  # simulated time between two client requests
OUTAGE_S = 60.0  # simulated length of the primary's outage before the recovery is arranged


def test_recovered_primary_serves_again_within_15_s(fakes, config_factory, router_server):
    """alpha (the primary) answers 503 while its probe stays green; beta is the fallback. During
    the outage every request gets a 200 from beta with at most one extra attempt, and alpha sees
    its fail_max failures, then one trial 4-5 s after its breaker opened and one per 8-10 s after
    that. alpha recovers just after a failed trial (the worst case) and serves within 15 s."""
    d = BreakerConfig()
    breaker = {
        "fail_max": d.fail_max,
        "reset_timeout_s": d.reset_timeout_s,
        "reset_timeout_max_s": d.reset_timeout_max_s,
        "reset_jitter": d.reset_jitter,
    }  # the conftest's breaker is the old fixed 30 s: the defaults, spelt out
    clock = ManualClock()
    cfg = config_factory({"m": [("alpha", 0), ("beta", 1)]}, breaker=breaker, health={"interval_s": 0.5})
    rs = router_server(cfg, clock=clock)

    def alpha() -> dict[str, Any]:
        provider: dict[str, Any] = rs.ready().json()["providers"]["alpha"]
        return provider

    fakes.set("alpha", status=503)
    start = clock.monotonic()
    tried_at: list[float] = []  # simulated times at which a request tried alpha first
    while True:
        r = rs.post("/v1/chat/completions", CHAT)
        assert r.status_code == 200 and r.headers["x-router-provider"] == "beta", r.text
        attempts = int(r.headers["x-router-attempts"])
        assert attempts <= 2, "the failing route costs a request at most one extra attempt"
        if attempts == 2:
            tried_at.append(clock.monotonic())
            if clock.monotonic() - start >= OUTAGE_S:
                break  # a trial just failed: recover now, the longest wait for the next one
        clock.advance(TICK_S)
    assert fakes.served("alpha") == len(tried_at)
    assert fakes.stats("alpha")["requests"]["/v1/models"] >= 1, "alpha's probe ran, and stayed green:"
    assert alpha()["healthy"] is True and alpha()["routes"]["alpha/alpha-m"]["breaker"] == "open"

    opening = tried_at[d.fail_max - 1]
    assert tried_at[: d.fail_max] == [start + i * TICK_S for i in range(d.fail_max)]
    trials = tried_at[d.fail_max :]
    gaps = [b - a for a, b in zip([opening, *trials], trials, strict=False)]
    assert 4.0 <= gaps[0] <= d.reset_timeout_s + TICK_S, gaps
    assert all(8.0 <= g <= d.reset_timeout_max_s + TICK_S for g in gaps[1:]), gaps
    assert len(trials) <= OUTAGE_S / 8.0 + 1

    fakes.set("alpha", status=None)
    recovered = clock.monotonic()
    while True:
        clock.advance(TICK_S)
        r = rs.post("/v1/chat/completions", CHAT)
        assert r.status_code == 200
        if r.headers["x-router-provider"] == "alpha":
            break
        assert r.headers["x-router-attempts"] == "1", "no trial before it is due"
    assert clock.monotonic() - recovered <= d.reset_timeout_max_s + TICK_S < 15.0
    assert alpha()["routes"]["alpha/alpha-m"]["breaker"] == "closed"
    clock.advance(TICK_S)
    assert rs.post("/v1/chat/completions", CHAT).headers["x-router-provider"] == "alpha"
