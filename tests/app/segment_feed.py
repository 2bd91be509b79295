"""Test helpers: the worker's side of the ClockBound segment, by hand, and clocks to move.

`SegmentFeed` does what the worker does with each sample: read the task document the
way the worker reads it (`clock_worker.sampler.Sampler`, on clockcore's TMDS reader),
turn it into a record (`SegmentPublisher`) and write it (`ClockBoundWriter`); a failed
sample writes nothing, so the segment keeps its last record.
"""

from __future__ import annotations

import time
from pathlib import Path

from clock_app.segment import SegmentSource
from clockcore.clockbound.reader import CLOCK_MONOTONIC_COARSE
from clock_worker.sampler import Sampler
from clockcore import ClockReading
from clockcore.clockbound import ClockBoundWriter, SegmentPublisher, SegmentRecord
from clockcore.clockbound.verdict import SegmentLimits


class SegmentFeed:
    def __init__(
        self,
        path: Path,
        metadata_uri: str | None = None,
        *,
        interval_s: float = 1.0,
        max_reference_age_s: float = 120.0,
        max_drift_ppm: float = 50.0,
    ) -> None:
        self.path = path
        self.publisher = SegmentPublisher(interval_s=interval_s, max_reference_age_s=max_reference_age_s)
        self.sampler = Sampler(metadata_uri, max_drift_ppm=max_drift_ppm, connect_timeout_s=1.0, read_timeout_s=2.0)
        self._writer: ClockBoundWriter | None = None
        self.last_reading: ClockReading | None = None
        self.last_record: SegmentRecord | None = None

    @property
    def writer(self) -> ClockBoundWriter:
        if self._writer is None:
            self._writer = ClockBoundWriter(self.path)
        return self._writer

    def sample(self) -> SegmentRecord | None:
        """One worker cycle: sample, map, write (nothing for a failed sample). The record written, or None."""
        outcome = self.sampler.sample()
        reading = outcome if isinstance(outcome, ClockReading) else None
        self.last_reading = reading
        record = self.publisher.record_for(reading)
        if record is not None:
            self.write(record)
        return record

    def write(self, record: SegmentRecord) -> int:
        self.last_record = record
        return self.writer.write(record)

    def close(self) -> None:
        self.sampler.close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class Clocks:
    """CLOCK_MONOTONIC_COARSE and CLOCK_REALTIME, both moved forward by `advance` (no waiting)."""

    def __init__(self) -> None:
        self.offset_ns = 0

    def monotonic_ns(self) -> int:
        return time.clock_gettime_ns(CLOCK_MONOTONIC_COARSE) + self.offset_ns

    def realtime_ns(self) -> int:
        return time.time_ns() + self.offset_ns

    def advance(self, seconds: float) -> None:
        self.offset_ns += round(seconds * 1e9)


def segment_source(path: Path, clocks: Clocks | None = None, *, threshold_ms: float = 1.0, max_reference_age_s: float = 120.0, **kwargs: object) -> SegmentSource:
    clocks = clocks or Clocks()
    limits = SegmentLimits.of(threshold_ms=threshold_ms, max_reference_age_s=max_reference_age_s)
    return SegmentSource(str(path), limits, monotonic_ns=clocks.monotonic_ns, realtime_ns=clocks.realtime_ns, **kwargs)  # type: ignore[arg-type]
