"""Pydantic models of every request and response body: the API's OpenAPI schema.

Request bodies forbid unknown fields, so a typo is a 422 that names the field rather
than a silently ignored option.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

from clock_app.segment import STATUS_NAMES, SYNC_STATUS
from clockcore import BoundedTime, ClockReading, SampleError, VerdictReason
from clockcore.clockbound.reader import RESTART_GRACE_NS, SegmentSnapshot
from clockcore.clockbound.reader import ClockStatus as SegmentClockStatus
from clockcore.reading import SyncStatus

SourceName = Literal["clockbound", "metadata"]
SOURCE_FIELD = Field(
    description="Which source answered: 'clockbound' (the ClockBound shared-memory segment the worker writes) "
    "or 'metadata' (the task metadata endpoint).",
    examples=["clockbound"],
)

Label = Field(
    min_length=1,
    max_length=100,
    pattern=r"^[^\x00-\x1f\x7f]+$",
    description="What the operation is, for logs and the answer (1-100 printable characters).",
    examples=["transfer-42"],
)


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- clock
class TaskModel(BaseModel):
    cluster_name: str
    task_id: str
    family: str
    revision: str | None
    service_name: str | None
    availability_zone: str | None
    launch_type: str | None


class ReadingModel(BaseModel):
    """A ClockDrift reading, with the bound and reference age as of the check's instant.

    From the ClockBound segment: the record the worker wrote from its own reading, seen
    the way the metadata path sees a reading (the segment's as-of is one second and a
    coarse-clock tick before the reference; the reference time and age here count from
    the reference again, as TMDS stated it)."""

    sampled_at: datetime = Field(
        description="When the task document was read, or the segment copied (this task's clock)."
    )
    bound_ms: float = Field(
        description="ClockErrorBound as TMDS reported it, or the segment's bound at its as-of (rounded up to whole ns)."
    )
    effective_bound_ms: float = Field(description="The bound grown by reference age x max drift rate, at checked_at.")
    status: SyncStatus = Field(
        description="From the segment: Synchronized is SYNCHRONIZED, FreeRunning NOT_SYNCHRONIZED, Unknown UNKNOWN."
    )
    reference_time: datetime | None = Field(description="ReferenceTimestamp; null when TMDS omitted it.")
    reference_age_s: float | None = Field(description="Age of the reference at checked_at.")
    max_drift_ppm: float
    task: TaskModel | None = Field(
        description="The task, from the task document; null from the segment, which carries none."
    )

    @classmethod
    def of(cls, reading: ClockReading, at: datetime) -> ReadingModel:
        identity = reading.identity
        return cls(
            sampled_at=reading.sampled_at,
            bound_ms=reading.bound_ms,
            effective_bound_ms=reading.effective_bound_ms_at(at),
            status=reading.status,
            reference_time=reading.reference_time,
            reference_age_s=reading.reference_age_s_at(at),
            max_drift_ppm=reading.max_drift_ppm,
            task=TaskModel(
                cluster_name=identity.cluster_name,
                task_id=identity.task_id,
                family=identity.family,
                revision=identity.revision,
                service_name=identity.service_name,
                availability_zone=identity.availability_zone,
                launch_type=identity.launch_type,
            ),
        )

    @classmethod
    def of_segment(
        cls, snapshot: SegmentSnapshot, *, at: datetime, effective_bound_ns: int, reference_age_ns: int
    ) -> ReadingModel:
        reference_age = timedelta(microseconds=reference_age_ns // 1000)
        return cls(
            sampled_at=at,
            bound_ms=snapshot.bound_ns / 1e6,
            effective_bound_ms=effective_bound_ns / 1e6,
            status=SYNC_STATUS[snapshot.status],
            reference_time=at - reference_age,
            reference_age_s=reference_age_ns / 1e9,
            max_drift_ppm=snapshot.max_drift_ppb / 1000,
            task=None,
        )


class SegmentModel(BaseModel):
    """The ClockBound segment's own fields, as read at checked_at (present when the segment answered)."""

    path: str
    generation: int = Field(description="The record's generation: it changes with every write.")
    stored_status: Literal["Unknown", "Synchronized", "FreeRunning", "Disrupted"] = Field(
        description="The status the worker wrote: what the gate judges."
    )
    client_status: Literal["Unknown", "Synchronized", "FreeRunning", "Disrupted"] = Field(
        description="What a ClockBound client's now() reports at checked_at: Synchronized only for 5 s after as-of, "
        "then FreeRunning until void-after, then Unknown (for comparison; the gate uses stored_status)."
    )
    bound_ms: float = Field(description="The bound at as-of.")
    max_drift_ppb: int
    as_of_age_s: float = Field(description="Time since as-of on CLOCK_MONOTONIC_COARSE.")
    void_after_in_s: float = Field(description="Time until void-after; negative once it has passed.")
    void: bool

    @classmethod
    def of(cls, path: str, snapshot: SegmentSnapshot, monotonic_ns: int) -> SegmentModel:
        as_of_ns, void_after_ns = snapshot.as_of.ns, snapshot.void_after.ns
        client = snapshot.status
        if (
            client in (SegmentClockStatus.SYNCHRONIZED, SegmentClockStatus.FREE_RUNNING)
            and monotonic_ns >= as_of_ns + RESTART_GRACE_NS
        ):
            client = SegmentClockStatus.FREE_RUNNING if monotonic_ns < void_after_ns else SegmentClockStatus.UNKNOWN
        return cls(
            path=path,
            generation=snapshot.generation,
            stored_status=STATUS_NAMES[snapshot.status],  # type: ignore[arg-type]
            client_status=STATUS_NAMES[client],  # type: ignore[arg-type]
            bound_ms=snapshot.bound_ns / 1e6,
            max_drift_ppb=snapshot.max_drift_ppb,
            as_of_age_s=(monotonic_ns - as_of_ns) / 1e9,
            void_after_in_s=(void_after_ns - monotonic_ns) / 1e9,
            void=monotonic_ns >= void_after_ns,
        )


