"""Turn the worker's `ClockReading`s into ClockBound segment records.

The promise: at any moment, the bound a ClockBound client grows from the segment is at
least the effective bound the worker publishes (`ClockReading.effective_bound_ms_at`),
so an application reading the segment is never told more than the worker knows.

- as-of: the reference time, moved onto CLOCK_MONOTONIC_COARSE (monotonic now minus
  the reference's age), then 1 s earlier because TMDS stamps whole seconds, then one
  coarse-clock tick earlier because that clock lags by up to a tick. Earlier as-of,
  longer growth, larger client bound. Without a reference time the sampling time is the
  base (as `effective_bound_ms_at` does), with no whole-second allowance.
- bound: ClockErrorBound in ns, rounded up, plus 1 ns because the client truncates its
  growth term to whole nanoseconds; max drift: ppm x 1000 ppb, rounded up.
- SYNCHRONIZED -> Synchronized. NOT_SYNCHRONIZED -> FreeRunning with the last
  synchronized bound and as-of kept, so the bound keeps growing from there (what the
  ClockBound daemon does when chrony stops being synchronized), or Unknown if there
  never was one. A reading without a status -> Unknown. A failed sample writes nothing.
- void-after: the earlier of "three intervals after this write" (the writer is gone) and
  "as-of + max reference age" (the reference is too old to trust; the worker's verdict
  calls it REFERENCE_TOO_OLD).
- disruption support off and marker 0: Fargate offers no VMClock, and a client told
  support is on would insist on reading one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from clockcore.clockbound.writer import (
    CLOCK_MONOTONIC_COARSE,
    MAX_DRIFT_PPB_LIMIT,
    SegmentRecord,
    SegmentStatus,
)
from clockcore.reading import ClockReading, SyncStatus

_NS_PER_S = 1_000_000_000
# ReferenceTimestamp carries whole seconds: the reference may be up to this much older.
REFERENCE_RESOLUTION_NS = _NS_PER_S
# The client's growth term is cast to whole nanoseconds (`as i64`): up to 1 ns lost.
GROWTH_TRUNCATION_NS = 1
# Writes the segment may miss before clients must stop trusting it.
VOID_AFTER_INTERVALS = 3


@dataclass(frozen=True)
class Instant:
    """One moment on both clocks: the wall clock readings speak, the monotonic one segments speak."""

    real: datetime
    monotonic_ns: int


def instant_now() -> Instant:
    # Monotonic first: reading it a little early can only move as-of earlier.
    monotonic_ns = time.clock_gettime_ns(CLOCK_MONOTONIC_COARSE)
    return Instant(real=datetime.now(UTC), monotonic_ns=monotonic_ns)


def coarse_resolution_ns() -> int:
    return max(1, math.ceil(time.clock_getres(CLOCK_MONOTONIC_COARSE) * _NS_PER_S))


@dataclass(frozen=True)
class SegmentBasis:
    """What a bound grows from: kept across FreeRunning writes."""

    as_of_ns: int
    bound_ns: int
    max_drift_ppb: int
    from_reference: bool  # as-of came from a ReferenceTimestamp (so its age caps void-after)


def _exact_ns(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * _NS_PER_S + delta.microseconds * 1_000


def _ceil_scaled(value: float, scale: int) -> int:
    # Decimal(repr(x)) is the number as written (0.1 stays 0.1, not 0.1000000000000000055),
    # so an exact value is not rounded up by a binary-fraction hair.
    return math.ceil(Decimal(repr(value)) * scale)


def basis_for(reading: ClockReading, at: Instant, *, tick_ns: int) -> SegmentBasis:
    """The reading's bound placed on the monotonic clock, rounded the conservative way."""
    base = reading.reference_time if reading.reference_time is not None else reading.sampled_at
    # A reference stamped slightly in the future (whole seconds) counts as age 0, as the worker does.
    age_ns = max(0, _exact_ns(at.real - base))
    allowance_ns = tick_ns + (REFERENCE_RESOLUTION_NS if reading.reference_time is not None else 0)
    max_drift_ppb = _ceil_scaled(reading.max_drift_ppm, 1_000)
    if not 0 <= max_drift_ppb < MAX_DRIFT_PPB_LIMIT:
        raise ValueError(f"max drift of {reading.max_drift_ppm} ppm cannot be published (0 to under 10^6 ppm)")
    return SegmentBasis(
        as_of_ns=at.monotonic_ns - age_ns - allowance_ns,
        bound_ns=_ceil_scaled(reading.bound_ms, 1_000_000) + GROWTH_TRUNCATION_NS,
        max_drift_ppb=max_drift_ppb,
        from_reference=reading.reference_time is not None,
    )


def record_for(
    basis: SegmentBasis,
    status: SegmentStatus,
    *,
    at: Instant,
    interval_s: float,
    max_reference_age_s: float,
) -> SegmentRecord:
    void_after_ns = at.monotonic_ns + math.ceil(VOID_AFTER_INTERVALS * interval_s * _NS_PER_S)
    if basis.from_reference:
        void_after_ns = min(void_after_ns, basis.as_of_ns + math.floor(max_reference_age_s * _NS_PER_S))
    return SegmentRecord(
        as_of_ns=basis.as_of_ns,
        void_after_ns=void_after_ns,
        bound_ns=basis.bound_ns,
        max_drift_ppb=basis.max_drift_ppb,
        status=status,
        disruption_marker=0,
        disruption_support=False,
    )


class SegmentPublisher:
    """Decides each record from the latest reading; remembers the last synchronized basis.

    Pure: it returns records and never touches a file, so the worker pairs it with a
    `ClockBoundWriter` (`record = publisher.record_for(outcome)`; write it if not None).
    """

    def __init__(self, *, interval_s: float, max_reference_age_s: float, tick_ns: int | None = None) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        if not max_reference_age_s > 0:
            raise ValueError(f"max_reference_age_s must be positive, got {max_reference_age_s}")
        self.interval_s = interval_s
        self.max_reference_age_s = max_reference_age_s
        self.tick_ns = coarse_resolution_ns() if tick_ns is None else tick_ns
        self.last_synchronized: SegmentBasis | None = None

    def record_for(self, reading: ClockReading | None, *, at: Instant | None = None) -> SegmentRecord | None:
        """The record to write for this sample; None (write nothing) for a failed sample."""
        if reading is None:
            return None
        at = instant_now() if at is None else at
        if reading.status is SyncStatus.SYNCHRONIZED:
            basis = basis_for(reading, at, tick_ns=self.tick_ns)
            self.last_synchronized = basis
            status = SegmentStatus.SYNCHRONIZED
        elif reading.status is SyncStatus.NOT_SYNCHRONIZED and self.last_synchronized is not None:
            basis = self.last_synchronized
            status = SegmentStatus.FREE_RUNNING
        else:
            # Never synchronized, or TMDS left the status out: nothing to vouch for. The
            # bound is still the best known one, for whoever looks.
            basis = self.last_synchronized or basis_for(reading, at, tick_ns=self.tick_ns)
            status = SegmentStatus.UNKNOWN
        return record_for(
            basis, status, at=at, interval_s=self.interval_s, max_reference_age_s=self.max_reference_age_s
        )
