"""One request's attempt loop: select the ready routes, choose one, attempt it (`attempt.py`),
classify a failure (`classify.py`), and try the next route, within `routing.max_attempts` and the
request's deadline. It returns the answer with every attempt it took, and reports each attempt
to the observer.

An attempt is committed once its first content event (or whole non-stream body) has arrived;
until then any failure listed in `classify.py` moves on to another route.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import anyio
import structlog

from router.clock import Clock
from router.config import RoutingConfig
from router.errors import NoRouteAvailable, UpstreamError, UpstreamStatusError
from router.formats import ClientRequest, WireFormat
from router.observe import Attempt, Observer, sending_hook
from router.routing.attempt import Bodies, as_is, attempt
from router.routing.breaker import BreakerState
from router.routing.choose import Candidate, choose
from router.routing.classify import Action, Verdict, classify, outcome_of
from router.routing.continuation import Continuer
from router.routing.outcome import FullAnswer, StreamAnswer, failovers
from router.routing.pool import Pool, RouteState
from router.routing.table import ModelRoutes
from router.types import AttemptResult
from router.upstream.provider import ProviderClient

Sleep = Callable[[float], Awaitable[None]]

log = structlog.get_logger("router.routing.failover")

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
        observer: Observer | None = None,
    ) -> None:
        self._observer = observer or Observer()
        self._sending = sending_hook(self._observer)  # bound once: None costs the path nothing
        self._pool = pool
        self._clients = clients
        self._cfg = routing
        self._clock = clock
        self._rng = rng or random.Random()
        self._sleep = sleep

    def reconfigure(self, routing: RoutingConfig) -> None:
        """A config reload's routing settings (the pool and clients are updated by their owners)."""
        self._cfg = routing

    async def forward(self, req: ClientRequest, model: ModelRoutes) -> FullAnswer | StreamAnswer:
        """The answer to `req` from one of `model`'s routes (the endpoint looked the model up).
        Raises NoRouteAvailable, listing what was tried, when no route could answer."""
        cfg = self._cfg
        deadline = self._clock.monotonic() + cfg.deadline_s
        exclude: set[str] = set()  # never again in this request
        failed_once: set[str] = set()  # failed transiently: only if nothing else in the tier is ready
        tried: list[Attempt] = []
        attempts = 0
        waited = fell_back = False
        bodies = Bodies(req)
        continues = req.stream and cfg.continue_streams and cfg.max_continuations > 0
        while attempts < cfg.max_attempts:
            if attempts:
                await self._sleep(self._backoff(attempts))
            if self._clock.monotonic() >= deadline:
                break
            # A cooldown is waited out at most once per request, and only when no tier has a
            # ready route: a route that keeps refusing must not take every attempt.
            selection = self._pool.select(model, req.fmt, exclude, 0.0 if waited else cfg.max_retry_wait_s)
            if not selection.routes:
                if selection.wait_s is None or self._clock.monotonic() + selection.wait_s >= deadline:
                    break
                waited = True
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
            name, route, provider = model.model.name, state.route.key, state.route.provider.name
            client = self._clients[provider]
            try:
                continuer = None
                if continues:
                    continuer = Continuer(
                        req,
                        model,
                        self._pool,
                        self._clients,
                        self._choose,
                        cfg,
                        self._clock,
                        deadline,
                        self._observer,
                        self._sending,
                    )
                answer = await attempt(
                    req, bodies, name, state, lease, client, self._clock, deadline, continuer, sending=self._sending
                )
            except UpstreamError as exc:
                verdict = classify(exc)
                if verdict.breaker_failure:
                    # A route that fails fast must not look fast (nor stay "unmeasured", which
                    # choose() would try first): a failure costs at least FAILURE_PENALTY_S.
                    lease.observe_ttfb(max(FAILURE_PENALTY_S, self._clock.monotonic() - started))
                lease.finish(AttemptResult.FAILURE if verdict.breaker_failure else AttemptResult.SUCCESS)
                if verdict.trip:
                    state.breaker.trip()
                    log.error("provider_credential_refused", provider=provider, route=route, reason=verdict.reason)
                if verdict.cooldown_s:
                    state.cooldown.start(verdict.cooldown_s)
                fallback = None
                if verdict.action is Action.CONTEXT_FALLBACK and not fell_back and model.model.context_fallback:
                    fallback = self._pool.table.get(model.model.context_fallback)
                served = verdict.action is not Action.FAILOVER and fallback is None
                reason = None if verdict.action is Action.CLIENT_ERROR else verdict.reason
                self._note(tried, Attempt(name, route, provider, outcome_of(exc), reason, served))
                if fallback is not None:
                    model, fell_back = fallback, True
                    exclude, failed_once, attempts = set(), set(), attempts - 1
                    continue
                if served:
                    assert isinstance(exc, UpstreamStatusError)
                    answer = as_is(exc, state, name, req.fmt)
                    answer.attempts = tried
                    return answer
                self._forget(route, verdict, exclude, failed_once)
            except BaseException as exc:
                lease.finish(AttemptResult.NEUTRAL)  # client went away, or a bug: not the upstream's fault
                self._observer.attempt(Attempt(name, route, provider, outcome_of(exc)))
                raise
            else:
                ok = Attempt(name, route, provider, "ok", served=True)
                tried.append(ok)
                self._observer.attempt(ok)
                answer.attempts = tried
                return answer
        raise NoRouteAvailable(_no_route_message(req.model, tried), self._pool.cooldown_end(model), failovers(tried))

    def _note(self, tried: list[Attempt], a: Attempt) -> None:
        tried.append(a)
        self._observer.attempt(a)

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
            return  # the cooldown keeps it out (a short one may be waited out once, when nothing else is ready)
        if verdict.same_route_ok and key not in failed_once:
            failed_once.add(key)
        else:
            exclude.add(key)


def _no_route_message(model: str, tried: list[Attempt]) -> str:
    failed = failovers(tried)
    if not failed:
        return f"no provider is available for model '{model}'"
    return f"no provider could serve model '{model}'; tried: " + ", ".join(failed)
