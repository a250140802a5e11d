"""Pure route selection: power-of-two-choices over Peak-EWMA cost. No I/O, no clock.

Rules, in order:

1. No candidates: `ValueError`.
2. One candidate: it.
3. Any never-measured candidate (``ewma_s is None``) with nothing in flight is
   taken first, at random among such candidates, so every new route gets
   measured instead of starving behind routes that already have a good estimate.
4. Otherwise power-of-two-choices: draw two distinct candidates uniformly with
   `rng`; the lower `cost` wins. When one speaks the client's format natively and
   the other needs a translation, costs within `NATIVE_TIE` of each other count as
   equal and the native one wins (the translation costs CPU, and a few percent is
   inside the noise of a latency estimate); otherwise an exact tie keeps the
   first drawn. Rule 3 comes first, so an unmeasured route is never starved by it.

``cost = ewma_or_default * (inflight + 1) / weight``: the expected wait scaled by
queue depth, so a fast route that is already busy loses to an idle slower one,
and `weight` lets config bias the share. A never-measured candidate that already
has requests in flight is costed at the mean of the measured candidates' EWMA
(or `DEFAULT_RTT_S` when none are measured): neither optimistic nor pessimistic.

P2C rather than "always the cheapest" because estimates are stale between
samples: picking the global minimum sends a burst to one route (herding), while
comparing two random ones still avoids the worst routes and spreads the load.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

# Typical time-to-first-byte of a hosted LLM completion is a few hundred
# milliseconds to a couple of seconds; 1 s sits in that range, so a route with
# no data, and no measured peer to borrow from, is neither favoured nor shunned.
DEFAULT_RTT_S = 1.0


@dataclass(frozen=True, slots=True)
class Candidate(Generic[T]):
    """One route as seen by `choose`: its latency estimate, load and configured weight."""

    item: T
    ewma_s: float | None  # None: never measured
    inflight: int
    weight: float  # > 0
    native: bool = True  # speaks the client's format natively; a tie-breaker only

    def __post_init__(self) -> None:
        # Checked here so a bad config fails loudly instead of yielding inf/negative costs.
        if not self.weight > 0 or math.isinf(self.weight):
            raise ValueError(f"weight must be a positive finite number, got {self.weight!r}")
        if self.inflight < 0:
            raise ValueError(f"inflight must be >= 0, got {self.inflight!r}")


NATIVE_TIE = 0.05  # relative cost difference within which a native route beats a translated one


def cost(c: Candidate[T], default_rtt_s: float) -> float:
    """``ewma_or_default * (inflight + 1) / weight``; lower is better."""
    rtt = default_rtt_s if c.ewma_s is None else c.ewma_s
    # +1: the request being placed now also waits, so an idle route still has a cost.
    return rtt * (c.inflight + 1) / c.weight


def _default_rtt(cands: Sequence[Candidate[T]]) -> float:
    measured = [c.ewma_s for c in cands if c.ewma_s is not None]
    return sum(measured) / len(measured) if measured else DEFAULT_RTT_S


def choose(cands: Sequence[Candidate[T]], rng: random.Random) -> Candidate[T]:
    """Pick one candidate by the numbered rules in the module docstring."""
    if not cands:
        raise ValueError("choose() needs at least one candidate")
    if len(cands) == 1:
        return cands[0]

    unmeasured_idle = [c for c in cands if c.ewma_s is None and c.inflight == 0]
    if unmeasured_idle:
        return rng.choice(unmeasured_idle)

    i, j = rng.sample(range(len(cands)), 2)
    a, b = cands[i], cands[j]
    default_rtt_s = _default_rtt(cands)
    cost_a, cost_b = cost(a, default_rtt_s), cost(b, default_rtt_s)
    if a.native != b.native and abs(cost_a - cost_b) <= NATIVE_TIE * max(cost_a, cost_b):
        return a if a.native else b
    # Otherwise the cheaper; an exact tie keeps the draw order, already uniformly random.
    return b if cost_b < cost_a else a
