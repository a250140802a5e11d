"""RedisBackend specifics against a real redis-server: key layout and expiry, script reload, two
replicas sharing limits, outages, retries and restarts. The shared contract is in test_backends.py."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from router.billing.state import LimitSpec, StateUnavailable, make_backend
from router.billing.state.base import Settlement
from router.billing.state.redis import RedisBackend
from router.billing.state.redis.link import Channel
from router.billing.state.redis.scripts import ADMIT, SETTLE
from router.config import StateConfig
from tests.redis_server import RedisServer

T0 = 1_800_000_000.25
TIMEOUT_S = 0.5

pytestmark = pytest.mark.anyio


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def raw(redis_server: RedisServer, anyio_backend: str) -> AsyncIterator[redis.asyncio.Redis]:
    """A plain client, to look at what the backend stored."""
    client = redis.asyncio.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def backend(redis_server: RedisServer, prefix: str, anyio_backend: str) -> AsyncIterator[RedisBackend]:
    b = RedisBackend(redis_server.url, key_prefix=prefix, timeout_s=TIMEOUT_S)
    yield b
    await b.aclose()


def spec(budget_usd: float | None = 1.0, rpm: int | None = 10, max_concurrent: int | None = 3) -> LimitSpec:
    return LimitSpec(budget_usd=budget_usd, window_s=3600.0, rpm=rpm, max_concurrent=max_concurrent, lease_s=30.0)


def test_factory_builds_the_redis_backend(redis_server: RedisServer) -> None:
    """state.backend=redis gives a RedisBackend on state.url; without a url it is an error."""
    b = make_backend(StateConfig(backend="redis", url=redis_server.url, key_prefix="p", timeout_s=0.3))
    assert isinstance(b, RedisBackend) and "prefix='p'" in repr(b)
    with pytest.raises(ValueError, match=r"state\.url"):
        make_backend(StateConfig(backend="redis"))


async def test_keys_share_a_hash_tag_and_expire(backend: RedisBackend, raw: redis.asyncio.Redis, prefix: str) -> None:
    """One hash tag per key id; budget, rpm and lease keys expire after window+60 s, 60 s and lease_s."""
    await backend.admit("key-1", spec(), 0.25, "req-1", T0)
    base = f"{prefix}:{{key-1}}"
    record = f"{base}:adm:req-1"
    assert sorted(await raw.keys(f"{prefix}:*")) == [record, f"{base}:budget", f"{base}:conc", f"{base}:rpm"]
    assert await raw.hgetall(f"{base}:budget") == {"start": repr(T0), "spent": "0", "reserved": "250000"}
    assert await raw.zrange(f"{base}:rpm", 0, -1, withscores=True) == [("req-1", T0)]
    assert await raw.zrange(f"{base}:conc", 0, -1, withscores=True) == [("req-1", T0 + 30.0)]
    assert await raw.get(record) == f"A{T0!r} 0 0 0"  # admitted; the window start and the facts before
    assert 3_600_000 < await raw.pttl(f"{base}:budget") <= 3_660_000
    assert 50_000 < await raw.pttl(f"{base}:rpm") <= 60_000
    assert 20_000 < await raw.pttl(f"{base}:conc") <= 30_000
    assert 50_000 < await raw.pttl(record) <= 60_000  # RECORD_S
    await backend.settle(Settlement("key-1", spec(), T0, 0.25, 0.1, "req-1", T0 + 1))
    assert await raw.get(record) == f"S{T0!r} 0 0 0"


async def test_scripts_reload_after_a_flush(backend: RedisBackend, raw: redis.asyncio.Redis) -> None:
    """After SCRIPT FLUSH (as after a restart) EVALSHA's NOSCRIPT is answered by loading again."""
    await backend.admit("k", spec(), 0.1, "a", T0)
    await raw.script_flush()
    assert (await backend.admit("k", spec(), 0.1, "b", T0 + 1)).remaining_usd == 0.9
    await raw.script_flush()
    assert await backend.settle(Settlement("k", spec(), T0, 0.1, 0.1, "a", T0 + 2)) == 0.8


