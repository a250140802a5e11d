"""A retry-after pause for one route, measured on the injected monotonic clock."""

from __future__ import annotations

from router.clock import Clock


class Cooldown:
    """A retry-after pause for one route."""

    __slots__ = ("_clock", "_until")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._until: float | None = None

    def start(self, seconds: float) -> None:
        """Pause the route for `seconds`; extends, never shortens, an active cooldown."""
        # `not seconds > 0` also drops NaN, which would otherwise never expire or compare.
        if not seconds > 0:
            return
        end = self._clock.monotonic() + seconds
        # Concurrent 429s may carry different Retry-After values; the longest
        # one wins so a short hint cannot cut short a longer one already in force.
        if self._until is None or end > self._until:
            self._until = end

    def active(self) -> bool:
        """Whether the route is still paused."""
        return self.until() is not None

    def remaining(self) -> float:
        """Seconds left in the pause, 0.0 when not active."""
        end = self.until()
        return 0.0 if end is None else end - self._clock.monotonic()

    def until(self) -> float | None:
        """Monotonic end time of the pause when active, else None."""
        # An expired end needs no clearing: any later start() lands after it anyway.
        if self._until is not None and self._clock.monotonic() < self._until:
            return self._until
        return None

    def __repr__(self) -> str:
        return f"Cooldown(remaining={self.remaining():.3f})"
