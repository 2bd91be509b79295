"""ClockBound's shared memory segment, so ClockBound clients can read the task's clock.

ClockBound's daemon cannot run in a Fargate task (it needs chrony, or the SYS_TIME
capability), but its clients only read a small memory-mapped file. This package writes
that file from the worker's TMDS readings (`mapping`, `writer`), reads it the way the
clients do (`reader`, written separately from the writer so each checks the other), and
shows it from a shell (`python -m clockcore.clockbound [PATH]`). Stdlib only; Linux.
"""

from clockcore.clockbound.errors import ClockBoundError
from clockcore.clockbound.mapping import Instant, SegmentBasis, SegmentPublisher, instant_now
from clockcore.clockbound.reader import BoundedNow, ClockBoundReader, ClockStatus, SegmentSnapshot, Timespec
from clockcore.clockbound.writer import DEFAULT_PATH, ClockBoundWriter, SegmentRecord, SegmentStatus

__all__ = [
    "DEFAULT_PATH",
    "BoundedNow",
    "ClockBoundError",
    "ClockBoundReader",
    "ClockBoundWriter",
    "ClockStatus",
    "Instant",
    "SegmentBasis",
    "SegmentPublisher",
    "SegmentRecord",
    "SegmentSnapshot",
    "SegmentStatus",
    "Timespec",
    "instant_now",
]
