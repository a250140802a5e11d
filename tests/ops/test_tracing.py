"""OpenTelemetry traces over real sockets (docs/tracing.md): the router with the SDK's in-memory
exporter in front of the fake providers. A span per request, a child span per attempt, the
client's traceparent as the parent, and each attempt's own traceparent at its upstream."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from structlog.testing import LogCapture

from router.billing.auth import hash_key
from router.ops.tracing import Tracing
from tests.conftest import CHAT

PATH = "/v1/chat/completions"
KEY = "toc-pro-" + "p" * 40
PRICE = {"input_per_mtok": 1000.0, "output_per_mtok": 2000.0}
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"


@pytest.fixture
def traced(router_server) -> Iterator[tuple[Any, InMemorySpanExporter]]:
    """(start(config) -> a router server with tracing, the exporter its spans go to). The app
    owns the provider: its lifespan shuts it down when the server stops."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    def start(config: Any) -> Any:
        return router_server(config, tracing=Tracing(provider))

    yield start, exporter


def finished(rs: Any, exporter: InMemorySpanExporter, requests: int = 1) -> list[ReadableSpan]:
    """The spans once `requests` request spans have ended (a request's span ends after its last
    byte reached the client, so a moment after the client has the answer)."""

    def servers() -> int:
        return sum(1 for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER)

    rs.wait_until(lambda: servers() >= requests)
    return sorted(exporter.get_finished_spans(), key=lambda s: s.start_time or 0)


def attempts_of(spans: list[ReadableSpan], request: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in spans if s.parent is not None and s.parent.span_id == request.context.span_id]


def traceparent(span: ReadableSpan) -> str:
    c = span.context
    return f"00-{c.trace_id:032x}-{c.span_id:016x}-{c.trace_flags:02x}"


def test_a_failover_is_one_request_span_over_two_attempt_spans(fakes, config_factory, traced):
    """alpha answers 503, beta answers: the request's span (the client's span its parent) says
    who asked, on which plan, what it cost and who served; under it one span per attempt, with
    outcome and retry reason, or time to first byte; each upstream got its own attempt's
    traceparent and the client's tracestate."""
    start, exporter = traced
    cfg = config_factory(
        {"m": [("alpha", 0), ("beta", 1)]},
        plans=[{"name": "pro", "models": ["m"]}],
        keys=[{"id": "acme", "hash": hash_key(KEY), "plan": "pro"}],
        prices={"m": PRICE},
        server={"allow_anonymous": False},
    )
    rs = start(cfg)
    fakes.set("alpha", status=503)  # not retried on the same route (a 500 would be, once)
    headers = {
        "authorization": f"Bearer {KEY}",
        "traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-01",
        "tracestate": "congo=t61rcWkgMzE",
        "x-request-id": "req-traced",
    }
    r = rs.post(PATH, CHAT, headers=headers)
    assert r.status_code == 200 and r.headers["x-router-provider"] == "beta"
    spans = finished(rs, exporter)
    [request] = [s for s in spans if s.kind is SpanKind.SERVER]
    assert request.name == f"POST {PATH}"
    assert f"{request.context.trace_id:032x}" == TRACE_ID
    assert request.parent is not None and f"{request.parent.span_id:016x}" == CLIENT_SPAN
    a = dict(request.attributes or {})
    assert a["http.route"] == PATH and a["http.response.status_code"] == 200
    assert (a["router.model"], a["router.key_id"], a["router.plan"]) == ("m", "acme", "pro")
    assert (a["router.provider"], a["router.failovers"], a["router.request_id"]) == ("beta", 1, "req-traced")
    assert float(a["router.cost_usd"]) > 0  # type: ignore[arg-type]
    assert request.status.status_code is StatusCode.UNSET

    first, second = attempts_of(spans, request)
    assert (first.name, first.kind) == ("attempt alpha", SpanKind.CLIENT)
    f = dict(first.attributes or {})
    assert (f["router.outcome"], f["router.retry_reason"], f["router.served"]) == ("5xx", "status_503", False)
    assert f["router.route"] == "alpha/alpha-m" and "router.ttfb_ms" not in f
    assert first.status.status_code is StatusCode.ERROR
    s = dict(second.attributes or {})
    assert (s["router.provider"], s["router.outcome"], s["router.served"]) == ("beta", "ok", True)
    assert "router.retry_reason" not in s and float(s["router.ttfb_ms"]) > 0  # type: ignore[arg-type]
    assert first.end_time is not None and second.start_time is not None and first.end_time <= second.start_time

    for name, span in (("alpha", first), ("beta", second)):
        sent = fakes.stats(name)["last_request"]["headers"]
        assert sent["traceparent"] == traceparent(span)
        assert sent["tracestate"] == "congo=t61rcWkgMzE"


