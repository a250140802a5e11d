"""Active health checks: a consecutive-threshold state per provider and the loop that feeds it.

A provider is `unknown` until probes say otherwise, then `healthy` or `unhealthy`:
- unknown -> healthy on the first successful probe; unknown or healthy -> unhealthy after
  `unhealthy_after` failed probes in a row; unhealthy -> healthy after `healthy_after`
  successful probes in a row. So one lost probe moves nothing.
- Routing treats unknown as up (`routable`): refusing all traffic until the first probe lands
  would make every restart an outage. Readiness and the status page tell unknown apart.
Each state keeps the last probe's result and when it came, and when the state last changed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import anyio
import structlog

from router.upstream.probe import Probe, ProbeResult, probe_once

_log = structlog.get_logger()

Health = Literal["unknown", "healthy", "unhealthy"]


@dataclass(frozen=True, slots=True)
class Change:
    """A state change, as `HealthState.record` returns it."""

    old: Health
    new: Health


class HealthState:
    """Consecutive-threshold health of one provider, fed by active probes. Times are wall clock
    (unix seconds): they are shown to people."""

    __slots__ = (
        "_consecutive_failures",
        "_consecutive_successes",
        "_healthy_after",
        "_unhealthy_after",
        "last",
        "last_at",
        "since",
        "state",
    )

    def __init__(self, unhealthy_after: int, healthy_after: int, now: float = 0.0) -> None:
        self.retune(unhealthy_after, healthy_after)
        self.state: Health = "unknown"
        self.since = now  # when `state` was entered
        self.last: ProbeResult | None = None  # the last probe's result
        self.last_at: float | None = None  # and when it was recorded
        self._consecutive_failures = 0
        self._consecutive_successes = 0

    def retune(self, unhealthy_after: int, healthy_after: int) -> None:
        """Set the thresholds (a config reload). The state, the counts in a row and the last probe
        stay: the next probe result is judged against the new thresholds, so a reload alone
        changes no state."""
        if unhealthy_after < 1 or healthy_after < 1:
            raise ValueError(
                f"thresholds must be >= 1, got unhealthy_after={unhealthy_after}, healthy_after={healthy_after}"
            )
        self._unhealthy_after = unhealthy_after
        self._healthy_after = healthy_after

    @property
    def thresholds(self) -> tuple[int, int]:
        """(unhealthy_after, healthy_after)."""
        return self._unhealthy_after, self._healthy_after

    @property
    def routable(self) -> bool:
        """Whether routing may send the provider traffic: healthy, or not yet known."""
        return self.state != "unhealthy"

    @property
    def probed(self) -> bool:
        """True once at least one probe result has been recorded."""
        return self.last is not None

    @property
    def consecutive_failures(self) -> int:
        """Failed probes in a row (0 after any success)."""
        return self._consecutive_failures

    @property
    def consecutive_successes(self) -> int:
        """Successful probes in a row (0 after any failure)."""
        return self._consecutive_successes

    def record(self, result: ProbeResult, now: float) -> Change | None:
        """Record one probe result at `now`; the change of state it made, if any."""
        self.last, self.last_at = result, now
        old = self.state
        if result.ok:
            self._consecutive_successes += 1
            self._consecutive_failures = 0
            if old == "unknown" or (old == "unhealthy" and self._consecutive_successes >= self._healthy_after):
                self.state = "healthy"
        else:
            self._consecutive_failures += 1
            self._consecutive_successes = 0
            if old != "unhealthy" and self._consecutive_failures >= self._unhealthy_after:
                self.state = "unhealthy"
        if self.state == old:
            return None
        self.since = now
        return Change(old, self.state)

    def observe(self, name: str, result: ProbeResult, now: float, url: str, *, settle: bool = False) -> Change | None:
        """`record` one probe result of provider `name` (`url`: the URL probed, fit for a log) and
        log the change of state it made. `settle`: count it as many times in a row as the
        thresholds ask, so one result decides the state (a reload's first probe, which must not
        leave a provider `unknown` until its loop's next probes)."""
        old = self.state
        threshold = self._healthy_after if result.ok else self._unhealthy_after
        for _ in range(threshold if settle else 1):
            change = self.record(result, now)
            if change is not None:
                log_change(name, change, result, url)
        return None if self.state == old else Change(old, self.state)

    def __repr__(self) -> str:
        return (
            f"HealthState({self.state}, failures={self._consecutive_failures}, "
            f"successes={self._consecutive_successes}, last={self.last.reason if self.last else None!r})"
        )


async def probe_loop(
    name: str,
    state: HealthState,
    probe: Probe,
    interval_s: float,
    timeout_s: float,
    *,
    url: str,
    wall: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    on_probed: Callable[[], None] | None = None,
) -> None:
    """Probe at once, then every `interval_s`, forever; each probe bounded by `timeout_s`.

    Only changes of state are logged (`provider_health_changed`, with the reason and `url`, the
    URL probed as fit for a log), so a steady state stays quiet. Stop it by cancelling the
    enclosing task group.
    """
    while True:
        state.observe(name, await probe_once(probe, timeout_s), wall(), url)
        if on_probed is not None:
            on_probed()
        await sleep(interval_s)


def log_change(name: str, change: Change, result: ProbeResult, url: str) -> None:
    level = _log.warning if change.new == "unhealthy" else _log.info
    level(
        "provider_health_changed",
        provider=name,
        old=change.old,
        new=change.new,
        healthy=change.new == "healthy",
        reason=result.reason,
        url=url,
    )
