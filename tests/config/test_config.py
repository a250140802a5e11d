"""The config loader: YAML, ${ENV} substitution and validation into frozen dataclasses."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from router.config import (
    AccountingConfig,
    BreakerConfig,
    Budget,
    Config,
    ConfigError,
    HealthConfig,
    KeyConfig,
    LedgerConfig,
    PlanConfig,
    PoolConfig,
    Price,
    RoutingConfig,
    ServerConfig,
    StateConfig,
    Timeouts,
    load_config,
    parse_config,
)
from router.config.reader import parse_duration

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
H1 = "sha256:" + hashlib.sha256(b"toc-key-one").hexdigest()
H2 = "sha256:" + hashlib.sha256(b"toc-key-two").hexdigest()


def minimal(**top: Any) -> dict[str, Any]:
    """A smallest valid document (anonymous, no keys), with top-level keys replaced or added."""
    doc: dict[str, Any] = {
        "server": {"allow_anonymous": True},
        "providers": [{"name": "p", "base_url": "http://127.0.0.1:9000", "formats": ["openai-chat"]}],
        "models": [{"name": "m", "routes": [{"provider": "p", "model": "up"}]}],
    }
    doc.update(top)
    return doc


def with_access(**top: Any) -> dict[str, Any]:
    """A valid document with priced models a, b and c, two plans and two keys; `top` replaces keys."""
    price = {"input_per_mtok": 1, "output_per_mtok": 2}
    route = [{"provider": "p", "model": "up"}]
    doc = minimal(
        server=None,
        models=[{"name": n, "routes": route, "price": dict(price)} for n in ("a", "b", "c")],
        plans=[
            {"name": "pro", "models": ["a", "b*"], "budget": {"usd": 5, "window": "1h"}},
            {"name": "free", "models": ["*"]},
        ],
        keys=[{"id": "k1", "hash": H1, "plan": "pro"}, {"id": "k2", "hash": H2, "plan": "free"}],
    )
    doc.update(top)
    return doc


def problems(data: object, env: dict[str, str] | None = None) -> list[str]:
    """The problems parse_config reports for `data` (fails the test if it parses)."""
    with pytest.raises(ConfigError) as info:
        parse_config(data, env={} if env is None else env)
    assert info.value.source == "<memory>"
    return info.value.problems


def test_full_config_parses_into_values_and_defaults() -> None:
    """Every section parses into the right values; everything unset keeps its default."""
    doc = {
        "server": {"host": "0.0.0.0", "port": 9000},
        "routing": {"max_attempts": 5, "deadline_s": 30, "backoff_min_s": 0.1},
        "log": {"level": "debug", "format": "json"},
        "plans": [
            {
                "name": "pro",
                "models": ["gpt*"],
                "budget": {"usd": 50, "window": "2h"},
                "rpm": 600,
                "max_concurrent": 20,
            },
            {"name": "basic", "models": ["gpt-long"]},
        ],
        "keys": [{"id": "acme-prod", "hash": H1, "plan": "pro"}, {"id": "acme.dev", "hash": H2, "plan": "basic"}],
        "state": {
            "backend": "redis",
            "url": "rediss://:pw@redis.internal:6380/2",
            "on_unavailable": "fail_open",
            "key_prefix": "gw",
            "timeout_s": 0.25,
        },
        "ledger": {"path": "/var/lib/router/usage.jsonl", "enabled": False},
        "accounting": {"default_max_output_tokens": 1024},
        "providers": [
            {
                "name": "openai-main",
                "base_url": "https://api.openai.com/",
                "formats": ["openai-chat", "openai-responses"],
                "api_key": "sk-test",
                "weight": 2,
                "headers": {"X-Title": "router"},
                "timeouts": {"connect_s": 1, "total_s": 120.5},
                "health": {"enabled": False, "method": "HEAD", "path": "/health", "unhealthy_after": 3},
                "breaker": {"fail_max": 2},
                "pool": {"max_connections": 10},
            },
            {"name": "claude", "base_url": "https://api.anthropic.com", "formats": ["anthropic-messages"]},
        ],
        "models": [
            {
                "name": "gpt",
                "owned_by": "openai",
                "context_fallback": "gpt-long",
                "price": {"input_per_mtok": 1.25, "output_per_mtok": 10, "cached_input_per_mtok": 0.125},
                "routes": [
                    {"provider": "openai-main", "model": "gpt-5.4"},
                    {"provider": "claude", "model": "claude-x", "priority": 1, "weight": 0.5},
                ],
            },
            {
                "name": "gpt-long",
                "routes": [{"provider": "openai-main", "model": "gpt-4.1"}],
                "price": {
                    "input_per_mtok": 3,
                    "output_per_mtok": 15,
                    "cached_input_per_mtok": 0.3,
                    "cache_write_per_mtok": 3.75,
                },
            },
        ],
    }
    cfg = parse_config(doc, env={})
    assert isinstance(cfg, Config) and cfg.source == "<memory>"
    assert cfg.server == ServerConfig(host="0.0.0.0", port=9000, max_body_bytes=ServerConfig().max_body_bytes)
    assert cfg.routing == RoutingConfig(max_attempts=5, deadline_s=30.0, backoff_min_s=0.1)
    assert (cfg.log.level, cfg.log.format) == ("debug", "json")
    p = cfg.provider("openai-main")
    assert p.base_url == "https://api.openai.com"  # trailing slash dropped
    assert p.formats == ("openai-chat", "openai-responses")
    assert (p.api_key, p.weight, p.headers) == ("sk-test", 2.0, (("X-Title", "router"),))
    assert isinstance(p.weight, float) and isinstance(p.timeouts.connect_s, float)
    assert p.timeouts == Timeouts(connect_s=1.0, first_token_s=60.0, idle_s=60.0, total_s=120.5)
    assert p.health == HealthConfig(enabled=False, method="HEAD", path="/health", unhealthy_after=3)
    assert p.breaker == BreakerConfig(fail_max=2) and p.pool == PoolConfig(max_connections=10)
    c = cfg.provider("claude")
    assert (c.api_key, c.weight, c.anthropic_version, c.headers) == (None, 1.0, "2023-06-01", ())
    assert c.timeouts == Timeouts() and c.health == HealthConfig() and c.breaker == BreakerConfig()
    gpt = cfg.model("gpt")
    assert gpt is not None and (gpt.owned_by, gpt.context_fallback) == ("openai", "gpt-long")
    assert [(r.provider, r.model, r.priority, r.weight) for r in gpt.routes] == [
        ("openai-main", "gpt-5.4", 0, None),
        ("claude", "claude-x", 1, 0.5),
    ]
    long = cfg.model("gpt-long")
    assert long is not None and (long.owned_by, long.context_fallback) == ("router", None)
    assert gpt.price == Price(1.25, 10.0, cached_input_per_mtok=0.125, cache_write_per_mtok=None)
    assert long.price == Price(3.0, 15.0, 0.3, 3.75) and isinstance(long.price.output_per_mtok, float)
    assert cfg.plans == (
        PlanConfig("pro", ("gpt*",), Budget(usd=50.0, window_s=7200.0), rpm=600, max_concurrent=20),
        PlanConfig("basic", ("gpt-long",)),
    )
    assert cfg.keys == (KeyConfig("acme-prod", H1, "pro"), KeyConfig("acme.dev", H2, "basic"))
    assert cfg.state == StateConfig("redis", "rediss://:pw@redis.internal:6380/2", "fail_open", "gw", 0.25)
    assert cfg.ledger == LedgerConfig(path="/var/lib/router/usage.jsonl", enabled=False)
    assert cfg.accounting == AccountingConfig(default_max_output_tokens=1024)
    assert cfg.server.allow_anonymous is False


def test_access_sections_default() -> None:
    """Without plans, keys, state, ledger, accounting or prices every field keeps its default."""
    cfg = parse_config(minimal(), env={})
    assert (cfg.plans, cfg.keys, cfg.server.allow_anonymous) == ((), (), True)
    assert cfg.state == StateConfig(
        backend="memory", url=None, on_unavailable="fail_closed", key_prefix="router", timeout_s=0.5
    )
    assert cfg.ledger == LedgerConfig(path="var/usage.jsonl", enabled=True)
    assert cfg.accounting == AccountingConfig(default_max_output_tokens=16384)
    assert cfg.models[0].price is None
    nulls = parse_config(minimal(plans=None, keys=[], state=None, ledger=None, accounting=None), env={})
    assert (nulls.plans, nulls.keys, nulls.state, nulls.ledger) == ((), (), StateConfig(), LedgerConfig())


def test_explicit_null_means_default() -> None:
    """A key present with an empty value (YAML null) keeps its default."""
    cfg = parse_config(minimal(server={"allow_anonymous": True, "port": None}, routing={"deadline_s": None}), env={})
    assert cfg.server == ServerConfig(allow_anonymous=True) and cfg.routing == RoutingConfig()


def test_env_substitution_set_and_default() -> None:
    """${VAR} takes the variable; ${VAR:-default} the default when unset or empty; also mid-string."""
    doc = minimal()
    doc["providers"][0].update(
        api_key="${KEY}",
        base_url="https://${HOST:-example.com}/api",
        headers={"X-A": "${EMPTY:-fallback}", "X-B": "pre-${KEY}-post"},
    )
    cfg = parse_config(doc, env={"KEY": "secret", "EMPTY": ""})
    p = cfg.providers[0]
    assert p.api_key == "secret"
    assert p.base_url == "https://example.com/api"
    assert p.headers == (("X-A", "fallback"), ("X-B", "pre-secret-post"))
    cfg = parse_config(doc, env={"KEY": "k", "HOST": "h.internal"})
    assert cfg.providers[0].base_url == "https://h.internal/api"


def test_env_substitution_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an env mapping, os.environ is used."""
    monkeypatch.setenv("ROUTER_TEST_KEY", "from-os")
    doc = minimal()
    doc["providers"][0]["api_key"] = "${ROUTER_TEST_KEY}"
    assert parse_config(doc).providers[0].api_key == "from-os"


