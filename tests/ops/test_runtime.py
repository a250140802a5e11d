"""router.ops.runtime: what a reload does to each provider, and which `state.*` changes it cannot
apply; then `Runtime.reload` itself on an app that serves nothing, with fake probes and a manual
clock: no sockets (the reload over loopback is in tests/integration/test_operations.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from router.app import create_app
from router.clock import ManualClock
from router.config import Config, ProviderConfig, StateConfig, load_config, parse_config
from router.ops.readiness import Readiness
from router.ops.runtime import ProviderChanges, Runtime, provider_changes, state_ignored
from router.upstream.probe import Probe, ProbeResult


def _config(**providers: dict[str, Any]) -> Config:
    """Providers named by the keywords, each with its extra keys; one model on all of them."""
    return parse_config(
        {
            "server": {"allow_anonymous": True},
            "providers": [
                {"name": name, "base_url": f"http://{name}.invalid", "formats": ["openai-chat"], **extra}
                for name, extra in providers.items()
            ],
            "models": [{"name": "m", "routes": [{"provider": name, "model": "m"} for name in providers]}],
        },
        env={},
    )


def test_a_health_change_restarts_the_probe_loop_but_keeps_the_pool() -> None:
    """Thresholds, interval, timeout, path, method: the loop restarts with them, the connection
    pool and the health state stay, and no first probe settles a state that is kept."""
    old = _config(a={}, b={}, c={})
    new = _config(
        a={"health": {"unhealthy_after": 5, "interval_s": 2, "timeout_s": 1, "path": "/ping", "method": "HEAD"}},
        b={"base_url": "http://b2.invalid"},
        c={},
        d={},
    )
    assert provider_changes(old, new) == ProviderChanges(
        changed=frozenset({"a", "b"}), reconnect=("b", "d"), first_probe=("b", "d")
    )
    assert provider_changes(old, old) == ProviderChanges(frozenset(), (), ())


def test_probes_turned_on_get_a_first_probe_and_turned_off_only_a_restart() -> None:
    off = {"health": {"enabled": False}}
    assert provider_changes(_config(a=off), _config(a={})) == ProviderChanges(frozenset({"a"}), (), ("a",))
    assert provider_changes(_config(a={}), _config(a=off)) == ProviderChanges(frozenset({"a"}), (), ())


def test_only_the_state_keys_a_reload_cannot_apply_are_named() -> None:
    """`on_unavailable` applies (the new Limits and readiness take it): a change of it alone is
    not reported; every other `state.*` key configures the store made at start."""
    memory = StateConfig()
    assert state_ignored(memory, StateConfig(on_unavailable="fail_open")) == []
    assert state_ignored(memory, memory) == []
    redis = StateConfig(backend="redis", url="redis://r:6379/0", on_unavailable="fail_open", key_prefix="x")
    assert state_ignored(memory, redis) == ["state.backend", "state.url", "state.key_prefix"]
    assert state_ignored(redis, StateConfig(**{**_fields(redis), "timeout_s": 1.0, "ping_interval_s": 5.0})) == [
        "state.timeout_s",
        "state.ping_interval_s",
    ]


def _fields(state: StateConfig) -> dict[str, Any]:
    return {name: getattr(state, name) for name in state.__dataclass_fields__}


# --- Runtime.reload -------------------------------------------------------------------------

UP = ProbeResult(True, "status 200", 200, 0.01)
Behaviour = Callable[[], Awaitable[ProbeResult]]


def _file(path: Path, routed: dict[str, list[str]], providers: dict[str, dict[str, Any]]) -> str:
    """A config file: `providers` (name: extra keys), `routed` (model: its providers). JSON is YAML."""
    data = {
        "server": {"allow_anonymous": True},
        "ledger": {"enabled": False},
        "providers": [
            {"name": n, "base_url": f"http://{n}.invalid", "formats": ["openai-chat"], **extra}
            for n, extra in providers.items()
        ],
        "models": [{"name": m, "routes": [{"provider": n, "model": m} for n in ps]} for m, ps in routed.items()],
    }
    path.write_text(json.dumps(data))
    return str(path)


class Probes:
    """Each provider's probe does what the test set for it (up by default) and is counted."""

    def __init__(self) -> None:
        self.behaviour: dict[str, Behaviour] = {}
        self.calls: dict[str, int] = {}

    def factory(self, p: ProviderConfig, client: httpx.AsyncClient) -> Probe:
        async def probe() -> ProbeResult:
            self.calls[p.name] = self.calls.get(p.name, 0) + 1
            if p.name in self.behaviour:
                return await self.behaviour[p.name]()
            return UP

        return probe