async def test_two_replicas_enforce_one_budget_rpm_and_concurrency(redis_server: RedisServer, prefix: str) -> None:
    """Two clients on one redis-server, admitting concurrently, share every limit exactly."""
    replicas = [RedisBackend(redis_server.url, key_prefix=prefix, timeout_s=2.0) for _ in range(2)]
    try:
        budget = spec(budget_usd=1.0, rpm=None, max_concurrent=None)
        first = await replicas[0].admit("k", budget, 0.9, "first", T0)
        await replicas[1].settle(Settlement("k", budget, first.window_start, 0.9, 0.9, "first", T0))
        calls = [replicas[i % 2].admit("k", budget, 0.01, f"b{i}", T0 + 1) for i in range(200)]
        assert sum(a.ok for a in await asyncio.gather(*calls)) == 10

        rpm = spec(budget_usd=None, rpm=7, max_concurrent=None)
        calls = [replicas[i % 2].admit("r", rpm, 0.0, f"r{i}", T0 + 1) for i in range(100)]
        assert sum(a.ok for a in await asyncio.gather(*calls)) == 7

        conc = spec(budget_usd=None, rpm=None, max_concurrent=5)
        calls = [replicas[i % 2].admit("c", conc, 0.0, f"c{i}", T0 + 1) for i in range(100)]
        admitted = [i for i, a in enumerate(await asyncio.gather(*calls)) if a.ok]
        assert len(admitted) == 5
        await replicas[1 - admitted[0] % 2].settle(Settlement("c", conc, None, 0.0, 0.0, f"c{admitted[0]}", T0 + 2))
        assert (await replicas[0].admit("c", conc, 0.0, "late", T0 + 3)).ok
    finally:
        for r in replicas:
            await r.aclose()


async def _assert_unavailable_quickly(b: RedisBackend, calls: int = 3) -> None:
    """admit, settle and status (the first `calls` of them) each raise StateUnavailable: the first
    after two tries (within twice timeout_s), the later ones after one, as Redis is known down."""
    s = spec()
    for i, call in enumerate(
        (
            lambda: b.admit("k", s, 0.1, "x", T0),
            lambda: b.settle(Settlement("k", s, T0, 0.1, 0.1, "x", T0)),
            lambda: b.status("k", s, T0),
        )[:calls]
    ):
        started = time.monotonic()
        with pytest.raises(StateUnavailable) as info:
            await call()
        assert time.monotonic() - started < (2 if i == 0 else 1) * TIMEOUT_S + 0.25
        assert (info.value.status, info.value.code) == (503, "state_unavailable")


async def test_outage_raises_state_unavailable_then_recovers(backend: RedisBackend, redis_server: RedisServer) -> None:
    """redis-server down: every call fails fast with StateUnavailable; back up: the same object works."""
    assert (await backend.admit("k", spec(), 0.1, "before", T0)).ok
    redis_server.stop()
    try:
        await _assert_unavailable_quickly(backend)
    finally:
        redis_server.start()
    a = await backend.admit("k", spec(), 0.1, "after", T0 + 1)
    assert (a.ok, a.remaining_usd) == (True, 1.0)  # no persistence: the restarted server is empty


async def test_hung_server_times_out(backend: RedisBackend, redis_server: RedisServer) -> None:
    """A server that accepts but never answers is reported within two timeouts (a try and its retry),
    then within one per call while it stays hung; it is not waited on."""
    assert (await backend.admit("hung", spec(), 0.1, "before", T0)).ok
    redis_server.pause()
    try:
        await _assert_unavailable_quickly(backend, calls=2)
    finally:
        redis_server.resume()
    assert (await backend.status("hung", spec(), T0 + 1))[0] is not None


class FailingSends:
    """Stands in for the channel's send: the first `fails` calls whose command starts with `head`
    raise `error`, after the real call ran when `ran` (its answer lost, as in a timeout after Redis
    ran it) or before. Counts those calls."""

    def __init__(self, channel: Channel, head: bytes, error: Exception, ran: bool, fails: int = 1) -> None:
        self.real, self.head, self.error, self.ran, self.fails = channel.send, head, error, ran, fails
        self.calls = 0

    async def __call__(self, packed: bytes) -> asyncio.Future[Any]:
        if packed.startswith(self.head):
            self.calls += 1
            if self.calls <= self.fails:
                if self.ran:
                    await (await self.real(packed))
                raise self.error
        return await self.real(packed)


