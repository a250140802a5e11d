"""Limits.settle without sockets: it does not wait for the store's answer, the header's figure is
the admission's less the request's own cost, and a settlement that fails later is logged as an
outage (once), its success after one as the recovery."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from structlog.testing import capture_logs

from router.billing.auth import Principal
from router.billing.limits import Limits
from router.billing.state.base import LimitSpec, Settlement, StateUnavailable
from router.billing.state.memory import MemoryBackend
from router.clock import ManualClock
from router.config import Config, parse_config

pytestmark = pytest.mark.anyio


Done = Callable[[StateUnavailable | None], None]


class Deferred(MemoryBackend):
    """A MemoryBackend whose settle_nowait settles at once but reports only when the test says."""

    def __init__(self) -> None:
        super().__init__()
        self.reports: list[Done] = []

    async def settle_nowait(self, s: Settlement, done: Done) -> None:
        await self.settle(s)
        self.reports.append(done)


def _config() -> Config:
    return parse_config(
        {
            "providers": [{"name": "a", "base_url": "http://a.invalid", "formats": ["openai-chat"]}],
            "models": [
                {
                    "name": "m",
                    "price": {"input_per_mtok": 1.0, "output_per_mtok": 1.0},
                    "routes": [{"provider": "a", "model": "a-m"}],
                }
            ],
            "plans": [{"name": "pro", "models": ["*"], "budget": {"usd": 1.0, "window": "1h"}}],
            "keys": [{"id": "k", "hash": "sha256:" + "0" * 64, "plan": "pro"}],
        }
    )


def _principal(config: Config) -> Principal:
    return Principal("k", config.plans[0], frozenset({"m"}))


async def test_the_header_is_the_admissions_figure_less_the_own_cost() -> None:
    """Two requests in flight at once: each header subtracts its own cost from what was left when
    it was admitted (not the other's), rounded up to the micro-dollar as the store rounds it."""
    config = _config()
    backend = Deferred()
    limits = Limits(config, backend, ManualClock())
    a = await limits.admit(_principal(config), "a", 0.3)
    b = await limits.admit(_principal(config), "b", 0.3)
    assert (a.remaining_usd, b.remaining_usd) == (1.0, 0.7)
    assert await limits.settle(a, 0.1000001) == 0.899999
    assert await limits.settle(b, 0.2) == pytest.approx(0.5)
    assert await limits.settle(b, 0.2) == pytest.approx(0.5)  # settled once: the same figure
    spec = LimitSpec(1.0, 3600.0, None, None, 120.0)
    assert (await backend.status("k", spec, ManualClock().wall()))[0] == 0.699999
    assert len(backend.reports) == 2


async def test_a_settlement_failing_later_is_logged_once_and_its_recovery() -> None:
    """The store's report comes after settle returned: a failure logs state_unavailable (once for
    the outage), a later success state_recovered."""
    config = _config()
    backend = Deferred()
    limits = Limits(config, backend, ManualClock())
    grants = [await limits.admit(_principal(config), f"r{i}", 0.1) for i in range(3)]
    for g in grants:
        await limits.settle(g, 0.05)
    first, second, third = backend.reports
    with capture_logs() as logs:
        first(StateUnavailable("state backend unavailable during settle: TimeoutError"))
        second(StateUnavailable("state backend unavailable during settle: TimeoutError"))
        third(None)
    assert [e["event"] for e in logs] == ["state_unavailable", "state_recovered"]
    assert "fail_closed" in logs[0]["policy"]
