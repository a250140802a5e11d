"""Configuration: YAML with ${ENV} substitution, validated once at start into frozen dataclasses.

The request path never sees raw dicts. `load_config(path)` raises `ConfigError` listing every
problem with its file and path in the document, e.g. `demo.yaml: providers[2].base_url: ...`.

This module holds the schema: the dataclasses and their defaults, with their reasons.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

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
DEFAULT_MAX_CONTINUATIONS = 2  # a provider that breaks twice in one answer is rare; three is a pattern
DEFAULT_BREAKER_RESET_S = 5.0  # see BreakerConfig
DEFAULT_BREAKER_RESET_MAX_S = 10.0
DEFAULT_ANTHROPIC_VERSION = "2023-06-01"
# A priced model's output limit when it has none of its own: sent upstream as the cap of a
# request that sets none, and reserved against the budget (16,384: what Anthropic routes already
# sent; 4,096 cut long answers and starved reasoning models).
DEFAULT_MAX_OUTPUT_TOKENS = 16384
# More output tokens than any model writes (the largest take a few hundred thousand): a larger
# cap is a mistake or an attack on the budget arithmetic (2**63 overflowed the Redis script).
MAX_OUTPUT_TOKENS = 10_000_000
# Client connections (see ServerConfig and router/ops/protocol.py).
DEFAULT_HEADER_TIMEOUT_S = 10.0  # a real client sends its headers in one packet; 10 s covers a bad mobile link
DEFAULT_BODY_TIMEOUT_S = 30.0  # the longest silence within an upload, not its length: slow uploads finish
# Longer than the idle timeout of the gateways usually in front (AWS ALB and nginx's upstream
# keepalive: 60 s), so the gateway, not the router, closes an idle pooled connection: the other
# way round, a request sent just as the router closes becomes a 502 at the gateway. SDKs talking
# directly close their own idle connections first (httpx: after 5 s).
DEFAULT_KEEPALIVE_TIMEOUT_S = 65.0
# Per worker. Each open stream holds a client and an upstream connection; a Python worker relays
# far fewer than 1024 streams at speed, so past this new clients get a fast 503 rather than
# everyone a slow answer. `router serve` raises the open-file limit to fit (serve.py).
DEFAULT_MAX_CONNECTIONS = 1024
DEFAULT_MAX_HEADER_BYTES = 64 * 1024  # the request line and headers; real requests use a few KiB


class ConfigError(Exception):
    """The config file is invalid. `problems` holds one `path: reason` line per problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {source}: {p}" for p in problems)
        super().__init__(f"invalid config ({len(problems)} problem(s)):\n{lines}")


# Client headers no config can forward: credentials, cookies, the selectors of which of the
# operator's OpenAI organisations or projects pays, hop-by-hop and framing headers (RFC 9110
# 7.6.1), and what the router sets itself.
NEVER_FORWARDED = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "cookie",
        "openai-organization",
        "openai-project",
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "content-type",
        "content-encoding",
        "accept-encoding",
        "x-request-id",
    }
)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    allow_anonymous: bool = False  # serve requests without an API key (private deployments only)
    # Bearer tokens of the operator endpoints, stored like client keys ("sha256:" + hex); None: open.
    metrics_token: str | None = None  # GET /metrics (Prometheus scrapes it)
    admin_token: str | None = None  # GET /status.json (the status page's data)
    # SIGTERM: readiness turns 503 at once; new requests are served for drain_grace_s (the gateway
    # notices), then in-flight requests and streams get up to drain_timeout_s to finish.
    drain_grace_s: float = 5.0
    drain_timeout_s: float = 60.0
    watch_config: bool = False  # reload when the config file changes (besides SIGHUP)
    # Client connections, per worker; read when the server starts (a reload does not change them,
    # as it does not change host and port). Timeouts close the connection, with a 408 when no
    # answer has begun: headers from the connection's open (or the request's first byte on a
    # kept-alive one) until complete; the body, the longest silence between two of its reads.
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    keepalive_timeout_s: float = DEFAULT_KEEPALIVE_TIMEOUT_S  # idle between requests: closed silently
    max_connections: int = DEFAULT_MAX_CONNECTIONS  # more are answered 503 and closed at once
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES  # larger: 431


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    deadline_s: float = DEFAULT_DEADLINE_S
    ewma_half_life_s: float = DEFAULT_EWMA_HALF_LIFE_S
    max_retry_wait_s: float = DEFAULT_MAX_RETRY_WAIT_S
    backoff_min_s: float = DEFAULT_BACKOFF_MIN_S
    backoff_max_s: float = DEFAULT_BACKOFF_MAX_S
    # A stream that breaks after content reached the client is finished on another route (the
    # delivered text sent as a prefill), at most this many times per request.
    continue_streams: bool = True
    max_continuations: int = DEFAULT_MAX_CONTINUATIONS


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
    """A route's circuit breaker. Open, it sends the route no traffic except one trial request
    (a real client request, which fails over if the trial fails) per wait: `reset_timeout_s` after
    opening, doubling after each failed trial up to `reset_timeout_max_s`, each wait shortened by
    a random share up to `reset_jitter`. A recovered route is therefore serving again within
    `reset_timeout_max_s` (plus the gap to the next request)."""

    fail_max: int = 5
    # 5 s: a blip (a deployment restarting, a burst of 503s) is noticed within seconds, for one
    # extra attempt by one client request. It was 30 s, which kept a recovered route unused for
    # up to a minute once a trial had failed.
    reset_timeout_s: float = DEFAULT_BREAKER_RESET_S
    # 10 s: the longest a recovered route waits for its trial (the requirement: serving again
    # within 15 s), and during a long outage at most one extra attempt per 8-10 s, per route and
    # per worker. Left unset in the file with a longer reset_timeout_s, the reader makes it
    # reset_timeout_s (a fixed wait, as before the cap existed).
    reset_timeout_max_s: float = DEFAULT_BREAKER_RESET_MAX_S
    # Up to 20% off each wait: breakers that opened together (a provider's routes, a host's
    # workers, several routers) spread their trials over a second or two instead of together.
    reset_jitter: float = 0.2
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
    # Client headers sent to this provider besides its format's own (lower-cased); never one of
    # NEVER_FORWARDED.
    forward_headers: tuple[str, ...] = ()
    timeouts: Timeouts = field(default_factory=Timeouts)
    health: HealthConfig = field(default_factory=HealthConfig)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    pool: PoolConfig = field(default_factory=PoolConfig)
    prefill: bool = True  # its models accept a trailing assistant message (continuing a broken stream)


