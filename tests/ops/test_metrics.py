"""router.ops.metrics: the exposition parsed back with prometheus_client's own parser, values checked
after calling the hot-path methods; the scrape-time gauges against a real Pool; label folding;
the token; and multiprocess mode across real worker processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from router.billing.auth import hash_key
from router.clock import ManualClock
from router.config import Config, parse_config
from router.errors import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamReset,
    UpstreamStatusError,
    UpstreamTimeout,
)
from router.ops.metrics import MULTIPROC_ENV, Metrics
from router.ops.metrics_labels import OTHER
from router.ops.metrics_live import aggregate
from router.routing.classify import outcome_of
from router.routing.pool import Pool
from router.routing.table import RoutingTable
from router.types import AttemptResult, Usage
from router.upstream.probe import ProbeResult

UP, DOWN = ProbeResult(True, "status 200", 200), ProbeResult(False, "status 503", 503)

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "metrics-s3cret"
CHAT = "/v1/chat/completions"


def config(**server: Any) -> Config:
    """Providers a and b; model m1 on both, m2 on b; plans pro and free."""
    providers = [
        {
            "name": n,
            "base_url": f"http://{n}.invalid",
            "formats": ["openai-chat"],
            "breaker": {"fail_max": 2, "reset_timeout_s": 30},
            "health": {"unhealthy_after": 1},
        }
        for n in ("a", "b")
    ]
    server_section: dict[str, Any] = {"allow_anonymous": True, **server}
    return parse_config(
        {
            "server": server_section,
            "providers": providers,
            "models": [
                {"name": "m1", "routes": [{"provider": "a", "model": "a-m1"}, {"provider": "b", "model": "b-m1"}]},
                {"name": "m2", "routes": [{"provider": "b", "model": "b-m2"}]},
            ],
            "plans": [{"name": "pro", "models": ["*"]}, {"name": "free", "models": ["m2"]}],
        },
        source="test",
        env={},
    )


def build(environ: dict[str, str] | None = None, **server: Any) -> tuple[Metrics, Pool, ManualClock]:
    clock = ManualClock()
    cfg = config(**server)
    pool = Pool(RoutingTable(cfg), clock, half_life_s=10.0)
    return Metrics.from_config(cfg, pool, environ=environ or {}), pool, clock


def scrape(metrics: Metrics, authorization: str | None = None) -> dict[str, Any]:
    status, headers, body = metrics.render(authorization)
    assert status == 200, body
    assert headers["content-type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def value(families: dict[str, Any], sample: str, **labels: str) -> float | None:
    """The value of the sample named `sample` with exactly these labels, or None."""
    family = families[sample.removesuffix("_total").removesuffix("_bucket").removesuffix("_count").removesuffix("_sum")]
    for s in family.samples:
        if s.name == sample and s.labels == labels:
            return float(s.value)
    return None


def test_request_counter_and_histograms() -> None:
    m, _, _ = build()
    m.request(CHAT, "m1", "a", 200, duration_s=1.5, ttfb_s=0.3)
    m.request(CHAT, "m1", "a", 200, duration_s=700.0, ttfb_s=None)
    m.request("/v1/messages", "m2", None, 402, duration_s=0.002)
    f = scrape(m)
    labels = {"endpoint": CHAT, "model": "m1", "provider": "a"}
    assert value(f, "router_requests_total", **labels, status="200") == 2
    assert value(f, "router_requests_total", endpoint="/v1/messages", model="m2", provider="none", status="402") == 1
    assert value(f, "router_request_duration_seconds_count", **labels) == 2
    assert value(f, "router_request_duration_seconds_sum", **labels) == 701.5
    assert value(f, "router_request_duration_seconds_bucket", **labels, le="2.0") == 1
    assert value(f, "router_request_duration_seconds_bucket", **labels, le="600.0") == 1  # 700 s: only +Inf
    assert value(f, "router_request_duration_seconds_bucket", **labels, le="+Inf") == 2
    assert value(f, "router_request_ttfb_seconds_count", **labels) == 1  # None is not a sample
    assert value(f, "router_request_ttfb_seconds_bucket", **labels, le="0.3") == 1
    assert value(f, "router_request_ttfb_seconds_bucket", **labels, le="0.2") == 0


def test_unbounded_inputs_fold_into_other() -> None:
    """Client-chosen model names, scanned paths, unknown providers and odd statuses never mint
    new series, and the per-label-set cache stays bounded with them."""
    m, _, _ = build()
    for i in range(200):
        m.request(f"/wp-admin/{i}", f"gpt-{i}", f"prov-{i}", 404, 0.001)
        m.request(CHAT, f"gpt-{i}", None, 1000 + i, 0.001)
        m.usage(f"plan-{i}", f"gpt-{i}", Usage(1, 0, 0, 1), 0.5)
        m.count_attempt(f"prov-{i}", f"weird-{i}")
    f = scrape(m)
    assert value(f, "router_requests_total", endpoint="other", model="other", provider="other", status="404") == 200
    assert value(f, "router_requests_total", endpoint=CHAT, model="other", provider="none", status="other") == 200
    assert value(f, "router_tokens_total", plan="other", model="other", kind="input") == 200
    assert value(f, "router_cost_usd_total", plan="other", model="other") == 100.0
    assert value(f, "router_upstream_attempts_total", provider=OTHER, outcome=OTHER) == 200
    assert len(f["router_requests"].samples) == 2
    assert len(m._per_request) == 2 and len(m._per_usage) == 1
    models = {s.labels.get("model") for fam in f.values() for s in fam.samples} - {None}
    assert models <= {"m1", "m2", "other", "none"}


def test_attempt_outcomes() -> None:
    m, _, _ = build()
    m.count_attempt("a", outcome_of(None))
    m.count_attempt("a", outcome_of(UpstreamStatusError("x", 503, {}, b"")))
    m.count_attempt("a", outcome_of(UpstreamStatusError("x", 503, {}, b"")))
    m.count_attempt("b", outcome_of(UpstreamTimeout("x", "first_token")))
    f = scrape(m)
    assert value(f, "router_upstream_attempts_total", provider="a", outcome="ok") == 1
    assert value(f, "router_upstream_attempts_total", provider="a", outcome="5xx") == 2
    assert value(f, "router_upstream_attempts_total", provider="b", outcome="timeout") == 1
    # Bound in advance: every provider x outcome exists from the start, at 0.
    assert value(f, "router_upstream_attempts_total", provider="b", outcome="reset") == 0


@pytest.mark.parametrize(
    ("exc", "outcome"),
    [
        (None, "ok"),
        (UpstreamStatusError("x", 500, {}, b""), "5xx"),
        (UpstreamStatusError("x", 529, {}, b""), "5xx"),
        (UpstreamStatusError("x", 429, {}, b""), "429"),
        (UpstreamStatusError("x", 404, {}, b""), "4xx"),
        (UpstreamTimeout("x", "connect"), "timeout"),
        (UpstreamReset("x"), "reset"),
        (UpstreamConnectError("x"), "connect_error"),
        (UpstreamProtocolError("x"), "protocol_error"),
        (UpstreamError("x"), "error"),
        (asyncio.CancelledError(), "cancelled"),
        (RuntimeError("bug"), "error"),
    ],
)
def test_outcome_of(exc: BaseException | None, outcome: str) -> None:
    assert outcome_of(exc) == outcome


def test_failover_reasons() -> None:
    m, _, _ = build()
    for reason in ("status_503", "status_503", "timeout_first_token", "status_418", "tried: a/x at 12:00"):
        m.count_failover(reason)
    f = scrape(m)
    assert value(f, "router_failovers_total", reason="status_503") == 2
    assert value(f, "router_failovers_total", reason="timeout_first_token") == 1
    assert value(f, "router_failovers_total", reason="status_418") == 1  # status_NNN is bounded by its form
    assert value(f, "router_failovers_total", reason="other") == 1
    assert value(f, "router_failovers_total", reason="connect_error") == 0


def test_tokens_dollars_and_refusals() -> None:
    m, _, _ = build()
    m.usage("pro", "m1", Usage(input_tokens=100, cached_tokens=40, cache_write_tokens=10, output_tokens=25), 0.0125)
    m.usage("pro", "m1", Usage(input_tokens=1, output_tokens=2), 0.0005)
    m.usage(None, "m2", None, None)  # anonymous, nothing billed: no error, nothing counted
    m.refused("pro", 402)
    m.refused("free", 429)
    m.refused("free", 429)
    m.refused(None, 429)
    m.refused("pro", 503)  # not a limit refusal: ignored
    f = scrape(m)
    tokens = {
        k: value(f, "router_tokens_total", plan="pro", model="m1", kind=k)
        for k in ("input", "cached", "cache_write", "output")
    }
    assert tokens == {"input": 101, "cached": 40, "cache_write": 10, "output": 27}
    assert value(f, "router_cost_usd_total", plan="pro", model="m1") == pytest.approx(0.013)
    assert value(f, "router_refusals_total", plan="pro", reason="budget") == 1
    assert value(f, "router_refusals_total", plan="free", reason="rate_limit") == 2
    assert value(f, "router_refusals_total", plan="anonymous", reason="rate_limit") == 1
    assert value(f, "router_refusals_total", plan="pro", reason="rate_limit") == 0


def test_live_gauges_come_from_the_pool_at_scrape_time() -> None:
    m, pool, clock = build()
    a1, b1 = pool.routes["a/a-m1"], pool.routes["b/b-m1"]
    f = scrape(m)
    assert value(f, "router_model_available", model="m1") == value(f, "router_model_available", model="m2") == 1
    for _ in range(2):  # fail_max 2: a/a-m1 opens
        lease = pool.acquire(a1)
        assert lease is not None
        lease.finish(AttemptResult.FAILURE)
    held = [pool.acquire(b1), pool.acquire(pool.routes["b/b-m2"])]  # in flight, not finished
    assert all(held)
    b1.ewma.observe(0.25)
    pool.providers["b"].health.record(DOWN, 0.0)  # unhealthy_after 1
    f = scrape(m)
    assert value(f, "router_breaker_state", provider="a", route="a/a-m1") == 2
    assert value(f, "router_breaker_state", provider="b", route="b/b-m1") == 0
    assert value(f, "router_provider_healthy", provider="a") == 1
    assert value(f, "router_provider_healthy", provider="b") == 0
    # m1: a's route breaker open, b down; m2: b only
    assert value(f, "router_model_available", model="m1") == value(f, "router_model_available", model="m2") == 0
    assert value(f, "router_provider_inflight", provider="b") == 2
    assert value(f, "router_provider_inflight", provider="a") == 0
    assert value(f, "router_route_ewma_seconds", provider="b", route="b/b-m1") == 0.25
    assert value(f, "router_route_ewma_seconds", provider="b", route="b/b-m2") is None  # never measured
    # Nothing was pushed: the next scrape reads the pool again.
    clock.advance(30)
    assert a1.breaker.available() and pool.acquire(a1) is not None  # its half-open trial
    for lease in held:
        assert lease is not None
        lease.finish(AttemptResult.SUCCESS)
    f = scrape(m)
    assert value(f, "router_breaker_state", provider="a", route="a/a-m1") == 1
    assert value(f, "router_provider_inflight", provider="b") == 0
    assert value(f, "router_provider_inflight", provider="a") == 1
    assert value(f, "router_route_ewma_seconds", provider="b", route="b/b-m1") == pytest.approx(
        0.25 / 8
    )  # 3 half-lives


def test_model_availability_aggregates_to_the_worst_worker() -> None:
    """With several workers, a model is shown available only while every worker has a route for it."""
    rows = aggregate([{"model_available": [["m", 1.0]]}, {"model_available": [["m", 0.0], ["n", 1.0]]}])
    assert sorted(rows["model_available"]) == [["m", 0.0], ["n", 1.0]]


def test_reconfigure_after_a_reload() -> None:
    """The new pool's gauges, and the new names as label values; old counts stay."""
    m, _, _ = build()
    m.request(CHAT, "m2", "b", 200, 0.1)
    cfg = parse_config(
        {
            "server": {"allow_anonymous": True},
            "providers": [{"name": "c", "base_url": "http://c.invalid", "formats": ["openai-chat"]}],
            "models": [{"name": "m3", "routes": [{"provider": "c", "model": "c-m3"}]}],
            "plans": [{"name": "gold", "models": ["*"]}],
        },
        env={},
    )
    m.reconfigure(cfg, Pool(RoutingTable(cfg), ManualClock(), 10.0))
    m.request(CHAT, "m3", "c", 200, 0.1)
    m.count_attempt("c", "ok")
    m.refused("gold", 429)
    f = scrape(m)
    assert {s.labels["provider"] for s in f["router_provider_healthy"].samples} == {"c"}
    assert value(f, "router_requests_total", endpoint=CHAT, model="m3", provider="c", status="200") == 1
    assert value(f, "router_requests_total", endpoint=CHAT, model="m2", provider="b", status="200") == 1
    assert value(f, "router_upstream_attempts_total", provider="c", outcome="ok") == 1
    assert value(f, "router_refusals_total", plan="gold", reason="rate_limit") == 1


