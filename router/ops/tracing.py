"""OpenTelemetry traces (docs/tracing.md): a span per request, a child span per upstream attempt,
the client's W3C `traceparent` as the request's parent, and the attempt's own sent upstream.

The one module that imports OpenTelemetry (the `router[otel]` extra). `tracing_env.py` decides
from the OTEL_* variables whether to trace and imports this module only then: with tracing off
the router never loads OpenTelemetry, and its request path runs exactly as without this module.

How it hooks in, paying only when on:
- `Tracing.wrap` is an ASGI middleware inside the access middleware: it starts the request's
  span (parented on the client's `traceparent`), puts a `_Request` in the OpenTelemetry context
  of the request's task (the stream's task inherits it), and ends the span with what the access
  record says (model, key, provider, status, stream end);
- as an `Observer`, `sending` starts an attempt's span and writes its `traceparent` into the
  upstream headers; `attempt` ends it with its outcome (a served stream's span stays open until
  its stream ends); `usage` and `refused` give the request its plan and cost; `continuation`
  is an event on the request's span.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import router
from router.observe import Attempt, Observer
from router.types import QUIET_PREFIX, AccessRecord, Usage

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_SERVICE_NAME = "router"
_PROPAGATOR = TraceContextTextMapPropagator()
_KEY = otel_context.create_key("router.request")
_CLIENT_TRACE = (b"traceparent", b"tracestate")
_SHUTDOWN_S = 5.0  # the last spans' export at shutdown; a collector that is down must not hold the exit


class _Request:
    """One traced request, in its OpenTelemetry context: its span, the context its attempts'
    spans are parented on, and the attempt spans still open."""

    __slots__ = ("cost_usd", "ctx", "plan", "record", "sent", "sent_ns", "span", "streaming")

    def __init__(self, span: trace.Span, ctx: otel_context.Context, record: AccessRecord | None) -> None:
        self.span = span
        self.ctx = ctx
        self.record = record
        self.plan: str | None = None
        self.cost_usd: float | None = None
        self.sent: trace.Span | None = None  # the attempt sent upstream, not yet reported
        self.sent_ns = 0
        self.streaming: trace.Span | None = None  # the served stream's attempt: ends with the stream


def _current() -> _Request | None:
    req = otel_context.get_value(_KEY)
    return req if isinstance(req, _Request) else None


class Tracing(Observer):
    """Spans for requests and their attempts, through one TracerProvider this object owns."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self._tracer = provider.get_tracer("router", router.__version__)
        self.service = str(provider.resource.attributes.get(SERVICE_NAME, ""))

    @classmethod
    def from_exporters(cls, exporters: tuple[str, ...]) -> Tracing:
        """A provider exporting to `exporters` ("otlp": OTLP over HTTP, configured by the
        OTEL_EXPORTER_OTLP_* variables; "console": stdout), its resource from OTEL_SERVICE_NAME
        and OTEL_RESOURCE_ATTRIBUTES (service name "router" unless they name one), its sampler
        from OTEL_TRACES_SAMPLER: the SDK reads them itself."""
        resource = Resource.create()
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
        provider = TracerProvider(resource=resource)
        for name in exporters:
            exporter: SpanExporter
            if name == "otlp":
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

                exporter = OTLPSpanExporter()
            else:
                exporter = ConsoleSpanExporter()
            provider.add_span_processor(BatchSpanProcessor(exporter))
        return cls(provider)

    def wrap(self, app: App, routes: frozenset[str] = frozenset()) -> App:
        """The request-span middleware around `app` (`routes`: the app's paths, which name spans)."""

        async def traced(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or scope["path"].startswith(QUIET_PREFIX):
                await app(scope, receive, send)
                return
            await self._request(app, routes, scope, receive, send)

        return traced

    async def _request(self, app: App, routes: frozenset[str], scope: Scope, receive: Receive, send: Send) -> None:
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in _CLIENT_TRACE}
        parent = _PROPAGATOR.extract(carrier) if carrier else None
        method, path = scope["method"], scope["path"]
        known = path in routes
        attributes: dict[str, Any] = {"http.request.method": method}
        if known:
            attributes["http.route"] = path
        span = self._tracer.start_span(
            f"{method} {path}" if known else method, parent, trace.SpanKind.SERVER, attributes
        )
        ctx = trace.set_span_in_context(span, parent)
        record = scope.get("state", {}).get("access")
        req = _Request(span, ctx, record if isinstance(record, AccessRecord) else None)
        token = otel_context.attach(otel_context.set_value(_KEY, req, ctx))
        sc = span.get_span_context()
        if sc.is_valid:  # every log line of the request (the access line too) names its trace
            structlog.contextvars.bind_contextvars(trace_id=format(sc.trace_id, "032x"))
        failed: BaseException | None = None
        try:
            await app(scope, receive, send)
        except BaseException as exc:
            failed = exc
            raise
        finally:
            otel_context.detach(token)
            _end_request(req, failed)

    # --- the Observer interface -------------------------------------------------------------

    def sending(self, headers: dict[str, str]) -> None:
        req = _current()
        if req is None:
            return
        if req.streaming is not None:  # a continuation: the broken stream's attempt ends here
            req.streaming.end()
            req.streaming = None
        span = self._tracer.start_span("attempt", req.ctx, trace.SpanKind.CLIENT)
        req.sent, req.sent_ns = span, time.time_ns()
        # The client's tracestate (forwarded with its traceparent) goes with the trace it belongs
        # to: the span's context carries it when the client's traceparent was valid.
        headers.pop("tracestate", None)
        _PROPAGATOR.inject(headers, trace.set_span_in_context(span))

    def attempt(self, attempt: Attempt) -> None:
        req = _current()
        if req is None:
            return
        now = time.time_ns()
        sent = req.sent
        req.sent = None
        # None: it failed before anything was sent (a body that cannot be translated)
        span = sent or self._tracer.start_span("attempt", req.ctx, trace.SpanKind.CLIENT, start_time=now)
        if not span.is_recording():  # not sampled: nothing to say, nothing to end
            return
        span.update_name(f"attempt {attempt.provider}")
        attrs: dict[str, Any] = {
            "router.provider": attempt.provider,
            "router.route": attempt.route,
            "router.model": attempt.model,
            "router.outcome": attempt.outcome,
            "router.served": attempt.served,
        }
        if attempt.failover is not None:
            attrs["router.retry_reason"] = attempt.failover
        if attempt.continuation is not None:
            attrs["router.continuation"] = attempt.continuation
        if attempt.outcome not in ("ok", "cancelled"):
            span.set_status(trace.StatusCode.ERROR, attempt.failover or attempt.outcome)
        streaming = False
        if attempt.served and attempt.outcome == "ok" and sent is not None:
            # Reported when the attempt committed: its first content event (a stream), its
            # whole body (an answer), as the router's latency estimate measures it.
            attrs["router.ttfb_ms"] = round((now - req.sent_ns) / 1e6, 3)
            streaming = req.record is not None and req.record.stream
        span.set_attributes(attrs)
        if streaming:
            req.streaming = span
        else:
            span.end(end_time=now)

    def continuation(self, model: str, reason: str, outcome: str) -> None:
        req = _current()
        if req is not None:
            req.span.add_event("continuation", {"router.reason": reason, "router.outcome": outcome})

    def usage(self, plan: str | None, model: str | None, usage: Usage | None, cost_usd: float) -> None:
        req = _current()
        if req is not None:
            req.plan, req.cost_usd = plan, cost_usd
            if usage is not None and req.span.is_recording():
                req.span.set_attributes(
                    {
                        "gen_ai.usage.input_tokens": usage.input_tokens + usage.cached_tokens,
                        "gen_ai.usage.output_tokens": usage.output_tokens,
                    }
                )

    def refused(self, plan: str | None, status: int) -> None:
        req = _current()
        if req is not None:
            req.plan = plan

    async def aclose(self) -> None:
        """Export what is left and stop, within a few seconds."""
        with anyio.move_on_after(_SHUTDOWN_S, shield=True):
            await anyio.to_thread.run_sync(self.provider.shutdown, abandon_on_cancel=True)


def _end_request(req: _Request, failed: BaseException | None) -> None:
    for open_span in (req.sent, req.streaming):
        if open_span is not None:
            open_span.end()
    span, r = req.span, req.record
    if not span.is_recording():
        return
    if r is not None:
        attrs: dict[str, Any] = {"router.request_id": r.request_id}
        if r.status:
            attrs["http.response.status_code"] = r.status
        for name, value in (
            ("router.key_id", r.key_id),
            ("router.plan", req.plan),
            ("router.model", r.model),
            ("router.provider", r.provider),
            ("router.stream_end", r.stream_end),
            ("router.cost_usd", req.cost_usd),
        ):
            if value is not None:
                attrs[name] = value
        if r.model is not None:
            attrs["router.stream"] = r.stream
            attrs["router.failovers"] = len(r.attempts)
        span.set_attributes(attrs)
    if isinstance(failed, Exception):  # a bug (the access middleware answers a 500); not a cancellation
        span.record_exception(failed)
        span.set_status(trace.StatusCode.ERROR, type(failed).__name__)
    elif failed is None and r is not None and r.status >= 500:
        span.set_status(trace.StatusCode.ERROR, f"status {r.status}")
    span.end()
