"""One attempt on one route: shape the body for the route's format, send it, and wait for the
answer to commit: the whole body of a non-stream answer, or a stream's first content event.
Until then any failure raises (an `UpstreamError`, which the attempt loop classifies); after it,
the answer is the client's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import anyio
import orjson

from router.clock import Clock
from router.errors import UpstreamProtocolError, UpstreamStatusError, UpstreamTimeout
from router.formats import ClientRequest, StreamState, WireFormat
from router.formats.base import estimate_input_tokens
from router.formats.codec import ir
from router.formats.translate import StreamTranslator, translate_answer, translate_error, write_request
from router.routing.outcome import FullAnswer, StreamAnswer
from router.routing.pool import Lease, RouteState
from router.routing.table import Route
from router.types import AttemptResult
from router.upstream.provider import ProviderClient, UpstreamResponse, scrub_error
from router.upstream.relay import Resume, StreamRelay


class Continues(Protocol):
    """What an attempt needs of the continuer of its stream (`routing/continuation.py`)."""

    def hook(self, route: str, state: StreamState, translator: StreamTranslator | None) -> Resume: ...
    def attach(self, answer: StreamAnswer, abort: Callable[[str], None]) -> None: ...
    def abort(self, reason: str) -> None: ...


class Bodies:
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


async def attempt(
    req: ClientRequest,
    bodies: Bodies,
    model: str,
    state: RouteState,
    lease: Lease,
    client: ProviderClient,
    clock: Clock,
    deadline: float,
    continuer: Continues | None = None,
    splice: Callable[[WireFormat], StreamTranslator] | None = None,
    sending: Callable[[dict[str, str]], None] | None = None,
) -> FullAnswer | StreamAnswer:
    """Send `req` on `state`'s route and wait for the answer to commit, within the route's
    first-token and total timeouts and the request's `deadline`. The lease is finished here for a
    whole answer, and by the stream when it ends; on a failure the caller finishes it.
    `continuer`: a stream that breaks later is continued elsewhere. `splice`: this attempt is a
    continuation, written into the client's stream by what it makes. `sending`: the observers'
    hook on the headers about to go upstream (a tracer's), None when nobody watches."""
    route = state.route
    provider = route.provider
    fmt = route.upstream_format(req.fmt)
    assert fmt is not None, "select() offers only routes that can serve the client's format"
    body, hide_usage = bodies.for_route(route, fmt)
    translator = None
    if splice is not None:
        translator = splice(fmt)
    elif fmt is not req.fmt and req.stream:
        translator = StreamTranslator(fmt, req.fmt, req.model, req.fmt.wants_usage(req.body))
    payload = orjson.dumps(body)
    headers = client.request_headers(req.headers, fmt, req.request_id)
    if sending is not None:
        sending(headers)
    t = provider.timeouts
    start = clock.monotonic()
    attempt_deadline = min(deadline, start + t.total_s)
    first_by = min(attempt_deadline, start + t.first_token_s)
    resp: UpstreamResponse | None = None
    committed = False
    try:
        with anyio.move_on_after(first_by - start):
            resp = await client.send(fmt, payload, headers)
            if not 200 <= resp.status < 300:
                said = scrub_error(await resp.read_all(), provider.api_key)
                raise UpstreamStatusError(f"upstream answered {resp.status}", resp.status, resp.headers(), said)
            if not req.stream:
                answer = await _whole(resp, fmt, req, provider.name, model)
                lease.observe_ttfb(clock.monotonic() - start)
                lease.finish(AttemptResult.SUCCESS)
                return answer
            stream_state = fmt.stream_state(estimate_input_tokens(len(payload)))
            resume = continuer.hook(route.key, stream_state, translator) if continuer is not None else None
            relay = StreamRelay(
                resp, fmt, t, attempt_deadline, clock, provider.name, stream_state, hide_usage, translator, resume
            )
            await relay.prime()
            committed = True
        if not committed:
            msg = f"no answer from {provider.name} within {first_by - start:.1f}s"
            raise UpstreamTimeout(msg, "first_token" if first_by < attempt_deadline else "total")
    finally:
        if resp is not None and not committed:
            resp.close()
    lease.observe_ttfb(clock.monotonic() - start)

    def finish(result: AttemptResult, reason: str) -> None:
        lease.finish(result)
        stream.end = reason  # the stream's own result, read once it has ended

    abort = relay.abort if continuer is None or splice is not None else continuer.abort
    stream = StreamAnswer(provider=provider.name, model=model, body=relay.body(finish), state=stream_state, abort=abort)
    if continuer is not None and splice is None:
        continuer.attach(stream, relay.abort)
    return stream


async def _whole(resp: UpstreamResponse, fmt: WireFormat, req: ClientRequest, provider: str, model: str) -> FullAnswer:
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
        status=resp.status, body=body, content_type=ctype, provider=provider, model=model, usage=fmt.read_usage(parsed)
    )


def as_is(exc: UpstreamStatusError, state: RouteState, model: str, client: WireFormat) -> FullAnswer:
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