def failing(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch, head: bytes, error: Exception, **kw: Any
) -> FailingSends:
    sends = FailingSends(backend._channel, head, error, **kw)
    monkeypatch.setattr(backend._channel, "send", sends)
    return sends


@pytest.mark.parametrize("ran", [True, False], ids=["after-the-script-ran", "before"])
async def test_a_timed_out_call_is_retried_and_counts_once(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch, ran: bool
) -> None:
    """admit and settle time out once, after or before the script ran: each is retried with the
    same admission id, and reserves, leases and charges once."""
    s = spec(budget_usd=1.0, rpm=10, max_concurrent=1)
    timeout = RedisTimeoutError("no answer from Redis within 0.5 s")
    admit = failing(backend, monkeypatch, ADMIT.by_sha, timeout, ran=ran)
    a = await backend.admit("k", s, 0.25, "a", T0)
    assert (a.ok, a.remaining_usd, admit.calls) == (True, 1.0, 2)
    assert (await backend.status("k", s, T0))[0] == 0.75  # one reservation
    monkeypatch.undo()
    settle = failing(backend, monkeypatch, SETTLE.by_sha, timeout, ran=ran)
    assert await backend.settle(Settlement("k", s, a.window_start, 0.25, 0.1, "a", T0 + 1)) == 0.9
    assert settle.calls == 2
    assert (await backend.status("k", s, T0 + 1))[0] == 0.9  # charged once, reservation released once
    assert (await backend.admit("k", s, 0.1, "b", T0 + 2)).ok  # the one lease was released