class ClockSourceModel(BaseModel):
    """Which source answered the check."""

    kind: SourceName = SOURCE_FIELD
    description: str = Field(
        description="The source in words, for people.", examples=["ClockBound segment /var/run/clockbound/shm0"]
    )
    segment_path: str | None = Field(description="The configured segment (CLOCK_CLOCKBOUND_SHM); null when none is.")
    note: str | None = Field(
        description="When a segment is configured but the metadata endpoint answered: why the segment did not."
    )


class SampleErrorModel(BaseModel):
    kind: str = Field(
        description="Machine-readable failure: a clockcore SampleError kind (http_status, timeout, ...) from the "
        "metadata endpoint, or clockbound_<kind> from the segment (clockbound_void, clockbound_busy, "
        "clockbound_permission, ...)."
    )
    message: str

    @classmethod
    def of(cls, error: SampleError) -> SampleErrorModel:
        return cls(kind=error.kind, message=error.message)


class BoundedTimeModel(BaseModel):
    """TrueTime-style interval: true time lies in [earliest, latest] while the bound holds."""

    earliest: datetime
    latest: datetime
    status: SyncStatus
    bound_ms: float = Field(description="The effective bound used: half the interval's width.")

    @classmethod
    def of(cls, bounded: BoundedTime) -> BoundedTimeModel:
        return cls(earliest=bounded.earliest, latest=bounded.latest, status=bounded.status, bound_ms=bounded.bound_ms)


class ClockStatus(BaseModel):
    verdict: Literal["SAFE", "UNSAFE"]
    safe: bool
    reasons: list[VerdictReason] = Field(description="Why the verdict is UNSAFE; empty when SAFE.")
    details: list[str] = Field(description="One sentence per reason, for people.")
    checked_at: datetime
    source: ClockSourceModel
    reading: ReadingModel | None = Field(description="Null when no reading could be taken (see error).")
    error: SampleErrorModel | None = Field(description="Why the source gave no reading to trust; null otherwise.")
    segment: SegmentModel | None = Field(
        description="The segment's own fields when it answered and could be read; null otherwise."
    )
    bounded_now: BoundedTimeModel | None
    threshold_ms: float
    max_reference_age_s: float
    cache_ttl_s: float
    cache_age_s: float = Field(
        description="How old the cached sample was when this check used it (0 from the segment)."
    )


