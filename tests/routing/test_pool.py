"""Tests for router.routing.pool: tiered selection over health, breaker and cooldown, leases and
the /health/ready snapshot. Pure: a parsed Config and a ManualClock, no sockets."""

from __future__ import annotations

import random
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from router.clock import ManualClock
from router.config import Config, parse_config
from router.formats import CHAT, MESSAGES
from router.routing.pool import Lease, Pool, RouteState
from router.routing.table import ModelRoutes, RoutingTable
from router.types import AttemptResult
from router.upstream.probe import ProbeResult

UP, DOWN = ProbeResult(True, "status 200", 200), ProbeResult(False, "status 503", 503)

S, F, N = AttemptResult.SUCCESS, AttemptResult.FAILURE, AttemptResult.NEUTRAL


def _config(
    routes: list[tuple[str, int]] | None = None,
    formats: dict[str, list[str]] | None = None,
    fail_max: int = 2,
    models_extra: dict[str, list[tuple[str, int]]] | None = None,
    breaker: dict[str, Any] | None = None,
    health: dict[str, Any] | None = None,
) -> Config:
    """Providers a, b, c (all formats unless `formats` says otherwise); model m on `routes`;
    `health` overrides the providers' health settings."""
    routes = routes if routes is not None else [("a", 0), ("b", 0), ("c", 1)]
    all_formats = ["openai-chat", "anthropic-messages", "openai-responses"]
    providers = [
        {
            "name": name,
            "base_url": f"http://{name}.invalid",
            "formats": (formats or {}).get(name, all_formats),
            "breaker": {"fail_max": fail_max, "reset_timeout_s": 30} if breaker is None else breaker,
            "health": {"unhealthy_after": 1, "healthy_after": 1, **(health or {})},
        }
        for name in ("a", "b", "c")
    ]
    models: dict[str, list[tuple[str, int]]] = {"m": routes, **(models_extra or {})}
    data: dict[str, Any] = {
        "server": {"allow_anonymous": True},
        "providers": providers,
        "models": [
            {"name": name, "routes": [{"provider": p, "model": f"{p}-{name}", "priority": prio} for p, prio in rs]}
            for name, rs in models.items()
        ],
    }
    return parse_config(data, source="test")


def _pool(config: Config | None = None) -> tuple[Pool, ManualClock, ModelRoutes]:
    clock = ManualClock()
    pool = Pool(RoutingTable(config or _config()), clock, half_life_s=10.0)
    model = pool.table.get("m")
    assert model is not None
    return pool, clock, model


def _keys(states: list[RouteState]) -> list[str]:
    return sorted(s.route.key for s in states)


def _open(pool: Pool, key: str) -> None:
    """Trip the route's breaker (fail_max=2)."""
    state = pool.routes[key]
    for _ in range(2):
        lease = pool.acquire(state)
        assert lease is not None
        lease.finish(F)


def test_best_tier_first() -> None:
    """All healthy: the priority-0 routes, never the lower tier."""
    pool, _, model = _pool()
    sel = pool.select(model, CHAT, set(), max_wait_s=3.0)
    assert _keys(sel.routes) == ["a/a-m", "b/b-m"] and sel.wait_s is None


def test_unavailable_routes_drop_out_of_their_tier() -> None:
    """An unhealthy provider or an open breaker leaves only the tier's other routes."""
    pool, _, model = _pool()
    pool.providers["a"].health.record(DOWN, 0.0)
    assert _keys(pool.select(model, CHAT, set(), 3.0).routes) == ["b/b-m"]
    pool.providers["a"].health.record(UP, 0.0)
    _open(pool, "b/b-m")
    assert _keys(pool.select(model, CHAT, set(), 3.0).routes) == ["a/a-m"]


def test_next_tier_when_the_best_is_down() -> None:
    """With every top-tier route down the lower tier serves."""
    pool, _, model = _pool()
    pool.providers["a"].health.record(DOWN, 0.0)
    _open(pool, "b/b-m")
    sel = pool.select(model, CHAT, set(), 3.0)
    assert _keys(sel.routes) == ["c/c-m"] and sel.wait_s is None


def test_a_ready_lower_tier_serves_before_a_short_cooldown_is_waited_out() -> None:
    """A top tier cooling down within max_wait_s never holds back a ready lower tier."""
    pool, _, model = _pool()
    pool.routes["a/a-m"].cooldown.start(2.0)
    pool.routes["b/b-m"].cooldown.start(1.5)
    sel = pool.select(model, CHAT, set(), max_wait_s=3.0)
    assert _keys(sel.routes) == ["c/c-m"] and sel.wait_s is None


