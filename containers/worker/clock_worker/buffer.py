"""A bounded, thread-safe queue of samples not yet accepted by CloudWatch.

Samples keep their original timestamps while they wait; the buffer also notes when
each was added (monotonic), so the sender knows how long the oldest has waited. Beyond
the bound the oldest
sample is dropped (the newest data matters most to an alarm); drops are counted and
logged, the first at once and then at most once a minute while they continue.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from clock_worker.logs import log_event
from clock_worker.metrics import SampleMetrics

log = logging.getLogger("clock_worker.buffer")

DROP_LOG_EVERY_S = 60.0


class SampleBuffer:
    def __init__(self, max_samples: int, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._samples: deque[SampleMetrics] = deque()
        self._added_at: deque[float] = deque()  # monotonic time each sample was added, in step with _samples
        self._max_samples = max_samples
        self._lock = threading.Lock()
        self._monotonic = monotonic
        self._last_drop_log: float | None = None
        self.dropped_total = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._samples)

    def add(self, sample: SampleMetrics) -> None:
        dropped: SampleMetrics | None = None
        added_at = self._monotonic()
        with self._lock:
            self._samples.append(sample)
            self._added_at.append(added_at)
            if len(self._samples) > self._max_samples:
                dropped = self._samples.popleft()
                self._added_at.popleft()
                self.dropped_total += 1
        if dropped is not None:
            now = self._monotonic()
            if self._last_drop_log is None or now - self._last_drop_log >= DROP_LOG_EVERY_S:
                self._last_drop_log = now
                log_event(
                    log,
                    logging.WARNING,
                    "buffer_dropped",
                    f"buffer full ({self._max_samples} samples): dropped the oldest sample; "
                    f"{self.dropped_total} dropped so far",
                    dropped_total=self.dropped_total,
                    dropped_timestamp=dropped.timestamp.isoformat(),
                    buffer_samples=self._max_samples,
                )

    def oldest_added_at(self) -> float | None:
        """When (monotonic) the oldest waiting sample was added; None when empty."""
        with self._lock:
            return self._added_at[0] if self._added_at else None

    def peek_batch(self, max_datums: int) -> list[SampleMetrics]:
        """The oldest samples whose datums fit in one request (at least one sample)."""
        batch: list[SampleMetrics] = []
        datums = 0
        with self._lock:
            for sample in self._samples:
                if batch and datums + sample.datum_count > max_datums:
                    break
                batch.append(sample)
                datums += sample.datum_count
        return batch

    def remove(self, sent: list[SampleMetrics]) -> None:
        """Forget samples that were sent (or rejected for good); ones dropped meanwhile are skipped."""
        sent_ids = {id(sample) for sample in sent}
        with self._lock:
            while self._samples and id(self._samples[0]) in sent_ids:
                self._samples.popleft()
                self._added_at.popleft()
            if any(id(sample) in sent_ids for sample in self._samples):
                kept = [
                    (sample, added_at)
                    for sample, added_at in zip(self._samples, self._added_at, strict=True)
                    if id(sample) not in sent_ids
                ]
                self._samples = deque(sample for sample, _ in kept)
                self._added_at = deque(added_at for _, added_at in kept)
