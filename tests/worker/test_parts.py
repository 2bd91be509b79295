"""Unit tests of the worker's parts: scheduler, metrics, EMF document, buffer, app
counters, crontab parsing, CloudWatch datums."""

from __future__ import annotations

import io
import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from clock_worker.app_stats import AppStatsPoller, OperationDeltas
from clock_worker.buffer import SampleBuffer
from clock_worker.cron import CronJob, CrontabError, parse_crontab
from clock_worker.metrics import MetricBuilder
from clock_worker.sampler import SampleFailure
from clock_worker.scheduler import MonotonicSchedule
from clock_worker.sink_emf import EmfSink, emf_document
from clockcore import contract, parse_task_document
from tmds_documents import fargate_task_document

NOW = datetime(2026, 11, 28, 6, 0, 0, 250_000, tzinfo=timezone.utc)


def task_document(**overrides: Any) -> dict[str, Any]:
    """The Fargate example with a reference two seconds before NOW."""
    clock_drift = {
        "ClockErrorBound": 0.5458234999999999,
        "ReferenceTimestamp": "2026-11-28T05:59:58Z",
        "ClockSynchronizationStatus": "SYNCHRONIZED",
    }
    return fargate_task_document(**{"ClockDrift": clock_drift, **overrides})


def reading(**overrides: Any):
    return parse_task_document(task_document(**overrides), sampled_at=NOW, max_drift_ppm=15.0)


# ------------------------------------------------------------------ scheduler
class FakeMonotonic:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def test_schedule_stays_on_its_grid_when_samples_take_time():
    clock = FakeMonotonic()
    schedule = MonotonicSchedule(10.0, monotonic=clock)
    clock.now += 0.3  # the first sample took 0.3 s
    assert schedule.advance() == (pytest.approx(9.7), 0)
    clock.now = 1010.0 + 4.0  # the second sample was slow: 4 s
    assert schedule.advance() == (pytest.approx(6.0), 0)  # still due at 1020, no drift


def test_schedule_runs_one_late_sample_at_once_and_skips_the_rest():
    clock = FakeMonotonic()
    schedule = MonotonicSchedule(1.0, monotonic=clock)
    clock.now += 1.5  # overran one grid point: run the next sample now
    assert schedule.advance() == (0.0, 0)
    clock.now = 1000.0 + 5.2  # overran 1002..1005: keep 1005 (run now), skip 1002..1004
    assert schedule.advance() == (0.0, 3)
    assert schedule.advance() == (pytest.approx(0.8), 0)  # back on the grid: 1006
    assert schedule.skipped_total == 3


def test_schedule_ignores_the_wall_clock():
    # Pacing uses only the injected monotonic clock: nothing else moves it.
    clock = FakeMonotonic()
    schedule = MonotonicSchedule(2.0, monotonic=clock)
    delays = []
    for _ in range(5):
        clock.now += 0.1
        delay, _ = schedule.advance()
        delays.append(delay)
        clock.now += delay
    assert delays == [pytest.approx(1.9)] * 5
    assert clock.now == pytest.approx(1010.0)