def test_metrics_token() -> None:
    m, _, _ = build(metrics_token=hash_key(TOKEN))
    for bad in (None, "", "Bearer", "Bearer wrong", f"Basic {TOKEN}", TOKEN):
        status, headers, body = m.render(bad)
        assert status == 401 and headers["www-authenticate"].startswith("Bearer") and b"router_" not in body
    assert "router_requests" in scrape(m, f"Bearer {TOKEN}")
    assert "router_requests" in scrape(m, f"bearer  {TOKEN} ")
    open_metrics, _, _ = build()
    assert "router_requests" in scrape(open_metrics, None)


def test_a_reload_sets_changes_and_removes_the_metrics_token() -> None:
    m, pool, _ = build()
    m.reconfigure(config(metrics_token=hash_key(TOKEN)), pool)
    assert m.render(None)[0] == 401
    assert "router_requests" in scrape(m, f"Bearer {TOKEN}")
    m.reconfigure(config(metrics_token=hash_key("metrics-n3w")), pool)
    assert m.render(f"Bearer {TOKEN}")[0] == 401, "the old token no longer opens it"
    assert "router_requests" in scrape(m, "Bearer metrics-n3w")
    m.reconfigure(config(), pool)
    assert "router_requests" in scrape(m, None)


def test_registries_are_private_and_independent() -> None:
    one, _, _ = build()
    two, _, _ = build()
    one.request(CHAT, "m1", "a", 200, 0.1)
    assert value(scrape(one), "router_requests_total", endpoint=CHAT, model="m1", provider="a", status="200") == 1
    assert value(scrape(two), "router_requests_total", endpoint=CHAT, model="m1", provider="a", status="200") is None
    global_names = {f.name for f in prometheus_client.REGISTRY.collect()}
    assert not any(n.startswith("router_") for n in global_names)