def test_short_cooldown_is_waited_out_when_nothing_is_ready() -> None:
    """No tier ready, routes cooling within max_wait_s in several tiers: wait for the soonest."""
    pool, _, model = _pool()
    pool.routes["a/a-m"].cooldown.start(2.0)
    pool.routes["b/b-m"].cooldown.start(1.5)
    pool.routes["c/c-m"].cooldown.start(1.0)
    sel = pool.select(model, CHAT, set(), max_wait_s=3.0)
    assert sel.routes == [] and sel.wait_s == pytest.approx(1.0)
    assert pool.select(model, CHAT, set(), max_wait_s=0.0).wait_s is None, "waiting disabled: nothing"


def test_long_cooldown_drops_to_the_next_tier() -> None:
    """A cooldown longer than max_wait_s is not waited for: the lower tier serves now."""
    pool, _, model = _pool()
    pool.routes["a/a-m"].cooldown.start(10.0)
    pool.routes["b/b-m"].cooldown.start(10.0)
    sel = pool.select(model, CHAT, set(), max_wait_s=3.0)
    assert _keys(sel.routes) == ["c/c-m"] and sel.wait_s is None


def test_cooldown_with_a_down_provider_is_not_waited_for() -> None:
    """A cooling route that would still be unusable afterwards (unhealthy) gives no wait."""
    pool, _, model = _pool()
    pool.routes["a/a-m"].cooldown.start(1.0)
    pool.providers["a"].health.record(DOWN, 0.0)
    pool.routes["b/b-m"].cooldown.start(10.0)
    sel = pool.select(model, CHAT, set(), max_wait_s=3.0)
    assert _keys(sel.routes) == ["c/c-m"]


def test_cooldown_ends_on_the_clock() -> None:
    """Once the clock passes the cooldown the route is ready again."""
    pool, clock, model = _pool()
    pool.routes["a/a-m"].cooldown.start(1.0)
    assert _keys(pool.select(model, CHAT, set(), 3.0).routes) == ["b/b-m"]
    clock.advance(1.0)
    assert _keys(pool.select(model, CHAT, set(), 3.0).routes) == ["a/a-m", "b/b-m"]


def test_exclude_removes_routes_and_can_empty_every_tier() -> None:
    """Excluded keys are never offered; excluding all leaves an empty selection with no wait."""
    pool, _, model = _pool()
    assert _keys(pool.select(model, CHAT, {"a/a-m"}, 3.0).routes) == ["b/b-m"]
    assert _keys(pool.select(model, CHAT, {"a/a-m", "b/b-m"}, 3.0).routes) == ["c/c-m"]
    sel = pool.select(model, CHAT, {"a/a-m", "b/b-m", "c/c-m"}, 3.0)
    assert sel.routes == [] and sel.wait_s is None


def test_excluded_cooling_route_gives_no_wait() -> None:
    """An excluded route's cooldown is not a reason to wait in its tier."""
    pool, _, model = _pool()
    pool.routes["a/a-m"].cooldown.start(1.0)
    sel = pool.select(model, CHAT, {"a/a-m", "b/b-m"}, 3.0)
    assert _keys(sel.routes) == ["c/c-m"]


def test_routes_of_any_format_are_candidates_through_translation() -> None:
    """A provider that does not speak the client's format still serves it, translated."""
    pool, _, model = _pool(_config(formats={"a": ["anthropic-messages"]}))
    assert _keys(pool.select(model, CHAT, set(), 3.0).routes) == ["a/a-m", "b/b-m"]
    assert pool.routes["a/a-m"].route.upstream_format(CHAT) is MESSAGES
    assert pool.routes["b/b-m"].route.upstream_format(CHAT) is CHAT


def test_lease_counts_inflight_and_finish_is_idempotent() -> None:
    """A lease adds one in flight; finish removes it and records the breaker result once only."""
    pool, _, _ = _pool()
    state = pool.routes["a/a-m"]
    first, second = pool.acquire(state), pool.acquire(state)
    assert first is not None and second is not None
    assert state.inflight == 2
    first.finish(F)
    first.finish(F)
    first.finish(S)
    assert state.inflight == 1 and state.breaker.fail_counter == 1
    second.finish(N)
    assert state.inflight == 0 and state.breaker.fail_counter == 1


def test_lease_observes_ttfb_into_the_route_ewma() -> None:
    """observe_ttfb feeds the route's latency estimate."""
    pool, _, _ = _pool()
    state = pool.routes["a/a-m"]
    lease = pool.acquire(state)
    assert lease is not None
    assert state.ewma.value() is None
    lease.observe_ttfb(0.25)
    assert state.ewma.value() == pytest.approx(0.25)


def test_acquire_refuses_an_open_breaker_and_bounds_half_open_trials() -> None:
    """Open: no lease; after the reset timeout exactly one trial lease (half_open_trials=1)."""
    pool, clock, _ = _pool()
    state = pool.routes["a/a-m"]
    _open(pool, "a/a-m")
    assert pool.acquire(state) is None
    clock.advance(30.0)
    trial = pool.acquire(state)
    assert trial is not None
    assert pool.acquire(state) is None
    assert isinstance(trial, Lease)
    trial.finish(S)
    assert state.breaker.state.value == "closed"


