"""Unit tests for router.routing.failover.Forwarder with stand-in provider clients (no sockets): the paths
the over-the-socket tests in tests/integration/test_failover.py cannot reach deterministically."""

from __future__ import annotations

import functools
import random
from typing import Any, cast

import anyio
import orjson
import pytest

import router.upstream.relay
from router.clock import ManualClock
from router.config import parse_config
from router.errors import NoRouteAvailable, UpstreamConnectError
from router.formats import CHAT, ClientRequest
from router.formats.sse import SSEParser
from router.routing.failover import Forwarder
from router.routing.outcome import FullAnswer, StreamAnswer, failovers
from router.routing.pool import Pool
from router.routing.table import RoutingTable
from router.upstream.probe import ProbeResult
from router.upstream.provider import ProviderClient

UP, DOWN = ProbeResult(True, "status 200", 200), ProbeResult(False, "status 503", 503)

HANG = object()


class FakeResponse:
    """Just what the forwarder and relay use of UpstreamResponse."""

    def __init__(
        self,
        status: int = 200,
        body: bytes = b'{"ok": true}',
        chunks: list[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self._headers = {"content-type": "application/json", **(headers or {})}
        self._body = body
        self._chunks = list(chunks or [])
        self.closed = 0

    def header(self, name: str) -> str | None:
        return self.headers().get(name)

    def headers(self) -> dict[str, str]:
        return dict(self._headers)

    async def read_all(self) -> bytes:
        return self._body

    async def read(self) -> bytes:
        return self._chunks.pop(0) if self._chunks else b""

    read_unmapped = read  # the relay's loop reads without the error mapping (none is raised here)

    def interrupt(self) -> None:
        pass

    def close(self) -> None:
        self.closed += 1


class FakeClient:
    """A provider client whose sends play a script: a FakeResponse, an exception, or HANG."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.sent: list[dict[str, Any]] = []

    def request_headers(self, client_headers: Any, fmt: Any, request_id: str) -> dict[str, str]:
        return {}

    async def send(self, fmt: Any, body: bytes, headers: dict[str, str]) -> Any:
        self.sent.append(orjson.loads(body))
        item = self.script.pop(0) if self.script else FakeResponse()
        if item is HANG:
            await anyio.sleep_forever()
        if isinstance(item, BaseException):
            raise item
        return item


class Setup:
    def __init__(self, **clients: FakeClient) -> None:
        providers = [
            {"name": n, "base_url": f"http://{n}.invalid", "formats": ["openai-chat"], "breaker": {"fail_max": 5}}
            for n in clients
        ]
        routes = [{"provider": n, "model": f"{n}-up"} for n in clients]
        config = parse_config(
            {
                "server": {"allow_anonymous": True},
                "providers": providers,
                "models": [{"name": "m", "routes": routes}],
                "routing": {"max_attempts": 3, "backoff_min_s": 0.001, "backoff_max_s": 0.002},
            },
            source="test",
        )
        self.clock = ManualClock()
        self.pool = Pool(RoutingTable(config), self.clock, 10.0)
        self.clients = clients
        self.slept: list[float] = []
        self.forwarder = Forwarder(
            self.pool,
            cast(dict[str, ProviderClient], clients),  # the fakes have just what the forwarder uses
            config.routing,
            self.clock,
            random.Random(1),
            sleep=self._sleep,
        )

    async def _sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.advance(seconds)

    async def forward(self, stream: bool = False) -> FullAnswer | StreamAnswer:
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
        req = ClientRequest(fmt=CHAT, model="m", stream=stream, body=body, headers={}, request_id="rid")
        with anyio.fail_after(2):
            routes = self.pool.table.get("m")
            assert routes is not None
            return await self.forwarder.forward(req, routes)

    def inflight(self) -> int:
        return sum(s.inflight for s in self.pool.routes.values())


@pytest.mark.anyio
async def test_a_200_that_is_not_json_fails_over() -> None:
    """A non-stream 200 whose body is not JSON is a broken provider: the next route answers."""
    s = Setup(a=FakeClient(FakeResponse(body=b"<html>oops</html>")), b=FakeClient())
    s.pool.routes["b/b-up"].ewma.observe(9.0)  # make a the first choice
    answer = await s.forward()
    assert isinstance(answer, FullAnswer) and answer.provider == "b" and answer.body == b'{"ok": true}'
    assert failovers(answer.attempts) == ["a/a-up:stream_failed_before_content"]
    assert [(a.route, a.outcome, a.served) for a in answer.attempts] == [
        ("a/a-up", "protocol_error", False),
        ("b/b-up", "ok", True),
    ]
    assert s.pool.routes["a/a-up"].breaker.fail_counter == 1
    assert s.inflight() == 0


@pytest.mark.anyio
async def test_model_is_rewritten_per_route() -> None:
    """Each attempt sends the client's body with `model` replaced by the route's upstream id."""
    s = Setup(a=FakeClient(UpstreamConnectError("refused")), b=FakeClient())
    s.pool.routes["b/b-up"].ewma.observe(9.0)
    await s.forward()
    assert [c.sent[0]["model"] for c in (s.clients["a"], s.clients["b"])] == ["a-up", "b-up"]
    assert s.clients["b"].sent[0]["messages"] == [{"role": "user", "content": "hi"}]


@pytest.mark.anyio
async def test_nothing_available_names_no_attempts() -> None:
    """With every provider down before any attempt: 503 saying no provider is available, no sends."""
    s = Setup(a=FakeClient(), b=FakeClient())
    for p in s.pool.providers.values():
        p.health.record(DOWN, 0.0)
        p.health.record(DOWN, 0.0)
    with pytest.raises(NoRouteAvailable) as info:
        await s.forward()
    assert info.value.message == "no provider is available for model 'm'"
    assert info.value.retry_after is None
    assert s.clients["a"].sent == [] and s.clients["b"].sent == []


@pytest.mark.anyio
async def test_a_refused_lease_excludes_the_route(monkeypatch: pytest.MonkeyPatch) -> None:
    """If a route's breaker refuses the lease after selection, that route is skipped, not retried."""
    s = Setup(a=FakeClient(), b=FakeClient())
    s.pool.routes["b/b-up"].ewma.observe(9.0)
    real = s.pool.acquire
    refused: list[str] = []

    def acquire(state: Any) -> Any:
        if state.route.key == "a/a-up":
            refused.append(state.route.key)
            return None
        return real(state)

    monkeypatch.setattr(s.pool, "acquire", acquire)
    answer = await s.forward()
    assert answer.provider == "b" and refused == ["a/a-up"]
    assert failovers(answer.attempts) == [] and s.clients["a"].sent == []


@pytest.mark.anyio
async def test_an_unexpected_error_releases_the_lease_neutrally() -> None:
    """A bug (non-router exception) mid-attempt propagates, frees in-flight and counts no failure."""
    s = Setup(a=FakeClient(RuntimeError("bug")))
    with pytest.raises(RuntimeError, match="bug"):
        await s.forward()
    state = s.pool.routes["a/a-up"]
    assert state.inflight == 0 and state.breaker.fail_counter == 0


@pytest.mark.anyio
async def test_cancellation_releases_the_lease_neutrally() -> None:
    """A client that leaves while the upstream is thinking frees in-flight without a breaker failure."""
    s = Setup(a=FakeClient(HANG))
    with anyio.move_on_after(0.05) as scope:
        await s.forward()
    assert scope.cancelled_caught
    state = s.pool.routes["a/a-up"]
    assert state.inflight == 0 and state.breaker.fail_counter == 0


@pytest.mark.anyio
async def test_stream_answer_holds_the_lease_until_the_body_ends() -> None:
    """A committed stream keeps its route in flight until the body finishes, then records SUCCESS."""
    chunks = [
        b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n',
    ]
    up = FakeResponse(chunks=chunks)
    s = Setup(a=FakeClient(up))
    answer = await s.forward(stream=True)
    assert isinstance(answer, StreamAnswer)
    assert s.inflight() == 1 and up.closed == 0
    out = b"".join([c async for c in answer.body])
    assert out.endswith(b"data: [DONE]\n\n")
    assert s.inflight() == 0 and up.closed == 1 and answer.end == "ok"


@pytest.mark.anyio
async def test_oversized_first_event_fails_over(monkeypatch: pytest.MonkeyPatch) -> None:
    """An upstream whose first event is over the SSE size cap is failed over like any broken stream."""
    monkeypatch.setattr(router.upstream.relay, "SSEParser", functools.partial(SSEParser, max_event_bytes=64))
    good = [b'data: {"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":"stop"}]}\n\n']
    s = Setup(a=FakeClient(FakeResponse(chunks=[b"data: " + b"x" * 100])), b=FakeClient(FakeResponse(chunks=good)))
    s.pool.routes["b/b-up"].ewma.observe(9.0)
    answer = await s.forward(stream=True)
    assert answer.provider == "b"


@pytest.mark.anyio
async def test_a_cooldown_is_waited_out_at_most_once_per_request() -> None:
    """A lone route that keeps answering 503 with a short retry-after is waited for once, tried
    again, and then the request ends (503) with attempts left, not every attempt spent waiting."""
    refuse = functools.partial(FakeResponse, 503, b'{"error": {"message": "busy"}}', headers={"retry-after": "1"})
    s = Setup(a=FakeClient(refuse(), refuse(), FakeResponse()))
    with pytest.raises(NoRouteAvailable):
        await s.forward()
    assert len(s.clients["a"].sent) == 2
    assert [d for d in s.slept if d >= 0.5] == [pytest.approx(1.0, abs=0.01)], "one wait, of the retry-after"