def test_a_stream_attempt_span_lasts_until_its_stream_ends(fakes, config_factory, traced):
    """A stream without a client traceparent: a new trace, its request span a root. The
    attempt's time to first byte covers the provider's wait; its span goes on to the stream's
    end; the upstream's traceparent names it."""
    start, exporter = traced
    rs = start(config_factory({"m": [("alpha", 0)]}))
    fakes.set("alpha", latency_ms=150, chunks=4, chunk_delay_ms=40)
    with rs.client.stream("POST", PATH, json={**CHAT, "stream": True}) as r:
        assert r.status_code == 200
        r.read()
    spans = finished(rs, exporter)
    [request] = [s for s in spans if s.kind is SpanKind.SERVER]
    assert request.parent is None
    assert (request.attributes or {})["router.stream"] is True
    assert (request.attributes or {})["router.stream_end"] == "ok"
    [attempt] = attempts_of(spans, request)
    ttfb_ms = float((attempt.attributes or {})["router.ttfb_ms"])  # type: ignore[arg-type]
    assert 140 <= ttfb_ms < 1000
    assert attempt.start_time is not None and attempt.end_time is not None
    assert (attempt.end_time - attempt.start_time) / 1e6 >= ttfb_ms + 4 * 40 * 0.8, "the stream's time is in it"
    assert fakes.stats("alpha")["last_request"]["headers"]["traceparent"] == traceparent(attempt)


def test_a_continued_stream_has_an_attempt_span_per_stream(fakes, config_factory, traced):
    """alpha's stream ends early after content, beta finishes it: alpha's span ends where its
    stream broke, beta's says which break it continues, the request's span has the event."""
    start, exporter = traced
    rs = start(config_factory({"m": [("alpha", 0), ("beta", 1)]}))
    fakes.set("alpha", chunks=8, truncate_after_chunks=3)
    with rs.client.stream("POST", PATH, json={**CHAT, "stream": True}) as r:
        r.read()
    spans = finished(rs, exporter)
    [request] = [s for s in spans if s.kind is SpanKind.SERVER]
    first, second = attempts_of(spans, request)
    assert (first.attributes or {})["router.outcome"] == "ok" and "router.continuation" not in (first.attributes or {})
    assert (second.attributes or {})["router.continuation"] == "truncated"
    assert first.end_time is not None and second.start_time is not None and first.end_time <= second.start_time
    [event] = [e for e in request.events if e.name == "continuation"]
    assert dict(event.attributes or {}) == {"router.reason": "truncated", "router.outcome": "ok"}


def test_a_client_that_does_not_sample_gets_no_spans_and_says_so_upstream(fakes, config_factory, traced):
    """The client's traceparent says "not sampled" (flags 00): the router records nothing, and
    tells the upstream the same, in the same trace."""
    start, exporter = traced
    rs = start(config_factory({"m": [("alpha", 0)]}))
    assert rs.post(PATH, CHAT, headers={"traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-00"}).status_code == 200
    sent = fakes.stats("alpha")["last_request"]["headers"]["traceparent"]
    assert sent.startswith(f"00-{TRACE_ID}-") and sent.endswith("-00") and CLIENT_SPAN not in sent
    assert rs.post(PATH, CHAT).status_code == 200  # a sampled one after it, to know the first is done
    spans = finished(rs, exporter)
    assert all(f"{s.context.trace_id:032x}" != TRACE_ID for s in spans)


@contextmanager
def logs_with_context() -> Iterator[LogCapture]:
    """structlog's capture_logs, with the request's bound context merged into each line."""
    cap = LogCapture()
    old = structlog.get_config()["processors"]
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, cap])
    try:
        yield cap
    finally:
        structlog.configure(processors=old)


def test_the_access_line_names_the_trace(fakes, config_factory, traced):
    start, exporter = traced
    rs = start(config_factory({"m": [("alpha", 0)]}))
    with logs_with_context() as cap:
        rs.post(PATH, CHAT)
        [request] = [s for s in finished(rs, exporter) if s.kind is SpanKind.SERVER]
    [line] = [e for e in cap.entries if e["event"] == "request"]
    assert line["trace_id"] == f"{request.context.trace_id:032x}"


def test_with_tracing_off_the_router_never_imports_opentelemetry(tmp_path):
    """The app built as `router serve` builds it, and a request through its attempt path (to a
    provider that refuses: a 503), without OTEL_* variables: the tracing module is not loaded,
    and the router adds no OpenTelemetry module to those its dependencies load by themselves
    (redis-py, which pybreaker imports, loads OpenTelemetry's metrics SDK when it is installed)."""
    script = """
import sys, orjson
def otel():
    return {m for m in sys.modules if m.startswith("opentelemetry")}
import pybreaker  # imports redis, whose own observability code imports what it finds
before = otel()
from starlette.testclient import TestClient
from router.app import app_from_env
with TestClient(app_from_env()) as client:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    parent = {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
    status = client.post("/v1/chat/completions", json=body, headers=parent).status_code
added = sorted(otel() - before) + (["router.ops.tracing"] if "router.ops.tracing" in sys.modules else [])
print(orjson.dumps({"status": status, "added": added}).decode())
"""
    config = tmp_path / "router.yaml"
    config.write_text(
        "server: {allow_anonymous: true}\n"
        "providers: [{name: p, base_url: 'http://127.0.0.1:9', formats: [openai-chat], health: {enabled: false}}]\n"
        "models: [{name: m, routes: [{provider: p, model: m}]}]\n"
        f"ledger: {{path: '{tmp_path / 'usage.jsonl'}'}}\n"  # not the default var/ in the checkout
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(ROUTER_CONFIG=str(config), PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    # cwd: its ledger (the default, var/usage.jsonl, relative) goes under tmp_path, not the repository
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    result = orjson.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"status": 503, "added": []}
