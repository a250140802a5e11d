"""After the answer: its usage, priced at the serving model's price, settles the key's
reservation, and one ledger record is written. For a stream this happens when it ends, however
it ends (complete, cut short, or the client gone), with the usage the stream reported or, for a
stream cut short, estimated from what it delivered."""

from __future__ import annotations

from router.billing.accounting import cost_usd, usage_fields
from router.billing.ledger import Ledger
from router.billing.limits import Grant, Limits
from router.clock import Clock
from router.config import Price
from router.ops.metrics import Metrics
from router.types import AccessRecord, Usage


class Metering:
    def __init__(
        self,
        limits: Limits,
        ledger: Ledger,
        prices: dict[str, Price | None],
        clock: Clock,
        metrics: Metrics | None = None,
        plan_of: dict[str, str] | None = None,
    ) -> None:
        self._metrics = metrics
        self._plan_of = plan_of or {}  # key id -> plan name, for the metrics' plan label
        self._limits = limits
        self._ledger = ledger
        self._prices = prices
        self._clock = clock

    def reconfigure(self, limits: Limits, prices: dict[str, Price | None], plan_of: dict[str, str]) -> None:
        """A config reload: new prices and plans bill the next request that settles."""
        self._limits, self._prices, self._plan_of = limits, prices, plan_of

    async def whole(
        self, grant: Grant, model: str, usage: Usage | None, status: int, record: AccessRecord
    ) -> float | None:
        """Settle a non-stream answer of `model` that used `usage`; returns the USD left after it."""
        return await self._settle(grant, model, usage, status, record)

    async def nothing(self, grant: Grant, status: int, record: AccessRecord) -> float | None:
        """Release the reservation of a request that got no answer (an error)."""
        return await self._settle(grant, record.model, None, status, record)

    async def stream_end(self, grant: Grant, model: str, usage: Usage, record: AccessRecord) -> float | None:
        """Settle a stream of `model` once it has ended, however it ended, with the usage it
        reported or the estimate of what it delivered. The caller closes the stream first (that
        frees the route) and shields both from cancellation."""
        return await self._settle(grant, model, usage, 200, record)

    async def _settle(
        self, grant: Grant, model: str | None, usage: Usage | None, status: int, record: AccessRecord
    ) -> float | None:
        price = self._prices.get(model) if model else None
        cost = cost_usd(usage, price) if usage is not None and price is not None else 0.0
        remaining = await self._limits.settle(grant, cost)
        fields: dict[str, object] = {
            "ts": round(self._clock.wall(), 3),
            "request_id": record.request_id,
            "key": grant.key_id,
            "model": model,
            "provider": record.provider,
            "stream": record.stream,
            "status": status,
            "cost_usd": round(cost, 8),
        }
        if usage is not None:
            fields.update(usage_fields(usage))
        self._ledger.record(fields)
        record.cost_usd = cost
        if self._metrics is not None:
            self._metrics.usage(self._plan_of.get(grant.key_id), model, usage, cost)
        return remaining
