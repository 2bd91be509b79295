"""Property tests: no task document, however odd, makes the parser raise anything but
SampleError, or the worker's sampler raise at all."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clock_worker.sampler import SampleFailure, Sampler
from clockcore import ClockReading, SampleError, parse_task_document

SAMPLED_AT = datetime(2026, 11, 28, 6, 0, tzinfo=timezone.utc)

# What json.loads can produce (the reader rejects NaN/Infinity; the parser must cope anyway).
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)

# Values aimed at each field: right type, wrong type, edge values.
bound_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-(10**500), max_value=10**500), json_values
)
timestamp_values = st.one_of(
    st.datetimes(timezones=st.timezones() | st.just(timezone.utc)).map(lambda moment: moment.isoformat()),
    st.text(max_size=40),
    st.sampled_from(["2023-07-21T16:09:17Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "", "Z"]),
    json_values,
)
status_values = st.sampled_from(["SYNCHRONIZED", "NOT_SYNCHRONIZED", "UNKNOWN", "", "synchronized"]) | json_values
name_values = st.sampled_from(["arn:aws:ecs:r:1:cluster/c", "/", "", "a/b/"]) | json_values


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    missing = st.just(...)
    return missing | strategy


task_documents = st.builds(
    lambda cluster, arn, family, service, block: {
        key: value
        for key, value in {
            "Cluster": cluster, "TaskARN": arn, "Family": family, "ServiceName": service, "ClockDrift": block
        }.items()
        if value is not ...
    },
    _maybe(name_values),
    _maybe(name_values),
    _maybe(name_values),
    _maybe(name_values),
    _maybe(
        st.builds(
            lambda bound, stamp, status: {
                key: value
                for key, value in {
                    "ClockErrorBound": bound, "ReferenceTimestamp": stamp, "ClockSynchronizationStatus": status
                }.items()
                if value is not ...
            },
            _maybe(bound_values),
            _maybe(timestamp_values),
            _maybe(status_values),
        )
        | json_values
    ),
)


def _check_reading(reading: ClockReading) -> None:
    assert 0 <= reading.bound_ms <= 3_600_000
    assert math.isfinite(reading.effective_bound_ms) and reading.effective_bound_ms >= reading.bound_ms
    age = reading.reference_age_s
    assert age is None or (math.isfinite(age) and age >= 0)
    json.dumps(reading.to_dict(), allow_nan=False)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(task_documents | json_values)
def test_parser_raises_only_sample_error(document):
    try:
        reading = parse_task_document(document, sampled_at=SAMPLED_AT, max_drift_ppm=15.0)
    except SampleError as error:
        assert error.kind in SampleError.KINDS and error.message
        return
    _check_reading(reading)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(task_documents | json_values)
def test_sampler_never_raises_and_reports_a_kind(document):
    sampler = Sampler(None, max_drift_ppm=15.0, connect_timeout_s=0.1, read_timeout_s=0.1,
                      fetch_document=lambda: document, clock=lambda: SAMPLED_AT)
    outcome = sampler.sample()
    if isinstance(outcome, SampleFailure):
        # A SampleError kind: "unexpected" would mean a bug escaped the parser.
        assert outcome.kind in SampleError.KINDS, outcome
        assert sampler.failures_total == 1
    else:
        _check_reading(outcome)
        assert sampler.failures_total == 0


def test_sampler_turns_a_bug_into_a_counted_failure():
    def broken() -> Any:
        raise KeyError("surprise")

    sampler = Sampler(None, max_drift_ppm=15.0, connect_timeout_s=0.1, read_timeout_s=0.1, fetch_document=broken)
    outcome = sampler.sample()
    assert isinstance(outcome, SampleFailure) and outcome.kind == "unexpected"
    assert sampler.failures_total == 1
