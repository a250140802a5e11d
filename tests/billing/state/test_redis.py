"""RedisBackend specifics against a real redis-server: key layout and expiry, script reload, two
replicas sharing limits, and outages. The shared contract is in test_backends.py."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from router.billing.state import LimitSpec, StateUnavailable, make_backend
from router.billing.state.redis import RedisBackend
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
    assert sorted(await raw.keys(f"{prefix}:*")) == [f"{base}:budget", f"{base}:conc", f"{base}:rpm"]
    assert await raw.hgetall(f"{base}:budget") == {"start": repr(T0), "spent": "0", "reserved": "250000"}
    assert await raw.zrange(f"{base}:rpm", 0, -1, withscores=True) == [("req-1", T0)]
    assert await raw.zrange(f"{base}:conc", 0, -1, withscores=True) == [("req-1", T0 + 30.0)]
    assert 3_600_000 < await raw.pttl(f"{base}:budget") <= 3_660_000
    assert 50_000 < await raw.pttl(f"{base}:rpm") <= 60_000
    assert 20_000 < await raw.pttl(f"{base}:conc") <= 30_000


async def test_scripts_reload_after_a_flush(backend: RedisBackend, raw: redis.asyncio.Redis) -> None:
    """After SCRIPT FLUSH (as after a restart) EVALSHA's NOSCRIPT is answered by loading again."""
    await backend.admit("k", spec(), 0.1, "a", T0)
    await raw.script_flush()
    assert (await backend.admit("k", spec(), 0.1, "b", T0 + 1)).remaining_usd == 0.9
    await raw.script_flush()
    assert await backend.settle("k", spec(), T0, 0.1, 0.1, "a", T0 + 2) == 0.8


async def test_two_replicas_enforce_one_budget_rpm_and_concurrency(redis_server: RedisServer, prefix: str) -> None:
    """Two clients on one redis-server, admitting concurrently, share every limit exactly."""
    replicas = [RedisBackend(redis_server.url, key_prefix=prefix, timeout_s=2.0) for _ in range(2)]
    try:
        budget = spec(budget_usd=1.0, rpm=None, max_concurrent=None)
        first = await replicas[0].admit("k", budget, 0.9, "first", T0)
        await replicas[1].settle("k", budget, first.window_start, 0.9, 0.9, "first", T0)
        calls = [replicas[i % 2].admit("k", budget, 0.01, f"b{i}", T0 + 1) for i in range(200)]
        assert sum(a.ok for a in await asyncio.gather(*calls)) == 10

        rpm = spec(budget_usd=None, rpm=7, max_concurrent=None)
        calls = [replicas[i % 2].admit("r", rpm, 0.0, f"r{i}", T0 + 1) for i in range(100)]
        assert sum(a.ok for a in await asyncio.gather(*calls)) == 7

        conc = spec(budget_usd=None, rpm=None, max_concurrent=5)
        calls = [replicas[i % 2].admit("c", conc, 0.0, f"c{i}", T0 + 1) for i in range(100)]
        admitted = [i for i, a in enumerate(await asyncio.gather(*calls)) if a.ok]
        assert len(admitted) == 5
        await replicas[1 - admitted[0] % 2].settle("c", conc, None, 0.0, 0.0, f"c{admitted[0]}", T0 + 2)
        assert (await replicas[0].admit("c", conc, 0.0, "late", T0 + 3)).ok
    finally:
        for r in replicas:
            await r.aclose()


async def _assert_unavailable_quickly(b: RedisBackend, calls: int = 3) -> None:
    """admit, settle and status (the first `calls` of them) each raise StateUnavailable within timeout_s."""
    s = spec()
    for call in (
        lambda: b.admit("k", s, 0.1, "x", T0),
        lambda: b.settle("k", s, T0, 0.1, 0.1, "x", T0),
        lambda: b.status("k", s, T0),
    )[:calls]:
        started = time.monotonic()
        with pytest.raises(StateUnavailable) as info:
            await call()
        assert time.monotonic() - started < TIMEOUT_S + 0.25
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
    """A server that accepts but never answers is reported within about timeout_s, not waited on."""
    assert (await backend.admit("hung", spec(), 0.1, "before", T0)).ok
    redis_server.pause()
    try:
        await _assert_unavailable_quickly(backend, calls=1)  # each call would wait the full timeout
    finally:
        redis_server.resume()
    assert (await backend.status("hung", spec(), T0 + 1))[0] is not None
