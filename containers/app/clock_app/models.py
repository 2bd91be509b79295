"""Pydantic models of every request and response body: the API's OpenAPI schema.

Request bodies forbid unknown fields, so a typo is a 422 that names the field rather
than a silently ignored option.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from clockcore import BoundedTime, ClockReading, SampleError, VerdictReason
from clockcore.reading import SyncStatus

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
    """A ClockDrift reading, with the bound and reference age as of the check's instant."""

    sampled_at: datetime = Field(description="When the task document was read (this task's clock).")
    bound_ms: float = Field(description="ClockErrorBound as TMDS reported it, valid at reference_time.")
    effective_bound_ms: float = Field(description="The bound grown by reference age x max drift rate, at checked_at.")
    status: SyncStatus
    reference_time: datetime | None = Field(description="ReferenceTimestamp; null when TMDS omitted it.")
    reference_age_s: float | None = Field(description="Age of the reference at checked_at.")
    max_drift_ppm: float
    task: TaskModel

    @classmethod
    def of(cls, reading: ClockReading, at: datetime) -> "ReadingModel":
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


class SampleErrorModel(BaseModel):
    kind: str = Field(description="Machine-readable failure (clockcore SampleError.KINDS), e.g. http_status, timeout.")
    message: str

    @classmethod
    def of(cls, error: SampleError) -> "SampleErrorModel":
        return cls(kind=error.kind, message=error.message)


class BoundedTimeModel(BaseModel):
    """TrueTime-style interval: true time lies in [earliest, latest] while the bound holds."""

    earliest: datetime
    latest: datetime
    status: SyncStatus
    bound_ms: float = Field(description="The effective bound used: half the interval's width.")

    @classmethod
    def of(cls, bounded: BoundedTime) -> "BoundedTimeModel":
        return cls(earliest=bounded.earliest, latest=bounded.latest, status=bounded.status, bound_ms=bounded.bound_ms)


class ClockStatus(BaseModel):
    verdict: Literal["SAFE", "UNSAFE"]
    safe: bool
    reasons: list[VerdictReason] = Field(description="Why the verdict is UNSAFE; empty when SAFE.")
    details: list[str] = Field(description="One sentence per reason, for people.")
    checked_at: datetime
    reading: ReadingModel | None = Field(description="Null when no reading could be taken (see error).")
    error: SampleErrorModel | None = Field(description="Why the metadata endpoint gave no reading; null otherwise.")
    bounded_now: BoundedTimeModel | None
    threshold_ms: float
    max_reference_age_s: float
    cache_ttl_s: float
    cache_age_s: float = Field(description="How old the cached sample was when this check used it.")


# ---------------------------------------------------------------- operations
class OperationRequest(StrictBody):
    label: str = Label


class OperationResult(BaseModel):
    operation_id: str
    label: str
    timestamp: datetime = Field(description="The timestamp the operation was stamped with: stamped.latest, never before true time.")
    stamped: BoundedTimeModel


class UngatedOperationResult(BaseModel):
    """The benchmark twin's answer: the same operation, stamped from the system clock alone."""

    operation_id: str
    label: str
    timestamp: datetime


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


class HistoryResponse(BaseModel):
    capacity: int
    threshold_ms: float
    readings: list[HistoryEntryModel] = Field(description="Oldest first; one per metadata request.")


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
        min_length=1, max_length=40, pattern=r"^[a-z0-9_]+$", description="An emulator scenario name.", examples=["high_bound"]
    )


class EmulatorState(BaseModel):
    scenario: str
    scenarios: dict[str, str] = Field(description="Every scenario the emulator offers, with a description.")
    task_requests: int = Field(description="Task documents the emulator has served.")
