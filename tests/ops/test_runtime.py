"""router.ops.runtime: what a reload does to each provider, and which `state.*` changes it cannot
apply. Pure: parsed configs, no sockets (the reload itself runs over loopback in
tests/integration/test_operations.py)."""

from __future__ import annotations

from typing import Any

from router.config import Config, StateConfig, parse_config
from router.ops.runtime import ProviderChanges, provider_changes, state_ignored


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
