"""After the answer: its usage, priced at the serving model's price, settles the key's
reservation, and one ledger record is written. For a stream this happens when it ends, however
it ends (complete, cut short, or the client gone), with the usage the stream reported or, for a
stream cut short, estimated from what it delivered."""

from __future__ import annotations

from dataclasses import dataclass

from router.billing.accounting import cost_usd, usage_fields
from router.billing.ledger import Ledger
from router.billing.limits import Grant, Limits
from router.clock import Clock
from router.config import Price
from router.observe import Observer
from router.types import Usage


@dataclass(slots=True)  # built per request: a frozen __init__ costs more
class Charge:
    """What one request is billed for: the ledger line's facts."""

    request_id: str
    model: str | None  # the public model that served; None when the request got no model that far
    provider: str | None  # None: no provider answered
    stream: bool
    status: int
    usage: Usage | None  # None: nothing was used (an error), only the reservation is released
    continuations: int = 0  # a broken stream finished on other routes this many times


@dataclass(slots=True)
class Settled:
    remaining_usd: float | None  # what the key has left in its window after this request
    cost_usd: float


class Metering:
    def __init__(
        self,
        limits: Limits,
        ledger: Ledger,
        prices: dict[str, Price | None],
        clock: Clock,
        observer: Observer | None = None,
        plan_of: dict[str, str] | None = None,
    ) -> None:
        self._observer = observer or Observer()
        self._plan_of = plan_of or {}  # key id -> plan name, for the observer's plan label
        self._limits = limits
        self._ledger = ledger
        self._prices = prices
        self._clock = clock

    def reconfigure(self, limits: Limits, prices: dict[str, Price | None], plan_of: dict[str, str]) -> None:
        """A config reload: new prices and plans bill the next request that settles."""
        self._limits, self._prices, self._plan_of = limits, prices, plan_of

    async def settle(self, grant: Grant, charge: Charge) -> Settled:
        """Settle the reservation behind `grant` at what `charge` used (nothing for an error), and
        write the ledger line. For a stream, once it has ended: the caller closes it first (that
        frees the route) and shields both from cancellation."""
        model, usage = charge.model, charge.usage
        price = self._prices.get(model) if model else None
        cost = cost_usd(usage, price) if usage is not None and price is not None else 0.0
        remaining = await self._limits.settle(grant, cost)
        fields: dict[str, object] = {
            "ts": round(self._clock.wall(), 3),
            "request_id": charge.request_id,
            "key": grant.key_id,
            "model": model,
            "provider": charge.provider,
            "stream": charge.stream,
            "status": charge.status,
            "cost_usd": round(cost, 8),
        }
        if usage is not None:
            fields.update(usage_fields(usage))
        if charge.continuations:
            fields["continuations"] = charge.continuations
        self._ledger.record(fields)
        self._observer.usage(self._plan_of.get(grant.key_id), model, usage, cost)
        return Settled(remaining, cost)
