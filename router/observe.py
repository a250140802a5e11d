"""What the request path reports as it goes, for whoever watches: one small interface, called
along the path, implemented by the metrics and the status page (`router/ops/`) and registered
once, in `app.py`. The path never knows who watches, and never checks whether anyone does.

Hot path: every method runs once per request or attempt, so implementations keep to O(1) work.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from router.types import Usage


@dataclass(slots=True)  # not frozen: built on every attempt, and a frozen __init__ costs more
class Attempt:
    """One upstream attempt and how it ended."""

    model: str  # the public model it served (a context fallback's, if one did)
    route: str  # provider/upstream model
    provider: str
    outcome: str  # low-cardinality: ok, 5xx, 429, 4xx, timeout, connect_error, reset, ... (`classify.outcome_of`)
    failover: str | None = (
        None  # why the router moved on from it ("status_503"); None: it answered, or it was abandoned
    )
    served: bool = False  # its answer went to the client (a success, or a client error returned as it is)
    continuation: str | None = None  # it continues a stream that broke after content, for this reason ("reset")


class Observer:
    """Watches requests go by. Every method here does nothing, so an observer overrides only what
    it records."""

    def sending(self, headers: dict[str, str]) -> None:
        """An attempt is about to go upstream with `headers`. The one event a watcher may act on:
        a tracer starts the attempt's span here and names it in a `traceparent` it adds. The
        path calls it only when someone watches it (`sending_hook`)."""

    def attempt(self, attempt: Attempt) -> None:
        """An upstream attempt ended (served, failed over, or abandoned with the request); for a
        served stream, when its first content arrived."""

    def continuation(self, model: str, reason: str, outcome: str) -> None:
        """A stream broke after content reached the client (`reason`); `outcome`: ok (finished on
        another route), or why not (not_resumable, limit, failed)."""

    def usage(self, plan: str | None, model: str | None, usage: Usage | None, cost_usd: float) -> None:
        """A request was billed."""

    def refused(self, plan: str | None, status: int) -> None:
        """A key's budget (402) or rate limit (429) refused a request."""

    def request(
        self,
        endpoint: str,
        model: str | None,
        provider: str | None,
        status: int,
        duration_s: float,
        ttfb_s: float | None,
    ) -> None:
        """A request finished, after the last byte of its answer."""


class Observers(Observer):
    """Several observers as one. Each event goes only to the observers that override its method,
    bound once here: the hot path pays nothing for an observer that ignores an event."""

    __slots__ = ("_attempt", "_continuation", "_refused", "_request", "_sending", "_usage")

    def __init__(self, observers: Sequence[Observer]) -> None:
        def bound(name: str) -> list[Any]:
            return [getattr(o, name) for o in observers if getattr(type(o), name) is not getattr(Observer, name)]

        self._sending = bound("sending")
        self._attempt = bound("attempt")
        self._continuation = bound("continuation")
        self._usage = bound("usage")
        self._refused = bound("refused")
        self._request = bound("request")

    def sending(self, headers: dict[str, str]) -> None:
        for f in self._sending:
            f(headers)

    def attempt(self, attempt: Attempt) -> None:
        for f in self._attempt:
            f(attempt)

    def continuation(self, model: str, reason: str, outcome: str) -> None:
        for f in self._continuation:
            f(model, reason, outcome)

    def usage(self, plan: str | None, model: str | None, usage: Usage | None, cost_usd: float) -> None:
        for f in self._usage:
            f(plan, model, usage, cost_usd)

    def refused(self, plan: str | None, status: int) -> None:
        for f in self._refused:
            f(plan, status)

    def request(
        self,
        endpoint: str,
        model: str | None,
        provider: str | None,
        status: int,
        duration_s: float,
        ttfb_s: float | None,
    ) -> None:
        for f in self._request:
            f(endpoint, model, provider, status, duration_s, ttfb_s)


def sending_hook(observer: Observer) -> Callable[[dict[str, str]], None] | None:
    """`observer.sending` when some observer overrides it, else None: without a tracer the
    attempt path skips the call altogether."""
    if isinstance(observer, Observers):
        return observer.sending if observer._sending else None
    return observer.sending if type(observer).sending is not Observer.sending else None
