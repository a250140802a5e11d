"""Peak-EWMA latency estimate of one route, after Finagle/linkerd and tower's `load/peak_ewma.rs`.

See `PeakEwma` for the math.
"""

from __future__ import annotations

import math

from router.clock import Clock


class PeakEwma:
    """Peak-EWMA of time-to-first-byte (seconds), decayed by half-life (Finagle/linkerd).

    The estimate reacts asymmetrically:

    * A sample *above* the current estimate replaces it outright. Latency
      spikes are the signal we most need to act on, so we take the peak at once
      instead of letting it trickle in.
    * A sample *below* the estimate is blended in::

          w     = exp(-elapsed / tau)          # weight kept by the old estimate
          value = value * w + sample * (1 - w)

      where ``elapsed`` is the time since the previous observation and
      ``tau = half_life / ln 2``, so after exactly one half-life the old
      estimate keeps half its weight. Back-to-back samples barely move the
      value (w ~ 1); after a long quiet gap the old estimate is stale and the
      new sample dominates (w -> 0).

    Like tower, the estimate read by `value()` decays toward zero while no
    samples arrive (``value * exp(-idle / tau)``): a route that looked slow once
    (a timeout records its full wait) becomes cheap again over a few half-lives,
    is chosen again, and so gets re-measured instead of being starved forever.
    Reads never mutate the estimate.
    """

    __slots__ = ("_clock", "_samples", "_tau_s", "_updated_at", "_value")

    def __init__(self, half_life_s: float, clock: Clock) -> None:
        if not half_life_s > 0 or math.isinf(half_life_s):
            raise ValueError(f"half_life_s must be a positive finite number, got {half_life_s!r}")
        self._clock = clock
        # exp(-t/tau) == 0.5 at t == half_life, hence tau = half_life / ln 2.
        self._tau_s = half_life_s / math.log(2)
        self._value: float | None = None
        self._updated_at = 0.0
        self._samples = 0

    def observe(self, rtt_s: float) -> None:
        """Fold one time-to-first-byte sample (seconds) into the estimate."""
        if not rtt_s >= 0 or math.isinf(rtt_s):
            # Rejects NaN as well: one NaN would poison the estimate for good.
            raise ValueError(f"rtt_s must be a finite number >= 0, got {rtt_s!r}")
        now = self._clock.monotonic()
        if self._value is None or rtt_s > self._value:
            self._value = rtt_s
        else:
            # max(): a clock that steps backwards must not give w > 1.
            elapsed = max(0.0, now - self._updated_at)
            w = math.exp(-elapsed / self._tau_s)
            self._value = self._value * w + rtt_s * (1.0 - w)
        self._updated_at = now
        self._samples += 1

    def value(self) -> float | None:
        """The current estimate in seconds, decayed since the last sample; None before any."""
        if self._value is None:
            return None
        idle = max(0.0, self._clock.monotonic() - self._updated_at)
        return self._value * math.exp(-idle / self._tau_s)

    @property
    def samples(self) -> int:
        """How many samples have been observed."""
        return self._samples

    def __repr__(self) -> str:
        shown = "None" if self._value is None else f"{self._value:.3f}"
        return f"PeakEwma(value={shown}, samples={self._samples})"