def test_missing_env_variable_is_reported_with_its_path() -> None:
    """An unset ${VAR} without default is one problem at its path, with no follow-on complaint."""
    doc = minimal()
    doc["providers"][0]["api_key"] = "${OPENAI_API_KEY}"
    doc["providers"][0]["headers"] = {"X-Key": "${OTHER_KEY}"}
    assert problems(doc) == [
        "providers[0].api_key: environment variable OPENAI_API_KEY is not set",
        "providers[0].headers.X-Key: environment variable OTHER_KEY is not set",
    ]


def test_several_problems_are_reported_at_once_with_exact_paths() -> None:
    """Validation does not stop at the first problem; each one names its path."""
    doc = {
        "server": {"port": 70000, "max_body_bytes": 10, "allow_anonymous": True},
        "routing": {"max_attempts": 0, "deadline_s": "abc", "backoff_min_s": 1, "backoff_max_s": 0.5},
        "log": {"level": "loud"},
        "providers": [
            {"name": "a", "base_url": "http://a", "formats": ["openai-chat", "smtp"]},
            {"name": "b", "base_url": "http://b", "formats": []},
            {
                "name": "c",
                "base_url": "http://c",
                "formats": ["openai-chat"],
                "weight": 0,
                "health": {"method": "PUT", "path": "health"},
                "breaker": {"fail_max": 0},
            },
        ],
        "models": [
            {"name": "m", "routes": [{"provider": "a", "model": "x", "priority": -1}, {"provider": "a"}]},
        ],
    }
    assert problems(doc) == [
        "server.port: must be <= 65535, got 70000",
        "server.max_body_bytes: must be >= 1024, got 10",
        "routing.max_attempts: must be >= 1, got 0",
        "routing.deadline_s: expected a number, got 'abc'",
        "routing.backoff_max_s: must be >= backoff_min_s (1.0), got 0.5",
        "providers[0].formats[1]: must be one of openai-chat, anthropic-messages, openai-responses; got 'smtp'",
        "providers[1].formats: must be a non-empty list",
        "providers[2].weight: must be > 0, got 0",
        "providers[2].health.method: must be one of GET, HEAD, POST; got 'PUT'",
        "providers[2].health.path: must start with '/', got 'health'",
        "providers[2].breaker.fail_max: must be >= 1, got 0",
        "models[0].routes[0].priority: must be >= 0, got -1",
        "models[0].routes[1].model: is required",
        "log.level: must be one of debug, info, warning, error; got 'loud'",
    ]