@asynccontextmanager
async def _running(path: str, probes: Probes) -> AsyncIterator[Runtime]:
    """The app's runtime with its probe loops started (their first probe done), as the lifespan
    starts it; the loops' next probes are an hour away."""
    app = create_app(load_config(path), clock=ManualClock(), probe_factory=probes.factory)
    runtime: Runtime = app.state.runtime
    async with httpx.AsyncClient() as client, anyio.create_task_group() as tg:
        runtime.start(tg, client)
        with anyio.fail_after(5):
            while not all(p.health.probed for p in runtime.pool.providers.values()):
                await anyio.sleep(0)
        try:
            yield runtime
        finally:
            tg.cancel_scope.cancel()
            await runtime.aclose()


HOURLY = {"health": {"interval_s": 3600}}


@pytest.mark.anyio
async def test_a_provider_gaining_its_first_route_is_probed_before_it_takes_traffic(tmp_path: Path) -> None:
    """`b` is in the config but routed to by no model, so the pool has no state for it. A reload
    that routes to it probes it first: readiness stays 200 (no `first_probe_round` on every
    replica of a rollout at once), and its state is that probe's verdict. Its route removed and
    back again, it is probed again."""
    providers = {"a": HOURLY, "b": HOURLY}
    path = _file(tmp_path / "c.yaml", {"m": ["a"]}, providers)
    probes = Probes()

    async def down() -> ProbeResult:
        return ProbeResult(False, "status 503", 503, 0.01)

    probes.behaviour["b"] = down
    async with _running(path, probes) as runtime:
        ready = Readiness(runtime.pool)
        assert "b" not in runtime.pool.providers and ready()[0]
        _file(tmp_path / "c.yaml", {"m": ["a", "b"]}, providers)
        assert await runtime.reload(path)
        ok, body = ready()
        assert ok, body["reasons"]
        b = runtime.pool.providers["b"].health
        assert (b.state, b.last) == ("unhealthy", ProbeResult(False, "status 503", 503, 0.01))
        assert probes.calls["b"] == 1

        _file(tmp_path / "c.yaml", {"m": ["a"]}, providers)
        assert await runtime.reload(path)
        del probes.behaviour["b"]
        _file(tmp_path / "c.yaml", {"m": ["a", "b"]}, providers)
        before = probes.calls["b"]
        assert await runtime.reload(path)
        assert ready()[0]
        assert runtime.pool.providers["b"].health.state == "healthy"
        assert probes.calls["b"] == before + 1


@pytest.mark.anyio
async def test_first_probes_of_a_reload_run_at_the_same_time(tmp_path: Path) -> None:
    """Two new providers whose probes each answer only once both have started: one after the
    other, the first would run into its timeout and both would come out failed."""
    slow = {"health": {"interval_s": 3600, "timeout_s": 1}}
    path = _file(tmp_path / "c.yaml", {"m": ["a"]}, {"a": HOURLY})
    probes = Probes()
    both = anyio.Event()
    started: set[str] = set()

    def barrier(name: str) -> Behaviour:
        async def probe() -> ProbeResult:
            started.add(name)
            if started == {"c", "d"}:
                both.set()
            await both.wait()
            return UP

        return probe

    probes.behaviour |= {"c": barrier("c"), "d": barrier("d")}
    async with _running(path, probes) as runtime:
        _file(tmp_path / "c.yaml", {"m": ["a", "c", "d"]}, {"a": HOURLY, "c": slow, "d": slow})
        with anyio.fail_after(5):
            assert await runtime.reload(path)
        states = {n: runtime.pool.providers[n].health for n in ("c", "d")}
        assert {n: (h.state, h.last) for n, h in states.items()} == {"c": ("healthy", UP), "d": ("healthy", UP)}


@pytest.mark.anyio
async def test_reloads_apply_one_at_a_time_in_order(tmp_path: Path) -> None:
    """Reload 1 brings provider `c`, whose first probe hangs; reload 2 (the file edited again)
    must wait for it rather than swap in first, then be overwritten by reload 1's older file."""
    path = _file(tmp_path / "c.yaml", {"m": ["a"]}, {"a": HOURLY})
    probes = Probes()
    probing, release = anyio.Event(), anyio.Event()

    async def hanging() -> ProbeResult:
        probing.set()
        await release.wait()
        return UP

    probes.behaviour["c"] = hanging
    async with _running(path, probes) as runtime, anyio.create_task_group() as tg:
        _file(tmp_path / "c.yaml", {"m": ["a", "c"]}, {"a": HOURLY, "c": HOURLY})
        tg.start_soon(runtime.reload, path)
        with anyio.fail_after(5):
            await probing.wait()
        _file(tmp_path / "c.yaml", {"m": ["a"], "n": ["a"]}, {"a": HOURLY})
        tg.start_soon(runtime.reload, path)
        await anyio.wait_all_tasks_blocked()
        assert [m.name for m in runtime.config.models] == ["m"], "nothing applied while reload 1 probes"
        release.set()
    assert [m.name for m in runtime.config.models] == ["m", "n"]
    assert [p.name for p in runtime.config.providers] == ["a"]