# ------------------------------------------------------------------ metrics
def test_a_reading_gives_every_clock_metric_with_units():
    builder = MetricBuilder(profile=contract.STANDARD_PROFILE, service_name="orders", per_task_metrics=("EffectiveClockErrorBound",))
    metrics = builder.build(reading())
    by_name = {metric.spec.name: metric for metric in metrics.values}
    assert set(by_name) == {"ClockErrorBound", "EffectiveClockErrorBound", "ClockSynchronized", "ClockReferenceAge", "ClockSampleFailures"}
    assert by_name["ClockErrorBound"].value == pytest.approx(0.5458235)
    assert by_name["ClockReferenceAge"].value == pytest.approx(2.25)
    # 2.25 s of free running at 15 ppm adds 0.03375 ms.
    assert by_name["EffectiveClockErrorBound"].value == pytest.approx(0.5458235 + 0.03375)
    assert by_name["ClockSynchronized"].value == 1.0
    assert by_name["ClockSampleFailures"].value == 0.0
    assert {m.spec.name: m.spec.unit for m in metrics.values} == {
        "ClockErrorBound": "Milliseconds",
        "EffectiveClockErrorBound": "Milliseconds",
        "ClockSynchronized": "None",
        "ClockReferenceAge": "Seconds",
        "ClockSampleFailures": "Count",
    }
    assert metrics.timestamp == NOW
    assert metrics.service_dimensions == (("Service", "orders"),)
    assert metrics.task_dimensions == (
        ("Service", "orders"),
        ("TaskID", "e9028f8d5d8e4f258373e7b93ce9a3c3"),
    )
    assert metrics.task_properties == (("ServiceName", "MyService"),)
    assert [metric.spec.name for metric in metrics.per_task_values] == ["EffectiveClockErrorBound"]
    assert metrics.datum_count == 6


def test_no_reference_time_means_no_reference_age_metric():
    builder = MetricBuilder(profile=contract.STANDARD_PROFILE, service_name="s", per_task_metrics=())
    document_drift = {"ClockErrorBound": 0.4, "ClockSynchronizationStatus": "NOT_SYNCHRONIZED"}
    metrics = builder.build(reading(ClockDrift=document_drift))
    assert metrics.value_of("ClockReferenceAge") is None
    assert metrics.value_of("ClockSynchronized") == 0.0
    assert metrics.per_task_values == ()


def test_the_per_task_set_does_not_depend_on_the_metadata_service_name():
    """Fargate may omit ServiceName: the alarms' per-task filter must not change with it."""
    builder = MetricBuilder(profile=contract.STANDARD_PROFILE, service_name="orders", per_task_metrics=("ClockErrorBound",))
    with_name = builder.build(reading())
    document = task_document()
    del document["ServiceName"]
    without_name = MetricBuilder(
        profile=contract.STANDARD_PROFILE, service_name="orders", per_task_metrics=("ClockErrorBound",)
    ).build(parse_task_document(document, sampled_at=NOW, max_drift_ppm=15))
    assert without_name.task_dimensions == with_name.task_dimensions == (
        ("Service", "orders"),
        ("TaskID", "e9028f8d5d8e4f258373e7b93ce9a3c3"),
    )
    assert without_name.task_properties == ()


def test_seed_profile_dimensions():
    builder = MetricBuilder(profile=contract.SEED_PROFILE, service_name="s", per_task_metrics=contract.SEED_PROFILE.per_task_metrics)
    metrics = builder.build(reading())
    assert metrics.task_dimensions == (
        ("ClusterName", "default"),
        ("Family", "curltest"),
        ("TaskID", "e9028f8d5d8e4f258373e7b93ce9a3c3"),
    )


def test_a_failure_counts_and_keeps_the_last_known_task():
    builder = MetricBuilder(profile=contract.STANDARD_PROFILE, service_name="s", per_task_metrics=("ClockSampleFailures",))
    failure = SampleFailure("timeout", "slow", NOW)
    before_any_reading = builder.build(failure)
    assert [(m.spec.name, m.value) for m in before_any_reading.values] == [("ClockSampleFailures", 1.0)]
    assert before_any_reading.task_dimensions is None and before_any_reading.per_task_values == ()
    builder.build(reading())
    after = builder.build(failure, OperationDeltas(allowed=3, refused=1))
    assert after.task_dimensions is not None
    assert [(m.spec.name, m.value) for m in after.values] == [
        ("ClockSampleFailures", 1.0), ("OperationsAllowed", 3.0), ("OperationsRefused", 1.0)
    ]


