"""The StateBackend contract (rules numbered in router/billing/state/base.py), run against both backends
with an injected `now`: nothing here sleeps."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from router.billing.state import LimitSpec, StateBackend
from router.billing.state.base import RECORD_S, Settlement, budget_micros, cost_micros
from router.billing.state.memory import MemoryBackend
from router.billing.state.redis import RedisBackend

T0 = 1_800_000_000.25  # a fraction, so the window's identity must survive the trip through Redis
HOUR = 3600.0

pytestmark = pytest.mark.anyio


def spec(
    budget: float | None = 1.0,
    window_s: float = HOUR,
    rpm: int | None = None,
    max_concurrent: int | None = None,
    lease_s: float = 30.0,
) -> LimitSpec:
    return LimitSpec(budget_usd=budget, window_s=window_s, rpm=rpm, max_concurrent=max_concurrent, lease_s=lease_s)


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest, anyio_backend: str) -> AsyncIterator[StateBackend]:
    """A fresh backend; the Redis one gets its own key prefix on the session's redis-server."""
    b: StateBackend
    if request.param == "memory":
        b = MemoryBackend(record_s=RECORD_S)  # the contract, with Redis's record length
    else:
        server = request.getfixturevalue("redis_server")
        b = RedisBackend(server.url, key_prefix=f"test-{uuid.uuid4().hex[:12]}", timeout_s=2.0)
    yield b
    await b.aclose()


async def spend(b: StateBackend, s: LimitSpec, usd: float, now: float, key: str = "k") -> None:
    """Admit and settle one request that costs `usd`."""
    admission = f"spend-{uuid.uuid4().hex}"  # a repeated id would be the same admission (rule 5)
    a = await b.admit(key, s, usd, admission, now)
    assert a.ok, a
    await b.settle(Settlement(key, s, a.window_start, usd, usd, admission, now))


async def test_window_opens_on_first_request(backend: StateBackend) -> None:
    """Before any request no window exists; the first admission opens one at its `now`."""
    s = spec()
    assert await backend.status("k", s, T0) == (1.0, T0 + HOUR)
    a = await backend.admit("k", s, 0.1, "r1", T0)
    assert (a.ok, a.reason, a.retry_after_s) == (True, "ok", 0.0)
    assert (a.window_start, a.window_end, a.remaining_usd) == (T0, T0 + HOUR, 1.0)
    assert await backend.status("k", s, T0 + 5) == (0.9, T0 + HOUR)
    b = await backend.admit("k", s, 0.1, "r2", T0 + 5)
    assert (b.window_start, b.remaining_usd) == (T0, 0.9)


async def test_budget_refusal_waits_for_window_end(backend: StateBackend) -> None:
    """A spent budget refuses with retry_after = the time left in the window, and reserves nothing."""
    s = spec()
    await spend(backend, s, 1.0, T0)
    a = await backend.admit("k", s, 0.1, "r", T0 + 100)
    assert (a.ok, a.reason, a.remaining_usd, a.window_end) == (False, "budget", 0.0, T0 + HOUR)
    assert a.retry_after_s == HOUR - 100
    assert await backend.status("k", s, T0 + 100) == (0.0, T0 + HOUR)


async def test_window_expiry_restores_budget(backend: StateBackend) -> None:
    """At window_start + window_s a new window opens at `now` with the full budget."""
    s = spec()
    await spend(backend, s, 1.0, T0)
    assert not (await backend.admit("k", s, 0.1, "r", T0 + HOUR - 0.001)).ok
    a = await backend.admit("k", s, 0.1, "r", T0 + HOUR)
    assert (a.ok, a.window_start, a.window_end, a.remaining_usd) == (True, T0 + HOUR, T0 + 2 * HOUR, 1.0)


async def test_request_admitted_below_budget_may_overshoot_by_its_cost(backend: StateBackend) -> None:
    """Spent 0.9 of 1.0: one more request is admitted and may cost 0.5; the next is refused."""
    s = spec()
    await spend(backend, s, 0.9, T0)
    a = await backend.admit("k", s, 0.5, "big", T0 + 1)
    assert (a.ok, a.remaining_usd) == (True, 0.1)
    assert (await backend.admit("k", s, 0.01, "next", T0 + 2)).reason == "budget"
    assert await backend.settle(Settlement("k", s, a.window_start, 0.5, 0.5, "big", T0 + 3)) == 0.0
    assert (await backend.admit("k", s, 0.01, "after", T0 + 4)).reason == "budget"