# ---------------------------------------------------------------- operations
class OperationRequest(StrictBody):
    label: str = Label


class OperationResult(BaseModel):
    operation_id: str
    label: str
    timestamp: datetime = Field(
        description="The timestamp the operation was stamped with: stamped.latest, never before true time."
    )
    stamped: BoundedTimeModel


class UngatedOperationResult(BaseModel):
    """The benchmark twin's answer: the same operation, stamped from the system clock alone."""

    operation_id: str
    label: str
    timestamp: datetime


# The gated route and its benchmark twin answer with these: plain dicts serialized by
# orjson (answer_json), the instants already spelled as RFC 3339 text
# (clock_app.isotime.iso_utc), the same JSON as OperationResult / UngatedOperationResult
# (the schema documents those models), without building and validating a model per
# request. Measured in process: the gated answer 0.30 us with orjson, 0.61 with
# pydantic-core's to_json, 1.6 through a TypeAdapter and 3.5 as a model. orjson writes
# strings and floats as pydantic does (shortest round-trip floats, `1e-6`, the same
# escapes); tests/app/test_app_api.py holds both answers to the models' bytes, for any
# label and bound.
class StampedBody(TypedDict):
    earliest: str  # isotime.iso_utc's text of the instant
    latest: str
    status: str  # a SyncStatus's value: to_json would look an enum's value up in Python
    bound_ms: float


class OperationBody(TypedDict):
    operation_id: str
    label: str
    timestamp: str
    stamped: StampedBody


class UngatedOperationBody(TypedDict):
    operation_id: str
    label: str
    timestamp: str


# JSON by the values' own types (no schema to walk): compact, UTF-8, str and float only.
answer_json: Callable[[OperationBody | UngatedOperationBody], bytes] = orjson.dumps


class CommitRequest(StrictBody):
    label: str = Label


class CommitResult(BaseModel):
    label: str
    timestamp: datetime = Field(description="The commit timestamp: bounded now's latest when the commit began.")
    waited_ms: float = Field(description="How long commit wait took, until every clock agrees timestamp is past.")
    bound_ms: float = Field(description="The effective bound at the start; the expected wait is about twice it.")
    visible_at: BoundedTimeModel = Field(description="Bounded now after the wait: its earliest is after timestamp.")


class Refusal(BaseModel):
    """503: the gate refused the operation. Retry after the Retry-After header's seconds."""

    error: Literal["clock_unsafe", "commit_wait_timeout"]
    message: str
    verdict: Literal["UNSAFE"] = "UNSAFE"
    reasons: list[VerdictReason]
    details: list[str]
    retry_after_s: int
    source: SourceName = SOURCE_FIELD


class OperationStats(BaseModel):
    """Cumulative since the app started; the worker publishes the deltas to CloudWatch."""

    allowed: int = Field(ge=0)
    refused: int = Field(ge=0)


# ---------------------------------------------------------------- history
class HistoryEntryModel(BaseModel):
    at: datetime
    bound_ms: float | None
    effective_bound_ms: float | None
    status: SyncStatus | None
    reference_age_s: float | None
    safe: bool
    reasons: list[VerdictReason]
    error_kind: str | None
    source: SourceName = SOURCE_FIELD


class HistoryResponse(BaseModel):
    capacity: int
    threshold_ms: float
    readings: list[HistoryEntryModel] = Field(
        description="Oldest first; one per metadata request, or one per segment record and change of verdict."
    )


# ---------------------------------------------------------------- probes and errors
class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


class ErrorBody(BaseModel):
    """Every 4xx answer: a code, a sentence, and for validation errors the field-level list."""

    error: str = Field(examples=["invalid_request"])
    message: str
    detail: list[dict[str, object]] | None = None


# ---------------------------------------------------------------- local mode
class ScenarioRequest(StrictBody):
    scenario: str = Field(
        min_length=1,
        max_length=40,
        pattern=r"^[a-z0-9_]+$",
        description="An emulator scenario name.",
        examples=["high_bound"],
    )


class EmulatorState(BaseModel):
    scenario: str
    scenarios: dict[str, str] = Field(description="Every scenario the emulator offers, with a description.")
    task_requests: int = Field(description="Task documents the emulator has served.")
