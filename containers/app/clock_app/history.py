"""An in-process ring buffer of recent clock samples, for the page's chart and /api/history.

One entry per metadata request (so at most one per cache TTL), or, from the ClockBound
segment, one per record the worker writes and per change of verdict, whatever the
request rate; old entries fall off the end. Nothing is persisted: the worker's CloudWatch
metrics are the durable record.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime

from clockcore import ClockReading, SampleError, Verdict


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime  # when the sample completed (wall clock)
    bound_ms: float | None
    effective_bound_ms: float | None
    status: str | None
    reference_age_s: float | None
    safe: bool
    reasons: tuple[str, ...]
    error_kind: str | None
    source: str = "metadata"  # which source answered: "metadata" or "clockbound"


class ReadingHistory:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: deque[HistoryEntry] = deque(maxlen=capacity)
        self._lock = threading.Lock()

    def append(self, reading: ClockReading | None, error: SampleError | None, verdict: Verdict, at: datetime) -> None:
        entry = HistoryEntry(
            at=at,
            bound_ms=reading.bound_ms if reading else None,
            effective_bound_ms=reading.effective_bound_ms_at(at) if reading else None,
            status=reading.status.value if reading else None,
            reference_age_s=reading.reference_age_s_at(at) if reading else None,
            safe=verdict.safe,
            reasons=tuple(reason.value for reason in verdict.reasons),
            error_kind=error.kind if error else None,
        )
        self.record(entry)

    def record(self, entry: HistoryEntry) -> None:
        with self._lock:
            self._entries.append(entry)

    def recent(self, limit: int | None = None) -> list[HistoryEntry]:
        """Oldest first, at most `limit` of the newest entries."""
        with self._lock:
            entries = list(self._entries)
        return entries if limit is None else entries[-limit:] if limit > 0 else []
