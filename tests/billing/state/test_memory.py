"""MemoryBackend specifics; the shared contract is in test_backends.py."""

from __future__ import annotations

import pytest

from router.billing.state import LimitSpec, MemoryBackend, make_backend
from router.billing.state.base import RECORD_S, Settlement
from router.config import StateConfig

T0 = 1_800_000_000.0

pytestmark = pytest.mark.anyio


def test_factory_builds_the_memory_backend() -> None:
    """The default state config gives a MemoryBackend."""
    assert isinstance(make_backend(StateConfig()), MemoryBackend)


def test_admit_and_settle_never_suspend() -> None:
    """admit and settle finish in one step of the event loop: that is what makes them atomic."""
    backend = MemoryBackend()
    spec = LimitSpec(budget_usd=1.0, window_s=60.0, rpm=5, max_concurrent=2, lease_s=30.0)
    for coro in (
        backend.admit("k", spec, 0.1, "r", T0),
        backend.settle(Settlement("k", spec, T0, 0.1, 0.1, "r", T0 + 1)),
        backend.status("k", spec, T0 + 2),
    ):
        with pytest.raises(StopIteration):
            coro.send(None)


async def test_memory_stays_bounded(anyio_backend: str) -> None:
    """The rpm log keeps only the last minute, expired leases are dropped on admit, and records of
    admissions after record_s (RECORD_S here, as Redis keeps them)."""
    backend = MemoryBackend(record_s=RECORD_S)
    spec = LimitSpec(budget_usd=None, window_s=60.0, rpm=10_000, max_concurrent=10_000, lease_s=5.0)
    for i in range(600):  # one request a second for ten minutes, none settled
        assert (await backend.admit("k", spec, 0.0, f"r{i}", T0 + i)).ok
    assert repr(backend) == "MemoryBackend(keys=1, rpm_entries=60, leases=5, records=60)"
    await backend.aclose()
    assert repr(backend) == "MemoryBackend(keys=0, rpm_entries=0, leases=0, records=0)"


async def test_a_repeat_after_record_s_is_a_new_admission(anyio_backend: str) -> None:
    """An admission id is remembered for record_s after its last admit or settle, no longer."""
    backend = MemoryBackend(record_s=RECORD_S)
    spec = LimitSpec(budget_usd=1.0, window_s=3600.0, rpm=None, max_concurrent=None, lease_s=600.0)
    first = await backend.admit("k", spec, 0.1, "a", T0)
    assert await backend.admit("k", spec, 0.1, "a", T0 + RECORD_S - 0.001) == first
    assert await backend.settle(Settlement("k", spec, first.window_start, 0.1, 0.1, "a", T0 + 10)) == 0.9
    assert (
        await backend.settle(Settlement("k", spec, first.window_start, 0.1, 0.1, "a", T0 + 10 + RECORD_S - 0.001))
        == 0.9
    )
    assert await backend.settle(Settlement("k", spec, first.window_start, 0.1, 0.1, "a", T0 + 10 + RECORD_S)) == 0.8
    assert (await backend.admit("k", spec, 0.1, "a", T0 + 10 + RECORD_S)).remaining_usd == 0.8


async def test_by_default_records_live_one_second(anyio_backend: str) -> None:
    """Nothing retries against memory state: a record lives 1 s, so memory does not grow with a
    minute of requests (60 s of records at 3,500 req/s was ~110 MiB)."""
    backend = MemoryBackend()
    spec = LimitSpec(budget_usd=100.0, window_s=3600.0, rpm=None, max_concurrent=None, lease_s=600.0)
    for i in range(1000):  # 100 requests a second for ten seconds
        adm = await backend.admit("k", spec, 0.01, f"r{i}", T0 + i / 100)
        await backend.settle(Settlement("k", spec, adm.window_start, 0.01, 0.01, f"r{i}", T0 + i / 100))
    assert "records=100)" in repr(backend) or "records=101)" in repr(backend)
