"""Cost arithmetic and the ledger's usage fields."""

from __future__ import annotations

import pytest

from router.billing.accounting import cost_usd, output_limit, usage_fields
from router.config import Price
from router.config.schema import ModelConfig, RouteConfig
from router.types import Usage

# --- cost_usd ------------------------------------------------------------------------------------

COSTS = [
    (Usage(1_000_000, 0, 0, 1_000_000), Price(3.0, 15.0), 18.0),
    (Usage(0, 0, 0, 0), Price(3.0, 15.0), 0.0),
    # No cache prices: cache reads and writes are billed at the input price.
    (Usage(1000, 2000, 3000, 500), Price(2.0, 8.0), (6000 * 2.0 + 500 * 8.0) / 1e6),
    # A cached price only.
    (
        Usage(1000, 2000, 3000, 500),
        Price(2.0, 8.0, cached_input_per_mtok=0.5),
        (1000 * 2.0 + 2000 * 0.5 + 3000 * 2.0 + 500 * 8.0) / 1e6,
    ),
    # Both cache prices (Anthropic-style: reads 0.1x, writes 1.25x).
    (
        Usage(40, 100_000, 7000, 60, 30),
        Price(3.0, 15.0, cached_input_per_mtok=0.3, cache_write_per_mtok=3.75),
        (40 * 3.0 + 100_000 * 0.3 + 7000 * 3.75 + 60 * 15.0) / 1e6,
    ),
    # A zero cached price is a price, not "unset".
    (Usage(0, 5000, 0, 0), Price(1.0, 1.0, cached_input_per_mtok=0.0), 0.0),
]


@pytest.mark.parametrize(("usage", "price", "expected"), COSTS)
def test_cost_usd(usage, price, expected):
    """Cost is each count times its per-million price; unset cache prices fall back to the input price."""
    assert cost_usd(usage, price) == pytest.approx(expected, rel=1e-12, abs=0)


def test_usage_fields():
    """The ledger fields are the six usage attributes, flat."""
    assert usage_fields(Usage(1, 2, 3, 4, 5, True)) == {
        "input_tokens": 1,
        "cached_tokens": 2,
        "cache_write_tokens": 3,
        "output_tokens": 4,
        "reasoning_tokens": 5,
        "estimated": True,
    }


# --- output_limit --------------------------------------------------------------------------------

ROUTE = (RouteConfig("p", "x"),)


@pytest.mark.parametrize(
    ("limit", "price", "expected"),
    [(500, None, 500), (500, Price(1.0, 2.0), 500), (None, Price(1.0, 2.0), 8192), (None, None, None)],
)
def test_output_limit(limit, price, expected):
    """The model's own limit; else, for a priced model, the default (its reservation must cover
    the answer); an unpriced model without one is not limited."""
    model = ModelConfig("m", ROUTE, price=price, max_output_tokens=limit)
    assert output_limit(model, 8192) == expected