def test_client_connection_limits_default_and_are_checked() -> None:
    """server: the client limits (router/ops/protocol.py): defaults, values, and path-named errors."""
    server = parse_config(minimal(), env={}).server
    assert (server.header_timeout_s, server.body_timeout_s, server.keepalive_timeout_s) == (10.0, 30.0, 65.0)
    assert (server.max_connections, server.max_header_bytes) == (1024, 65536)
    limits = {"header_timeout_s": 2, "body_timeout_s": 0.5, "max_connections": 10, "max_header_bytes": 8192}
    server = parse_config(minimal(server={"allow_anonymous": True, **limits}), env={}).server
    assert (server.header_timeout_s, server.body_timeout_s, server.max_connections) == (2.0, 0.5, 10)
    bad = {
        "allow_anonymous": True,
        "header_timeout_s": 0,
        "body_timeout_s": "slow",
        "keepalive_timeout_s": -1,
        "max_connections": 0,
        "max_header_bytes": 100,
    }
    assert problems(minimal(server=bad)) == [
        "server.header_timeout_s: must be > 0, got 0",
        "server.body_timeout_s: expected a number, got 'slow'",
        "server.keepalive_timeout_s: must be > 0, got -1",
        "server.max_connections: must be >= 1, got 0",
        "server.max_header_bytes: must be >= 1024, got 100",
    ]


def _breaker(**breaker: Any) -> BreakerConfig:
    doc = minimal()
    doc["providers"][0]["breaker"] = breaker
    return parse_config(doc, env={}).providers[0].breaker


def test_breaker_trial_schedule_defaults_and_cap() -> None:
    """Defaults: first trial after 5 s, doubling to 10 s, 20% jitter. An unset cap follows a
    longer reset_timeout_s (a config written for a fixed wait keeps it); a set cap is kept."""
    assert _breaker() == BreakerConfig() == BreakerConfig(5, 5.0, 10.0, 0.2, 1)
    assert _breaker(reset_timeout_s=2) == BreakerConfig(reset_timeout_s=2.0, reset_timeout_max_s=10.0)
    assert _breaker(reset_timeout_s=60).reset_timeout_max_s == 60.0
    assert _breaker(reset_timeout_s=1, reset_timeout_max_s=3, reset_jitter=0).reset_timeout_max_s == 3.0
    assert _breaker(reset_timeout_s=4, reset_timeout_max_s=4).reset_jitter == 0.2


def test_breaker_trial_schedule_errors_name_their_path() -> None:
    """A cap below the first wait, and jitter outside [0, 1), are reported with their path."""
    doc = minimal()
    doc["providers"][0]["breaker"] = {"reset_timeout_s": 8, "reset_timeout_max_s": 4, "reset_jitter": 1}
    doc["providers"].append(
        {"name": "q", "base_url": "http://q", "formats": ["openai-chat"], "breaker": {"reset_jitter": -0.1}}
    )
    assert problems(doc) == [
        "providers[0].breaker.reset_timeout_max_s: must be >= reset_timeout_s (8.0), got 4.0",
        "providers[0].breaker.reset_jitter: must be < 1 (a share of each wait), got 1.0",
        "providers[1].breaker.reset_jitter: must be >= 0, got -0.1",
    ]


def test_unknown_keys_are_rejected_everywhere() -> None:
    """A misspelt key is an error naming the keys that are allowed there."""
    doc = with_access(plan={}, state={"backend": "memory", "uri": "redis://x"})
    doc["providers"][0]["timout"] = 5
    doc["providers"][0]["health"] = {"intervl_s": 1}
    doc["models"][0]["prices"] = 1
    doc["models"][1]["price"]["output_per_token"] = 1
    doc["plans"][0]["budget"]["windows"] = "1h"
    doc["keys"][0]["plans"] = "pro"
    found = problems(doc)
    assert found == [
        "providers[0].health.intervl_s: unknown key (expected one of: enabled, method, path, "
        "interval_s, timeout_s, unhealthy_after, healthy_after)",
        "providers[0].timout: unknown key (expected one of: name, base_url, formats, api_key, weight, "
        "anthropic_version, headers, forward_headers, timeouts, health, breaker, pool, prefill)",
        "models[0].prices: unknown key (expected one of: name, routes, context_fallback, owned_by, price, "
        "max_output_tokens)",
        "models[1].price.output_per_token: unknown key (expected one of: input_per_mtok, output_per_mtok, "
        "cached_input_per_mtok, cache_write_per_mtok)",
        "plans[0].budget.windows: unknown key (expected one of: usd, window)",
        "keys[0].plans: unknown key (expected one of: id, hash, plan)",
        "state.uri: unknown key (expected one of: backend, url, on_unavailable, key_prefix, timeout_s, "
        "ping_interval_s)",
        "plan: unknown key (expected one of: server, routing, providers, models, log, plans, keys, state, "
        "ledger, accounting)",
    ]