def test_breakers_follow_the_configured_trial_schedule_with_the_pools_rng() -> None:
    """Each route's breaker takes its provider's schedule (here the defaults: 5 s doubling to
    10 s, 20% jitter) and its jitter from the pool's random source: two routes opened together
    get their trials at different times, each within the bounds."""
    config = _config(routes=[("a", 0), ("b", 0)], breaker={"fail_max": 2})
    clock = ManualClock()
    pool = Pool(RoutingTable(config), clock, half_life_s=10.0, rng=random.Random(5))
    _open(pool, "a/a-m")
    _open(pool, "b/b-m")
    a, b = pool.routes["a/a-m"].breaker.trial_at, pool.routes["b/b-m"].breaker.trial_at
    assert a is not None and b is not None and a != b
    assert all(clock.monotonic() + 4.0 <= t <= clock.monotonic() + 5.0 for t in (a, b))
    clock.advance(max(a, b) - clock.monotonic())
    for key in ("a/a-m", "b/b-m"):
        trial = pool.acquire(pool.routes[key])
        assert trial is not None
        trial.finish(F)
        again = pool.routes[key].breaker.trial_at
        assert again is not None and clock.monotonic() + 8.0 <= again <= clock.monotonic() + 10.0


def test_cooldown_end_is_the_earliest_active_cooldown() -> None:
    """cooldown_end: the soonest cooled route's remaining seconds, None when nothing cools."""
    pool, clock, model = _pool()
    assert pool.cooldown_end(model) is None
    pool.routes["b/b-m"].cooldown.start(5.0)
    pool.routes["c/c-m"].cooldown.start(2.0)
    assert pool.cooldown_end(model) == pytest.approx(2.0)
    clock.advance(2.0)
    assert pool.cooldown_end(model) == pytest.approx(3.0)


def test_routes_are_shared_across_models_and_providers_deduplicated() -> None:
    """Two models on one provider share its health; each (provider, model) pair is one RouteState."""
    pool, _, _ = _pool(_config(models_extra={"n": [("a", 0)]}))
    assert sorted(pool.providers) == ["a", "b", "c"]
    assert sorted(pool.routes) == ["a/a-m", "a/a-n", "b/b-m", "c/c-m"]
    assert pool.routes["a/a-m"].provider is pool.routes["a/a-n"].provider


def test_snapshot_shape() -> None:
    """snapshot(): per provider health, worst breaker, in-flight sum and per-route state; per model ready count."""
    pool, _, model = _pool()
    _open(pool, "a/a-m")
    pool.routes["b/b-m"].ewma.observe(0.1234)
    pool.routes["b/b-m"].cooldown.start(1.5)
    lease = pool.acquire(pool.routes["c/c-m"])
    assert lease is not None
    snap = pool.snapshot()
    assert snap["models"] == {"m": 1} and snap["models_unavailable"] == []
    assert snap["providers"]["a"] == {
        "state": "unknown",
        "reason": "not probed yet",
        "since": round(ManualClock().wall(), 3),  # when the pool was built
        "assumed": False,
        "last_probe": None,
        "healthy": True,
        "probed": False,
        "breaker": "open",
        "inflight": 0,
        "routes": {"a/a-m": {"breaker": "open", "ewma_ms": None, "inflight": 0, "cooldown_s": 0.0}},
    }
    assert snap["providers"]["b"]["routes"]["b/b-m"] == {
        "breaker": "closed",
        "ewma_ms": 123.4,
        "inflight": 0,
        "cooldown_s": 1.5,
    }
    assert snap["providers"]["c"]["inflight"] == 1 and snap["providers"]["c"]["breaker"] == "closed"
    assert pool.available_routes(model) == 1


def test_snapshot_worst_breaker_prefers_open_then_half_open() -> None:
    """A provider's breaker summary is open if any route's is open, then half-open."""
    pool, clock, _ = _pool(_config(models_extra={"n": [("a", 0)]}))
    _open(pool, "a/a-m")
    clock.advance(30.0)
    assert pool.acquire(pool.routes["a/a-m"]) is not None  # now half-open
    assert pool.snapshot()["providers"]["a"]["breaker"] == "half-open"
    _open(pool, "a/a-n")
    assert pool.snapshot()["providers"]["a"]["breaker"] == "open"


def test_route_state_repr_shows_its_signals() -> None:
    """RouteState's repr carries key, health, breaker, ewma, in-flight and cooldown."""
    pool, _, _ = _pool()
    state = pool.routes["a/a-m"]
    state.cooldown.start(1.0)
    assert repr(state) == ("RouteState(a/a-m, health=unknown, breaker=closed, ewma=None, inflight=0, cooldown=1.000)")


