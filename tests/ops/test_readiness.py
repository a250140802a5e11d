"""Tests for router.ops.readiness: the decision (each reason, alone and together), the /health/ready
body from a real pool, and the state store's watch (required when, errors without secrets).
Pure: a parsed Config, a ManualClock, fake backends; no sockets, no sleeps."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from router.billing.state import MemoryBackend, StateUnavailable
from router.clock import ManualClock
from router.config import StateConfig, parse_config
from router.ops.readiness import Readiness, StateCheck, StateWatch, decide, redact
from router.routing.pool import Pool
from router.routing.table import RoutingTable
from router.server.drain import Drain
from router.upstream.probe import ProbeResult

UP = ProbeResult(True, "status 200", 200, 0.0123)
DOWN = ProbeResult(False, "status 503", 503, 0.002)
REFUSED = ProbeResult(False, "connection refused", None, 0.001)
OK, FAILED = StateCheck(True, None, 1.0), StateCheck(False, "state backend unavailable during ping: refused", 1.0)
REDIS = "redis://:hunter2@redis.internal:6379/0"


@pytest.mark.parametrize(
    ("states", "first_round", "draining", "state", "required", "reasons"),
    [
        ({"a": "healthy", "b": "unknown"}, True, False, None, False, []),
        ({"a": "unknown"}, False, False, None, False, ["first_probe_round", "no_healthy_provider"]),
        ({"a": "healthy"}, False, False, None, False, ["first_probe_round"]),
        ({"a": "healthy"}, True, True, None, False, ["draining"]),
        ({"a": "unhealthy", "b": "unknown"}, True, False, None, False, ["no_healthy_provider"]),
        # a required store: its first PING is part of the first round; a failed one is a reason
        ({"a": "healthy"}, True, False, None, True, ["first_probe_round"]),
        ({"a": "healthy"}, True, False, FAILED, True, ["state_unavailable"]),
        ({"a": "healthy"}, True, False, OK, True, []),
        # not required (fail_open, or memory): the store's outcome is shown, never a reason
        ({"a": "healthy"}, True, False, FAILED, False, []),
        ({"a": "unhealthy"}, True, True, FAILED, True, ["draining", "state_unavailable", "no_healthy_provider"]),
    ],
)
def test_decide(
    states: Any, first_round: bool, draining: bool, state: StateCheck | None, required: bool, reasons: list[str]
) -> None:
    assert decide(states, first_round, draining, state, required) == reasons


def _pool(clock: ManualClock, probe_b: bool = True, only_a_for: str | None = None) -> Pool:
    models = [{"name": "m", "routes": [{"provider": "a", "model": "x"}, {"provider": "b", "model": "x"}]}]
    if only_a_for:
        models.append({"name": only_a_for, "routes": [{"provider": "a", "model": "y"}]})
    config = parse_config(
        {
            "server": {"allow_anonymous": True},
            "providers": [
                {"name": "a", "base_url": "http://a.invalid", "formats": ["openai-chat"]},
                {
                    "name": "b",
                    "base_url": "http://b.invalid",
                    "formats": ["openai-chat"],
                    "health": {"enabled": probe_b},
                },
            ],
            "models": models,
        }
    )
    return Pool(RoutingTable(config), clock, 10.0)


def test_not_ready_until_the_first_round_then_ready_while_one_is_healthy() -> None:
    """503 first_probe_round until every probed provider has its first result, whatever it was;
    then 200 while one is healthy; the body says each provider's state, why, and since when."""
    clock = ManualClock()
    pool = _pool(clock)
    ready = Readiness(pool)
    ok, body = ready()
    assert not ok and body["status"] == "not_ready" and body["reasons"] == ["first_probe_round", "no_healthy_provider"]
    assert body["providers"]["a"]["state"] == "unknown" and body["providers"]["a"]["reason"] == "not probed yet"
    pool.providers["a"].health.record(REFUSED, clock.wall())  # one failure of two: still unknown
    assert ready()[1]["reasons"] == ["first_probe_round", "no_healthy_provider"]
    clock.advance(5)
    pool.providers["b"].health.record(UP, clock.wall())
    ok, body = ready()
    assert ok and body["status"] == "ready" and body["reasons"] == []
    b = body["providers"]["b"]
    assert b["state"] == "healthy" and b["reason"] == "status 200" and b["since"] == round(clock.wall(), 3)
    assert b["last_probe"] == {"at": round(clock.wall(), 3), "ok": True, "status": 200, "latency_ms": 12.3}
    assert body["providers"]["a"]["reason"] == "connection refused"
    assert {"healthy", "probed", "breaker", "inflight", "routes"} <= set(b), "the fields ops relied on stay"
    for _ in range(2):
        pool.providers["b"].health.record(DOWN, clock.wall())
    ok, body = ready()
    assert not ok and body["reasons"] == ["no_healthy_provider"]
    assert body["providers"]["b"]["state"] == "unhealthy" and body["providers"]["b"]["reason"] == "status 503"