@pytest.mark.parametrize("url", ["api.openai.com", "ftp://example.com", "http://", "", 42])
def test_bad_base_url(url: object) -> None:
    """base_url must be an http(s) URL with a host."""
    doc = minimal()
    doc["providers"][0]["base_url"] = url
    (problem,) = problems(doc)
    assert problem.startswith("providers[0].base_url: ")


def test_unknown_route_provider() -> None:
    """A route naming no configured provider is reported at the route's provider path."""
    doc = minimal()
    doc["models"][0]["routes"].append({"provider": "nope", "model": "x"})
    assert problems(doc) == ["models[0].routes[1].provider: unknown provider 'nope' (known: p)"]


def test_context_fallback_must_name_another_existing_model() -> None:
    """context_fallback to an unknown model, or to the model itself, is an error."""
    doc = minimal()
    doc["models"][0]["context_fallback"] = "ghost"
    assert problems(doc) == ["models[0].context_fallback: unknown model 'ghost'"]
    doc["models"][0]["context_fallback"] = "m"
    assert problems(doc) == ["models[0].context_fallback: must name another model, not itself"]


def test_bool_is_not_an_int() -> None:
    """YAML true/false are rejected where an integer or a number is expected, and vice versa."""
    doc = minimal(server={"port": True, "allow_anonymous": True}, routing={"deadline_s": False})
    doc["providers"][0]["health"] = {"enabled": 1}
    assert problems(doc) == [
        "server.port: expected an integer, got True",
        "routing.deadline_s: expected a number, got False",
        "providers[0].health.enabled: expected true or false, got 1",
    ]


def test_duplicates_are_errors() -> None:
    """Provider names, model names, formats and (provider, model) routes must be unique."""
    doc = minimal()
    doc["providers"].append(dict(doc["providers"][0], formats=["openai-chat", "openai-chat"]))
    route = {"provider": "p", "model": "u"}
    doc["models"].append({"name": "m", "routes": [route, dict(route)]})
    assert problems(doc) == [
        "providers[1].formats[1]: duplicate format 'openai-chat'",
        "models[1].routes[1]: duplicate route (provider 'p', model 'u')",
        "providers[1].name: duplicate name 'p' (first at providers[0])",
        "models[1].name: duplicate name 'm' (first at models[0])",
    ]


