"""Parse the TMDS v4 task document into a typed `ClockReading`.

The agent marshals `ClockDrift` with `omitempty` on every field, so a bound of exactly
0 drops the key, and a task without clock data (EC2 launch type) has no block at all.
Everything here is defensive: any shape of document either gives a reading or raises
`SampleError`; nothing else escapes.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clockcore.errors import SampleError

# A bound beyond an hour is not a clock estimate, it is a broken answer.
MAX_PLAUSIBLE_BOUND_MS = 3_600_000.0
# 1 ppm = 1e-6 s/s = 0.001 ms of growth per second of free running.
MS_PER_SECOND_PER_PPM = 0.001


class SyncStatus(str, enum.Enum):
    SYNCHRONIZED = "SYNCHRONIZED"
    NOT_SYNCHRONIZED = "NOT_SYNCHRONIZED"
    # The block is present but the status key was omitted (omitempty of "").
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class TaskIdentity:
    """Who the task is: the values that go into per-task dimensions."""

    cluster_name: str
    task_id: str
    family: str
    revision: str | None = None
    service_name: str | None = None
    availability_zone: str | None = None
    launch_type: str | None = None


@dataclass(frozen=True)
class ClockReading:
    """One sample of the task's clock, as TMDS reported it.

    `sampled_at` is the local wall-clock time the document was read. The bound is
    valid at `reference_time`; it grows at `max_drift_ppm` while the clock runs free,
    so `effective_bound_ms_at(t)` is what an application should trust at time t.
    """

    sampled_at: datetime
    bound_ms: float
    status: SyncStatus
    reference_time: datetime | None
    max_drift_ppm: float
    identity: TaskIdentity

    @property
    def synchronized(self) -> bool:
        return self.status is SyncStatus.SYNCHRONIZED

    def _growth_base(self) -> datetime:
        # Without a reference time, grow from the moment the bound was read: that is
        # the latest instant it is known to have been valid.
        return self.reference_time if self.reference_time is not None else self.sampled_at

    def reference_age_s_at(self, at: datetime) -> float | None:
        if self.reference_time is None:
            return None
        # References carry whole seconds, so one slightly in the future is normal.
        return max(0.0, (at - self.reference_time).total_seconds())

    def effective_bound_ms_at(self, at: datetime) -> float:
        age_s = max(0.0, (at - self._growth_base()).total_seconds())
        return self.bound_ms + age_s * self.max_drift_ppm * MS_PER_SECOND_PER_PPM

    @property
    def reference_age_s(self) -> float | None:
        return self.reference_age_s_at(self.sampled_at)

    @property
    def effective_bound_ms(self) -> float:
        return self.effective_bound_ms_at(self.sampled_at)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (API answers, logs)."""
        return {
            "sampled_at": iso_utc(self.sampled_at),
            "bound_ms": self.bound_ms,
            "effective_bound_ms": self.effective_bound_ms,
            "status": self.status.value,
            "reference_time": iso_utc(self.reference_time) if self.reference_time else None,
            "reference_age_s": self.reference_age_s,
            "max_drift_ppm": self.max_drift_ppm,
            "task": {
                "cluster_name": self.identity.cluster_name,
                "task_id": self.identity.task_id,
                "family": self.identity.family,
                "revision": self.identity.revision,
                "service_name": self.identity.service_name,
                "availability_zone": self.identity.availability_zone,
                "launch_type": self.identity.launch_type,
            },
        }


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_rfc3339(text: str) -> datetime:
    """RFC 3339 with a zone (Z or ±hh:mm), whole or fractional seconds."""
    candidate = text.strip()
    if candidate.endswith(("Z", "z")):
        candidate = candidate[:-1] + "+00:00"
    # fromisoformat accepts 'T' or ' '; RFC 3339 allows both.
    moment = datetime.fromisoformat(candidate)
    if moment.tzinfo is None:
        raise ValueError("no time zone")
    return moment.astimezone(UTC)


def _optional_str(document: Mapping[str, Any], key: str) -> str | None:
    value = document.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise SampleError("invalid_field", f"task document field {key} is {type(value).__name__}, expected a string")
    return value


