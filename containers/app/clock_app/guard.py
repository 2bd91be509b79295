"""The clock guard: which source answers, what it says, and the gate's hot path.

Two sources, one verdict vocabulary:

- **The ClockBound segment** (`CLOCK_CLOCKBOUND_SHM`, see `clock_app.segment`), which the
  worker sidecar writes from its own metadata readings. When the setting names a segment
  that exists, the segment answers every check: no request, no cache, no thread, and the
  verdict comes from `clockcore.clockbound.verdict.judge_segment`, with the reasons the
  metadata path gives for the same clock state.
- **The task metadata endpoint**, otherwise (no setting, or no segment there yet): the
  guard keeps the last sample (a reading or the `SampleError` that replaced it) for
  `cache_ttl_s`, counted from the moment the sample completed, so any request rate costs
  at most one metadata request per TTL. When the sample is stale, the first caller starts
  one fetch and every caller that arrives meanwhile awaits the same future (single
  flight). The blocking HTTP read runs in a worker thread so the event loop keeps serving.
  Failures are cached like readings: during an outage the app must not turn its own
  traffic into a flood of metadata requests. The verdict is judged per call, at the
  caller's "now", because the effective bound grows with the reference's age even while
  the cached reading is unchanged.

`check()` describes the clock at this instant (the API's /api/clock, /readyz, commit);
`admit()` is the gated operation's hot path: a SAFE verdict's stamp, or the check to
refuse with. From the segment, a SAFE verdict is reused for as long as it provably holds
(see `clock_app.segment`), so the gate costs about what stamping the time costs.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio.to_thread

from clock_app.history import HistoryEntry, ReadingHistory
from clock_app.isotime import utc_us
from clock_app.segment import SYNC_STATUS, SegmentRead, SegmentSource, Stamp, utc_from_ns
from clock_app.settings import AppSettings
from clockcore import BoundedTime, ClockReading, SampleError, Verdict, bounded_now, judge, read_clock
from clockcore.clockbound.reader import GENERATION_WORD
from clockcore.clockbound.verdict import SegmentLimits

log = logging.getLogger("clock_app.guard")

ClockReader = Callable[[], ClockReading]


class SourceKind(str, enum.Enum):
    CLOCKBOUND = "clockbound"  # the ClockBound shared-memory segment
    METADATA = "metadata"  # the task metadata endpoint


@dataclass(frozen=True)
class ClockSource:
    """Which source answered a check, and, when a segment is configured but the endpoint
    answered, why the segment did not."""

    kind: SourceKind
    segment_path: str | None = None  # the configured segment (CLOCK_CLOCKBOUND_SHM), if any
    note: str | None = None

    @property
    def description(self) -> str:
        if self.kind is SourceKind.CLOCKBOUND:
            return f"ClockBound segment {self.segment_path}"
        if self.segment_path is None:
            return "task metadata endpoint"
        return f"task metadata endpoint (segment: {self.note})"


METADATA_ONLY = ClockSource(SourceKind.METADATA)


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
    """A source judged at one instant: what a request acts on."""

    verdict: Verdict
    at: datetime
    cache_age_s: float
    source: ClockSource
    # Bounded time at `at`, when there is a reading to trust (also when UNSAFE).
    bounded: BoundedTime | None = None
    sample: ClockSample | None = None  # the metadata sample that answered
    segment: SegmentRead | None = None  # the segment read that answered
    segment_monotonic_ns: int | None = None  # the CLOCK_MONOTONIC_COARSE instant `at` stands for
    # Bounded time at any later moment, from the same reading or record (commit wait).
    now: Callable[[], BoundedTime] | None = None

    @property
    def reading(self) -> ClockReading | None:
        return self.sample.reading if self.sample is not None else None

    @property
    def error_kind(self) -> str | None:
        if self.sample is not None and self.sample.error is not None:
            return self.sample.error.kind
        return self.segment.error_kind if self.segment is not None else None


def utc_now() -> datetime:
    return datetime.now(UTC)


class ClockGuard:
    def __init__(
        self,
        settings: AppSettings,
        history: ReadingHistory,
        *,
        reader: ClockReader | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = utc_now,
        segment: SegmentSource | None = None,
    ) -> None:
        self._settings = settings
        self._history = history
        self._reader = reader or self._read_metadata
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._sample: ClockSample | None = None
        self._inflight: asyncio.Future[ClockSample] | None = None
        self._last_label: str | None = None
        self._last_source: SourceKind | None = None
        if segment is None and settings.clockbound_shm:
            limits = SegmentLimits.of(
                threshold_ms=settings.threshold_ms, max_reference_age_s=settings.max_reference_age_s
            )
            segment = SegmentSource(settings.clockbound_shm, limits)
        self._segment = segment
        # The segment's clocks, bound here for the hot path (one attribute lookup each).
        self._realtime_ns: Callable[[], int] = segment.realtime_ns if segment is not None else time.time_ns
        self._monotonic_ns: Callable[[], int] = segment.monotonic_ns if segment is not None else time.monotonic_ns
        self._noted: SegmentRead | None = None  # the last segment read seen by _note_segment
        self._noted_key: tuple[object, ...] | None = None

    def _read_metadata(self) -> ClockReading:
        return read_clock(self._settings.metadata_uri, max_drift_ppm=self._settings.max_drift_ppm)

    @property
    def last_sample(self) -> ClockSample | None:
        return self._sample

    def invalidate(self) -> None:
        """Forget the cached sample (local mode, after the emulator's scenario changed)."""
        self._sample = None

    def close(self) -> None:
        if self._segment is not None:
            self._segment.close()

    # ------------------------------------------------------------ the two entry points
    async def check(self) -> ClockCheck:
        """The clock as the answering source sees it now, judged now."""
        segment = self._segment
        if segment is not None:
            realtime_ns = segment.realtime_ns()
            monotonic_ns = segment.monotonic_ns()
            read = segment.current(monotonic_ns, fresh=True)
            if read is not None:
                self._note_segment(read, realtime_ns)
                return self._segment_check(segment, read, realtime_ns, monotonic_ns)
        return await self._metadata_check()

    def try_admit(self) -> Stamp | ClockCheck | None:
        """The gate without awaiting: what `admit` gives when the segment answers; None
        when the metadata endpoint answers (then await `admit`)."""
        segment = self._segment
        if segment is None:
            return None
        # CLOCK_REALTIME first, then the monotonic clock, as ClockBound's client reads them.
        realtime_ns = self._realtime_ns()
        monotonic_ns = self._monotonic_ns()
        hot = segment.hot
        if hot is not None:
            until_ns, words, generation, as_of_ns, bound_ns, drift_ppb, status = hot
            if monotonic_ns < until_ns and words[GENERATION_WORD] == generation:
                # The hot path: the record is unchanged and its SAFE verdict still holds.
                # `stamp_at`, inline (a Python frame less per request), without the guard
                # that SegmentSource._arm made needless (the elapsed time is >= 0): the
                # grown bound is bound + ceil(elapsed x drift / 1e9), the instants rounded
                # outwards to microseconds; tests/app/test_app_segment.py holds it to
                # stamp_at's answer.
                grown = bound_ns - (as_of_ns - monotonic_ns) * drift_ppb // 1_000_000_000
                return ((realtime_ns - grown) // 1000, -((-realtime_ns - grown) // 1000), status, grown / 1e6)
        read = segment.current(monotonic_ns)
        if read is None:
            return None
        if read is not self._noted:
            self._note_segment(read, realtime_ns)
        if read.verdict.safe:
            return segment.stamp(read, realtime_ns, monotonic_ns)
        return self._segment_check(segment, read, realtime_ns, monotonic_ns)

    async def admit(self) -> Stamp | ClockCheck:
        """The gate: bounded now to stamp an operation with when SAFE, else the check to refuse with.

        The stamp is taken at the instant the verdict was checked, so its bound is the
        one the verdict allowed.
        """
        admitted = self.try_admit()
        if admitted is not None:
            return admitted
        check = await self._metadata_check()
        bounded = check.bounded
        if check.verdict.safe and bounded is not None:
            return (utc_us(bounded.earliest), utc_us(bounded.latest), bounded.status.value, bounded.bound_ms)
        return check

    # ------------------------------------------------------------ the segment
    def _segment_check(
        self, segment: SegmentSource, read: SegmentRead, realtime_ns: int, monotonic_ns: int
    ) -> ClockCheck:
        trusted = read.trusted
        return ClockCheck(
            verdict=read.verdict,
            at=utc_from_ns(realtime_ns),
            cache_age_s=0.0,  # read from shared memory at this check
            source=ClockSource(SourceKind.CLOCKBOUND, segment_path=segment.path),
            bounded=segment.bounded(read, realtime_ns, monotonic_ns) if trusted else None,
            segment=read,
            segment_monotonic_ns=monotonic_ns,
            now=(lambda: segment.bounded_now(read)) if trusted else None,
        )

    def _note_segment(self, read: SegmentRead, realtime_ns: int) -> None:
        """History and log, once per new record or changed verdict (not once per request)."""
        self._noted = read
        key = read.key
        if key == self._noted_key and self._last_source is SourceKind.CLOCKBOUND:
            return
        self._noted_key = key
        at = utc_from_ns(realtime_ns)
        snapshot, judgement = read.snapshot, read.judgement
        shown = judgement is not None and judgement.trusted and snapshot is not None
        self._history.record(
            HistoryEntry(
                at=at,
                bound_ms=snapshot.bound_ns / 1e6 if shown and snapshot is not None else None,
                effective_bound_ms=judgement.effective_bound_ns / 1e6 if shown and judgement is not None else None,
                status=SYNC_STATUS[snapshot.status].value if shown and snapshot is not None else None,
                reference_age_s=judgement.reference_age_ns / 1e9 if shown and judgement is not None else None,
                safe=read.verdict.safe,
                reasons=tuple(reason.value for reason in read.verdict.reasons),
                error_kind=read.error_kind,
                source=SourceKind.CLOCKBOUND.value,
            )
        )
        self._log_transition(read.verdict, ClockSource(SourceKind.CLOCKBOUND, segment_path=read.path))

    # ------------------------------------------------------------ the metadata endpoint
    def _metadata_source(self) -> ClockSource:
        segment = self._segment
        if segment is None:
            return METADATA_ONLY
        return ClockSource(SourceKind.METADATA, segment_path=segment.path, note=segment.absent_note)

    async def _metadata_check(self) -> ClockCheck:
        sample = await self.sample()
        at = self._wall_clock()
        reading = sample.reading
        verdict = self._judge(sample, at)
        source = self._metadata_source()
        if self._last_source is not SourceKind.METADATA:
            self._log_transition(verdict, source)  # back from the segment with a cached sample
        return ClockCheck(
            verdict=verdict,
            at=at,
            cache_age_s=max(0.0, self._monotonic() - sample.completed_at),
            source=source,
            bounded=bounded_now(reading, clock=lambda: at) if reading is not None else None,
            sample=sample,
            now=(lambda: bounded_now(reading)) if reading is not None else None,
        )

    async def sample(self) -> ClockSample:
        """The cached sample if younger than the TTL, otherwise a fresh one shared by all callers."""
        cached = self._sample
        if cached is not None and self._monotonic() - cached.completed_at < self._settings.cache_ttl_s:
            return cached
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._refresh())
        # shield: a caller that disconnects must not cancel the fetch the others await.
        return await asyncio.shield(self._inflight)

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
        self._log_transition(verdict, self._metadata_source())

    # ------------------------------------------------------------ the log
    def _log_transition(self, verdict: Verdict, source: ClockSource) -> None:
        # Log transitions only: one line when the source changes or the gate closes or
        # opens, not one per request.
        if source.kind is not self._last_source:
            log.info("clock source: %s", source.description)
            self._last_source = source.kind
        label = verdict.label + ":" + ",".join(reason.value for reason in verdict.reasons)
        if label != self._last_label:
            if verdict.safe:
                log.info("clock verdict SAFE (%s)", source.kind.value)
            else:
                log.warning("clock verdict UNSAFE (%s): %s", source.kind.value, "; ".join(verdict.details))
            self._last_label = label


def _unavailable_detail(error: SampleError | None) -> str:
    if error is None:
        return "no clock reading could be taken"
    return f"{error.kind}: {error.message}"