def test_providers_without_probes_count_healthy_by_assumption_and_say_so() -> None:
    clock = ManualClock()
    pool = _pool(clock, probe_b=False)
    ready = Readiness(pool)
    assert ready()[1]["reasons"] == ["first_probe_round"]  # a is probed, not yet
    pool.providers["a"].health.record(REFUSED, clock.wall())
    ok, body = ready()
    assert ok
    assert body["providers"]["b"]["state"] == "healthy" and body["providers"]["b"]["assumed"] is True
    assert "probes disabled" in body["providers"]["b"]["reason"]


def test_draining_is_not_ready() -> None:
    clock = ManualClock()
    pool = _pool(clock, probe_b=False)
    pool.providers["a"].health.record(UP, clock.wall())
    drain = Drain()
    ready = Readiness(pool, drain)
    assert ready()[0]
    drain.begin()
    assert ready() == (False, {**ready()[1], "status": "not_ready", "reasons": ["draining"]})


def test_a_model_without_routes_does_not_make_the_replica_unready() -> None:
    """a down: the model only a serves is listed in models_unavailable; b still serves m: ready."""
    clock = ManualClock()
    pool = _pool(clock, only_a_for="solo")
    for _ in range(2):
        pool.providers["a"].health.record(DOWN, clock.wall())
    pool.providers["b"].health.record(UP, clock.wall())
    ok, body = Readiness(pool)()
    assert ok and body["models_unavailable"] == ["solo"] and body["models"] == {"m": 1, "solo": 0}


class _Backend(MemoryBackend):
    def __init__(self) -> None:
        super().__init__()
        self.error: Exception | None = None
        self.pings = 0

    async def ping(self) -> None:
        self.pings += 1
        if self.error is not None:
            raise self.error


def _watch(backend: Any, **state: Any) -> StateWatch:
    return StateWatch(backend, StateConfig(**{"backend": "redis", "url": REDIS, **state}), ManualClock())


def test_the_store_is_required_only_for_redis_failing_closed() -> None:
    assert _watch(_Backend()).required
    assert not _watch(_Backend(), on_unavailable="fail_open").required
    memory = StateWatch(MemoryBackend(), StateConfig(), ManualClock())
    assert not memory.required and not memory.watched


def test_a_reload_of_on_unavailable_decides_whether_the_store_is_required() -> None:
    """fail_open after a reload: requests are served without the store, so readiness must not
    wait for it any more (and the other way round); memory is never required."""
    watch = _watch(_Backend())
    watch.reconfigure(StateConfig(backend="redis", url=REDIS, on_unavailable="fail_open"))
    assert not watch.required and watch.describe()["required"] is False
    watch.reconfigure(StateConfig(backend="redis", url=REDIS))
    assert watch.required
    memory = StateWatch(MemoryBackend(), StateConfig(on_unavailable="fail_open"), ManualClock())
    memory.reconfigure(StateConfig())
    assert not memory.required


def test_state_watch_records_each_ping_without_the_password() -> None:
    """A failing PING is recorded with the store's error, its password masked; the next good one clears it."""
    backend = _Backend()
    watch = _watch(backend)
    assert watch.describe() == {"backend": "redis", "required": True, "ok": None, "error": None, "checked_at": None}
    backend.error = StateUnavailable(f"state backend unavailable during ping: cannot reach {REDIS}")
    check = anyio.run(watch.check)
    assert not check.ok and check.error is not None and "hunter2" not in check.error
    assert "redis://***@redis.internal:6379/0" in check.error and watch.last == check
    backend.error = RuntimeError("surprise")
    assert anyio.run(watch.check).error == "RuntimeError: surprise"
    backend.error = None
    assert anyio.run(watch.check) == StateCheck(True, None, ManualClock().wall())
    assert backend.pings == 3


def test_a_hanging_ping_is_an_unavailable_store() -> None:
    """Bounded by twice the store's timeout (10 ms here): unreachable, saying so."""

    class Hangs(_Backend):
        async def ping(self) -> None:
            await anyio.sleep_forever()

    check = anyio.run(_watch(Hangs(), timeout_s=0.005).check)
    assert not check.ok and check.error == "no answer within the state timeout"


def test_readiness_reads_the_watch() -> None:
    clock = ManualClock()
    pool = _pool(clock, probe_b=False)
    pool.providers["a"].health.record(UP, clock.wall())
    backend = _Backend()
    watch = _watch(backend)
    ready = Readiness(pool, None, watch)
    assert ready()[1]["reasons"] == ["first_probe_round"]  # not PINGed yet
    backend.error = StateUnavailable("state backend unavailable during ping: ConnectionError: refused")
    anyio.run(watch.check)
    ok, body = ready()
    assert not ok and body["reasons"] == ["state_unavailable"]
    assert body["state"]["ok"] is False and "ConnectionError: refused" in body["state"]["error"]
    backend.error = None
    anyio.run(watch.check)
    assert ready()[0]


def test_redact() -> None:
    assert redact("at redis://u:pw@h:1/0 and rediss://x:y@z", None) == "at redis://***@h:1/0 and rediss://***@z"
    assert redact("AUTH failed for secret-pw", "redis://:secret-pw@h") == "AUTH failed for ***"
    assert redact("at unix:///run/redis.sock?password=pw, retrying", None) == "at unix:///run/redis.sock?... retrying"