async def test_one_retry_only_for_transient_errors_and_none_while_down(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection error is tried twice; while Redis is known down, once; after a success, twice
    again. A ResponseError (a script error) is not retried."""
    s = spec()
    down = failing(backend, monkeypatch, ADMIT.by_sha, RedisConnectionError("Connection closed."), ran=False, fails=10)
    for calls in (2, 3):
        with pytest.raises(StateUnavailable, match="ConnectionError"):
            await backend.admit("k", s, 0.1, "a", T0)
        assert down.calls == calls
    monkeypatch.undo()
    assert (await backend.admit("k", s, 0.1, "a", T0)).ok
    flaky = failing(backend, monkeypatch, ADMIT.by_sha, RedisConnectionError("Connection closed."), ran=False)
    assert (await backend.admit("k", s, 0.1, "b", T0)).ok and flaky.calls == 2
    monkeypatch.undo()
    broken = failing(backend, monkeypatch, ADMIT.by_sha, ResponseError("OOM command not allowed"), ran=False)
    with pytest.raises(StateUnavailable, match="OOM"):
        await backend.admit("k", s, 0.1, "c", T0)
    assert broken.calls == 1


@pytest.mark.parametrize("seen", [True, False], ids=["closes-seen", "closes-unseen"])
async def test_a_restart_fails_no_call_on_a_warm_connection(redis_server: RedisServer, prefix: str, seen: bool) -> None:
    """A warm connection, redis-server restarted on its port (its scripts forgotten), then six
    parallel calls: none fails. When the event loop has read the close, the next call reconnects
    first (one try each); when it has not (the restart blocks it), the six first tries fail
    together and are retried on one new connection. The new connection loads the scripts first."""
    b = RedisBackend(redis_server.url, key_prefix=prefix, timeout_s=TIMEOUT_S)
    try:
        s = spec(budget_usd=1.0, rpm=None, max_concurrent=None)
        await asyncio.gather(*(b.admit("warm", s, 0.0, f"w{i}", T0) for i in range(6)))
        redis_server.stop()
        if seen:
            await asyncio.sleep(0.05)
        redis_server.start()
        sends = FailingSends(b._channel, b"", RedisConnectionError(), ran=False, fails=0)  # counts, never fails
        b._channel.send = sends  # type: ignore[method-assign]
        admitted = await asyncio.gather(*(b.admit("k", s, 0.1, f"r{i}", T0) for i in range(6)))
        assert [a.ok for a in admitted] == [True] * 6
        assert sends.calls == (6 if seen else 12)
        assert (await b.status("k", s, T0))[0] == 0.4  # six reservations, none twice
    finally:
        await b.aclose()


class Outcomes:
    """A settle_nowait's `done`: what each call reported."""

    def __init__(self) -> None:
        self.reports: list[StateUnavailable | None] = []
        self.event = asyncio.Event()

    def __call__(self, error: StateUnavailable | None) -> None:
        self.reports.append(error)
        self.event.set()


async def test_settle_nowait_returns_before_the_answer_and_comes_first(backend: RedisBackend) -> None:
    """settle_nowait returns with the settle written and its answer not yet read; the next call of
    the same process runs after it in Redis (one connection, in order); `done` hears it succeeded."""
    s = spec(budget_usd=1.0, rpm=None, max_concurrent=1)
    a = await backend.admit("k", s, 0.5, "a", T0)
    done = Outcomes()
    await backend.settle_nowait(Settlement("k", s, a.window_start, 0.5, 0.2, "a", T0 + 1), done)
    link = backend._channel.live()
    assert link is not None and link.written().done()  # nothing left to write: the settle is out
    assert done.reports == [] and not link.idle()  # its answer not read yet: nothing waited for it
    b = await backend.admit("k", s, 0.1, "b", T0 + 2)
    assert (b.ok, b.remaining_usd) == (True, 0.8)  # the lease was free and the cost charged
    assert done.reports == [None]


async def test_settle_nowait_is_retried_in_the_background(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A settle whose answer is lost (the link breaks after Redis ran it) is sent again and
    charges once; with Redis gone, `done` hears StateUnavailable after the retry."""
    s = spec(budget_usd=1.0, rpm=None, max_concurrent=None)
    a = await backend.admit("k", s, 0.5, "a", T0)
    link = backend._channel.live()
    assert link is not None
    done = Outcomes()
    await backend.settle_nowait(Settlement("k", s, a.window_start, 0.5, 0.2, "a", T0 + 1), done)
    await link.drained()  # Redis has run it...
    done2 = Outcomes()
    await backend.settle_nowait(Settlement("k", s, a.window_start, 0.5, 0.2, "a", T0 + 1), done2)
    link.fail(RedisConnectionError("reset"))  # ...and the repeat's answer is lost with the link
    await done2.event.wait()
    assert done2.reports == [None] and (await backend.status("k", s, T0 + 2))[0] == 0.8
    bad = failing(backend, monkeypatch, SETTLE.by_sha, RedisConnectionError("refused"), ran=False, fails=2)
    link = backend._channel.live()
    assert link is not None
    link.fail(RedisConnectionError("reset"))  # no live link: the whole settle goes to the background
    done3 = Outcomes()
    await backend.settle_nowait(Settlement("k", s, a.window_start, 0.5, 0.2, "b", T0 + 3), done3)
    await done3.event.wait()
    assert bad.calls == 2 and isinstance(done3.reports[0], StateUnavailable)


async def test_aclose_waits_for_settles_on_their_way(
    redis_server: RedisServer, prefix: str, raw: redis.asyncio.Redis
) -> None:
    """Closing the backend right after settle_nowait loses nothing: the answers are read first."""
    b = RedisBackend(redis_server.url, key_prefix=prefix, timeout_s=TIMEOUT_S)
    s = spec(budget_usd=1.0, rpm=None, max_concurrent=None)
    done = Outcomes()
    for i in range(20):
        a = await b.admit("k", s, 0.01, f"r{i}", T0)
        await b.settle_nowait(Settlement("k", s, a.window_start, 0.01, 0.005, f"r{i}", T0), done)
    await b.aclose()
    assert done.reports == [None] * 20
    assert await raw.hmget(f"{prefix}:{{k}}:budget", ["spent", "reserved"]) == ["100000", "0"]


@pytest.mark.parametrize("anyio_backend", [("asyncio", {"use_uvloop": True})])
async def test_calls_made_together_share_a_round_trip(backend: RedisBackend, raw: redis.asyncio.Redis) -> None:
    """50 admits made in one turn of the event loop (uvloop, as the router serves) reach Redis in a
    few reads, not 50: one round trip carries many requests."""
    s = spec(budget_usd=100.0, rpm=None, max_concurrent=None)
    await backend.admit("k", s, 0.0, "warm", T0)
    before = (await raw.info("stats"))["total_reads_processed"]
    admitted = await asyncio.gather(*(backend.admit("k", s, 0.01, f"r{i}", T0) for i in range(50)))
    reads = (await raw.info("stats"))["total_reads_processed"] - before - 1  # less the INFO itself
    assert all(a.ok for a in admitted) and reads <= 5, reads