async def test_reservations_count_toward_budget(backend: StateBackend) -> None:
    """In-flight reservations use the budget before anything is spent; settling swaps them for the cost."""
    s = spec()
    a = await backend.admit("k", s, 0.6, "a", T0)
    b = await backend.admit("k", s, 0.6, "b", T0 + 1)
    assert (a.remaining_usd, b.ok, b.remaining_usd) == (1.0, True, 0.4)
    assert (await backend.admit("k", s, 0.01, "c", T0 + 2)).reason == "budget"
    assert await backend.settle(Settlement("k", s, a.window_start, 0.6, 0.1, "a", T0 + 3)) == 0.3
    assert await backend.settle(Settlement("k", s, b.window_start, 0.6, 0.2, "b", T0 + 4)) == 0.7
    assert (await backend.status("k", s, T0 + 5))[0] == 0.7


async def test_settle_releases_no_more_than_reserved(backend: StateBackend) -> None:
    """A settle that releases more than is reserved floors `reserved` at zero."""
    s = spec()
    a = await backend.admit("k", s, 0.1, "a", T0)
    assert await backend.settle(Settlement("k", s, a.window_start, 5.0, 0.2, "a", T0 + 1)) == 0.8


async def test_settle_after_rollover_lands_in_the_new_window(backend: StateBackend) -> None:
    """A request from an expired window settles its cost into the open newer one, releasing nothing there."""
    s = spec()
    old = await backend.admit("k", s, 0.5, "old", T0)
    new = await backend.admit("k", s, 0.2, "new", T0 + HOUR + 10)
    assert new.window_start == T0 + HOUR + 10 and new.remaining_usd == 1.0
    # Spent 0.3 in the new window; its 0.2 reservation stays.
    assert await backend.settle(Settlement("k", s, old.window_start, 0.5, 0.3, "old", T0 + HOUR + 20)) == 0.5
    assert await backend.settle(Settlement("k", s, new.window_start, 0.2, 0.2, "new", T0 + HOUR + 30)) == 0.5


async def test_settle_with_no_open_window_adds_nothing(backend: StateBackend) -> None:
    """After the window expired, with no newer one, the cost is dropped and the budget is whole."""
    s = spec()
    a = await backend.admit("k", s, 0.5, "a", T0)
    assert await backend.settle(Settlement("k", s, a.window_start, 0.5, 0.5, "a", T0 + HOUR + 1)) == 1.0
    assert await backend.status("k", s, T0 + HOUR + 1) == (1.0, T0 + 2 * HOUR + 1)
    assert (await backend.admit("k", s, 0.1, "b", T0 + HOUR + 2)).remaining_usd == 1.0


async def test_rpm_sliding_window_is_exact(backend: StateBackend) -> None:
    """rpm counts admissions in (now - 60, now]; retry_after is when enough of them leave it."""
    s = spec(budget=None, rpm=3)
    for i, t in enumerate((T0, T0 + 10, T0 + 20)):
        assert (await backend.admit("k", s, 0.0, f"r{i}", t)).ok
    a = await backend.admit("k", s, 0.0, "x", T0 + 30)
    assert (a.ok, a.reason, a.retry_after_s) == (False, "rpm", 30.0)
    late = await backend.admit("k", s, 0.0, "x", T0 + 59.75)
    assert (late.reason, late.retry_after_s) == ("rpm", 0.25)
    assert (await backend.admit("k", s, 0.0, "r3", T0 + 60)).ok  # T0 has left (T0, T0 + 60]
    again = await backend.admit("k", s, 0.0, "x", T0 + 60.5)
    assert (again.reason, again.retry_after_s) == ("rpm", 9.5)  # T0 + 10 leaves at T0 + 70


async def test_refused_requests_do_not_count(backend: StateBackend) -> None:
    """Refusals (rpm, budget, concurrency) leave no trace: no rpm entry, no reservation, no lease."""
    s = spec(budget=0.5, rpm=3, max_concurrent=1)
    a = await backend.admit("k", s, 0.5, "a", T0)
    assert (await backend.admit("k", s, 0.1, "b", T0 + 1)).reason == "budget"
    await backend.settle(Settlement("k", s, a.window_start, 0.5, 0.0, "a", T0 + 2))
    c = await backend.admit("k", s, 0.1, "c", T0 + 3)
    assert (await backend.admit("k", s, 0.1, "d", T0 + 4)).reason == "concurrency"
    await backend.settle(Settlement("k", s, c.window_start, 0.1, 0.1, "c", T0 + 5))
    e = await backend.admit("k", s, 0.1, "e", T0 + 6)
    await backend.settle(Settlement("k", s, e.window_start, 0.1, 0.1, "e", T0 + 6))
    for i in range(5):
        assert (await backend.admit("k", s, 0.1, f"x{i}", T0 + 7 + i)).reason == "rpm"
    # Only a (T0), c (T0 + 3) and e (T0 + 6) count: at T0 + 60.5 a has left, so one more fits.
    assert (await backend.admit("k", s, 0.1, "f", T0 + 60.5)).ok
    assert (await backend.status("k", s, T0 + 61))[0] == 0.2


