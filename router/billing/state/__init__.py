"""Shared state for plan limits: dollar budgets per rolling window, rpm and concurrency, enforced
atomically in one process (`MemoryBackend`) or across replicas (`RedisBackend`). `limits.py` uses
it through the `StateBackend` Protocol; the rules are numbered in `router/billing/state/base.py`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from router.billing.state.base import Admission, LimitSpec, Settlement, StateBackend, StateUnavailable
from router.billing.state.memory import MemoryBackend

if TYPE_CHECKING:
    from router.config import StateConfig

__all__ = ["Admission", "LimitSpec", "MemoryBackend", "Settlement", "StateBackend", "StateUnavailable", "make_backend"]


def make_backend(config: StateConfig) -> StateBackend:
    """The backend a validated config asks for. Redis is imported only when asked for."""
    if config.backend == "memory":
        return MemoryBackend()
    if config.url is None:
        raise ValueError("state.backend is 'redis' but state.url is not set")
    from router.billing.state.redis import RedisBackend

    return RedisBackend(config.url, key_prefix=config.key_prefix, timeout_s=config.timeout_s)
