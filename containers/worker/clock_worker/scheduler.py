"""Pace samples on the monotonic clock.

Sample k is due at `start + k × interval` on `time.monotonic()`, so a wall-clock step
(NTP slew or step, a VM resume adjusting the time) neither skips nor doubles samples,
and a slow sample does not push the following ones later: the grid stays put. If a
sample overran one or more grid points, the next runs at once and any further missed
points are skipped (counted), so an overrun never turns into a burst.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class MonotonicSchedule:
    def __init__(self, interval_s: float, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        if interval_s <= 0:
            raise ValueError("interval must be positive")
        self._interval_s = interval_s
        self._monotonic = monotonic
        self._start = monotonic()
        self._tick = 0  # index of the sample most recently due
        self.skipped_total = 0

    @property
    def interval_s(self) -> float:
        return self._interval_s

    def due_at(self, tick: int) -> float:
        return self._start + tick * self._interval_s

    def advance(self) -> tuple[float, int]:
        """Move to the next sample: (seconds to wait until it is due, grid points skipped)."""
        now = self._monotonic()
        next_tick = self._tick + 1
        skipped = 0
        # Overran more than one grid point: keep only the most recent one (run it now).
        latest_passed = math.floor((now - self._start) / self._interval_s)
        if latest_passed > next_tick:
            skipped = latest_passed - next_tick
            next_tick = latest_passed
        self._tick = next_tick
        self.skipped_total += skipped
        return max(0.0, self.due_at(next_tick) - now), skipped