async def test_checks_run_budget_then_rpm_then_concurrency(backend: StateBackend) -> None:
    """When several limits are hit, the reason names the first in rule order."""
    s = spec(budget=0.1, rpm=1, max_concurrent=1)
    await backend.admit("k", s, 0.1, "a", T0)
    assert (await backend.admit("k", s, 0.1, "b", T0 + 1)).reason == "budget"
    s2 = spec(budget=None, rpm=1, max_concurrent=1)
    await backend.admit("k2", s2, 0.0, "a", T0)
    assert (await backend.admit("k2", s2, 0.0, "b", T0 + 1)).reason == "rpm"


async def test_concurrency_limit_and_release(backend: StateBackend) -> None:
    """max_concurrent leases at most; settling releases one; refusals retry after a constant."""
    s = spec(budget=None, max_concurrent=2)
    assert (await backend.admit("k", s, 0.0, "a", T0)).ok
    assert (await backend.admit("k", s, 0.0, "b", T0)).ok
    c = await backend.admit("k", s, 0.0, "c", T0 + 1)
    assert (c.ok, c.reason, c.retry_after_s) == (False, "concurrency", 1.0)
    assert await backend.settle(Settlement("k", s, None, 0.0, 0.0, "a", T0 + 2)) is None
    assert (await backend.admit("k", s, 0.0, "c", T0 + 3)).ok
    assert (await backend.admit("k", s, 0.0, "d", T0 + 4)).reason == "concurrency"


async def test_lease_expiry_frees_a_slot(backend: StateBackend) -> None:
    """A lease not released within lease_s stops counting (a crashed replica leaks nothing)."""
    s = spec(budget=None, max_concurrent=1, lease_s=30.0)
    assert (await backend.admit("k", s, 0.0, "crashed", T0)).ok
    assert (await backend.admit("k", s, 0.0, "b", T0 + 29.9)).reason == "concurrency"
    assert (await backend.admit("k", s, 0.0, "b", T0 + 30)).ok


async def test_a_repeated_admit_is_the_same_admission(backend: StateBackend) -> None:
    """admit twice with one admission id: the first answer again, one reservation, one rpm entry, one lease."""
    s = spec(budget=1.0, rpm=3, max_concurrent=2)
    first = await backend.admit("k", s, 0.3, "a", T0)
    again = await backend.admit("k", s, 0.3, "a", T0 + 1)
    assert first.ok and again == first
    assert (await backend.status("k", s, T0 + 2))[0] == 0.7
    assert (await backend.admit("k", s, 0.1, "b", T0 + 3)).ok  # a second lease and rpm entry fit
    assert (await backend.admit("k", s, 0.1, "c", T0 + 4)).reason == "concurrency"  # rpm 2 of 3, leases 2 of 2


async def test_a_repeated_admit_at_the_limit_is_not_refused(backend: StateBackend) -> None:
    """The repeat of the admission that filled every limit is still admitted, and takes nothing more."""
    s = spec(budget=0.1, rpm=1, max_concurrent=1)
    first = await backend.admit("k", s, 0.1, "a", T0)
    assert (await backend.admit("k", s, 0.1, "a", T0)) == first
    assert (await backend.admit("k", s, 0.1, "b", T0)).reason == "budget"


async def test_a_repeated_settle_charges_and_releases_once(backend: StateBackend) -> None:
    """settle twice with one admission id: charged once, its reservation and lease released once."""
    s = spec(budget=1.0, max_concurrent=1)
    a = await backend.admit("k", s, 0.5, "a", T0)
    assert await backend.settle(Settlement("k", s, a.window_start, 0.5, 0.2, "a", T0 + 1)) == 0.8
    b = await backend.admit("k", s, 0.3, "b", T0 + 2)
    assert (
        await backend.settle(Settlement("k", s, a.window_start, 0.5, 0.2, "a", T0 + 3)) == 0.5
    )  # b's reservation stays
    assert (await backend.admit("k", s, 0.1, "c", T0 + 4)).reason == "concurrency"  # b's lease stays
    assert await backend.settle(Settlement("k", s, b.window_start, 0.3, 0.1, "b", T0 + 5)) == 0.7


async def test_an_admit_repeated_after_its_settle_takes_nothing(backend: StateBackend) -> None:
    """A late repeat of an admit whose request has settled answers as the first did and holds nothing."""
    s = spec(budget=1.0, rpm=2, max_concurrent=1)
    first = await backend.admit("k", s, 0.5, "a", T0)
    await backend.settle(Settlement("k", s, first.window_start, 0.5, 0.2, "a", T0 + 1))
    assert await backend.admit("k", s, 0.5, "a", T0 + 2) == first
    assert (await backend.status("k", s, T0 + 3))[0] == 0.8
    assert (await backend.admit("k", s, 0.1, "b", T0 + 4)).ok  # the lease is free, one rpm entry is left


