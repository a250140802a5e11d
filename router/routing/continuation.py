"""Streams that survive their provider: a stream that breaks after content reached the client
(a reset, an end without the final event, an in-band error event, the idle or total timeout) is
finished on another route instead of ending in an error event.

The relay of the broken stream calls `Continuer.resume(reason)` (its `Resume` hook). That
1. asks the broken stream's state what the client has (`StreamState.resume_point`: its text,
   and any tool call started); a stream broken in its thinking before any text cannot be
   continued;
2. builds the client's request again with that text as a trailing assistant message (a
   prefill: `WireFormat.continuation`), without reasoning, its output cap lowered;
3. sends it on the best other ready route (the same rules as failover; a broken route only
   when the model has no other), in that route's format like any request; a cut inside a tool
   call, or a route without prefill, gets the original request instead, matched against what
   the client has;
4. writes the new answer's text into the client's stream where it broke (`formats.translate.
   Splice`): the client's own writer continues (a translated stream's, or one resumed from a
   native stream's state), so the client sees one stream: one id, one open block, one end.
At most `routing.max_continuations` per request, within `routing.deadline_s`. Each continuation
attempt is an attempt like any other for the breaker, the latency estimate and the observer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from router.clock import Clock
from router.config import RoutingConfig
from router.errors import UpstreamError
from router.formats import ClientRequest, StreamState, WireFormat
from router.formats.base import Delivered, StreamWriter
from router.formats.translate import Splice, StreamTranslator
from router.observe import Attempt, Observer
from router.routing.attempt import Bodies, attempt
from router.routing.classify import classify, is_prefill_refusal, outcome_of
from router.routing.outcome import StreamAnswer
from router.routing.pool import Pool, RouteState
from router.routing.table import ModelRoutes
from router.types import AttemptResult, sum_usage
from router.upstream.provider import ProviderClient
from router.upstream.relay import Resume

if TYPE_CHECKING:
    Choose = Callable[[list[RouteState], WireFormat], RouteState]


class Continuer:
    """Continues one client stream, as many times as allowed. One per streamed request."""

    def __init__(
        self,
        req: ClientRequest,
        model: ModelRoutes,
        pool: Pool,
        clients: dict[str, ProviderClient],
        choose: Choose,
        cfg: RoutingConfig,
        clock: Clock,
        deadline: float,
        observer: Observer,
        sending: Callable[[dict[str, str]], None] | None = None,
    ) -> None:
        self._req = req
        self._model = model
        self._pool = pool
        self._clients = clients
        self._choose = choose
        self._cfg = cfg
        self._clock = clock
        self._deadline = deadline
        self._observer = observer
        self._sending = sending
        self._answer: StreamAnswer | None = None  # the client's stream, once committed
        self._abort: Callable[[str], None] | None = None  # the relay now feeding the client
        self._prefix = ""  # text the client got from the streams before the current one
        self._seam = ""  # whitespace dropped from the current stream's start (it is in the prefix)
        self._writer: StreamWriter | None = None  # the client's writer, once a stream was spliced
        self._broken: set[str] = set()  # routes whose stream broke in this request: not asked again

    def attach(self, answer: StreamAnswer, abort: Callable[[str], None]) -> None:
        """The client's stream (the first committed attempt's) and its relay's abort."""
        self._answer = answer
        self._abort = abort

    def abort(self, reason: str) -> None:
        """The drain's abort: reaches whichever relay feeds the client now."""
        if self._abort is not None:
            self._abort(reason)

    def hook(self, route: str, state: StreamState, translator: StreamTranslator | None) -> Resume:
        """The relay's resume hook for one attempt's stream."""

        async def resume(reason: str) -> AsyncIterator[bytes] | None:
            return await self._resume(reason, route, state, translator)

        return resume

    async def _resume(
        self, reason: str, route: str, state: StreamState, translator: StreamTranslator | None
    ) -> AsyncIterator[bytes] | None:
        answer = self._answer
        assert answer is not None, "a stream is attached before its relay can break"
        name = self._model.model.name
        if len(answer.continuations) >= self._cfg.max_continuations or self._clock.monotonic() >= self._deadline:
            self._note(answer, name, reason, "limit")
            return None
        point = state.resume_point()
        if point is None:
            self._note(answer, name, reason, "not_resumable")
            return None
        writer = translator.writer if translator is not None else self._writer
        if writer is None:  # the first break of a native stream: resume its own writer
            writer = state.resume_writer(self._req.fmt.wants_usage(self._req.body))
        text = point.text
        if self._seam and text.startswith(self._seam):
            text = text[len(self._seam) :]
        delivered = self._prefix + text
        # Cut inside a tool call: no prefill can carry a half-written call, so every route restarts.
        in_call = bool(point.calls)
        whole = sum_usage([answer.state.usage(), *(s.usage() for s in answer.continued)])
        cap = self._req.fmt.max_output_tokens(self._req.body, -1)
        cont = self._req.fmt.continuation(
            self._req.body, delivered, max(1, cap - whole.output_tokens) if cap >= 0 else None
        )
        creq = ClientRequest(self._req.fmt, self._req.model, True, cont.body, self._req.headers, self._req.request_id)
        bodies = Bodies(creq)
        restarted = Bodies(self._req)
        # A route whose stream broke in this request only when the model has no other and the
        # break was transient (a reset or a cut, not a stall: a silent route is not asked twice).
        self._broken.add(route)
        others = sum(1 for tier in self._model.tiers for r in tier if r.key not in self._broken)
        exclude = set(self._broken) if others or reason.startswith("timeout") else set()
        for _ in range(self._cfg.max_attempts):
            selection = self._pool.select(self._model, self._req.fmt, exclude, 0.0)
            if not selection.routes:
                break
            chosen = self._choose(selection.routes, self._req.fmt)
            lease = self._pool.acquire(chosen)
            key, provider = chosen.route.key, chosen.route.provider.name
            if lease is None:
                exclude.add(key)
                continue
            # A route whose model takes no prefill gets the original request again; the client's
            # text is then matched against the new answer's start and dropped from it.
            restart = in_call or not chosen.route.prefill or chosen.prefill_refused
            match = Delivered(delivered, point.calls) if restart else None

            def splice(upstream: WireFormat, w: StreamWriter = writer, m: Delivered | None = match) -> StreamTranslator:
                return Splice(upstream, w, "" if m is not None else cont.seam, whole, m)

            try:
                new = await attempt(
                    self._req if restart else creq,
                    restarted if restart else bodies,
                    name,
                    chosen,
                    lease,
                    self._clients[provider],
                    self._clock,
                    self._deadline,
                    continuer=self,
                    splice=splice,
                    sending=self._sending,
                )
            except UpstreamError as exc:
                if not restart and is_prefill_refusal(exc):
                    # Learnt at run time, as if configured: this route restarts from now on.
                    chosen.prefill_refused = True
                    lease.finish(AttemptResult.SUCCESS)  # the upstream answered; it is the request
                    self._observer.attempt(
                        Attempt(name, key, provider, outcome_of(exc), "prefill_refused", continuation=reason)
                    )
                    continue
                verdict = classify(exc)
                lease.finish(AttemptResult.FAILURE if verdict.breaker_failure else AttemptResult.SUCCESS)
                self._observer.attempt(
                    Attempt(name, key, provider, outcome_of(exc), verdict.reason, continuation=reason)
                )
                exclude.add(key)
                continue
            except BaseException as exc:
                lease.finish(AttemptResult.NEUTRAL)
                self._observer.attempt(Attempt(name, key, provider, outcome_of(exc), continuation=reason))
                raise
            assert isinstance(new, StreamAnswer)
            self._observer.attempt(Attempt(name, key, provider, "ok", served=True, continuation=reason))
            # A restarted answer's own text already holds what was delivered before it.
            self._prefix, self._seam = ("", "") if restart else (delivered, cont.seam)
            self._writer = writer
            self._abort = new.abort
            answer.continued.append(new.state)
            answer.provider = provider
            self._note(answer, name, reason, "ok")
            return _rest(answer, new)
        self._note(answer, name, reason, "failed")
        return None

    def _note(self, answer: StreamAnswer, model: str, reason: str, outcome: str) -> None:
        answer.continuations.append(f"{reason}:{outcome}")
        self._observer.continuation(model, reason, outcome)


async def _rest(answer: StreamAnswer, new: StreamAnswer) -> AsyncIterator[bytes]:
    """The continuation's bytes; when they end (or the client leaves), the client's stream ends
    as the continuation did."""
    try:
        async for piece in new.body:
            yield piece
    finally:
        await new.body.aclose()  # type: ignore[attr-defined]  # (an async generator)
        answer.end = new.end
