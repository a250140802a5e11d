"""One request's attempt loop: select the ready routes, choose one, send, classify the outcome,
record it, and try the next route, within `routing.max_attempts` and the request's deadline.

An attempt is committed once its first content event (or whole non-stream body) has arrived;
until then any failure listed in `classify.py` moves on to another route.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import orjson

from router.clock import Clock
from router.config import RoutingConfig
from router.errors import (
    NoRouteAvailable,
    UnknownModel,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeout,
)
from router.formats import FORMAT_HEADER_PREFIXES, ClientRequest, WireFormat
from router.formats.base import estimate_input_tokens
from router.formats.codec import ir
from router.formats.translate import StreamTranslator, translate_answer, translate_error, write_request
from router.ops.metrics import Metrics, outcome_of
from router.ops.status import StatusBoard
from router.routing.breaker import AttemptResult, BreakerState
from router.routing.choose import Candidate, choose
from router.routing.classify import Action, Verdict, classify
from router.routing.outcome import FullAnswer, StreamAnswer
from router.routing.pool import Lease, Pool, RouteState
from router.routing.table import Route
from router.server.drain import Drain
from router.types import AccessRecord
from router.upstream.provider import ProviderClient, UpstreamResponse
from router.upstream.relay import StreamRelay

Sleep = Callable[[float], Awaitable[None]]

FAILURE_PENALTY_S = 1.0  # about a slow LLM's time to first token: worse than any healthy peer


class Forwarder:
    """Sends client requests upstream with failover. One per app; stateless per request."""

    def __init__(
        self,
        pool: Pool,
        clients: dict[str, ProviderClient],
        routing: RoutingConfig,
        clock: Clock,
        rng: random.Random | None = None,
        sleep: Sleep = anyio.sleep,
        metrics: Metrics | None = None,
        board: StatusBoard | None = None,
        drain: Drain | None = None,
    ) -> None:
        self._metrics = metrics
        self._board = board
        self._drain = drain
        self._pool = pool
        self._clients = clients
        self._cfg = routing
        self._clock = clock
        self._rng = rng or random.Random()
        self._sleep = sleep

    def reconfigure(self, routing: RoutingConfig) -> None:
        """A config reload's routing settings (the pool and clients are updated by their owners)."""
        self._cfg = routing

    async def forward(self, req: ClientRequest, record: AccessRecord) -> FullAnswer | StreamAnswer:
        model = self._pool.table.get(req.model)
        if model is None:
            raise UnknownModel(f"model '{req.model}' is not served by this router")
        cfg = self._cfg
        deadline = self._clock.monotonic() + cfg.deadline_s
        exclude: set[str] = set()  # never again in this request
        failed_once: set[str] = set()  # failed transiently: only if nothing else in the tier is ready
        attempts = waits = 0
        fell_back = False
        bodies = _Bodies(req)
        while attempts < cfg.max_attempts and waits <= cfg.max_attempts:
            if attempts:
                await self._sleep(self._backoff(attempts))
            if self._clock.monotonic() >= deadline:
                break
            selection = self._pool.select(model, req.fmt, exclude, cfg.max_retry_wait_s)
            if not selection.routes:
                if selection.wait_s is None or self._clock.monotonic() + selection.wait_s >= deadline:
                    break
                waits += 1
                await self._sleep(selection.wait_s)
                continue
            state = self._choose(
                [s for s in selection.routes if s.route.key not in failed_once] or selection.routes, req.fmt
            )
            lease = self._pool.acquire(state)
            if lease is None:  # its half-open trial slots were taken meanwhile
                exclude.add(state.route.key)
                continue
            attempts += 1
            started = self._clock.monotonic()
            try:
                answer = await self._attempt(req, bodies, model.model.name, state, lease, deadline, record)
                self._served(state, "ok")
                return answer
            except UpstreamError as exc:
                verdict = classify(exc)
                if self._metrics is not None:
                    self._metrics.attempt(state.route.provider.name, outcome_of(exc))
                if verdict.breaker_failure:
                    # A route that fails fast must not look fast (nor stay "unmeasured", which
                    # choose() would try first): a failure costs at least FAILURE_PENALTY_S.
                    lease.observe_ttfb(max(FAILURE_PENALTY_S, self._clock.monotonic() - started))
                lease.finish(AttemptResult.FAILURE if verdict.breaker_failure else AttemptResult.SUCCESS)
                if verdict.action is not Action.CLIENT_ERROR:
                    record.attempts.append(f"{state.route.key}:{verdict.reason}")
                    if self._metrics is not None:
                        self._metrics.failover(verdict.reason)
                    if self._board is not None:
                        self._board.note_failover(model.model.name, state.route.key, verdict.reason)
                if verdict.cooldown_s:
                    state.cooldown.start(verdict.cooldown_s)
                if verdict.action is Action.CONTEXT_FALLBACK and not fell_back and model.model.context_fallback:
                    fallback = self._pool.table.get(model.model.context_fallback)
                    if fallback is not None:
                        model, fell_back = fallback, True
                        exclude, failed_once, attempts = set(), set(), attempts - 1
                        continue
                if verdict.action is not Action.FAILOVER:
                    assert isinstance(exc, UpstreamStatusError)
                    record.provider = state.route.provider.name
                    if self._board is not None:
                        self._board.note_served(state.route.key)
                    return _as_is(exc, state, model.model.name, req.fmt)
                self._forget(state.route.key, verdict, exclude, failed_once)
            except BaseException as exc:
                lease.finish(AttemptResult.NEUTRAL)  # client went away, or a bug: not the upstream's fault
                if self._metrics is not None:
                    self._metrics.attempt(state.route.provider.name, outcome_of(exc))
                raise
        raise NoRouteAvailable(self._no_route_message(req.model, record), self._pool.cooldown_end(model))

    def _served(self, state: RouteState, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.attempt(state.route.provider.name, outcome)
        if self._board is not None:
            self._board.note_served(state.route.key)

    def _choose(self, states: list[RouteState], fmt: WireFormat) -> RouteState:
        if len(states) == 1:
            return states[0]  # what choose() answers for one candidate, without building it
        # A breaker ready for its half-open trial counts as unmeasured: the trial is its
        # measurement, and its stale (timed-out) latency must not starve it.
        cands = [
            Candidate(
                item=s,
                ewma_s=s.ewma.value() if s.breaker.state is BreakerState.CLOSED else None,
                inflight=s.inflight,
                weight=s.route.weight,
                native=s.route.upstream_format(fmt) is fmt,
            )
            for s in states
        ]
        return choose(cands, self._rng).item

    def _backoff(self, attempts: int) -> float:
        """Exponential from backoff_min_s, capped, with full jitter in its upper half, so
        attempts never come in a tight loop and concurrent retries spread out."""
        base = min(self._cfg.backoff_max_s, self._cfg.backoff_min_s * (2 ** (attempts - 1)))
        return float(base * (0.5 + self._rng.random() / 2))

    @staticmethod
    def _forget(key: str, verdict: Verdict, exclude: set[str], failed_once: set[str]) -> None:
        if verdict.cooldown_s is not None:
            return  # the cooldown keeps it out, and lets a short one be waited out in its tier
        if verdict.same_route_ok and key not in failed_once:
            failed_once.add(key)
        else:
            exclude.add(key)

    async def _attempt(
        self,
        req: ClientRequest,
        bodies: _Bodies,
        model: str,
        state: RouteState,
        lease: Lease,
        deadline: float,
        record: AccessRecord,
    ) -> FullAnswer | StreamAnswer:
        route = state.route
        provider = route.provider
        client = self._clients[provider.name]
        fmt = route.upstream_format(req.fmt)
        assert fmt is not None, "select() offers only routes that can serve the client's format"
        body, hide_usage = bodies.for_route(route, fmt)
        translator = None
        if fmt is not req.fmt and req.stream:
            translator = StreamTranslator(fmt, req.fmt, req.model, req.fmt.wants_usage(req.body))
        payload = orjson.dumps(body)
        headers = client.request_headers(bodies.headers(fmt), fmt, req.request_id)
        t = provider.timeouts
        start = self._clock.monotonic()
        attempt_deadline = min(deadline, start + t.total_s)
        first_by = min(attempt_deadline, start + t.first_token_s)
        resp: UpstreamResponse | None = None
        committed = False
        try:
            with anyio.move_on_after(first_by - start):
                resp = await client.send(fmt, payload, headers)
                if not 200 <= resp.status < 300:
                    raise UpstreamStatusError(
                        f"upstream answered {resp.status}", resp.status, resp.headers(), await resp.read_all()
                    )
                if not req.stream:
                    answer = await self._whole(resp, fmt, req, provider.name, model)
                    lease.observe_ttfb(self._clock.monotonic() - start)
                    lease.finish(AttemptResult.SUCCESS)
                    record.provider, record.ttfb_ms = provider.name, (self._clock.monotonic() - start) * 1000
                    return answer
                stream_state = fmt.stream_state(estimate_input_tokens(len(payload)))
                relay = StreamRelay(
                    resp,
                    fmt,
                    t,
                    attempt_deadline,
                    self._clock,
                    provider.name,
                    stream_state,
                    hide_usage,
                    translator,
                    self._drain,
                )
                await relay.prime()
                committed = True
            if not committed:
                msg = f"no answer from {provider.name} within {first_by - start:.1f}s"
                raise UpstreamTimeout(msg, "first_token" if first_by < attempt_deadline else "total")
        finally:
            if resp is not None and not committed:
                resp.close()
        ttfb = self._clock.monotonic() - start
        lease.observe_ttfb(ttfb)
        record.provider, record.ttfb_ms = provider.name, ttfb * 1000

        def finish(result: AttemptResult, reason: str) -> None:
            lease.finish(result)
            record.stream_end = reason

        return StreamAnswer(provider=provider.name, model=model, body=relay.body(finish), state=stream_state)

    async def _whole(
        self, resp: UpstreamResponse, fmt: WireFormat, req: ClientRequest, provider: str, model: str
    ) -> FullAnswer:
        body = await resp.read_all()
        try:
            parsed = orjson.loads(body)  # a 200 that is not JSON is a broken provider, not an answer
        except orjson.JSONDecodeError:
            raise UpstreamProtocolError(f"{provider} answered 200 with a body that is not JSON") from None
        ctype = resp.header("content-type") or "application/json"
        if fmt is not req.fmt:
            if not isinstance(parsed, dict):
                raise UpstreamProtocolError(f"{provider} answered 200 with JSON that is not an object")
            body = orjson.dumps(translate_answer(fmt, req.fmt, parsed, req.model))
            ctype = "application/json"
        return FullAnswer(
            status=resp.status,
            body=body,
            content_type=ctype,
            provider=provider,
            model=model,
            usage=fmt.read_usage(parsed),
        )

    @staticmethod
    def _no_route_message(model: str, record: AccessRecord) -> str:
        if not record.attempts:
            return f"no provider is available for model '{model}'"
        return f"no provider could serve model '{model}'; tried: " + ", ".join(record.attempts)


def _as_is(exc: UpstreamStatusError, state: RouteState, model: str, client: WireFormat) -> FullAnswer:
    """An upstream client error (4xx), returned with its own status and body (in the client's
    envelope when the upstream spoke another format)."""
    keep = {k: v for k, v in exc.headers.items() if k in ("retry-after", "request-id")}
    fmt = state.route.upstream_format(client)
    translated = fmt is not None and fmt is not client
    return FullAnswer(
        status=exc.upstream_status,
        body=translate_error(fmt, client, exc.upstream_status, exc.body) if translated and fmt else exc.body,
        content_type="application/json" if translated else exc.headers.get("content-type", "application/json"),
        provider=state.route.provider.name,
        model=model,
        headers=keep,
    )


class _Bodies:
    """The upstream body for each route of one request: the client's own, prepared by its format,
    or a translation; the client's body is read into the IR at most once per request."""

    __slots__ = ("_ir", "_req")

    def __init__(self, req: ClientRequest) -> None:
        self._req = req
        self._ir: ir.Request | None = None

    def for_route(self, route: Route, fmt: WireFormat) -> tuple[dict[str, Any], bool]:
        """(body, hide_usage): hide_usage when the router asked for a usage report the client did not."""
        req = self._req
        if fmt is not req.fmt:
            if self._ir is None:
                self._ir = req.fmt.read_request(req.body)
            return write_request(fmt, self._ir, route.upstream_model, route.options), False
        prepared = fmt.prepare(req.body, route.upstream_model, route.options.drop_params, req.stream)
        return prepared.body, prepared.hide_usage

    def headers(self, fmt: WireFormat) -> Mapping[str, str]:
        """The client's headers; those of another format's API family are not sent to this one."""
        if fmt is self._req.fmt:
            return self._req.headers
        return {k: v for k, v in self._req.headers.items() if not k.startswith(FORMAT_HEADER_PREFIXES)}
