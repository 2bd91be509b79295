"""Take one clock sample: a `ClockReading`, or a counted `SampleFailure`. Never raises."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias

from clock_worker.logs import log_event
from clockcore import ClockReading, SampleError, parse_task_document
from clockcore.tmds import TaskMetadataReader

log = logging.getLogger("clock_worker.sampler")

# Not a SampleError kind: a bug in this code, reported the same way instead of crashing.
UNEXPECTED_KIND = "unexpected"


@dataclass(frozen=True)
class SampleFailure:
    kind: str  # a SampleError kind, or "unexpected"
    message: str
    at: datetime


SampleOutcome: TypeAlias = ClockReading | SampleFailure


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Sampler:
    def __init__(
        self,
        metadata_uri: str | None,
        *,
        max_drift_ppm: float,
        connect_timeout_s: float,
        read_timeout_s: float,
        fetch_document: Callable[[], Any] | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._max_drift_ppm = max_drift_ppm
        self._clock = clock
        # One kept-alive connection for the loop's reads: at 1 Hz that saves about half
        # of a sample's CPU (the TCP set-up and tear-down of a fresh connection).
        self._reader = TaskMetadataReader(
            metadata_uri, connect_timeout_s=connect_timeout_s, read_timeout_s=read_timeout_s
        )
        self._fetch = fetch_document or self._reader.fetch
        self.samples_total = 0
        self.failures_total = 0

    def sample(self) -> SampleOutcome:
        self.samples_total += 1
        try:
            document = self._fetch()
            return parse_task_document(document, sampled_at=self._clock(), max_drift_ppm=self._max_drift_ppm)
        except SampleError as error:
            return self._failed(error.kind, error.message)
        except Exception as error:
            return self._failed(UNEXPECTED_KIND, f"{error.__class__.__name__}: {error}"[:300])

    def close(self) -> None:
        self._reader.close()

    def _failed(self, kind: str, message: str) -> SampleFailure:
        self.failures_total += 1
        failure = SampleFailure(kind=kind, message=message, at=self._clock())
        log_event(
            log,
            logging.WARNING,
            "sample_failed",
            message,
            kind=kind,
            failures_total=self.failures_total,
            samples_total=self.samples_total,
        )
        return failure