def test_breaker_flips_are_logged_once_each() -> None:
    """Opening logs one warning, closing one info line; ordinary results log nothing. The lines
    are the route's: no request id, though a request (here "r-1") noticed each flip."""
    pool, clock, _ = _pool()
    state = pool.routes["a/a-m"]
    merge = [structlog.contextvars.merge_contextvars]
    with capture_logs(processors=merge) as logs, structlog.contextvars.bound_contextvars(request_id="r-1"):
        lease = pool.acquire(state)
        assert lease is not None
        lease.finish(S)
        _open(pool, "a/a-m")
        clock.advance(30.0)
        trial = pool.acquire(state)
        assert trial is not None
        trial.finish(S)
    flips = [(e["log_level"], e["old"], e["new"]) for e in logs if e["event"] == "breaker_state_changed"]
    assert flips == [("warning", "closed", "open"), ("info", "open", "half-open"), ("info", "half-open", "closed")]
    assert all(e["route"] == "a/a-m" and "request_id" not in e for e in logs)


def test_reconfigure_keeps_live_state_of_routes_that_still_exist() -> None:
    """A reload keeps EWMA, breaker, in-flight and health of surviving routes; new ones start
    fresh; removed ones leave the pool, and an in-flight request on the old table skips them."""
    pool, _, old_model = _pool(_config(routes=[("a", 0), ("b", 0)]))
    a = pool.routes["a/a-m"]
    a.ewma.observe(0.25)
    lease = pool.acquire(a)
    assert lease is not None
    pool.providers["b"].health.record(DOWN, 0.0)
    added = pool.reconfigure(RoutingTable(_config(routes=[("a", 0), ("c", 1)])))
    assert added == ["c"]
    assert pool.routes["a/a-m"] is a and a.inflight == 1 and a.ewma.value() == pytest.approx(0.25)
    assert set(pool.routes) == {"a/a-m", "c/c-m"} and set(pool.providers) == {"a", "c"}
    assert _keys(pool.select(old_model, CHAT, set(), 3.0).routes) == ["a/a-m"], "b is gone"
    lease.finish(AttemptResult.SUCCESS)
    assert a.inflight == 0
    new_model = pool.table.get("m")
    assert new_model is not None and [r.key for tier in new_model.tiers for r in tier] == ["a/a-m", "c/c-m"]


def test_reconfigure_applies_new_health_thresholds_to_the_kept_state() -> None:
    """A reload that changes `unhealthy_after`/`healthy_after` keeps each provider's health (the
    same state, its runs and its last probe: not back to unknown) and its routes' breakers, and
    the next probe is judged by the new thresholds."""
    pool, _, _ = _pool(_config(health={"unhealthy_after": 3, "healthy_after": 1}))
    a, route = pool.providers["a"], pool.routes["a/a-m"]
    a.health.record(UP, 1.0)
    a.health.record(DOWN, 2.0)
    health = a.health
    pool.reconfigure(RoutingTable(_config(health={"unhealthy_after": 2, "healthy_after": 2})))
    assert pool.providers["a"] is a and a.health is health and pool.routes["a/a-m"] is route
    assert (health.state, health.consecutive_failures, health.last, health.thresholds) == ("healthy", 1, DOWN, (2, 2))
    assert health.record(DOWN, 3.0) is not None and health.state == "unhealthy", "2 in a row, by the new threshold"
    health.record(UP, 4.0)
    assert health.state == "unhealthy", "one success of the 2 now needed"


def test_probes_turned_off_by_a_reload_drop_a_verdict_nothing_would_revisit() -> None:
    """A provider found unhealthy whose probes a reload turns off is healthy by assumption and
    routable again (no probe would ever bring it back); its routes keep their live state.
    Probes turned back on start from unknown, not from the stale verdict."""
    pool, _, model = _pool()
    route = pool.routes["a/a-m"]
    route.ewma.observe(0.5)
    pool.providers["a"].health.record(DOWN, 1.0)
    assert "a/a-m" not in _keys(pool.select(model, CHAT, set(), 0.0).routes)
    pool.reconfigure(RoutingTable(_config(health={"enabled": False})))
    a = pool.providers["a"]
    assert a.state == "healthy" and a.health.routable and not a.probe_enabled
    assert pool.routes["a/a-m"] is route and route.ewma.value() == pytest.approx(0.5)
    assert "a/a-m" in _keys(pool.select(pool.table.get("m"), CHAT, set(), 0.0).routes)  # type: ignore[arg-type]
    pool.reconfigure(RoutingTable(_config()))
    assert a.probe_enabled and a.state == "unknown" and not a.health.probed