# ------------------------------------------------------------------ EMF
def validate_emf(document: dict[str, Any]) -> None:
    """The structure the EMF specification requires of a log event."""
    aws = document["_aws"]
    assert isinstance(aws["Timestamp"], int) and aws["Timestamp"] > 0
    directives = aws["CloudWatchMetrics"]
    assert isinstance(directives, list) and directives
    for directive in directives:
        assert isinstance(directive["Namespace"], str) and directive["Namespace"]
        assert isinstance(directive["Dimensions"], list)
        for dimension_set in directive["Dimensions"]:
            assert isinstance(dimension_set, list) and 0 < len(dimension_set) <= 30
            for key in dimension_set:
                assert isinstance(document[key], str), f"dimension {key} needs a string target member"
        assert 0 < len(directive["Metrics"]) <= 100
        for metric in directive["Metrics"]:
            assert set(metric) <= {"Name", "Unit", "StorageResolution"}
            assert isinstance(metric["Name"], str)
            assert metric.get("Unit", "None") in {"Milliseconds", "Seconds", "Count", "None"}
            assert metric.get("StorageResolution", 60) in (1, 60)
            value = document[metric["Name"]]
            assert isinstance(value, (int, float)) and not isinstance(value, bool)


def test_emf_document_has_a_service_and_a_per_task_directive():
    builder = MetricBuilder(profile=contract.STANDARD_PROFILE, service_name="orders", per_task_metrics=("EffectiveClockErrorBound",))
    document = emf_document(builder.build(reading()), namespace="FargateClock", storage_resolution=1)
    validate_emf(document)
    service, per_task = document["_aws"]["CloudWatchMetrics"]
    assert service["Dimensions"] == [["Service"]]
    assert {m["Name"] for m in service["Metrics"]} == {
        "ClockErrorBound", "EffectiveClockErrorBound", "ClockSynchronized", "ClockReferenceAge", "ClockSampleFailures"
    }
    assert per_task["Dimensions"] == [["Service", "TaskID"]]
    assert per_task["Metrics"] == [{"Name": "EffectiveClockErrorBound", "Unit": "Milliseconds", "StorageResolution": 1}]
    assert document["_aws"]["Timestamp"] == int(NOW.timestamp() * 1000)
    assert document["Service"] == "orders" and document["TaskID"] == "e9028f8d5d8e4f258373e7b93ce9a3c3"
    # The metadata's ServiceName rides along as information, in no dimension set.
    assert document["ServiceName"] == "MyService"


def test_emf_at_standard_resolution_omits_storage_resolution():
    builder = MetricBuilder(profile=contract.STANDARD_PROFILE, service_name="s", per_task_metrics=())
    document = emf_document(builder.build(reading()), namespace="N", storage_resolution=60)
    validate_emf(document)
    assert len(document["_aws"]["CloudWatchMetrics"]) == 1
    assert all("StorageResolution" not in m for m in document["_aws"]["CloudWatchMetrics"][0]["Metrics"])


def test_emf_sink_writes_one_json_line_per_sample():
    stream = io.StringIO()
    sink = EmfSink(namespace="N", storage_resolution=1, stream=stream)
    builder = MetricBuilder(profile=contract.STANDARD_PROFILE, service_name="s", per_task_metrics=())
    sink.publish(builder.build(reading()))
    sink.publish(builder.build(SampleFailure("timeout", "slow", NOW)))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    for line in lines:
        validate_emf(json.loads(line))


# ------------------------------------------------------------------ buffer
def test_buffer_drops_the_oldest_beyond_its_bound_and_counts(caplog):
    builder = MetricBuilder(profile=contract.STANDARD_PROFILE, service_name="s", per_task_metrics=())
    buffer = SampleBuffer(3)
    samples = [builder.build(SampleFailure("timeout", "x", NOW + timedelta(seconds=i))) for i in range(5)]
    with caplog.at_level("WARNING", logger="clock_worker"):
        for sample in samples:
            buffer.add(sample)
    assert len(buffer) == 3 and buffer.dropped_total == 2
    assert [s.timestamp for s in buffer.peek_batch(1000)] == [s.timestamp for s in samples[2:]]
    # The first drop is logged at once; the next within a minute is only counted.
    assert len([r for r in caplog.records if getattr(r, "event", "") == "buffer_dropped"]) == 1


