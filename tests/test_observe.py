"""The observer interface: a no-op base, and several observers as one."""

from __future__ import annotations

from router.observe import Attempt, Observer, Observers, sending_hook
from router.types import Usage


class Recorder(Observer):
    def __init__(self) -> None:
        self.seen: list[tuple[str, object]] = []

    def attempt(self, attempt: Attempt) -> None:
        self.seen.append(("attempt", attempt))

    def usage(self, plan: str | None, model: str | None, usage: Usage | None, cost_usd: float) -> None:
        self.seen.append(("usage", (plan, model, usage, cost_usd)))

    def refused(self, plan: str | None, status: int) -> None:
        self.seen.append(("refused", (plan, status)))

    def request(
        self,
        endpoint: str,
        model: str | None,
        provider: str | None,
        status: int,
        duration_s: float,
        ttfb_s: float | None,
    ) -> None:
        self.seen.append(("request", (endpoint, status)))


def test_the_base_observer_records_nothing() -> None:
    """Observer's methods are no-ops, so a partial observer overrides only what it needs."""
    o = Observer()
    o.attempt(Attempt("m", "p/m", "p", "ok", served=True))
    o.usage(None, None, None, 0.0)
    o.refused(None, 402)
    o.request("/v1/messages", None, None, 200, 0.1, None)


def test_observers_fan_out_in_order() -> None:
    """Each event reaches every observer, in registration order, unchanged."""
    a, b = Recorder(), Recorder()
    both = Observers([a, b])
    failed = Attempt("m", "p/m", "p", "5xx", failover="status_503")
    both.attempt(failed)
    both.usage("pro", "m", Usage(1, 0, 0, 2), 0.5)
    both.refused("pro", 429)
    both.request("/v1/chat/completions", "m", "p", 200, 0.25, 0.01)
    expected = [
        ("attempt", failed),
        ("usage", ("pro", "m", Usage(1, 0, 0, 2), 0.5)),
        ("refused", ("pro", 429)),
        ("request", ("/v1/chat/completions", 200)),
    ]
    assert a.seen == expected and b.seen == expected


class Tracer(Observer):
    def sending(self, headers: dict[str, str]) -> None:
        headers["traceparent"] = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"


def test_sending_is_called_only_when_an_observer_overrides_it() -> None:
    """Without a tracer there is no hook at all (the attempt path skips the call); with one, the
    hook reaches it, and what it adds is in the headers that go upstream."""
    assert sending_hook(Observer()) is None
    assert sending_hook(Recorder()) is None
    assert sending_hook(Observers([Recorder(), Recorder()])) is None
    for watched in (Tracer(), Observers([Recorder(), Tracer()])):
        hook = sending_hook(watched)
        assert hook is not None
        headers = {"content-type": "application/json"}
        hook(headers)
        assert headers["traceparent"].startswith("00-111") and headers["content-type"] == "application/json"
