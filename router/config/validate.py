"""Reading and validating a config document into `router.config`'s dataclasses.

Two passes: each section is read on its own (types, bounds, unknown keys), then the references
between sections are checked (routes to providers, keys to plans, plan globs to models). Every
problem is collected with its path; `ConfigError` carries them all. The generic reading (${ENV}
substitution, typed getters) is `router.config.reader`. Callers use `router.config`'s
`load_config`/`parse_config`, which call `parse_document` here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Literal, cast
from urllib.parse import urlsplit

from router.config.checks import check_access, check_tokens, cross_check
from router.config.reader import FIELD_NAME, Reader, show, substitute
from router.config.schema import (
    DEFAULT_ANTHROPIC_VERSION,
    DROPPABLE_PARAMS,
    FORMATS,
    MAX_OUTPUT_TOKENS,
    NEVER_FORWARDED,
    AccountingConfig,
    BreakerConfig,
    Budget,
    Config,
    ConfigError,
    Format,
    HealthConfig,
    KeyConfig,
    LedgerConfig,
    LogConfig,
    ModelConfig,
    PlanConfig,
    PoolConfig,
    Price,
    ProviderConfig,
    RouteConfig,
    RoutingConfig,
    ServerConfig,
    StateConfig,
    Timeouts,
)

_HASH = re.compile(r"sha256:[0-9a-f]{64}")
_NO_KEYS = (
    "no API keys configured; add some (router keys new --plan NAME) or set server.allow_anonymous: true "
    "for a private deployment"
)


def parse_document(data: object, source: str = "<memory>", env: Mapping[str, str] | None = None) -> Config:
    """Validate an already-loaded document (dicts, lists, scalars) into a `Config`."""
    env_problems: list[str] = []
    data = substitute(data, "", os.environ if env is None else env, env_problems)
    if data is not None and not isinstance(data, dict):
        raise ConfigError(source, [f"top level: expected a mapping, got {show(data)}"])
    problems: list[str] = []
    top = Reader(data, "", problems)
    server = _server(top.sub("server"))
    routing = _routing(top.sub("routing"))
    providers = tuple(_provider(r) for r in top.items("providers"))
    models = tuple(_model(r) for r in top.items("models"))
    log = _log(top.sub("log"))
    plans = tuple(_plan(r) for r in top.items("plans", required=False))
    keys = tuple(_key(r) for r in top.items("keys", required=False))
    state = _state(top.sub("state"))
    ledger = _ledger(top.sub("ledger"))
    accounting = _accounting(top.sub("accounting"))
    top.done(None)
    cross_check(providers, models, problems)
    check_access(models, plans, keys, problems)
    check_tokens(server, keys, problems)
    if not keys and top.data.get("keys") in (None, []) and not server.allow_anonymous:
        problems.append(f"keys: {_NO_KEYS}")
    # A missing variable is the cause: drop the follow-on complaint about the value it left behind.
    env_paths = {p.split(": ", 1)[0] for p in env_problems}
    problems = env_problems + [p for p in problems if p.split(": ", 1)[0] not in env_paths]
    if problems:
        raise ConfigError(source, problems)
    return Config(
        providers,
        models,
        server=server,
        routing=routing,
        log=log,
        plans=plans,
        keys=keys,
        state=state,
        ledger=ledger,
        accounting=accounting,
        source=source,
    )


def _server(r: Reader) -> ServerConfig:
    d = ServerConfig()
    return r.done(
        ServerConfig(
            host=r.string("host", d.host),
            port=r.integer("port", d.port, ge=0, le=65535),
            max_body_bytes=r.integer("max_body_bytes", d.max_body_bytes, ge=1024),
            allow_anonymous=r.flag("allow_anonymous", d.allow_anonymous),
            metrics_token=_hash(r, "metrics_token", required=False, secret="token") or None,
            admin_token=_hash(r, "admin_token", required=False, secret="token") or None,
            drain_grace_s=r.number("drain_grace_s", d.drain_grace_s, ge=0),
            drain_timeout_s=r.number("drain_timeout_s", d.drain_timeout_s, ge=0),
            watch_config=r.flag("watch_config", d.watch_config),
            header_timeout_s=r.number("header_timeout_s", d.header_timeout_s, gt=0),
            body_timeout_s=r.number("body_timeout_s", d.body_timeout_s, gt=0),
            keepalive_timeout_s=r.number("keepalive_timeout_s", d.keepalive_timeout_s, gt=0),
            max_connections=r.integer("max_connections", d.max_connections, ge=1),
            max_header_bytes=r.integer("max_header_bytes", d.max_header_bytes, ge=1024, le=16 * 1024 * 1024),
        )
    )


def _routing(r: Reader) -> RoutingConfig:
    d = RoutingConfig()
    out = RoutingConfig(
        max_attempts=r.integer("max_attempts", d.max_attempts, ge=1),
        deadline_s=r.number("deadline_s", d.deadline_s, gt=0),
        ewma_half_life_s=r.number("ewma_half_life_s", d.ewma_half_life_s, gt=0),
        max_retry_wait_s=r.number("max_retry_wait_s", d.max_retry_wait_s, ge=0),
        backoff_min_s=r.number("backoff_min_s", d.backoff_min_s, ge=0),
        backoff_max_s=r.number("backoff_max_s", d.backoff_max_s, ge=0),
        continue_streams=r.flag("continue_streams", d.continue_streams),
        max_continuations=r.integer("max_continuations", d.max_continuations, ge=0),
    )
    if out.backoff_max_s < out.backoff_min_s:
        r.fail("backoff_max_s", f"must be >= backoff_min_s ({out.backoff_min_s}), got {out.backoff_max_s}")
    return r.done(out)


def _provider(r: Reader) -> ProviderConfig:
    name = r.name("name")
    base_url = r.string("base_url", "", required=True)
    if base_url and (not base_url.startswith(("http://", "https://")) or not urlsplit(base_url).netloc):
        r.fail("base_url", f"must be an http:// or https:// URL with a host, got {base_url!r}")
    formats: list[Format] = []
    for i, fmt in enumerate(r.seq("formats")):
        if fmt not in FORMATS or not isinstance(fmt, str):
            r.fail(f"formats[{i}]", f"must be one of {', '.join(FORMATS)}; got {show(fmt)}")
        elif fmt in formats:
            r.fail(f"formats[{i}]", f"duplicate format {fmt!r}")
        else:
            formats.append(fmt)
    api_key = r.header_value("api_key", None)
    weight = r.number("weight", 1.0, gt=0)
    version = r.header_value("anthropic_version", DEFAULT_ANTHROPIC_VERSION)
    headers = r.headers("headers")
    forward: list[str] = []
    for i, h in enumerate(r.seq("forward_headers", required=False)):
        if not isinstance(h, str) or not FIELD_NAME.fullmatch(h):
            r.fail(f"forward_headers[{i}]", f"expected a header name, got {show(h)}")
        elif h.lower() in NEVER_FORWARDED:
            r.fail(f"forward_headers[{i}]", f"{h!r} is never forwarded (a credential, selector or hop-by-hop header)")
        else:
            forward.append(h.lower())
    return r.done(
        ProviderConfig(
            name=name,
            base_url=base_url.rstrip("/"),
            formats=tuple(formats),
            api_key=api_key,
            weight=weight,
            anthropic_version=version,
            headers=headers,
            forward_headers=tuple(dict.fromkeys(forward)),
            timeouts=_timeouts(r.sub("timeouts")),
            health=_health(r.sub("health")),
            breaker=_breaker(r.sub("breaker")),
            pool=_pool(r.sub("pool")),
            prefill=r.flag("prefill", True),
        )
    )


def _timeouts(r: Reader) -> Timeouts:
    d = Timeouts()
    keys = ("connect_s", "first_token_s", "idle_s", "total_s")
    return r.done(Timeouts(*(r.number(k, getattr(d, k), gt=0) for k in keys)))


def _health(r: Reader) -> HealthConfig:
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


def _breaker(r: Reader) -> BreakerConfig:
    d = BreakerConfig()
    fail_max = r.integer("fail_max", d.fail_max, ge=1)
    reset = r.number("reset_timeout_s", d.reset_timeout_s, gt=0)
    # Unset, the cap follows a longer reset_timeout_s, so a config written before the cap existed
    # (e.g. reset_timeout_s: 60) keeps its fixed wait (less the jitter); set, it must not be below.
    cap = r.number("reset_timeout_max_s", None, gt=0)
    if cap is not None and cap < reset:
        r.fail("reset_timeout_max_s", f"must be >= reset_timeout_s ({reset}), got {cap}")
        cap = None
    jitter = r.number("reset_jitter", d.reset_jitter, ge=0)
    if jitter >= 1:
        r.fail("reset_jitter", f"must be < 1 (a share of each wait), got {jitter}")
        jitter = d.reset_jitter
    return r.done(
        BreakerConfig(
            fail_max=fail_max,
            reset_timeout_s=reset,
            reset_timeout_max_s=max(reset, d.reset_timeout_max_s) if cap is None else cap,
            reset_jitter=jitter,
            half_open_trials=r.integer("half_open_trials", d.half_open_trials, ge=1),
        )
    )


def _pool(r: Reader) -> PoolConfig:
    d = PoolConfig()
    return r.done(
        PoolConfig(
            max_connections=r.integer("max_connections", d.max_connections, ge=1),
            keepalive_s=r.number("keepalive_s", d.keepalive_s, gt=0),
        )
    )


def _drop_params(r: Reader) -> tuple[str, ...]:
    names: list[str] = []
    for i, name in enumerate(r.seq("drop_params", required=False)):
        if name not in DROPPABLE_PARAMS:
            r.fail(f"drop_params[{i}]", f"expected one of {', '.join(DROPPABLE_PARAMS)}, got {show(name)}")
        else:
            names.append(str(name))
    return tuple(names)


def _model(r: Reader) -> ModelConfig:
    name = r.string("name", "", required=True)
    routes = tuple(
        x.done(
            RouteConfig(
                provider=x.string("provider", "", required=True),
                model=x.string("model", "", required=True),
                priority=x.integer("priority", 0, ge=0),
                weight=x.number("weight", None, gt=0),
                thinking=cast(
                    Literal["budget", "adaptive"], x.string("thinking", "budget", choices=("budget", "adaptive"))
                ),
                default_max_tokens=x.integer("default_max_tokens", 16384, ge=1),
                drop_params=_drop_params(x),
                prefill=x.flag("prefill", True) if x.get("prefill") is not None else None,
            )
        )
        for x in r.items("routes")
    )
    pairs = [(x.provider, x.model) for x in routes]
    for i, (provider, model) in enumerate(pairs):
        if provider and model and (provider, model) in pairs[:i]:
            r.fail(f"routes[{i}]", f"duplicate route (provider {provider!r}, model {model!r})")
    fallback = r.string("context_fallback", None)
    owned_by = r.string("owned_by", "router")
    price = None if (p := r.maybe("price")) is None else _price(p)
    limit = r.integer("max_output_tokens", None, ge=1, le=MAX_OUTPUT_TOKENS)
    return r.done(ModelConfig(name, routes, fallback, owned_by, price, limit))


def _price(r: Reader) -> Price:
    return r.done(
        Price(
            input_per_mtok=r.number("input_per_mtok", 0.0, ge=0, required=True),
            output_per_mtok=r.number("output_per_mtok", 0.0, ge=0, required=True),
            cached_input_per_mtok=r.number("cached_input_per_mtok", None, ge=0),
            cache_write_per_mtok=r.number("cache_write_per_mtok", None, ge=0),
        )
    )


def _log(r: Reader) -> LogConfig:
    level = r.string("level", "info", choices=("debug", "info", "warning", "error"))
    fmt = r.string("format", "auto", choices=("auto", "json", "console"))
    return r.done(LogConfig(level=level, format=cast(Literal["auto", "json", "console"], fmt)))


def _plan(r: Reader) -> PlanConfig:
    name = r.name("name")
    globs: list[str] = []
    for i, glob in enumerate(r.seq("models")):
        if isinstance(glob, str) and glob:
            globs.append(glob)
        else:
            r.fail(f"models[{i}]", f"expected a model name or glob, got {show(glob)}")
    b = r.maybe("budget")
    budget = (
        None
        if b is None
        else b.done(
            Budget(
                usd=b.number("usd", 0.0, gt=0, required=True),
                window_s=b.duration("window", 0.0, required=True),
            )
        )
    )
    rpm = r.integer("rpm", None, ge=1)
    return r.done(PlanConfig(name, tuple(globs), budget, rpm, r.integer("max_concurrent", None, ge=1)))


def _hash(r: Reader, key: str, required: bool, secret: str = "key") -> str:
    """A client key's or an operator token's config form, 'sha256:' + 64 lowercase hex digits; "" when
    absent or invalid."""
    digest = r.string(key, "", required=required)  # never echoed: it may be a secret pasted by mistake
    if digest and not _HASH.fullmatch(digest):
        if _HASH.fullmatch(digest.lower()):
            r.fail(key, "must be in lowercase hex (the same hash, lowercased)")
        else:
            r.fail(
                key,
                f"must be 'sha256:' followed by 64 lowercase hex digits, as `router "
                f"{'keys' if secret == 'key' else 'token'} new` prints (got {len(digest)} characters; "
                f"the {secret} itself never goes in the config)",
            )
        return ""
    return digest


def _key(r: Reader) -> KeyConfig:
    key_id = r.name("id")
    digest = _hash(r, "hash", required=True)
    return r.done(KeyConfig(key_id, digest, r.string("plan", "", required=True)))


def _state(r: Reader) -> StateConfig:
    d = StateConfig()
    backend = r.string("backend", d.backend, choices=("memory", "redis"))
    url = r.string("url", None)
    out = StateConfig(
        backend=cast(Literal["memory", "redis"], backend),
        url=url,
        on_unavailable=cast(
            Literal["fail_closed", "fail_open"],
            r.string("on_unavailable", d.on_unavailable, choices=("fail_closed", "fail_open")),
        ),
        key_prefix=r.string("key_prefix", d.key_prefix),
        timeout_s=r.number("timeout_s", d.timeout_s, gt=0),
        ping_interval_s=r.number("ping_interval_s", d.ping_interval_s, gt=0),
    )
    if url is not None:
        problem = _redis_url_problem(url)  # the URL may hold a password: it is never echoed
        if problem:
            r.fail("url", problem)
    elif backend == "redis" and r.data.get("url") is None:
        r.fail("url", "is required when backend is redis (e.g. redis://127.0.0.1:6379/0)")
    return r.done(out)


def _redis_url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a port that is not a number
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("redis", "rediss", "unix"):
        got = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        return f"must be a redis://, rediss:// or unix:// URL, got {got}"
    if parts.scheme == "unix" and not parts.path:
        return "a unix:// URL needs a socket path, e.g. unix:///run/redis.sock"
    if parts.scheme != "unix" and not parts.hostname:
        return f"a {parts.scheme}:// URL needs a host, e.g. {parts.scheme}://127.0.0.1:6379/0"
    return None


def _ledger(r: Reader) -> LedgerConfig:
    d = LedgerConfig()
    return r.done(LedgerConfig(path=r.string("path", d.path), enabled=r.flag("enabled", d.enabled)))


def _accounting(r: Reader) -> AccountingConfig:
    d = AccountingConfig()
    limit = r.integer("default_max_output_tokens", d.default_max_output_tokens, ge=1, le=MAX_OUTPUT_TOKENS)
    return r.done(AccountingConfig(default_max_output_tokens=limit))
