"""The clock guard: on-demand clock checks through a short-lived, single-flight cache.

Every request that needs the clock asks the guard. The guard keeps the last sample
(a reading or the `SampleError` that replaced it) for `cache_ttl_s`, counted from the
moment the sample completed, so any request rate costs at most one metadata request
per TTL. When the sample is stale, the first caller starts one fetch and every caller
that arrives meanwhile awaits the same future (single flight). The blocking HTTP read
runs in a worker thread so the event loop keeps serving.

Failures are cached like readings: during an outage the app must not turn its own
traffic into a flood of metadata requests.

The verdict is judged per call, at the caller's "now", because the effective bound
grows with the reference's age even while the cached reading is unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

import anyio.to_thread

from clockcore import ClockReading, SampleError, Verdict, judge, read_clock
from clock_app.history import ReadingHistory
from clock_app.settings import AppSettings

log = logging.getLogger("clock_app.guard")

ClockReader = Callable[[], ClockReading]


@dataclass(frozen=True)
class ClockSample:
    """What one metadata request gave: a reading, or the error that stood in for it."""

    reading: ClockReading | None
    error: SampleError | None
    completed_at: float  # monotonic seconds, for the cache's age

    def __post_init__(self) -> None:
        if (self.reading is None) == (self.error is None):
            raise ValueError("a sample has exactly one of reading and error")


@dataclass(frozen=True)
class ClockCheck:
    """A sample judged at one instant: what a request acts on."""

    sample: ClockSample
    verdict: Verdict
    at: datetime
    cache_age_s: float

    @property
    def reading(self) -> ClockReading | None:
        return self.sample.reading


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class ClockGuard:
    def __init__(
        self,
        settings: AppSettings,
        history: ReadingHistory,
        *,
        reader: ClockReader | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._settings = settings
        self._history = history
        self._reader = reader or self._read_metadata
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._sample: ClockSample | None = None
        self._inflight: asyncio.Future[ClockSample] | None = None
        self._last_label: str | None = None

    def _read_metadata(self) -> ClockReading:
        return read_clock(self._settings.metadata_uri, max_drift_ppm=self._settings.max_drift_ppm)

    @property
    def last_sample(self) -> ClockSample | None:
        return self._sample

    def invalidate(self) -> None:
        """Forget the cached sample (local mode, after the emulator's scenario changed)."""
        self._sample = None

    async def sample(self) -> ClockSample:
        """The cached sample if younger than the TTL, otherwise a fresh one shared by all callers."""
        cached = self._sample
        if cached is not None and self._monotonic() - cached.completed_at < self._settings.cache_ttl_s:
            return cached
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._refresh())
        # shield: a caller that disconnects must not cancel the fetch the others await.
        return await asyncio.shield(self._inflight)

    async def check(self) -> ClockCheck:
        sample = await self.sample()
        at = self._wall_clock()
        verdict = self._judge(sample, at)
        return ClockCheck(sample=sample, verdict=verdict, at=at, cache_age_s=max(0.0, self._monotonic() - sample.completed_at))

    def _judge(self, sample: ClockSample, at: datetime) -> Verdict:
        """The verdict on a sample at `at`: the bound keeps growing, so each caller's own now."""
        return judge(
            sample.reading,
            at=at,
            threshold_ms=self._settings.threshold_ms,
            max_reference_age_s=self._settings.max_reference_age_s,
            unavailable_detail=_unavailable_detail(sample.error),
        )

    async def _refresh(self) -> ClockSample:
        try:
            try:
                reading = await anyio.to_thread.run_sync(self._reader)
                sample = ClockSample(reading=reading, error=None, completed_at=self._monotonic())
            except SampleError as error:
                sample = ClockSample(reading=None, error=error, completed_at=self._monotonic())
            self._sample = sample
            self._record(sample)
            return sample
        finally:
            self._inflight = None

    def _record(self, sample: ClockSample) -> None:
        at = self._wall_clock()
        verdict = self._judge(sample, at)
        self._history.append(sample.reading, sample.error, verdict, at)
        # Log transitions only: one line when the gate closes or opens, not one per request.
        label = verdict.label + ":" + ",".join(reason.value for reason in verdict.reasons)
        if label != self._last_label:
            if verdict.safe:
                log.info("clock verdict SAFE")
            else:
                log.warning("clock verdict UNSAFE: %s", "; ".join(verdict.details))
            self._last_label = label


def _unavailable_detail(error: SampleError | None) -> str:
    if error is None:
        return "no clock reading could be taken"
    return f"{error.kind}: {error.message}"