def test_wrong_shapes_and_names() -> None:
    """Non-mappings, non-lists, empty strings and bad provider names are reported, not crashed on."""
    assert problems([1, 2]) == ["top level: expected a mapping, got [1, 2]"]
    assert problems(None) == [
        "providers: is required",
        "models: is required",
        "keys: no API keys configured; add some (router keys new --plan NAME) or set "
        "server.allow_anonymous: true for a private deployment",
    ]
    doc = minimal(models="m", log=[])
    doc["providers"][0].update(name="bad name", api_key="", timeouts=5)
    assert problems(doc) == [
        "providers[0].name: must match [A-Za-z0-9._-]+, got 'bad name'",
        "providers[0].api_key: must not be empty",
        "providers[0].timeouts: expected a mapping, got 5",
        "models: expected a list, got 'm'",
        "log: expected a mapping, got []",
    ]


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    """A YAML syntax error is one problem with the file name and line, not a traceback."""
    path = tmp_path / "broken.yaml"
    path.write_text("providers:\n  - name: a\n    base_url: [unclosed\nmodels: []\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    (problem,) = info.value.problems
    assert problem.startswith("line 4, column ") and "invalid YAML" in problem
    assert info.value.source == str(path)
    assert f"{path}: line 4" in str(info.value) and "Traceback" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    """A missing file is a ConfigError naming the file."""
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == ["cannot read config file: No such file or directory"]
    assert str(path) in str(info.value)


def test_load_config_sets_source_and_substitutes(tmp_path: Path) -> None:
    """load_config reads the file, substitutes env and records the path as source."""
    path = tmp_path / "c.yaml"
    path.write_text(
        "server: {allow_anonymous: true}\n"
        "providers:\n"
        "  - {name: p, base_url: 'http://${H:-localhost}:1', formats: [openai-chat], api_key: '${K}'}\n"
        "models:\n"
        "  - {name: m, routes: [{provider: p, model: u}]}\n"
    )
    cfg = load_config(path, env={"K": "key"})
    assert cfg.source == str(path)
    assert (cfg.providers[0].base_url, cfg.providers[0].api_key) == ("http://localhost:1", "key")


def test_shipped_configs_load() -> None:
    """config/example.yaml (with fake keys) and config/demo.yaml are valid, prices, plans and keys included."""
    env = {
        "OPENAI_API_KEY": "sk-x",
        "ANTHROPIC_API_KEY": "sk-ant-x",
        "OPENROUTER_API_KEY": "sk-or-x",
        "AZURE_OPENAI_API_KEY": "az-x",
    }
    example = load_config(CONFIG_DIR / "example.yaml", env=env)
    names = [p.name for p in example.providers]
    assert names == ["openai-main", "anthropic", "azure-east", "openrouter", "vllm"]
    assert example.provider("openrouter").base_url == "https://openrouter.ai/api"
    assert example.provider("azure-east").base_url.startswith("https://example.openai.azure.com")
    gpt = example.model("gpt-5.4")
    assert gpt is not None and gpt.context_fallback == "gpt-5.4-long"
    models = [m.name for m in example.models]
    assert models == ["gpt-5.4", "gpt-5.4-long", "claude-sonnet-4-5", "llama-3.3-70b"]
    assert all(m.price is not None for m in example.models)
    assert gpt.price == Price(1.25, 10.0, cached_input_per_mtok=0.125)
    assert example.plan("pro") == PlanConfig("pro", ("gpt-5.4*", "claude-*"), Budget(50.0, 7200.0), 600, 20)
    assert [p.name for p in example.plans] == ["pro", "team"] and example.plan("team").budget is not None
    assert [(k.id, k.plan) for k in example.keys] == [("acme-prod", "pro"), ("research", "team")]
    assert example.state == StateConfig("redis", "redis://127.0.0.1:6379/0", "fail_closed")
    assert example.server.allow_anonymous is False and example.ledger == LedgerConfig("var/usage.jsonl")
    # Listening on loopback, and /metrics and /status.json closed even when it is changed.
    assert example.server.host == "127.0.0.1"
    assert example.server.metrics_token is not None and example.server.admin_token is not None
    redis = load_config(CONFIG_DIR / "example.yaml", env={**env, "REDIS_URL": "rediss://r.internal:6380/1"})
    assert redis.state.url == "rediss://r.internal:6380/1"

    demo = load_config(CONFIG_DIR / "demo.yaml", env={})
    assert (demo.server.host, demo.server.port) == ("127.0.0.1", 8080)
    assert [p.base_url for p in demo.providers] == [f"http://127.0.0.1:{port}" for port in (9101, 9102, 9103)]
    speaks = {p.name: p.formats for p in demo.providers}
    assert speaks["slow"] == ("openai-chat",), "the demo's translated provider"
    assert speaks["fast"] == speaks["flaky"] == ("openai-chat", "anthropic-messages", "openai-responses")
    for p in demo.providers:
        assert p.api_key is None
        assert (p.health.interval_s, p.health.timeout_s) == (2.0, 1.0)
        assert (p.breaker.fail_max, p.breaker.reset_timeout_s, p.breaker.reset_timeout_max_s) == (3, 5.0, 5.0)
        assert p.timeouts == Timeouts(connect_s=1.0, first_token_s=2.0, idle_s=5.0, total_s=30.0)
    claude = demo.model("demo-claude")
    assert claude is not None
    assert [(r.provider, r.priority) for r in claude.routes] == [("fast", 0), ("slow", 0), ("flaky", 1)]
    gpt_demo = demo.model("demo-gpt")
    assert gpt_demo is not None and [r.priority for r in gpt_demo.routes] == [0, 0, 0]
    assert gpt_demo.price == Price(1.25, 10.0, 0.125) and claude.price == Price(3.0, 15.0, 0.3, 3.75)
    assert demo.plans == (PlanConfig("demo", ("demo-*",), Budget(5.0, 3600.0), rpm=6000, max_concurrent=50),)
    demo_key = "toc-demo-0000000000000000000000000000000000000000"
    assert demo.keys == (KeyConfig("demo", "sha256:" + hashlib.sha256(demo_key.encode()).hexdigest(), "demo"),)
    assert demo.ledger == LedgerConfig(path="var/demo-usage.jsonl") and demo.state == StateConfig()


def test_provider_headers() -> None:
    """Extra provider headers parse into name/value pairs; a non-mapping or a multi-line value is reported."""
    doc = minimal()
    doc["providers"][0]["headers"] = {"HTTP-Referer": "https://me", "X-Title": "router"}
    assert parse_config(doc).providers[0].headers == (("HTTP-Referer", "https://me"), ("X-Title", "router"))
    doc["providers"][0]["headers"] = ["HTTP-Referer: x"]
    assert problems(doc) == [
        "providers[0].headers: expected a mapping of header name to value, got ['HTTP-Referer: x']"
    ]
    doc["providers"][0]["headers"] = {"X-Ok": "1", "X-Split": "a\r\nInjected: yes", "X-Num": 3}
    assert problems(doc) == [
        f"providers[0].headers.X-Split: {ONE_LINE}",
        "providers[0].headers.X-Num: expected a non-empty string value, got int",
    ]
    doc["providers"][0]["headers"] = {"Bad Name": "1", "X-Pad": " v"}
    assert problems(doc) == [
        "providers[0].headers: expected header names, got 'Bad Name'",
        "providers[0].headers.X-Pad: must not start or end with whitespace",
    ]


ONE_LINE = "must be one line without control characters (CR, LF, tab...); a file's trailing newline?"


@pytest.mark.parametrize("key", ["sk-live-secret\n", "sk-live-secret\r\n", "sk-live\x00secret", "sk-live\tsecret"])
def test_api_key_with_control_characters_is_refused_without_echo(key: str) -> None:
    """A key read from a file with its trailing newline (a Kubernetes Secret made --from-file)
    would be sent as an illegal header; the config refuses it, naming the path, never the key."""
    doc = minimal()
    doc["providers"][0]["api_key"] = key
    found = problems(doc)
    assert found == [f"providers[0].api_key: {ONE_LINE}"]
    assert not any("secret" in p for p in found)


def test_api_key_and_version_with_whitespace_at_an_end_are_refused() -> None:
    doc = minimal()
    doc["providers"][0]["api_key"] = " sk-live-secret"
    doc["providers"][0]["anthropic_version"] = "2023-06-01\n"
    assert problems(doc) == [
        "providers[0].api_key: must not start or end with whitespace",
        f"providers[0].anthropic_version: {ONE_LINE}",
    ]


def test_model_max_output_tokens() -> None:
    """A model's output limit is a whole number from 1 to 10,000,000; unset by default."""
    doc = minimal()
    assert parse_config(doc).models[0].max_output_tokens is None
    doc["models"][0]["max_output_tokens"] = 32000
    assert parse_config(doc).models[0].max_output_tokens == 32000
    doc["models"][0]["max_output_tokens"] = 0
    assert problems(doc) == ["models[0].max_output_tokens: must be >= 1, got 0"]
    doc["models"][0]["max_output_tokens"] = 10**8
    assert problems(doc) == ["models[0].max_output_tokens: must be <= 10000000, got 100000000"]


def test_provider_forward_headers() -> None:
    """Extra client headers to forward are lower-cased header names; a credential, cookie,
    organisation or project selector or hop-by-hop header is refused, naming the entry."""
    doc = minimal()
    doc["providers"][0]["forward_headers"] = ["X-Title", "x-title", "HTTP-Referer"]
    assert parse_config(doc).providers[0].forward_headers == ("x-title", "http-referer")
    doc["providers"][0]["forward_headers"] = ["OpenAI-Organization", "cookie", "bad name", 3, "Connection"]
    assert problems(doc) == [
        "providers[0].forward_headers[0]: 'OpenAI-Organization' is never forwarded "
        "(a credential, selector or hop-by-hop header)",
        "providers[0].forward_headers[1]: 'cookie' is never forwarded (a credential, selector or hop-by-hop header)",
        "providers[0].forward_headers[2]: expected a header name, got 'bad name'",
        "providers[0].forward_headers[3]: expected a header name, got 3",
        "providers[0].forward_headers[4]: 'Connection' is never forwarded "
        "(a credential, selector or hop-by-hop header)",
    ]


def test_config_lookups() -> None:
    """Config.provider raises KeyError for an unknown name; Config.model returns None."""
    cfg = parse_config(minimal())
    assert cfg.provider("p").name == "p" and cfg.model("m") is not None
    assert cfg.model("nope") is None
    with pytest.raises(KeyError):
        cfg.provider("nope")


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    """A config file that is not UTF-8 is one problem naming the byte, not a traceback."""
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"providers: []\n# caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    (problem,) = info.value.problems
    assert problem.startswith("config file is not UTF-8: invalid continuation byte at byte ")


def test_yaml_error_without_a_position(tmp_path: Path) -> None:
    """A YAML reader error (a control character) is reported on one line as invalid YAML."""
    path = tmp_path / "bell.yaml"
    path.write_text("providers: \x07\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    (problem,) = info.value.problems
    assert problem.startswith("invalid YAML: ") and "\n" not in problem


# --- plans, keys, prices, state -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("2h", 7200.0),
        ("30m", 1800.0),
        ("45s", 45.0),
        ("1d", 86400.0),
        ("1h30m", 5400.0),
        ("1d2h3m4s", 93784.0),
        ("90", 90.0),
        ("0.5", 0.5),
        (3600, 3600.0),
        (1.5, 1.5),
        ("0s", 0.0),
        (-5, -5.0),
    ],
)
def test_parse_duration_accepts(value: object, seconds: float) -> None:
    """Units d, h, m, s (in that order, combinable) and plain numbers of seconds give seconds."""
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value", ["", "h", "2x", "2H", "1.5h", "30m1h", "2 h", "1h 30m", "-2h", "2hh", True, None, [1], float("inf")]
)
def test_parse_duration_rejects(value: object) -> None:
    """Anything else is not a duration (None), including units out of order, spaces and booleans."""
    assert parse_duration(value) is None


