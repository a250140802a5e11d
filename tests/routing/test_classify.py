"""Attempt verdicts: the one table that decides failover."""

from __future__ import annotations

import pytest

from router.errors import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeout,
)
from router.routing.classify import Action, classify, retry_after_s


def _status(code: int, body: bytes = b"{}", headers: dict[str, str] | None = None) -> UpstreamStatusError:
    return UpstreamStatusError("x", code, headers or {}, body)


@pytest.mark.parametrize("code", [500, 502, 503, 504, 529, 429])
def test_server_errors_and_429_fail_over_and_count_against_the_breaker(code):
    """5xx, 529 and 429 try the next route and are breaker failures."""
    v = classify(_status(code))
    assert v.action is Action.FAILOVER and v.breaker_failure and v.reason == f"status_{code}"


def test_only_500_and_502_may_retry_the_same_route():
    """Transient statuses allow one more try on the same route; overload does not."""
    assert classify(_status(500)).same_route_ok and classify(_status(502)).same_route_ok
    assert not classify(_status(503)).same_route_ok and not classify(_status(429)).same_route_ok


@pytest.mark.parametrize("code", [401, 403])
def test_a_refused_provider_credential_is_the_providers_failure(code):
    """401/403 from an upstream means the operator's key for it is wrong or revoked: fail over and
    open the route's breaker at once; the client's own key is not in question."""
    v = classify(_status(code))
    assert v.action is Action.FAILOVER and v.breaker_failure and v.trip and not v.same_route_ok


@pytest.mark.parametrize("code", [400, 404, 413, 422])
def test_other_4xx_are_client_errors_without_breaker_failure(code):
    """The client's fault is returned as it is and says nothing about the upstream's health."""
    v = classify(_status(code))
    assert v.action is Action.CLIENT_ERROR and not v.breaker_failure


def test_retry_after_on_429_and_503_sets_a_cooldown_but_not_on_500():
    """Cooldown comes from retry-after (or retry-after-ms) on 429/503 only."""
    assert classify(_status(429, headers={"retry-after": "7"})).cooldown_s == 7.0
    assert classify(_status(503, headers={"retry-after-ms": "1500"})).cooldown_s == 1.5
    assert classify(_status(500, headers={"retry-after": "7"})).cooldown_s is None


def test_context_overflow_is_recognised_but_content_policy_is_not():
    """A context-window 400 may fall back; a content-policy 400 never is retried."""
    ctx = classify(_status(400, b'{"error":{"code":"context_length_exceeded"}}'))
    assert ctx.action is Action.CONTEXT_FALLBACK
    policy = classify(_status(400, b'{"error":{"code":"content_policy_violation","message":"context window"}}'))
    assert policy.action is Action.CLIENT_ERROR


def test_transport_failures():
    """Connect errors may retry the route once; timeouts and early stream ends never."""
    assert classify(UpstreamConnectError("x")).same_route_ok
    t = classify(UpstreamTimeout("x", "first_token"))
    assert t.action is Action.FAILOVER and t.breaker_failure and not t.same_route_ok
    assert t.reason == "timeout_first_token"
    p = classify(UpstreamProtocolError("x"))
    assert p.action is Action.FAILOVER and p.breaker_failure


def test_retry_after_parsing():
    """Seconds, milliseconds and HTTP dates; garbage is ignored; never negative; capped."""
    assert retry_after_s({"retry-after": "2.5"}) == 2.5
    assert retry_after_s({"retry-after": "-3"}) == 0.0
    assert retry_after_s({"retry-after": "soon"}) is None
    assert retry_after_s({}) is None
    date = "Wed, 21 Oct 2015 07:28:10 GMT"
    assert retry_after_s({"retry-after": date}, now=1445412480.0) == 10.0
    assert retry_after_s({"retry-after": "1e12"}) == 3600.0


def test_an_unlisted_upstream_error_fails_over_by_its_code():
    """A plain UpstreamError (no subclass) still fails over and counts, reasoned by its code."""
    v = classify(UpstreamError("x"))
    assert v.action is Action.FAILOVER and v.breaker_failure and v.reason == "upstream_error"
    assert not v.same_route_ok and v.cooldown_s is None


def test_retry_after_ms_and_fallbacks():
    """retry-after-ms wins over retry-after; a garbage -ms value falls back to retry-after; NaN is no value."""
    assert retry_after_s({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_s({"retry-after-ms": "soon", "retry-after": "9"}) == 9.0
    assert retry_after_s({"retry-after-ms": "-20"}) == 0.0
    assert retry_after_s({"retry-after": "nan"}) is None
    assert retry_after_s({"retry-after": ""}) is None


def test_retry_after_sets_cooldown_on_429_from_ms_header():
    """A 429 with retry-after-ms cools the route down for that long."""
    v = classify(UpstreamStatusError("x", 429, {"retry-after-ms": "250"}, b"{}"))
    assert v.cooldown_s == 0.25 and v.action is Action.FAILOVER
