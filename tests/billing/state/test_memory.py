"""MemoryBackend specifics; the shared contract is in test_backends.py."""

from __future__ import annotations

import pytest

from router.billing.state import LimitSpec, MemoryBackend, make_backend
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
        backend.settle("k", spec, T0, 0.1, 0.1, "r", T0 + 1),
        backend.status("k", spec, T0 + 2),
    ):
        with pytest.raises(StopIteration):
            coro.send(None)


async def test_memory_stays_bounded(anyio_backend: str) -> None:
    """The rpm log keeps only the last minute and expired leases are dropped on admit."""
    backend = MemoryBackend()
    spec = LimitSpec(budget_usd=None, window_s=60.0, rpm=10_000, max_concurrent=10_000, lease_s=5.0)
    for i in range(600):  # one request a second for ten minutes, none settled
        assert (await backend.admit("k", spec, 0.0, f"r{i}", T0 + i)).ok
    assert repr(backend) == "MemoryBackend(keys=1, rpm_entries=60, leases=5)"
    await backend.aclose()
    assert repr(backend) == "MemoryBackend(keys=0, rpm_entries=0, leases=0)"