@pytest.mark.parametrize(
    ("window", "problem"),
    [
        ("2 hours", "expected a duration like 2h, 30m, 45s, 1d or 1h30m, or seconds; got '2 hours'"),
        ("0s", "must be > 0, got 0.0"),
        (-60, "must be > 0, got -60.0"),
        (None, "is required"),
    ],
)
def test_budget_window_problems(window: object, problem: str) -> None:
    """A budget window that is no positive duration is reported at plans[i].budget.window."""
    doc = with_access()
    doc["plans"][0]["budget"]["window"] = window
    assert problems(doc) == [f"plans[0].budget.window: {problem}"]


def test_plan_and_key_field_problems() -> None:
    """Plan and key fields are checked for type, bounds and shape, each at its own path."""
    doc = with_access()
    doc["plans"][0].update(name="pro plan", rpm=0, max_concurrent=1.5, budget={"usd": 0, "window": "1h"})
    doc["plans"][1].update(models=[])
    doc["plans"].append({"name": "x", "models": ["a", 3, ""], "budget": "lots"})
    doc["keys"][0].update(id="", plan=None)
    doc["keys"][1].update(id="k 2")
    assert problems(doc) == [
        "plans[0].name: must match [A-Za-z0-9._-]+, got 'pro plan'",
        "plans[0].budget.usd: must be > 0, got 0",
        "plans[0].rpm: must be >= 1, got 0",
        "plans[0].max_concurrent: expected an integer, got 1.5",
        "plans[1].models: must be a non-empty list",
        "plans[2].models[1]: expected a model name or glob, got 3",
        "plans[2].models[2]: expected a model name or glob, got ''",
        "plans[2].budget: expected a mapping, got 'lots'",
        "keys[0].id: must not be empty",
        "keys[0].plan: is required",
        "keys[1].id: must match [A-Za-z0-9._-]+, got 'k 2'",
    ]


def test_key_hash_format() -> None:
    """A hash is 'sha256:' + 64 lowercase hex digits; uppercase gets a hint; the value is never echoed."""
    doc = with_access()
    doc["keys"][0]["hash"] = H1.upper()
    doc["keys"][1]["hash"] = "toc-" + "s3cr3t" * 7
    doc["keys"].append({"id": "k3", "hash": H1[:-1], "plan": "pro"})
    doc["keys"].append({"id": "k4", "hash": H1.replace("sha256:", "sha1:"), "plan": "pro"})
    found = problems(doc)
    assert found == [
        "keys[0].hash: must be in lowercase hex (the same hash, lowercased)",
        "keys[1].hash: must be 'sha256:' followed by 64 lowercase hex digits, as `router keys new` prints "
        "(got 46 characters; the key itself never goes in the config)",
        "keys[2].hash: must be 'sha256:' followed by 64 lowercase hex digits, as `router keys new` prints "
        "(got 70 characters; the key itself never goes in the config)",
        "keys[3].hash: must be 'sha256:' followed by 64 lowercase hex digits, as `router keys new` prints "
        "(got 69 characters; the key itself never goes in the config)",
    ]
    assert not any("s3cr3t" in p or H1[7:20] in p for p in found)


