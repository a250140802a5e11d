"""Prometheus metrics for `GET /metrics`: the only module that imports prometheus_client.

Per request (hot path; label children are bound once per label set and cached, so a call is a
few dict lookups and increments; see `Metrics.request` and friends):

  router_requests_total{endpoint, model, provider, status}       counter
  router_request_duration_seconds{endpoint, model, provider}     histogram, up to 600 s
  router_request_ttfb_seconds{endpoint, model, provider}         histogram, time to first byte
  router_upstream_attempts_total{provider, outcome}              counter (OUTCOMES)
  router_failovers_total{reason}                                 counter (classify.py's reasons)
  router_continuations_total{reason, outcome}                    counter: broken streams finished elsewhere (or not)
  router_tokens_total{plan, model, kind}                         counter, kind: input|cached|cache_write|output
  router_cost_usd_total{plan, model}                             counter
  router_refusals_total{plan, reason}                            counter, reason: budget (402) | rate_limit (429)

At scrape time, from the routing pool (nothing is updated per request for these):

  router_breaker_state{provider, route}    0 closed, 1 half-open, 2 open
  router_provider_healthy{provider}        0 once probes found it down, else 1 (not yet probed: 1)
  router_model_available{model}            1 while a route of the model can take a request now
  router_provider_inflight{provider}       attempts in flight
  router_route_ewma_seconds{provider, route}   latency estimate; absent until first measured

Client connections (counted by the server protocol, router/ops/protocol.py, per process):

  router_client_connections                     open now
  router_client_connections_closed_total{reason}   closed by a limit: idle, header_timeout,
                                                body_timeout, refused (max_connections),
                                                header_too_large (431), malformed (400)

Label values are bounded by the config: endpoint, model, plan and provider values outside the
sets given at construction fold into "other" (a client may send any model name; a scanner any
path), status is the HTTP code, outcome and reason come from fixed lists. No request ids, no key
ids, no key hashes.

Several workers (`router serve --workers N`; the CLI sets PROMETHEUS_MULTIPROC_DIR and empties
the directory before the workers start): counters and histograms use prometheus_client's
multiprocess mode (one mmap file per worker, summed by whichever worker answers the scrape). The
scrape-time gauges cannot be summed that way: each worker publishes its own pool's values to a
file every LIVE_PUBLISH_INTERVAL_S (`run_publisher`, a lifespan task) and the scrape aggregates
the live workers' files: in-flight summed, breaker and EWMA the worst (max), health the worst
(min), model availability the worst (min). Details and the reasons in `router.ops.metrics_live`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping

import anyio
import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client import values as prom_values
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from router.config import Config
from router.observe import Attempt, Observer
from router.ops.admin_auth import CHALLENGE, BearerGuard
from router.ops.conn_clock import STATS
from router.ops.metrics_labels import (
    CONTINUATION_OUTCOMES,
    CONTINUATION_REASONS,
    DURATION_BUCKETS,
    ENDPOINTS,
    FAILOVER_REASONS,
    NONE,
    OTHER,
    OUTCOMES,
    REFUSALS,
    STATUS_REASON,
    TOKEN_KINDS,
    TTFB_BUCKETS,
)
from router.ops.metrics_live import LIVE_PUBLISH_INTERVAL_S, LiveFiles, Rows, aggregate, pool_rows
from router.routing.pool import Pool
from router.types import Usage

log = structlog.get_logger("router.ops.metrics")

# `*_created` series double the exposition and say only when the process started.
disable_created_metrics()  # type: ignore[no-untyped-call]  # (unannotated upstream)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_STATUS = {code: str(code) for code in range(100, 600)}


class Metrics(Observer):
    """The router's metrics, on a registry of their own (never prometheus_client's global one),
    so tests can build several apps in one process.

    Hot path (the `Observer` interface): `request`, `attempt`, `usage`, `refused`. Endpoint: `render`.
    Lifespan: `run_publisher` (a no-op with one worker), `close`. Config reload: `reconfigure`
    (series of removed models, plans and providers stay, frozen, until the restart)."""

    def __init__(
        self,
        pool: Pool,
        *,
        models: Iterable[str],
        plans: Iterable[str],
        token_hash: str | None = None,
        multiprocess_dir: str | None = None,
        endpoints: Iterable[str] = ENDPOINTS,
    ) -> None:
        self.pool = pool
        self._guard = BearerGuard(token_hash)
        self._endpoints = frozenset(endpoints)
        self._files = None if multiprocess_dir is None else LiveFiles(multiprocess_dir)
        if multiprocess_dir is not None and not getattr(prom_values.ValueClass, "_multiprocess", False):
            # prometheus_client picks its value store when first imported; too late to switch now.
            raise RuntimeError(f"{MULTIPROC_ENV} must be set before prometheus_client is first imported")
        # Multiprocess: the metric objects write to mmap files and register nowhere; the scrape
        # registry reads every worker's files. Otherwise they register on our own registry.
        own = None if multiprocess_dir is not None else CollectorRegistry(auto_describe=False)
        self.registry = CollectorRegistry(auto_describe=False) if own is None else own
        if multiprocess_dir is not None:
            MultiProcessCollector(self.registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
        self.registry.register(_LiveCollector(self))

        self._requests = Counter(
            "router_requests",
            "Requests answered, by endpoint, public model, serving provider and HTTP status.",
            ("endpoint", "model", "provider", "status"),
            registry=own,
        )
        self._duration = Histogram(
            "router_request_duration_seconds",
            "Whole request time, to the end of the body or stream.",
            ("endpoint", "model", "provider"),
            buckets=DURATION_BUCKETS,
            registry=own,
        )
        self._ttfb = Histogram(
            "router_request_ttfb_seconds",
            "Time to the first byte of the answer (first content event of a stream).",
            ("endpoint", "model", "provider"),
            buckets=TTFB_BUCKETS,
            registry=own,
        )
        self._attempts_family = Counter(
            "router_upstream_attempts",
            "Upstream attempts by provider and outcome.",
            ("provider", "outcome"),
            registry=own,
        )
        failovers = Counter("router_failovers", "Failed attempts moved on from, by reason.", ("reason",), registry=own)
        continuations = Counter(
            "router_continuations",
            "Streams that broke after content reached the client, by why and what became of them.",
            ("reason", "outcome"),
            registry=own,
        )
        self._tokens = Counter(
            "router_tokens", "Tokens billed, by plan, public model and kind.", ("plan", "model", "kind"), registry=own
        )
        self._cost = Counter(
            "router_cost_usd", "US dollars billed, by plan and public model.", ("plan", "model"), registry=own
        )
        self._refusals_family = Counter(
            "router_refusals",
            "Requests refused by the plan's limits: budget (402) or rate limit (429).",
            ("plan", "reason"),
            registry=own,
        )

        # Label sets known in advance are bound now, so the hot path never calls `.labels()`
        # (which validates, stringifies and locks on every call).
        self._failovers = {r: failovers.labels(r) for r in [*FAILOVER_REASONS, OTHER]}
        self._failover_family = failovers
        self._continuations = {
            (r, o): continuations.labels(r, o) for r in (*CONTINUATION_REASONS, OTHER) for o in CONTINUATION_OUTCOMES
        }
        self._attempts: dict[tuple[str, str], Counter] = {}
        self._refusals: dict[tuple[str, int], Counter] = {}
        # Bound on first use, keyed by already-folded labels, so these caches stay bounded too.
        self._per_request: dict[tuple[str, str, str, int], tuple[Counter, Histogram, Histogram]] = {}
        self._per_usage: dict[tuple[str, str], tuple[Counter, ...]] = {}
        self._know(models, plans)

    def reconfigure(self, config: Config, pool: Pool) -> None:
        """After a config reload: the new pool's gauges, its names as label values, its token."""
        self.pool = pool
        self._guard = BearerGuard(config.server.metrics_token)
        self._know([m.name for m in config.models], [p.name for p in config.plans])

    def _know(self, models: Iterable[str], plans: Iterable[str]) -> None:
        self._models = frozenset(models)
        self._plans = frozenset(plans) | {"anonymous"}
        self._providers = frozenset(self.pool.providers)
        for p in (*self._providers, OTHER):
            for o in (*OUTCOMES, OTHER):
                if (p, o) not in self._attempts:
                    self._attempts[(p, o)] = self._attempts_family.labels(p, o)
        for pl in (*self._plans, OTHER):
            for code, reason in REFUSALS.items():
                if (pl, code) not in self._refusals:
                    self._refusals[(pl, code)] = self._refusals_family.labels(pl, reason)

    @classmethod
    def from_config(cls, config: Config, pool: Pool, environ: Mapping[str, str] = os.environ) -> Metrics:
        return cls(
            pool,
            models=[m.name for m in config.models],
            plans=[p.name for p in config.plans],
            token_hash=config.server.metrics_token,
            multiprocess_dir=environ.get(MULTIPROC_ENV) or None,
        )

    # --- hot path ---------------------------------------------------------------------------------

    def request(
        self,
        endpoint: str,
        model: str | None,
        provider: str | None,
        status: int,
        duration_s: float,
        ttfb_s: float | None = None,
    ) -> None:
        """One finished request (after the last byte of its body or stream)."""
        e = endpoint if endpoint in self._endpoints else OTHER
        m = model if model in self._models else (NONE if model is None else OTHER)
        p = provider if provider in self._providers else (NONE if provider is None else OTHER)
        key = (e, m, p, status if status in _STATUS else 0)
        children = self._per_request.get(key)
        if children is None:
            children = self._bind_request(key)
        children[0].inc()
        children[1].observe(duration_s)
        if ttfb_s is not None:
            children[2].observe(ttfb_s)

    def attempt(self, attempt: Attempt) -> None:
        provider, outcome = attempt.provider, attempt.outcome
        child = self._attempts.get((provider, outcome))  # count_attempt, inline: once per request
        if child is None:
            child = self._attempts[(provider if provider in self._providers else OTHER, _fold(outcome, OUTCOMES))]
        child.inc()
        if attempt.failover is not None:
            self.count_failover(attempt.failover)

    def continuation(self, model: str, reason: str, outcome: str) -> None:
        key = (reason if reason in CONTINUATION_REASONS else OTHER, outcome)
        child = self._continuations.get(key)
        if child is not None:
            child.inc()

    def count_attempt(self, provider: str, outcome: str) -> None:
        """One upstream attempt's outcome (`classify.outcome_of` gives the label)."""
        child = self._attempts.get((provider, outcome))
        if child is None:
            child = self._attempts[(provider if provider in self._providers else OTHER, _fold(outcome, OUTCOMES))]
        child.inc()

    def count_failover(self, reason: str) -> None:
        """A failed attempt the router moved on from (classify.Verdict.reason)."""
        child = self._failovers.get(reason)
        if child is None:
            if STATUS_REASON.fullmatch(reason):
                child = self._failovers[reason] = self._failover_family.labels(reason)
            else:
                child = self._failovers[OTHER]
        child.inc()

    def usage(self, plan: str | None, model: str | None, usage: Usage | None, cost_usd: float | None) -> None:
        """What one request was billed: its tokens by kind, and its cost."""
        pl = plan or "anonymous"
        key = (pl if pl in self._plans else OTHER, model if model in self._models else OTHER)
        children = self._per_usage.get(key)
        if children is None:
            children = self._bind_usage(*key)
        if usage is not None:
            for child, n in zip(
                children,
                (usage.input_tokens, usage.cached_tokens, usage.cache_write_tokens, usage.output_tokens),
                strict=False,
            ):
                if n:
                    child.inc(n)
        if cost_usd:
            children[4].inc(cost_usd)

    def refused(self, plan: str | None, status: int) -> None:
        """A request refused by its plan's budget (402) or rate limits (429)."""
        child = self._refusals.get((plan or "anonymous", status))
        if child is None:
            child = self._refusals.get((OTHER, status))
        if child is not None:  # other statuses are not limit refusals
            child.inc()

    def _bind_request(self, key: tuple[str, str, str, int]) -> tuple[Counter, Histogram, Histogram]:
        e, m, p, status = key
        s = _STATUS.get(status, OTHER)
        children = (self._requests.labels(e, m, p, s), self._duration.labels(e, m, p), self._ttfb.labels(e, m, p))
        self._per_request[key] = children
        return children

    def _bind_usage(self, plan: str, model: str) -> tuple[Counter, ...]:
        children = (*(self._tokens.labels(plan, model, k) for k in TOKEN_KINDS), self._cost.labels(plan, model))
        self._per_usage[(plan, model)] = children
        return children

    # --- endpoint and lifespan --------------------------------------------------------------------

    def render(self, authorization: str | None, accept: str | None = None) -> tuple[int, dict[str, str], bytes]:
        """The /metrics response: (status, headers, body). 401 without the configured token."""
        if not self._guard.allows(authorization):
            return 401, {"content-type": "text/plain; charset=utf-8", **CHALLENGE}, b"unauthorized\n"
        try:
            self.publish_live()  # multiprocess: this worker's own values, fresh
        except OSError as exc:  # the other workers' files still answer
            log.error("metrics_publish_failed", error=str(exc))
        encoder, content_type = choose_encoder(accept or "")
        return 200, {"content-type": content_type, "cache-control": "no-store"}, encoder(self.registry)

    def publish_live(self) -> None:
        """Multiprocess mode: write this worker's live values for the scraping worker to read."""
        if self._files is not None:
            self._files.publish({**pool_rows(self.pool), **STATS.rows()})

    async def run_publisher(self, interval_s: float = LIVE_PUBLISH_INTERVAL_S) -> None:
        """Lifespan task: publish every `interval_s`; returns at once with a single worker."""
        if self._files is None:
            return
        failing = False
        while True:
            try:
                self.publish_live()
                failing = False
            except OSError as exc:  # a full disk must not take the app down with this task
                if not failing:
                    log.error("metrics_publish_failed", error=str(exc), dir=self._files.directory)
                failing = True
            await anyio.sleep(interval_s)

    def close(self) -> None:
        """At shutdown: this worker's live values stop counting (its counters keep counting)."""
        if self._files is not None:
            self._files.remove()

    def live_values(self) -> Rows:
        """The gauges as exposed: this worker's pool, or aggregated over the live workers."""
        if self._files is None:
            return {**pool_rows(self.pool), **STATS.rows()}
        return aggregate(self._files.read_all(time.time()))