async def test_a_settle_without_its_admission_is_charged_once(backend: StateBackend) -> None:
    """A settle the store has no admission for (its data lost) lands its cost once (rule 2b), however often repeated."""
    s = spec(budget=1.0)
    assert (await backend.admit("k", s, 0.1, "other", T0)).ok
    for _ in range(2):
        assert await backend.settle(Settlement("k", s, T0 - 1, 0.2, 0.2, "lost", T0 + 1)) == 0.7


async def test_keys_are_independent(backend: StateBackend) -> None:
    """One key's spending and leases do not touch another's."""
    s = spec(max_concurrent=1)
    await spend(backend, s, 1.0, T0, key="a")
    assert (await backend.admit("a", s, 0.1, "x", T0 + 1)).reason == "budget"
    assert (await backend.admit("b", s, 0.1, "x", T0 + 1)).ok


async def test_without_budget_no_dollars_are_tracked(backend: StateBackend) -> None:
    """budget_usd=None: admissions carry no window or remaining, settle and status return None."""
    s = spec(budget=None)
    a = await backend.admit("k", s, 5.0, "a", T0)
    assert (a.ok, a.remaining_usd, a.window_end, a.window_start) == (True, None, None, None)
    assert await backend.settle(Settlement("k", s, None, 5.0, 5.0, "a", T0 + 1)) is None
    assert await backend.status("k", s, T0 + 1) == (None, None)


async def test_zero_limits_refuse_everything(backend: StateBackend) -> None:
    """A zero budget refuses for the whole window; rpm 0 refuses for a minute; max_concurrent 0 too."""
    a = await backend.admit("k", spec(budget=0.0), 0.0, "a", T0)
    assert (a.reason, a.retry_after_s, a.remaining_usd) == ("budget", HOUR, 0.0)
    b = await backend.admit("k", spec(budget=None, rpm=0), 0.0, "b", T0)
    assert (b.reason, b.retry_after_s) == ("rpm", 60.0)
    assert (await backend.admit("k", spec(budget=None, max_concurrent=0), 0.0, "c", T0)).reason == "concurrency"


async def test_micro_dollars_round_up(backend: StateBackend) -> None:
    """Costs and reservations below a micro-dollar still bill one; decimals stay exact (no float drift)."""
    s = spec()
    a = await backend.admit("k", s, 0.0000001, "a", T0)
    assert await backend.settle(Settlement("k", s, a.window_start, 0.0000001, 0.0000001, "a", T0)) == 0.999999
    for i in range(10):
        b = await backend.admit("k", s, 0.1, f"b{i}", T0 + 1)
        await backend.settle(Settlement("k", s, b.window_start, 0.1, 0.0000011, f"b{i}", T0 + 1))
    assert (await backend.status("k", s, T0 + 2))[0] == 0.999979  # 1 + 10 x 2 micro-USD
    for _ in range(9):
        await spend(backend, s, 0.1, T0 + 3)
    assert (await backend.status("k", s, T0 + 4))[0] == 0.099979


def test_rounding_helpers() -> None:
    """Costs round up, budgets down, float noise is forgiven, and nonsense amounts are refused."""
    assert (cost_micros(0.1), cost_micros(0.0000011), cost_micros(1e-9), cost_micros(0.0)) == (100000, 2, 1, 0)
    assert (budget_micros(0.1), budget_micros(0.0000019)) == (100000, 1)
    for bad in (-0.01, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            cost_micros(bad)


def test_limit_spec_rejects_impossible_limits() -> None:
    """A LimitSpec that could never be enforced is refused at construction, listing every problem."""
    with pytest.raises(ValueError, match=r"budget_usd.*window_s.*rpm.*max_concurrent.*lease_s"):
        LimitSpec(budget_usd=-1.0, window_s=0.0, rpm=-1, max_concurrent=-1, lease_s=0.0)


async def test_concurrent_admits_never_exceed_the_budget(backend: StateBackend) -> None:
    """200 simultaneous admits against 0.9 of 1.0 spent, reserving 0.01 each: exactly 10 get in."""
    s = spec(budget=1.0)
    await spend(backend, s, 0.9, T0)
    results = await asyncio.gather(*(backend.admit("k", s, 0.01, f"r{i}", T0 + 1) for i in range(200)))
    assert sum(a.ok for a in results) == 10
    assert {a.reason for a in results if not a.ok} == {"budget"}
    assert (await backend.status("k", s, T0 + 2))[0] == 0.0