def test_buffer_batches_respect_the_datum_limit():
    builder = MetricBuilder(profile=contract.STANDARD_PROFILE, service_name="s", per_task_metrics=("ClockErrorBound",))
    buffer = SampleBuffer(1000)
    for _ in range(400):
        buffer.add(builder.build(reading()))  # 6 datums each
    batch = buffer.peek_batch(1000)
    assert len(batch) == 166 and sum(s.datum_count for s in batch) <= 1000
    buffer.remove(batch)
    assert len(buffer) == 400 - 166


def test_cloudwatch_datums_carry_both_sets_timestamp_unit_resolution():
    pytest.importorskip("boto3")
    from clock_worker.sink_cloudwatch import datums_for

    builder = MetricBuilder(profile=contract.STANDARD_PROFILE, service_name="orders", per_task_metrics=("EffectiveClockErrorBound",))
    datums = datums_for(builder.build(reading()), storage_resolution=1)
    assert len(datums) == 6
    assert all(d["Timestamp"] == NOW and d["StorageResolution"] == 1 for d in datums)
    per_task = [d for d in datums if len(d["Dimensions"]) == 2]
    assert [(d["MetricName"], d["Unit"]) for d in per_task] == [("EffectiveClockErrorBound", "Milliseconds")]
    assert per_task[0]["Dimensions"] == [
        {"Name": "Service", "Value": "orders"}, {"Name": "TaskID", "Value": "e9028f8d5d8e4f258373e7b93ce9a3c3"}
    ]
    assert all(d["Dimensions"] == [{"Name": "Service", "Value": "orders"}] for d in datums if d not in per_task)


