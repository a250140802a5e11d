"""The config loader: YAML, ${ENV} substitution and validation into frozen dataclasses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from router.config import (
    BreakerConfig,
    Config,
    ConfigError,
    HealthConfig,
    PoolConfig,
    RoutingConfig,
    ServerConfig,
    Timeouts,
    load_config,
    parse_config,
)

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


def minimal(**top: Any) -> dict[str, Any]:
    """A smallest valid document, with top-level keys replaced or added."""
    doc: dict[str, Any] = {
        "providers": [{"name": "p", "base_url": "http://127.0.0.1:9000", "formats": ["openai-chat"]}],
        "models": [{"name": "m", "routes": [{"provider": "p", "model": "up"}]}],
    }
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
                "routes": [
                    {"provider": "openai-main", "model": "gpt-5.4"},
                    {"provider": "claude", "model": "claude-x", "priority": 1, "weight": 0.5},
                ],
            },
            {"name": "gpt-long", "routes": [{"provider": "openai-main", "model": "gpt-4.1"}]},
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


def test_explicit_null_means_default() -> None:
    """A key present with an empty value (YAML null) keeps its default."""
    cfg = parse_config(minimal(server=None, routing={"deadline_s": None}), env={})
    assert cfg.server == ServerConfig() and cfg.routing == RoutingConfig()


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
        "server": {"port": 70000, "max_body_bytes": 10},
        "routing": {"max_attempts": 0, "deadline_s": "abc", "backoff_min_s": 1, "backoff_max_s": 0.5},
        "log": {"level": "loud"},
        "providers": [
            {"name": "a", "base_url": "http://a", "formats": ["openai-chat", "smtp"]},
            {"name": "b", "base_url": "http://b", "formats": []},
            {"name": "c", "base_url": "http://c", "formats": ["openai-chat"], "weight": 0,
             "health": {"method": "PUT", "path": "health"}, "breaker": {"fail_max": 0}},
        ],
        "models": [
            {"name": "m", "routes": [{"provider": "a", "model": "x", "priority": -1}, {"provider": "a"}]},
        ],
    }  # fmt: skip
    assert problems(doc) == [
        "server.port: must be <= 65535, got 70000",
        "server.max_body_bytes: must be >= 1024, got 10",
        "routing.max_attempts: must be >= 1, got 0",
        "routing.deadline_s: expected a number, got 'abc'",
        "routing.backoff_max_s: must be >= backoff_min_s (1.0), got 0.5",
        "providers[0].formats[1]: must be one of openai-chat, anthropic-messages, openai-responses; "
        "got 'smtp'",
        "providers[1].formats: must be a non-empty list",
        "providers[2].weight: must be > 0, got 0",
        "providers[2].health.method: must be one of GET, HEAD, POST; got 'PUT'",
        "providers[2].health.path: must start with '/', got 'health'",
        "providers[2].breaker.fail_max: must be >= 1, got 0",
        "models[0].routes[0].priority: must be >= 0, got -1",
        "models[0].routes[1].model: is required",
        "log.level: must be one of debug, info, warning, error; got 'loud'",
    ]


def test_unknown_keys_are_rejected_everywhere() -> None:
    """A misspelt key is an error naming the keys that are allowed there."""
    doc = minimal(plans={})
    doc["providers"][0]["timout"] = 5
    doc["providers"][0]["health"] = {"intervl_s": 1}
    doc["models"][0]["price"] = 1
    found = problems(doc)
    assert found[0] == (
        "providers[0].health.intervl_s: unknown key (expected one of: enabled, method, path, "
        "interval_s, timeout_s, unhealthy_after, healthy_after)"
    )
    assert found[1].startswith("providers[0].timout: unknown key (expected one of: name, base_url, formats,")
    assert found[2].startswith("models[0].price: unknown key (expected one of: name, routes,")
    assert found[3] == "plans: unknown key (expected one of: server, routing, providers, models, log)"
    assert len(found) == 4


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
    doc = minimal(server={"port": True}, routing={"deadline_s": False})
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
    assert problems(None) == ["providers: is required", "models: is required"]
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
        "providers:\n"
        "  - {name: p, base_url: 'http://${H:-localhost}:1', formats: [openai-chat], api_key: '${K}'}\n"
        "models:\n"
        "  - {name: m, routes: [{provider: p, model: u}]}\n"
    )
    cfg = load_config(path, env={"K": "key"})
    assert cfg.source == str(path)
    assert (cfg.providers[0].base_url, cfg.providers[0].api_key) == ("http://localhost:1", "key")


def test_shipped_configs_load() -> None:
    """config/example.yaml (with fake keys) and config/demo.yaml are valid."""
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

    demo = load_config(CONFIG_DIR / "demo.yaml", env={})
    assert (demo.server.host, demo.server.port) == ("127.0.0.1", 8080)
    assert [p.base_url for p in demo.providers] == [f"http://127.0.0.1:{port}" for port in (9101, 9102, 9103)]
    for p in demo.providers:
        assert p.formats == ("openai-chat", "anthropic-messages", "openai-responses") and p.api_key is None
        assert (p.health.interval_s, p.health.timeout_s) == (2.0, 1.0)
        assert (p.breaker.fail_max, p.breaker.reset_timeout_s) == (3, 5.0)
        assert p.timeouts == Timeouts(connect_s=1.0, first_token_s=2.0, idle_s=5.0, total_s=30.0)
    claude = demo.model("demo-claude")
    assert claude is not None
    assert [(r.provider, r.priority) for r in claude.routes] == [("fast", 0), ("slow", 0), ("flaky", 1)]
    gpt_demo = demo.model("demo-gpt")
    assert gpt_demo is not None and [r.priority for r in gpt_demo.routes] == [0, 0, 0]


def test_provider_headers() -> None:
    """Extra provider headers parse into name/value pairs; a non-mapping or a multi-line value is reported."""
    doc = minimal()
    doc["providers"][0]["headers"] = {"HTTP-Referer": "https://me", "X-Title": "router"}
    assert parse_config(doc).providers[0].headers == (("HTTP-Referer", "https://me"), ("X-Title", "router"))
    doc["providers"][0]["headers"] = ["HTTP-Referer: x"]
    assert problems(doc) == ["providers[0].headers: expected a mapping of header name to value, got ['HTTP-Referer: x']"]
    doc["providers"][0]["headers"] = {"X-Ok": "1", "X-Split": "a\r\nInjected: yes", "X-Num": 3}
    assert problems(doc) == [
        "providers[0].headers.X-Split: expected a header name and a one-line string value, got 'a\\r\\nInjected: yes'",
        "providers[0].headers.X-Num: expected a header name and a one-line string value, got 3",
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