def test_openmetrics_when_asked() -> None:
    m, _, _ = build()
    status, headers, body = m.render(None, accept="application/openmetrics-text; version=1.0.0")
    assert status == 200 and headers["content-type"].startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")


def test_hot_path_never_calls_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once a label set has been seen, the per-request calls only touch cached children."""
    m, _, _ = build()

    def calls() -> None:
        m.request(CHAT, "m1", "a", 200, 0.5, 0.1)
        m.count_attempt("a", "ok")
        m.count_failover("status_503")
        m.usage("pro", "m1", Usage(3, 0, 0, 4), 0.01)
        m.refused("pro", 402)

    calls()

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("labels() on the hot path")

    monkeypatch.setattr(prometheus_client.Counter, "labels", forbidden)
    monkeypatch.setattr(prometheus_client.Histogram, "labels", forbidden)
    for _ in range(3):
        calls()


def test_multiprocess_needs_the_variable_before_import(tmp_path: Path) -> None:
    _, pool, _ = build()
    with pytest.raises(RuntimeError, match=MULTIPROC_ENV):
        Metrics(pool, models=["m1"], plans=[], multiprocess_dir=str(tmp_path))


# A worker: records `n` requests, holds `inflight` attempts on route b/b-m1 open, publishes its
# live values, says so, and waits for stdin to close (then shuts down as the lifespan would).
_WORKER = """
import os, sys
from tests.ops.test_metrics import build
from router.types import AttemptResult
n, inflight, trip = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "trip"
m, pool, _ = build(dict(os.environ))
for _ in range(n):
    m.request("/v1/chat/completions", "m1", "b", 200, 0.5)
