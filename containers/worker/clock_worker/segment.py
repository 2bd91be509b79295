"""The task's ClockBound segment: one record per good sample, nothing on a failed one.

Every ClockBound client in the task (C, Rust, Python, YugabyteDB's `time_source=clockbound`)
reads bounded time from this file. The record comes from `SegmentPublisher` (the bound
and its reference instant on the monotonic clock); a failed sample writes nothing, so
the last record's bound keeps growing until its void-after. The file is opened once
and written in place: a reader that mapped it earlier keeps seeing updates, also across
a worker restart.

A segment that cannot be written (a missing volume, a foreign file at the path) never
stops the worker: metrics go on, the error is logged once per outage, and opening is
tried again with every sample. The worker is not healthy while it fails.
"""

from __future__ import annotations

import logging
from pathlib import Path

from clockcore import ClockReading
from clockcore.clockbound import ClockBoundError, ClockBoundWriter, SegmentPublisher, SegmentStatus

from clock_worker.logs import log_event

log = logging.getLogger("clock_worker.segment")


class ClockBoundSegment:
    def __init__(self, path: Path, *, interval_s: float, max_reference_age_s: float) -> None:
        self.path = path
        self._publisher = SegmentPublisher(interval_s=interval_s, max_reference_age_s=max_reference_age_s)
        self._writer: ClockBoundWriter | None = None
        self._failing = False
        self.writes_total = 0

    def update(self, reading: ClockReading | None) -> SegmentStatus | None:
        """Write the record for this sample (None: a failed sample); the status written, or None."""
        record = self._publisher.record_for(reading)
        if record is None:
            return None
        try:
            if self._writer is None:
                self._writer = ClockBoundWriter(self.path)
            generation = self._writer.write(record)
        except (ClockBoundError, OSError, ValueError) as error:
            self._close_writer()
            if not self._failing:
                self._failing = True
                log_event(log, logging.ERROR, "clockbound_segment_failed",
                          f"cannot write the ClockBound segment {self.path}: {error}; retrying with every sample",
                          path=str(self.path))
            return None
        if self._failing or self.writes_total == 0:
            log_event(log, logging.INFO, "clockbound_segment_written",
                      f"ClockBound segment {self.path} written (generation {generation})",
                      path=str(self.path), generation=generation, status=record.status.name)
        self._failing = False
        self.writes_total += 1
        return record.status

    def _close_writer(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except (ClockBoundError, OSError, ValueError):
                pass
            self._writer = None

    def close(self) -> None:
        """Release the file; it stays, so readers keep the last record until its void-after."""
        self._close_writer()