@dataclass(frozen=True, slots=True)
class RouteConfig:
    provider: str
    model: str  # the upstream model id sent to the provider
    priority: int = 0
    weight: float | None = None  # None: the provider's weight
    # How requests translated into Anthropic Messages are written for this upstream model:
    thinking: Literal["budget", "adaptive"] = "budget"  # thinking {enabled, budget_tokens} | {adaptive} + effort
    default_max_tokens: int = 16384  # Anthropic requires max_tokens; used when the client set none
    drop_params: tuple[str, ...] = ()  # fields this upstream model rejects (DROPPABLE_PARAMS); dropped, never a 400
    prefill: bool | None = None  # None: the provider's; False: a broken stream is restarted here, not continued


DROPPABLE_PARAMS = ("temperature", "top_p", "top_k", "stop", "reasoning")


@dataclass(frozen=True, slots=True)
class Price:
    """US dollars per million tokens."""

    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float | None = None  # None: the input price
    cache_write_per_mtok: float | None = None  # None: the input price


@dataclass(frozen=True, slots=True)
class ModelConfig:
    name: str  # the public name clients send
    routes: tuple[RouteConfig, ...]
    context_fallback: str | None = None
    owned_by: str = "router"
    price: Price | None = None  # None: usage is recorded without a cost
    # The most output a request may ask for: a larger cap is lowered to it, and a request with
    # none gets it (None: the accounting default for a priced model; no limit for an unpriced one).
    max_output_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Budget:
    usd: float
    window_s: float  # a rolling window


@dataclass(frozen=True, slots=True)
class PlanConfig:
    name: str
    models: tuple[str, ...]  # fnmatch globs (case-sensitive) of public model names
    budget: Budget | None = None  # None: no dollar limit
    rpm: int | None = None  # requests per minute, per key
    max_concurrent: int | None = None  # requests in flight, per key


@dataclass(frozen=True, slots=True)
class KeyConfig:
    id: str  # shown in logs and the ledger instead of the key
    hash: str  # "sha256:" + 64 lowercase hex digits of the key
    plan: str


@dataclass(frozen=True, slots=True)
class StateConfig:
    backend: Literal["memory", "redis"] = "memory"
    url: str | None = None  # redis://, rediss:// or unix://; required for redis
    on_unavailable: Literal["fail_closed", "fail_open"] = "fail_closed"
    key_prefix: str = "router"
    timeout_s: float = 0.5  # per try; a Redis call that fails on the connection or times out is tried twice
    # Readiness PINGs the store this often (Redis only; with fail_closed an unreachable store
    # makes the replica unready): a PING per worker every 2 s is nothing to Redis, and a load
    # balancer polling /health/ready every few seconds sees an outage within one poll.
    ping_interval_s: float = 2.0


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    path: str = "var/usage.jsonl"  # JSON lines, appended
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class AccountingConfig:
    default_max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS


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
    plans: tuple[PlanConfig, ...] = ()
    keys: tuple[KeyConfig, ...] = ()
    state: StateConfig = field(default_factory=StateConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    accounting: AccountingConfig = field(default_factory=AccountingConfig)
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

    def plan(self, name: str) -> PlanConfig:
        for p in self.plans:
            if p.name == name:
                return p
        raise KeyError(name)
