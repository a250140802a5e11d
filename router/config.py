"""Configuration: YAML with ${ENV} substitution, validated once at start into frozen dataclasses.

The request path never sees raw dicts. `load_config(path)` raises `ConfigError` listing every
problem with its file and path in the document, e.g. `demo.yaml: providers[2].base_url: ...`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeVar, cast
from urllib.parse import urlsplit

import yaml

Format = Literal["openai-chat", "anthropic-messages", "openai-responses"]
FORMATS: tuple[Format, ...] = ("openai-chat", "anthropic-messages", "openai-responses")

# Defaults, with their reasons.
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024  # 10 MiB: large prompts with images fit, abuse does not
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_DEADLINE_S = 600.0  # the SDKs' own read timeout
DEFAULT_EWMA_HALF_LIFE_S = 10.0
DEFAULT_MAX_RETRY_WAIT_S = 3.0
DEFAULT_BACKOFF_MIN_S = 0.05  # never a tight loop between attempts
DEFAULT_BACKOFF_MAX_S = 0.5
DEFAULT_ANTHROPIC_VERSION = "2023-06-01"


class ConfigError(Exception):
    """The config file is invalid. `problems` holds one `path: reason` line per problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {source}: {p}" for p in problems)
        super().__init__(f"invalid config ({len(problems)} problem(s)):\n{lines}")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    deadline_s: float = DEFAULT_DEADLINE_S
    ewma_half_life_s: float = DEFAULT_EWMA_HALF_LIFE_S
    max_retry_wait_s: float = DEFAULT_MAX_RETRY_WAIT_S
    backoff_min_s: float = DEFAULT_BACKOFF_MIN_S
    backoff_max_s: float = DEFAULT_BACKOFF_MAX_S


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect_s: float = 3.0
    first_token_s: float = 60.0  # until the first content event, or the whole non-stream body
    idle_s: float = 60.0  # the longest silence between two stream events after the first
    total_s: float = 600.0


@dataclass(frozen=True, slots=True)
class HealthConfig:
    enabled: bool = True
    method: str = "GET"
    path: str = "/v1/models"
    interval_s: float = 10.0
    timeout_s: float = 3.0
    unhealthy_after: int = 2
    healthy_after: int = 1


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    fail_max: int = 5
    reset_timeout_s: float = 30.0
    half_open_trials: int = 1


@dataclass(frozen=True, slots=True)
class PoolConfig:
    max_connections: int = 100
    keepalive_s: float = 30.0


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    name: str
    base_url: str  # without a trailing slash
    formats: tuple[Format, ...]
    api_key: str | None = None
    weight: float = 1.0
    anthropic_version: str = DEFAULT_ANTHROPIC_VERSION
    headers: tuple[tuple[str, str], ...] = ()  # extra headers sent upstream (e.g. OpenRouter's HTTP-Referer)
    timeouts: Timeouts = field(default_factory=Timeouts)
    health: HealthConfig = field(default_factory=HealthConfig)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    pool: PoolConfig = field(default_factory=PoolConfig)


@dataclass(frozen=True, slots=True)
class RouteConfig:
    provider: str
    model: str  # the upstream model id sent to the provider
    priority: int = 0
    weight: float | None = None  # None: the provider's weight


@dataclass(frozen=True, slots=True)
class ModelConfig:
    name: str  # the public name clients send
    routes: tuple[RouteConfig, ...]
    context_fallback: str | None = None
    owned_by: str = "router"


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: str = "info"
    format: Literal["auto", "json", "console"] = "auto"


