"""Bounded time, the way TrueTime and ClockBound offer it.

`bounded_now` gives an interval [earliest, latest] that contains true time as long as
the effective bound holds; `commit_wait` waits until a timestamp is certainly past.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from clockcore.reading import ClockReading, SyncStatus, iso_utc


@dataclass(frozen=True)
class BoundedTime:
    earliest: datetime
    latest: datetime
    status: SyncStatus
    bound_ms: float  # the effective bound used: half the interval's width

    def to_dict(self) -> dict[str, object]:
        return {
            "earliest": iso_utc(self.earliest),
            "latest": iso_utc(self.latest),
            "status": self.status.value,
            "bound_ms": self.bound_ms,
        }


def _system_now() -> datetime:
    return datetime.now(UTC)


def bounded_now(reading: ClockReading, *, clock: Callable[[], datetime] = _system_now) -> BoundedTime:
    now = clock()
    bound_ms = reading.effective_bound_ms_at(now)
    half_width = timedelta(milliseconds=bound_ms)
    return BoundedTime(earliest=now - half_width, latest=now + half_width, status=reading.status, bound_ms=bound_ms)


def commit_wait(
    reading: ClockReading,
    timestamp: datetime,
    *,
    max_wait_s: float = 5.0,
    clock: Callable[[], datetime] = _system_now,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Block until `bounded_now().earliest > timestamp`; return the seconds waited.

    Spanner's rule: a value stamped `timestamp` (usually `bounded_now().latest`) may be
    made visible only once every clock agrees it is in the past. Raises `TimeoutError`
    if that takes longer than `max_wait_s` (a bound that large should have been refused).
    """
    return commit_wait_for(lambda: bounded_now(reading, clock=clock), timestamp, max_wait_s=max_wait_s, sleep=sleep)


def commit_wait_for(
    now: Callable[[], BoundedTime],
    timestamp: datetime,
    *,
    max_wait_s: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """`commit_wait` for any source of bounded time (a reading, a ClockBound segment)."""
    started = time.monotonic()
    while True:
        earliest = now().earliest
        if earliest > timestamp:
            return time.monotonic() - started
        waited = time.monotonic() - started
        if waited >= max_wait_s:
            raise TimeoutError(f"commit wait for {iso_utc(timestamp)} exceeded {max_wait_s} s")
        remaining = (timestamp - earliest).total_seconds()
        # Sleep for the gap plus a hair; re-check, since the bound grew meanwhile.
        sleep(min(max(remaining, 0.0) + 0.0001, max_wait_s - waited))
