"""Parsing the TMDS v4 task document into a ClockReading, and the bound math.

Documents are shaped like AWS's "task metadata v4 examples for tasks on Fargate" and
the agent's omitempty behaviour (REFERENCE.md)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from clockcore import SampleError, SyncStatus, parse_task_document
from tmds_documents import fargate_task_document
from clockcore.reading import parse_rfc3339

SAMPLED_AT = datetime(2023, 7, 21, 16, 9, 27, 500_000, tzinfo=timezone.utc)

FARGATE_TASK = fargate_task_document()
document = fargate_task_document


def drift(**changes: Any) -> dict[str, Any]:
    block = dict(FARGATE_TASK["ClockDrift"])
    for key, value in changes.items():
        if value is ...:
            block.pop(key, None)
        else:
            block[key] = value
    return document(ClockDrift=block)


def parse(task: Any, *, ppm: float = 15.0):
    return parse_task_document(task, sampled_at=SAMPLED_AT, max_drift_ppm=ppm)


def test_a_fargate_document_gives_a_full_reading():
    reading = parse(FARGATE_TASK)
    assert reading.bound_ms == 0.446931
    assert reading.status is SyncStatus.SYNCHRONIZED and reading.synchronized
    assert reading.reference_time == datetime(2023, 7, 21, 16, 9, 17, tzinfo=timezone.utc)
    assert reading.reference_age_s == pytest.approx(10.5)
    identity = reading.identity
    assert (identity.cluster_name, identity.task_id, identity.family) == ("default", "e9028f8d5d8e4f258373e7b93ce9a3c3", "curltest")
    assert (identity.service_name, identity.revision, identity.availability_zone, identity.launch_type) == (
        "MyService", "3", "us-west-2a", "FARGATE"
    )


def test_effective_bound_grows_like_clockbound():
    reading = parse(FARGATE_TASK, ppm=15.0)
    # 10.5 s since the reference at 15 ppm: 10.5 × 15 × 0.001 ms = 0.1575 ms.
    assert reading.effective_bound_ms == pytest.approx(0.446931 + 0.1575)
    later = SAMPLED_AT + timedelta(seconds=100)
    assert reading.effective_bound_ms_at(later) == pytest.approx(0.446931 + 110.5 * 0.015)
    assert parse(FARGATE_TASK, ppm=0).effective_bound_ms == 0.446931


def test_a_reference_slightly_ahead_is_age_zero_not_negative():
    reading = parse(drift(ReferenceTimestamp="2023-07-21T16:09:28Z"))
    assert reading.reference_age_s == 0.0
    assert reading.effective_bound_ms == 0.446931


def test_without_reference_the_bound_grows_from_the_sample():
    reading = parse(drift(ReferenceTimestamp=...))
    assert reading.reference_time is None and reading.reference_age_s is None
    assert reading.effective_bound_ms == 0.446931
    assert reading.effective_bound_ms_at(SAMPLED_AT + timedelta(seconds=20)) == pytest.approx(0.446931 + 0.3)


def test_omitempty_bound_inside_the_block_is_zero():
    assert parse(drift(ClockErrorBound=...)).bound_ms == 0.0


def test_omitempty_status_is_unknown_and_not_synchronized():
    reading = parse(drift(ClockSynchronizationStatus=...))
    assert reading.status is SyncStatus.UNKNOWN and not reading.synchronized


def test_not_synchronized():
    reading = parse(drift(ClockSynchronizationStatus="NOT_SYNCHRONIZED", ClockErrorBound=12.5))
    assert reading.status is SyncStatus.NOT_SYNCHRONIZED and reading.bound_ms == 12.5


def test_a_task_not_started_by_a_service_has_no_service_name():
    assert parse(document(ServiceName=...)).identity.service_name is None


def test_integer_bounds_and_fractional_references_are_accepted():
    reading = parse(drift(ClockErrorBound=1, ReferenceTimestamp="2023-07-21T18:09:17.25+02:00"))
    assert reading.bound_ms == 1.0
    assert reading.reference_time == datetime(2023, 7, 21, 16, 9, 17, 250_000, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("task", "kind"),
    [
        ([FARGATE_TASK], "not_object"),
        ("task", "not_object"),
        (None, "not_object"),
        (document(ClockDrift=...), "no_clock_drift"),  # EC2 launch type
        (document(ClockDrift=None), "no_clock_drift"),
        (document(ClockDrift=[1, 2]), "invalid_field"),
        (drift(ClockErrorBound="0.44"), "invalid_field"),
        (drift(ClockErrorBound=True), "invalid_field"),
        (drift(ClockErrorBound=float("nan")), "invalid_field"),
        (drift(ClockErrorBound=float("inf")), "invalid_field"),
        (drift(ClockErrorBound=-0.1), "invalid_field"),
        (drift(ClockErrorBound=4e6), "invalid_field"),  # beyond an hour: not an estimate
        (drift(ClockErrorBound=10**400), "invalid_field"),  # too large for a float
        (drift(ClockSynchronizationStatus="SYNCED"), "invalid_field"),
        (drift(ClockSynchronizationStatus="UNKNOWN"), "invalid_field"),
        (drift(ClockSynchronizationStatus=1), "invalid_field"),
        (drift(ReferenceTimestamp="yesterday"), "invalid_field"),
        (drift(ReferenceTimestamp="2023-07-21T16:09:17"), "invalid_field"),  # no zone
        (drift(ReferenceTimestamp=1689955757), "invalid_field"),
        (document(Cluster=...), "missing_field"),
        (document(TaskARN=""), "missing_field"),
        (document(Family=...), "missing_field"),
        (document(Family=7), "invalid_field"),
        (document(ServiceName=["a"]), "invalid_field"),
    ],
)
def test_bad_documents_raise_sample_error_with_a_kind(task, kind):
    with pytest.raises(SampleError) as raised:
        parse(task)
    assert raised.value.kind == kind
    assert raised.value.message


def test_rfc3339_forms():
    assert parse_rfc3339("2023-07-21T16:09:17Z") == datetime(2023, 7, 21, 16, 9, 17, tzinfo=timezone.utc)
    assert parse_rfc3339("2023-07-21 16:09:17z") == datetime(2023, 7, 21, 16, 9, 17, tzinfo=timezone.utc)
    assert parse_rfc3339("2023-07-21T12:09:17-04:00") == datetime(2023, 7, 21, 16, 9, 17, tzinfo=timezone.utc)
    with pytest.raises(ValueError):
        parse_rfc3339("2023-07-21T16:09:17")


def test_to_dict_is_json_ready():
    view = parse(FARGATE_TASK).to_dict()
    assert view["sampled_at"] == "2023-07-21T16:09:27.500Z"
    assert view["reference_time"] == "2023-07-21T16:09:17.000Z"
    assert view["status"] == "SYNCHRONIZED"
    assert view["task"]["task_id"] == "e9028f8d5d8e4f258373e7b93ce9a3c3"