def test_operator_tokens() -> None:
    """server.metrics_token and server.admin_token are optional hashes in the keys' form."""
    assert (ServerConfig().metrics_token, ServerConfig().admin_token) == (None, None)
    cfg = parse_config(minimal(server={"allow_anonymous": True, "metrics_token": H1, "admin_token": H2}), env={})
    assert (cfg.server.metrics_token, cfg.server.admin_token) == (H1, H2)
    cfg = parse_config(minimal(server={"allow_anonymous": True, "metrics_token": None}), env={})
    assert cfg.server.metrics_token is None
    doc = minimal(server={"allow_anonymous": True, "admin_token": "${ADMIN_HASH}"})
    cfg = parse_config(doc, env={"ADMIN_HASH": H2})
    assert cfg.server.admin_token == H2


def test_operator_token_format() -> None:
    """The same checks and messages as a key's hash; the value is never echoed."""
    secret = "metrics-" + "s3cr3t" * 5
    found = problems(minimal(server={"allow_anonymous": True, "metrics_token": secret, "admin_token": H1.upper()}))
    assert found == [
        "server.metrics_token: must be 'sha256:' followed by 64 lowercase hex digits, as `router token new` prints "
        "(got 38 characters; the token itself never goes in the config)",
        "server.admin_token: must be in lowercase hex (the same hash, lowercased)",
    ]
    assert not any("s3cr3t" in p or H1[7:20] in p or H1[7:20].upper() in p for p in found)
    assert problems(minimal(server={"allow_anonymous": True, "admin_token": 42})) == [
        "server.admin_token: expected a string, got 42"
    ]


def test_operator_tokens_are_secrets_of_their_own() -> None:
    """A token equal to a client key's hash would let that client in; so would one token for both."""
    found = problems(with_access(server={"metrics_token": H2, "admin_token": H1}))
    assert found == [
        "server.metrics_token: same hash as keys[1]; use a token of its own",
        "server.admin_token: same hash as keys[0]; use a token of its own",
    ]
    h3 = "sha256:" + hashlib.sha256(b"operator").hexdigest()
    assert problems(with_access(server={"metrics_token": h3, "admin_token": h3})) == [
        "server.admin_token: same hash as server.metrics_token; use a token of its own"
    ]


def test_key_plan_must_exist() -> None:
    """A key naming no configured plan is reported at keys[i].plan."""
    doc = with_access()
    doc["keys"][1]["plan"] = "gold"
    assert problems(doc) == ["keys[1].plan: unknown plan 'gold'"]


def test_key_ids_and_hashes_are_unique() -> None:
    """Two keys with one id, or with one hash, are errors pointing at the first."""
    doc = with_access()
    doc["keys"].append({"id": "k1", "hash": H2, "plan": "pro"})
    assert problems(doc) == [
        "keys[2].id: duplicate id 'k1' (first at keys[0])",
        "keys[2].hash: same hash as keys[1]; each key needs its own",
    ]


def test_plan_names_are_unique() -> None:
    """Two plans with one name are an error pointing at the first."""
    doc = with_access()
    doc["plans"].append({"name": "pro", "models": ["a"]})
    assert problems(doc) == ["plans[2].name: duplicate name 'pro' (first at plans[0])"]


def test_plan_globs_must_match_a_model() -> None:
    """Each plan glob must match at least one public model name (case-sensitive fnmatch)."""
    doc = with_access()
    doc["plans"][0]["models"] = ["a", "gpt-9*", "B*", "[bc]"]
    assert problems(doc) == [
        "plans[0].models[1]: 'gpt-9*' matches no model",
        "plans[0].models[2]: 'B*' matches no model",
    ]
    assert parse_config(with_access(), env={}).plan("free").models == ("*",)


def test_plan_with_budget_needs_prices() -> None:
    """A plan with a budget may match only priced models; a plan without one may match any."""
    doc = with_access()
    del doc["models"][1]["price"]
    doc["models"][2]["price"] = None
    doc["plans"][0]["models"] = ["*"]
    assert problems(doc) == [
        "plans[0]: budget needs a price for model 'b' (models[1].price)",
        "plans[0]: budget needs a price for model 'c' (models[2].price)",
    ]
    doc["plans"][0]["models"] = ["a"]
    cfg = parse_config(doc, env={})  # plan `free` (no budget) matches the unpriced models too
    assert cfg.model("b") is not None and cfg.model("b").price is None  # type: ignore[union-attr]


def test_price_problems() -> None:
    """Input and output prices are required and >= 0; the cache prices are optional and >= 0."""
    doc = with_access()
    doc["models"][0]["price"] = {"input_per_mtok": -1, "cached_input_per_mtok": "cheap"}
    doc["models"][1]["price"] = {"input_per_mtok": 0, "output_per_mtok": 0, "cache_write_per_mtok": -0.1}
    doc["models"][2]["price"] = 2.5
    assert problems(doc) == [
        "models[0].price.input_per_mtok: must be >= 0, got -1",
        "models[0].price.output_per_mtok: is required",
        "models[0].price.cached_input_per_mtok: expected a number, got 'cheap'",
        "models[1].price.cache_write_per_mtok: must be >= 0, got -0.1",
        "models[2].price: expected a mapping, got 2.5",
    ]


def test_free_models_are_priced_at_zero() -> None:
    """A zero price is a price: a budget plan may match the model."""
    doc = with_access()
    doc["models"][0]["price"] = {"input_per_mtok": 0, "output_per_mtok": 0}
    assert parse_config(doc, env={}).models[0].price == Price(0.0, 0.0)