# ------------------------------------------------------------------ app counters
class _StatsHandler(BaseHTTPRequestHandler):
    answers: list[tuple[int, bytes]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        status, body = self.answers.pop(0)
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def stats_server():
    handler = type("Handler", (_StatsHandler,), {"answers": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler.answers, f"http://127.0.0.1:{server.server_address[1]}/api/operations/stats"
    server.shutdown()
    server.server_close()


def test_app_counters_become_deltas_and_a_restart_restarts_them(stats_server, caplog):
    answers, url = stats_server
    for allowed, refused in ((5, 1), (9, 1), (2, 0)):
        answers.append((200, json.dumps({"allowed": allowed, "refused": refused}).encode()))
    answers.append((500, b"oops"))
    answers.append((200, b"not json"))
    answers.append((200, json.dumps({"allowed": 4, "refused": 0}).encode()))
    poller = AppStatsPoller(url, connect_timeout_s=0.5, read_timeout_s=1.0)
    with caplog.at_level("INFO", logger="clock_worker"):
        assert poller.poll() == OperationDeltas(5, 1)  # first poll: everything since the app started
        assert poller.poll() == OperationDeltas(4, 0)
        assert poller.poll() == OperationDeltas(2, 0)  # went down: the app restarted
        assert poller.poll() is None
        assert poller.poll() is None
        assert poller.poll() == OperationDeltas(2, 0)
    events = [getattr(r, "event", "") for r in caplog.records]
    assert events.count("app_stats_unavailable") == 1  # once per outage
    assert events.count("app_stats_recovered") == 1
    assert events.count("app_restarted") == 1


def test_unreachable_app_is_none_not_an_exception():
    poller = AppStatsPoller("http://127.0.0.1:9/api/operations/stats", connect_timeout_s=0.2, read_timeout_s=0.2)
    assert poller.poll() is None


# ------------------------------------------------------------------ crontab
def test_crontab_lines():
    jobs = parse_crontab(
        "# comment\n\n*/5 * * * * /usr/bin/env python -c 'print(1)'\n@hourly report --all\n*/10 * * * * * echo tick\n",
        source="CLOCK_CRONTAB",
    )
    assert jobs == [
        CronJob("CLOCK_CRONTAB", 3, "*/5 * * * *", ("/usr/bin/env", "python", "-c", "print(1)"), False),
        CronJob("CLOCK_CRONTAB", 4, "@hourly", ("report", "--all"), False),
        CronJob("CLOCK_CRONTAB", 5, "*/10 * * * * *", ("echo", "tick"), True),
    ]
    start = datetime(2026, 11, 28, 6, 2, 3, tzinfo=timezone.utc)
    assert jobs[0].next_run_after(start) == datetime(2026, 11, 28, 6, 5, tzinfo=timezone.utc)
    assert jobs[2].next_run_after(start) == datetime(2026, 11, 28, 6, 2, 10, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "line",
    ["* * * * *", "61 * * * * echo", "@fortnightly echo", "* * * * * 'open quote", "every minute echo"],
)
def test_bad_crontab_lines_name_the_line(line):
    with pytest.raises(CrontabError) as raised:
        parse_crontab(f"# first\n{line}\n", source="CLOCK_CRONTAB")
    assert str(raised.value).startswith("line 2 ")


def test_emf_line_is_the_emf_document():
    builder = MetricBuilder(profile=contract.STANDARD_PROFILE, service_name="orders", per_task_metrics=("EffectiveClockErrorBound",))
    sink = EmfSink(namespace="N", storage_resolution=1)
    samples = [
        builder.build(SampleFailure("timeout", "slow", NOW)),  # before the task is known
        builder.build(reading()),
        builder.build(reading(), OperationDeltas(allowed=2, refused=0)),
        builder.build(reading()),  # a repeated shape comes from the cache
        builder.build(SampleFailure("http_status", "500", NOW)),
    ]
    for sample in samples:
        assert json.loads(sink.line(sample)) == emf_document(sample, namespace="N", storage_resolution=1)


def test_cron_follows_a_wall_clock_step_back():
    from clock_worker.cron import CronRunner

    job = parse_crontab("*/10 * * * * * echo tick\n", source="CLOCK_CRONTAB")[0]
    wall = [datetime(2026, 11, 28, 6, 0, 5, tzinfo=timezone.utc)]
    reads = [0]  # how often the runner has read the wall clock
    read = threading.Condition()

    def now() -> datetime:
        with read:
            reads[0] += 1
            read.notify_all()
            return wall[0]

    def step_to(moment: datetime | None = None) -> None:
        """Set the wall clock, then wait until the loop has gone once round on it: it reads
        the clock twice a round, so three reads from now include a whole round."""
        with read:
            if moment is not None:
                wall[0] = moment
            start = reads[0]
            assert read.wait_for(lambda: reads[0] >= start + 3, timeout=5), "the cron loop stopped reading the clock"

    launched: list[datetime] = []
    runner = CronRunner((job,), timeout_s=1.0, now=now, max_sleep_s=0.02)
    runner._launch = lambda _job: launched.append(wall[0])  # observe scheduling, run nothing
    loop = threading.Thread(target=runner._loop, daemon=True)
    loop.start()
    try:
        step_to()  # due at 06:00:10
        step_to(datetime(2026, 11, 28, 5, 0, 5, tzinfo=timezone.utc))  # the clock steps back an hour
        assert launched == []
        step_to(datetime(2026, 11, 28, 5, 0, 10, 500_000, tzinfo=timezone.utc))
    finally:
        runner._stop.set()
        loop.join(timeout=2)
    # Run from the new time at 05:00:10, not an hour later at the stale 06:00:10.
    assert launched == [datetime(2026, 11, 28, 5, 0, 10, 500_000, tzinfo=timezone.utc)]