def _last_segment(arn: str) -> str:
    return arn.rstrip("/").rsplit("/", 1)[-1]


def parse_identity(document: Mapping[str, Any]) -> TaskIdentity:
    cluster = _optional_str(document, "Cluster")
    task_arn = _optional_str(document, "TaskARN")
    family = _optional_str(document, "Family")
    for key, value in (("Cluster", cluster), ("TaskARN", task_arn), ("Family", family)):
        if value is None:
            raise SampleError("missing_field", f"task document has no {key}")
    assert cluster and task_arn and family  # narrowed above
    return TaskIdentity(
        cluster_name=_last_segment(cluster),
        task_id=_last_segment(task_arn),
        family=family,
        revision=_optional_str(document, "Revision"),
        service_name=_optional_str(document, "ServiceName"),
        availability_zone=_optional_str(document, "AvailabilityZone"),
        launch_type=_optional_str(document, "LaunchType"),
    )


def _parse_bound(block: Mapping[str, Any]) -> float:
    raw = block.get("ClockErrorBound", 0.0)  # omitempty: absent inside the block means 0
    # bool is an int subclass; true is not a bound.
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise SampleError(
            "invalid_field", f"ClockErrorBound is {type(raw).__name__}, expected a number of milliseconds"
        )
    try:
        bound = float(raw)
    except OverflowError:  # a JSON integer too large for a float
        raise SampleError("invalid_field", "ClockErrorBound is too large to be a number of milliseconds") from None
    if math.isnan(bound) or math.isinf(bound):
        raise SampleError("invalid_field", f"ClockErrorBound is {bound}, expected a finite number")
    if bound < 0:
        raise SampleError("invalid_field", f"ClockErrorBound is negative ({bound} ms)")
    if bound > MAX_PLAUSIBLE_BOUND_MS:
        raise SampleError("invalid_field", f"ClockErrorBound of {bound} ms is beyond any plausible clock error")
    return bound


def _parse_status(block: Mapping[str, Any]) -> SyncStatus:
    raw = block.get("ClockSynchronizationStatus")
    if raw is None or raw == "":
        return SyncStatus.UNKNOWN
    if not isinstance(raw, str):
        raise SampleError("invalid_field", f"ClockSynchronizationStatus is {type(raw).__name__}, expected a string")
    try:
        status = SyncStatus(raw)
    except ValueError:
        raise SampleError(
            "invalid_field", f"ClockSynchronizationStatus {raw[:40]!r} is not SYNCHRONIZED or NOT_SYNCHRONIZED"
        ) from None
    if status is SyncStatus.UNKNOWN:
        raise SampleError("invalid_field", "ClockSynchronizationStatus 'UNKNOWN' is not a status TMDS sends")
    return status


def _parse_reference(block: Mapping[str, Any]) -> datetime | None:
    raw = block.get("ReferenceTimestamp")
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise SampleError("invalid_field", f"ReferenceTimestamp is {type(raw).__name__}, expected an RFC 3339 string")
    try:
        return parse_rfc3339(raw)
    except (ValueError, OverflowError):
        raise SampleError("invalid_field", f"ReferenceTimestamp {raw[:40]!r} is not an RFC 3339 time") from None


def parse_task_document(document: Any, *, sampled_at: datetime, max_drift_ppm: float) -> ClockReading:
    """Turn a decoded task document into a reading, or raise `SampleError`."""
    if not isinstance(document, Mapping):
        raise SampleError("not_object", f"task document is a JSON {type(document).__name__}, expected an object")
    if "ClockDrift" not in document or document["ClockDrift"] is None:
        raise SampleError(
            "no_clock_drift", "task document has no ClockDrift (EC2 launch type, or Fargate platform older than 1.4.0)"
        )
    block = document["ClockDrift"]
    if not isinstance(block, Mapping):
        raise SampleError("invalid_field", f"ClockDrift is a JSON {type(block).__name__}, expected an object")
    return ClockReading(
        sampled_at=sampled_at,
        bound_ms=_parse_bound(block),
        status=_parse_status(block),
        reference_time=_parse_reference(block),
        max_drift_ppm=max_drift_ppm,
        identity=parse_identity(document),
    )