def test_no_keys_needs_allow_anonymous() -> None:
    """Without keys the router refuses to start unless server.allow_anonymous is true."""
    message = (
        "keys: no API keys configured; add some (router keys new --plan NAME) or set "
        "server.allow_anonymous: true for a private deployment"
    )
    for server in (None, {}, {"allow_anonymous": False}):
        assert problems(minimal(server=server)) == [message]
        assert problems(minimal(server=server, keys=[])) == [message]
    assert problems(minimal(server={"allow_anonymous": "yes"})) == [
        "server.allow_anonymous: expected true or false, got 'yes'",
        message,
    ]
    assert problems(minimal(server=None, keys="k")) == ["keys: expected a list, got 'k'"]
    assert parse_config(minimal(), env={}).server.allow_anonymous is True
    assert parse_config(with_access(), env={}).server.allow_anonymous is False
    both = parse_config(with_access(server={"allow_anonymous": True}), env={})
    assert both.server.allow_anonymous is True and len(both.keys) == 2


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://:pw@redis.internal:6380/2", "redis://redis", "unix:///run/redis.sock"]
)
def test_redis_urls_accepted(url: str) -> None:
    """redis://, rediss:// with a host and unix:// with a path are valid state URLs, also from ${VAR:-default}."""
    cfg = parse_config(minimal(state={"backend": "redis", "url": url}), env={})
    assert cfg.state.backend == "redis" and cfg.state.url == url
    doc = minimal(state={"backend": "redis", "url": "${REDIS_URL:-redis://x:1/0}"})
    from_env = parse_config(doc, env={"REDIS_URL": url})
    assert from_env.state.url == url


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (None, "is required when backend is redis (e.g. redis://127.0.0.1:6379/0)"),
        ("http://:hunter2@cache:6379", "must be a redis://, rediss:// or unix:// URL, got scheme 'http'"),
        ("127.0.0.1:6379", "must be a redis://, rediss:// or unix:// URL, got no scheme"),
        ("localhost", "must be a redis://, rediss:// or unix:// URL, got no scheme"),
        ("redis://", "a redis:// URL needs a host, e.g. redis://127.0.0.1:6379/0"),
        ("rediss://:hunter2@/0", "a rediss:// URL needs a host, e.g. rediss://127.0.0.1:6379/0"),
        ("unix://", "a unix:// URL needs a socket path, e.g. unix:///run/redis.sock"),
        ("redis://:hunter2@cache:port/0", "is not a valid URL"),
        ("redis://[::1/0", "is not a valid URL"),
        (6379, "expected a string, got 6379"),
    ],
)
def test_redis_url_problems(url: object, problem: str) -> None:
    """The redis backend needs a redis://, rediss:// or unix:// URL; a password in it is never echoed."""
    assert problems(minimal(state={"backend": "redis", "url": url})) == [f"state.url: {problem}"]


def test_state_ledger_accounting_problems() -> None:
    """The state, ledger and accounting fields are checked for choices, types and bounds."""
    doc = minimal(
        state={"backend": "etcd", "on_unavailable": "retry", "key_prefix": "", "timeout_s": 0},
        ledger={"path": 5, "enabled": "no"},
        accounting={"default_max_output_tokens": 0},
    )
    assert problems(doc) == [
        "state.backend: must be one of memory, redis; got 'etcd'",
        "state.on_unavailable: must be one of fail_closed, fail_open; got 'retry'",
        "state.key_prefix: must not be empty",
        "state.timeout_s: must be > 0, got 0",
        "ledger.path: expected a string, got 5",
        "ledger.enabled: expected true or false, got 'no'",
        "accounting.default_max_output_tokens: must be >= 1, got 0",
    ]
    memory = parse_config(minimal(state={"url": "redis://shared:6379"}), env={})
    assert memory.state == StateConfig(backend="memory", url="redis://shared:6379")  # kept, unused


def test_config_plan_lookup() -> None:
    """Config.plan returns the named plan and raises KeyError for an unknown one."""
    cfg = parse_config(with_access(), env={})
    assert cfg.plan("pro").budget == Budget(usd=5.0, window_s=3600.0)
    with pytest.raises(KeyError):
        cfg.plan("gold")


def test_loader_modules_import_in_any_order() -> None:
    """router.config.validate imported before router.config does not trip over the import cycle."""
    code = "import router.config.validate, router.config; print(router.config.parse_config.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "parse_config"


def test_prefill_is_a_provider_default_a_route_may_override() -> None:
    """providers[].prefill (default true) applies to its routes unless a route says otherwise."""
    from router.routing.table import RoutingTable

    config = parse_config(
        {
            "server": {"allow_anonymous": True},
            "providers": [
                {"name": "a", "base_url": "http://a.invalid", "formats": ["openai-chat"], "prefill": False},
                {"name": "b", "base_url": "http://b.invalid", "formats": ["openai-chat"]},
            ],
            "models": [
                {
                    "name": "m",
                    "routes": [
                        {"provider": "a", "model": "x"},
                        {"provider": "b", "model": "y"},
                        {"provider": "b", "model": "z", "prefill": False},
                    ],
                }
            ],
        },
        source="t",
    )
    routes = RoutingTable(config).routes()
    assert {r.key: r.prefill for r in routes} == {"a/x": False, "b/y": True, "b/z": False}
    with pytest.raises(ConfigError, match=r"models\[0\]\.routes\[0\]\.prefill: expected true or false"):
        parse_config(
            {
                "server": {"allow_anonymous": True},
                "providers": [{"name": "a", "base_url": "http://a.invalid", "formats": ["openai-chat"]}],
                "models": [{"name": "m", "routes": [{"provider": "a", "model": "x", "prefill": "no"}]}],
            },
            source="t",
        )
