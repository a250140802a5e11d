"""Active health checks: a consecutive-threshold state per provider and the loop that feeds it.

A flap needs `unhealthy_after` failures in a row to mark a provider down and
`healthy_after` successes in a row to bring it back, so one lost probe moves nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

import anyio
import structlog

_log = structlog.get_logger()


class HealthState:
    """Consecutive-threshold health of one provider, fed by active probes."""

    __slots__ = (
        "_consecutive_failures",
        "_consecutive_successes",
        "_healthy",
        "_healthy_after",
        "_probed",
        "_unhealthy_after",
    )

    def __init__(self, unhealthy_after: int, healthy_after: int) -> None:
        if unhealthy_after < 1 or healthy_after < 1:
            raise ValueError(
                f"thresholds must be >= 1, got unhealthy_after={unhealthy_after}, healthy_after={healthy_after}"
            )
        self._unhealthy_after = unhealthy_after
        self._healthy_after = healthy_after
        # Start healthy: refusing all traffic until the first probe lands would
        # make every restart an outage; `probed` tells callers it is only assumed.
        self._healthy = True
        self._probed = False
        self._consecutive_failures = 0
        self._consecutive_successes = 0

    @property
    def healthy(self) -> bool:
        """Whether the provider is currently considered up."""
        return self._healthy

    @property
    def probed(self) -> bool:
        """True once at least one probe result has been recorded."""
        return self._probed

    @property
    def consecutive_failures(self) -> int:
        """Failed probes in a row (0 after any success)."""
        return self._consecutive_failures

    @property
    def consecutive_successes(self) -> int:
        """Successful probes in a row (0 after any failure)."""
        return self._consecutive_successes

    def record(self, ok: bool) -> bool:
        """Record one probe result; True when `healthy` flipped."""
        self._probed = True
        if ok:
            self._consecutive_successes += 1
            self._consecutive_failures = 0
            if not self._healthy and self._consecutive_successes >= self._healthy_after:
                self._healthy = True
                return True
        else:
            self._consecutive_failures += 1
            self._consecutive_successes = 0
            if self._healthy and self._consecutive_failures >= self._unhealthy_after:
                self._healthy = False
                return True
        return False

    def __repr__(self) -> str:
        return (
            f"HealthState(healthy={self._healthy}, probed={self._probed}, "
            f"failures={self._consecutive_failures}, successes={self._consecutive_successes})"
        )


class Probe(Protocol):
    """One active health check of a provider."""

    async def __call__(self) -> bool:
        """True = healthy; must not raise for ordinary failures."""
        ...


async def _probe_once(name: str, probe: Probe, timeout_s: float) -> bool:
    ok = False
    with anyio.move_on_after(timeout_s) as scope:
        try:
            ok = await probe()
        except Exception as exc:
            # A buggy or surprised probe is a failed probe, not a dead health loop.
            _log.warning("provider_probe_error", provider=name, error=repr(exc))
            return False
    # cancel_called rather than cancelled_caught: a probe that swallows the
    # cancellation and returns True anyway still overran its deadline.
    if scope.cancel_called:
        _log.warning("provider_probe_timeout", provider=name, timeout_s=timeout_s)
        return False
    return ok


async def probe_loop(
    name: str,
    state: HealthState,
    probe: Probe,
    interval_s: float,
    timeout_s: float,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    on_probed: Callable[[], None] | None = None,
) -> None:
    """Probe at once, then every `interval_s`, forever; each probe bounded by `timeout_s`.

    Timeouts and exceptions count as failures. Only flips of `state.healthy` are
    logged as `provider_health_changed`, so a steady state stays quiet.
    Stop it by cancelling the enclosing task group.
    """
    while True:
        ok = await _probe_once(name, probe, timeout_s)
        if state.record(ok):
            if state.healthy:
                _log.info("provider_health_changed", provider=name, healthy=True)
            else:
                _log.warning(
                    "provider_health_changed",
                    provider=name,
                    healthy=False,
                    consecutive_failures=state.consecutive_failures,
                )
        if on_probed is not None:
            on_probed()
        await sleep(interval_s)
