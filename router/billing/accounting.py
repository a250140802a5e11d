"""Usage x price -> cost: the reserve estimate taken before a request goes upstream, the cost of
what it used, and the usage as flat fields for the ledger. Pure and I/O-free. Reading usage out of
answers and streams is each format's job (`router/formats/`)."""

from __future__ import annotations

from router.config import ModelConfig, Price
from router.formats.base import estimate_input_tokens
from router.types import Usage

_PER_MTOK = 1_000_000.0


def cost_usd(usage: Usage, price: Price) -> float:
    """Dollars for `usage` at `price` (per million tokens; cache prices default to the input price)."""
    cached = price.input_per_mtok if price.cached_input_per_mtok is None else price.cached_input_per_mtok
    write = price.input_per_mtok if price.cache_write_per_mtok is None else price.cache_write_per_mtok
    return (
        usage.input_tokens * price.input_per_mtok
        + usage.cached_tokens * cached
        + usage.cache_write_tokens * write
        + usage.output_tokens * price.output_per_mtok
    ) / _PER_MTOK


def output_limit(model: ModelConfig, default: int) -> int | None:
    """The most output a request for `model` may ask for: the model's own limit; for a priced
    model without one, `default`, so that its reservation covers any answer; else none."""
    if model.max_output_tokens is not None:
        return model.max_output_tokens
    return default if model.price is not None else None


def reserve_usd(max_output_tokens: int, body_bytes: int, price: Price) -> float:
    """What to hold against the budget before the request: the input estimate at the dearest
    input price (a cache write may cost more than plain input) plus the output cap, which the
    provider is sent (`output_limit`), at the output price."""
    write = price.input_per_mtok if price.cache_write_per_mtok is None else price.cache_write_per_mtok
    input_price = max(price.input_per_mtok, write)
    return (estimate_input_tokens(body_bytes) * input_price + max_output_tokens * price.output_per_mtok) / _PER_MTOK


def abandoned_usage(body_bytes: int) -> Usage:
    """The usage billed for a request whose client left before any of the answer: the input
    estimate (the provider has read the prompt; what it wrote is unknown), marked estimated."""
    return Usage(input_tokens=estimate_input_tokens(body_bytes), estimated=True)


def usage_fields(usage: Usage) -> dict[str, int | bool]:
    """The usage as flat fields for ledger lines and log events."""
    return {
        "input_tokens": usage.input_tokens,
        "cached_tokens": usage.cached_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "output_tokens": usage.output_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "estimated": usage.estimated,
    }