held = [pool.acquire(pool.routes["b/b-m1"]) for _ in range(inflight)]
if trip:
    for _ in range(2):
        pool.acquire(pool.routes["a/a-m1"]).finish(AttemptResult.FAILURE)
m.publish_live()
print("ready", flush=True)
sys.stdin.read()
m.close()
"""
_SCRAPER = """
import os, sys
from tests.ops.test_metrics import build
m, _, _ = build(dict(os.environ))
status, headers, body = m.render(None)
sys.stdout.write(body.decode())
"""


def _python(code: str, *args: str, env: dict[str, str], **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT,
        env=env,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        **kw,
    )


def _wait_ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:  # the breaker's log lines come first
        if line.strip() == "ready":
            return
    raise AssertionError(f"worker exited with {proc.wait(timeout=10)} before it was ready")


def _scrape_as_another_worker(env: dict[str, str]) -> dict[str, Any]:
    proc = _python(_SCRAPER, env=env)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    return {f.name: f for f in text_string_to_metric_families(out)}


def test_multiprocess_mode_aggregates_all_workers(tmp_path: Path) -> None:
    """Two live workers and a third that answers the scrape: counters summed over all three
    processes' files, in-flight summed, breakers the worst; a worker that exits stops counting in
    the gauges but its counts remain."""
    env = {**os.environ, MULTIPROC_ENV: str(tmp_path), "PYTHONPATH": str(ROOT)}
    workers = [_python(_WORKER, "2", "1", "trip", env=env), _python(_WORKER, "3", "2", "-", env=env)]
    try:
        for w in workers:
            _wait_ready(w)
        f = _scrape_as_another_worker(env)
        labels = {"endpoint": CHAT, "model": "m1", "provider": "b"}
        assert value(f, "router_requests_total", **labels, status="200") == 5
        assert value(f, "router_request_duration_seconds_count", **labels) == 5
        assert value(f, "router_provider_inflight", provider="b") == 3
        assert value(f, "router_breaker_state", provider="a", route="a/a-m1") == 2  # open in one worker
        assert value(f, "router_provider_healthy", provider="b") == 1
        workers[0].communicate(timeout=30)  # stdin closed: it exits and removes its live file
        f = _scrape_as_another_worker(env)
        assert value(f, "router_requests_total", **labels, status="200") == 5
        assert value(f, "router_provider_inflight", provider="b") == 2
        assert value(f, "router_breaker_state", provider="a", route="a/a-m1") == 0
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.communicate(timeout=10)