@dataclass(frozen=True, slots=True)
class Config:
    providers: tuple[ProviderConfig, ...]
    models: tuple[ModelConfig, ...]
    server: ServerConfig = field(default_factory=ServerConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    log: LogConfig = field(default_factory=LogConfig)
    source: str = "<memory>"

    def provider(self, name: str) -> ProviderConfig:
        for p in self.providers:
            if p.name == name:
                return p
        raise KeyError(name)

    def model(self, name: str) -> ModelConfig | None:
        for m in self.models:
            if m.name == name:
                return m
        return None


# --- loading -------------------------------------------------------------------------------------

D = TypeVar("D")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")  # ${VAR} or ${VAR:-default}
_NAME = re.compile(r"[A-Za-z0-9._-]+")


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read, substitute and validate a YAML config file; `ConfigError` lists every problem."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise ConfigError(source, [f"cannot read config file: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(source, [f"config file is not UTF-8: {exc.reason} at byte {exc.start}"]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        context = f" ({exc.context})" if exc.problem and exc.context else ""
        raise ConfigError(source, [f"{where}invalid YAML: {exc.problem or exc.context}{context}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"invalid YAML: {' '.join(str(exc).split())}"]) from None
    return parse_config(data, source, env)


def parse_config(data: object, source: str = "<memory>", env: Mapping[str, str] | None = None) -> Config:
    """Validate an already-loaded document (dicts, lists, scalars) into a `Config`."""
    env_problems: list[str] = []
    data = _substitute(data, "", os.environ if env is None else env, env_problems)
    if data is not None and not isinstance(data, dict):
        raise ConfigError(source, [f"top level: expected a mapping, got {_show(data)}"])
    problems: list[str] = []
    top = _Reader(data, "", problems)
    server = _server(top.sub("server"))
    routing = _routing(top.sub("routing"))
    providers = tuple(_provider(r) for r in top.items("providers"))
    models = tuple(_model(r) for r in top.items("models"))
    log = _log(top.sub("log"))
    top.done(None)
    _cross_check(providers, models, problems)
    # A missing variable is the cause: drop the follow-on complaint about the value it left behind.
    env_paths = {p.split(": ", 1)[0] for p in env_problems}
    problems = env_problems + [p for p in problems if p.split(": ", 1)[0] not in env_paths]
    if problems:
        raise ConfigError(source, problems)
    return Config(providers, models, server=server, routing=routing, log=log, source=source)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _substitute(node: object, path: str, env: Mapping[str, str], problems: list[str]) -> object:
    """Replace ${VAR} and ${VAR:-default} in every string scalar (`:-` also covers set-but-empty)."""
    if isinstance(node, dict):
        return {k: _substitute(v, _join(path, k), env, problems) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_substitute(v, f"{path}[{i}]", env, problems) for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node

    def repl(m: re.Match[str]) -> str:
        value = env.get(m.group(1))
        if value or m.group(2) is not None:
            return value or m.group(2)
        if value is None:
            problems.append(f"{path or 'top level'}: environment variable {m.group(1)} is not set")
        return ""

    return _VAR.sub(repl, node)


class _Reader:
    """One mapping of the document: typed getters that record `path: reason` problems.

    Each getter returns a usable value (the default on error), so validation carries on and reports
    everything at once. The keys asked for are the known keys; `done()` reports any other key.
    """

    def __init__(self, data: object, path: str, problems: list[str]) -> None:
        self.path, self.problems, self.known = path, problems, list[str]()
        if data is not None and not isinstance(data, dict):
            self.fail("", f"expected a mapping, got {_show(data)}")
        self.data: dict[object, object] = data if isinstance(data, dict) else {}

    def at(self, key: str) -> str:
        return _join(self.path, key)

    def fail(self, key: str, reason: str) -> None:
        self.problems.append(f"{self.at(key) if key else self.path or 'top level'}: {reason}")

    def get(self, key: str, required: bool = False) -> object:
        self.known.append(key)
        value = self.data.get(key)  # an explicit null means "the default"
        if value is None and required:
            self.fail(key, "is required")
        return value

    def done(self, result: D) -> D:
        for key in self.data:
            if key not in self.known:
                self.fail(str(key), f"unknown key (expected one of: {', '.join(self.known)})")
        return result

    def _bounds(self, key: str, value: float, gt: float | None, ge: float | None, le: float | None) -> bool:
        for bad, rel, bound in (
            (gt is not None and not value > gt, ">", gt),
            (ge is not None and not value >= ge, ">=", ge),
            (le is not None and not value <= le, "<=", le),
        ):
            if bad:
                self.fail(key, f"must be {rel} {bound}, got {value!r}")
                return False
        return True

    def integer(self, key: str, default: int, ge: int | None = None, le: int | None = None) -> int:
        value = self.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"expected an integer, got {_show(value)}")
            return default
        return value if self._bounds(key, value, None, ge, le) else default

    def number(self, key: str, default: D, gt: float | None = None, ge: float | None = None) -> float | D:
        value = self.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(key, f"expected a number, got {_show(value)}")
            return default
        return float(value) if self._bounds(key, value, gt, ge, None) else default

    def string(self, key: str, default: D, required: bool = False, choices: tuple[str, ...] = ()) -> str | D:
        value = self.get(key, required)
        if value is None:
            return default
        if not isinstance(value, str):
            self.fail(key, f"expected a string, got {_show(value)}")
        elif not value:
            self.fail(key, "must not be empty")
        elif choices and value not in choices:
            self.fail(key, f"must be one of {', '.join(choices)}; got {value!r}")
        else:
            return value
        return default

    def flag(self, key: str, default: bool) -> bool:
        value = self.get(key)
        if value is None or isinstance(value, bool):
            return default if value is None else value
        self.fail(key, f"expected true or false, got {_show(value)}")
        return default

    def sub(self, key: str) -> _Reader:
        return _Reader(self.get(key), self.at(key), self.problems)

    def seq(self, key: str) -> list[object]:
        """A required, non-empty list."""
        value = self.get(key, required=True)
        if value is not None and not isinstance(value, (list, tuple)):
            self.fail(key, f"expected a list, got {_show(value)}")
        elif value is not None and not value:
            self.fail(key, "must be a non-empty list")
        return list(value) if isinstance(value, (list, tuple)) else []

    def items(self, key: str) -> list[_Reader]:
        return [_Reader(v, f"{self.at(key)}[{i}]", self.problems) for i, v in enumerate(self.seq(key))]


def _server(r: _Reader) -> ServerConfig:
    d = ServerConfig()
    return r.done(ServerConfig(
        host=r.string("host", d.host),
        port=r.integer("port", d.port, ge=0, le=65535),
        max_body_bytes=r.integer("max_body_bytes", d.max_body_bytes, ge=1024),
    ))  # fmt: skip


def _routing(r: _Reader) -> RoutingConfig:
    d = RoutingConfig()
    out = RoutingConfig(
        max_attempts=r.integer("max_attempts", d.max_attempts, ge=1),
        deadline_s=r.number("deadline_s", d.deadline_s, gt=0),
        ewma_half_life_s=r.number("ewma_half_life_s", d.ewma_half_life_s, gt=0),
        max_retry_wait_s=r.number("max_retry_wait_s", d.max_retry_wait_s, ge=0),
        backoff_min_s=r.number("backoff_min_s", d.backoff_min_s, ge=0),
        backoff_max_s=r.number("backoff_max_s", d.backoff_max_s, ge=0),
    )
    if out.backoff_max_s < out.backoff_min_s:
        r.fail("backoff_max_s", f"must be >= backoff_min_s ({out.backoff_min_s}), got {out.backoff_max_s}")
    return r.done(out)


def _provider(r: _Reader) -> ProviderConfig:
    name = r.string("name", "", required=True)
    if name and not _NAME.fullmatch(name):
        r.fail("name", f"must match [A-Za-z0-9._-]+, got {name!r}")
    base_url = r.string("base_url", "", required=True)
    if base_url and (not base_url.startswith(("http://", "https://")) or not urlsplit(base_url).netloc):
        r.fail("base_url", f"must be an http:// or https:// URL with a host, got {base_url!r}")
    formats: list[Format] = []
    for i, fmt in enumerate(r.seq("formats")):
        if fmt not in FORMATS or not isinstance(fmt, str):
            r.fail(f"formats[{i}]", f"must be one of {', '.join(FORMATS)}; got {_show(fmt)}")
        elif fmt in formats:
            r.fail(f"formats[{i}]", f"duplicate format {fmt!r}")
        else:
            formats.append(fmt)
    api_key = r.string("api_key", None)
    weight = r.number("weight", 1.0, gt=0)
    version = r.string("anthropic_version", DEFAULT_ANTHROPIC_VERSION)
    headers: list[tuple[str, str]] = []
    raw = r.get("headers")
    if raw is not None and not isinstance(raw, dict):
        r.fail("headers", f"expected a mapping of header name to value, got {_show(raw)}")
    for k, v in raw.items() if isinstance(raw, dict) else ():
        if not isinstance(k, str) or not k or not isinstance(v, str) or "\n" in v or "\r" in v:
            r.fail(f"headers.{k}", f"expected a header name and a one-line string value, got {_show(v)}")
        else:
            headers.append((k, v))
    return r.done(ProviderConfig(
        name=name, base_url=base_url.rstrip("/"), formats=tuple(formats), api_key=api_key, weight=weight,
        anthropic_version=version, headers=tuple(headers), timeouts=_timeouts(r.sub("timeouts")),
        health=_health(r.sub("health")), breaker=_breaker(r.sub("breaker")), pool=_pool(r.sub("pool")),
    ))  # fmt: skip


def _timeouts(r: _Reader) -> Timeouts:
    d = Timeouts()
    keys = ("connect_s", "first_token_s", "idle_s", "total_s")
    return r.done(Timeouts(*(r.number(k, getattr(d, k), gt=0) for k in keys)))


def _health(r: _Reader) -> HealthConfig:
    d = HealthConfig()
    out = HealthConfig(
        enabled=r.flag("enabled", d.enabled),
        method=r.string("method", d.method, choices=("GET", "HEAD", "POST")),
        path=r.string("path", d.path),
        interval_s=r.number("interval_s", d.interval_s, gt=0),
        timeout_s=r.number("timeout_s", d.timeout_s, gt=0),
        unhealthy_after=r.integer("unhealthy_after", d.unhealthy_after, ge=1),
        healthy_after=r.integer("healthy_after", d.healthy_after, ge=1),
    )
    if not out.path.startswith("/"):
        r.fail("path", f"must start with '/', got {out.path!r}")
    return r.done(out)


def _breaker(r: _Reader) -> BreakerConfig:
    d = BreakerConfig()
    return r.done(BreakerConfig(
        fail_max=r.integer("fail_max", d.fail_max, ge=1),
        reset_timeout_s=r.number("reset_timeout_s", d.reset_timeout_s, gt=0),
        half_open_trials=r.integer("half_open_trials", d.half_open_trials, ge=1),
    ))  # fmt: skip


def _pool(r: _Reader) -> PoolConfig:
    d = PoolConfig()
    return r.done(PoolConfig(
        max_connections=r.integer("max_connections", d.max_connections, ge=1),
        keepalive_s=r.number("keepalive_s", d.keepalive_s, gt=0),
    ))  # fmt: skip


def _model(r: _Reader) -> ModelConfig:
    name = r.string("name", "", required=True)
    routes = tuple(
        x.done(RouteConfig(
            provider=x.string("provider", "", required=True),
            model=x.string("model", "", required=True),
            priority=x.integer("priority", 0, ge=0),
            weight=x.number("weight", None, gt=0),
        ))  # fmt: skip
        for x in r.items("routes")
    )
    pairs = [(x.provider, x.model) for x in routes]
    for i, (provider, model) in enumerate(pairs):
        if provider and model and (provider, model) in pairs[:i]:
            r.fail(f"routes[{i}]", f"duplicate route (provider {provider!r}, model {model!r})")
    fallback = r.string("context_fallback", None)
    return r.done(ModelConfig(name, routes, fallback, r.string("owned_by", "router")))


def _log(r: _Reader) -> LogConfig:
    level = r.string("level", "info", choices=("debug", "info", "warning", "error"))
    fmt = r.string("format", "auto", choices=("auto", "json", "console"))
    return r.done(LogConfig(level=level, format=cast(Literal["auto", "json", "console"], fmt)))


def _cross_check(
    providers: tuple[ProviderConfig, ...], models: tuple[ModelConfig, ...], problems: list[str]
) -> None:
    """The second pass: unique names, and the references from models to providers and models."""
    for kind, names in (("providers", [p.name for p in providers]), ("models", [m.name for m in models])):
        for i, name in enumerate(names):
            if name and name in names[:i]:
                first = f"{kind}[{names.index(name)}]"
                problems.append(f"{kind}[{i}].name: duplicate name {name!r} (first at {first})")
    provider_names = sorted({p.name for p in providers if p.name})
    model_names = {m.name for m in models if m.name}
    for i, m in enumerate(models):
        for j, route in enumerate(m.routes):
            if route.provider and route.provider not in provider_names:
                known = ", ".join(provider_names) or "none"
                where = f"models[{i}].routes[{j}].provider"
                problems.append(f"{where}: unknown provider {route.provider!r} (known: {known})")
        if m.context_fallback is not None and m.context_fallback == m.name:
            problems.append(f"models[{i}].context_fallback: must name another model, not itself")
        elif m.context_fallback is not None and m.context_fallback not in model_names:
            problems.append(f"models[{i}].context_fallback: unknown model {m.context_fallback!r}")