def _fold(value: str, allowed: Iterable[str]) -> str:
    return value if value in allowed else OTHER


class _LiveCollector:
    """Computes the gauges when scraped (prometheus_client's custom-collector protocol)."""

    _FAMILIES = (
        (
            "breaker",
            "router_breaker_state",
            "Circuit breaker per route: 0 closed, 1 half-open, 2 open.",
            ("provider", "route"),
        ),
        ("healthy", "router_provider_healthy", "0 once health probes found the provider down, else 1.", ("provider",)),
        ("model_available", "router_model_available", "1 while a route of the model can take a request.", ("model",)),
        ("inflight", "router_provider_inflight", "Upstream attempts in flight per provider.", ("provider",)),
        (
            "ewma",
            "router_route_ewma_seconds",
            "Peak-EWMA of time to first byte per route, in seconds.",
            ("provider", "route"),
        ),
        ("client_connections", "router_client_connections", "Open client connections.", ()),
    )

    def __init__(self, owner: Metrics) -> None:
        self._owner = owner

    def collect(self) -> Iterator[Metric]:
        values = self._owner.live_values()
        for key, name, doc, labels in self._FAMILIES:
            family = GaugeMetricFamily(name, doc, labels=labels)
            for *label_values, value in values.get(key, ()):
                family.add_metric([str(v) for v in label_values], value)
            yield family
        closed = CounterMetricFamily(
            "router_client_connections_closed", "Client connections closed by a limit.", labels=("reason",)
        )
        for reason, value in values.get("client_closed", ()):
            closed.add_metric([str(reason)], value)
        yield closed
