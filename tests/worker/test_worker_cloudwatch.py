"""The worker as a real process with the CloudWatch sink, against the emulator and a
real moto server on loopback.

What is verified, and how:
- names, dimension sets, values and timestamps: read back through the CloudWatch API
  (list_metrics, get_metric_data at a 1-second period);
- units: through the API too, since get_metric_data filters by Unit (the right unit
  returns the data, a wrong one returns none), and on the datums moto stored;
- StorageResolution: moto does not keep it, so a spy on moto's backend records the
  PutMetricData parameters the server parsed from each request;
- exact timestamps (microseconds): on the datums moto stored, compared with the
  timestamps the worker logged for each sample;
- batching (CLOCK_PUBLISH_MAX_DELAY_SECONDS, default 5 s, which every test here runs
  with unless it says otherwise): the same spy counts the PutMetricData requests.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from clockcore import contract

from .conftest import base_env

pytestmark = pytest.mark.timeout(180)

ACCOUNT, REGION = "123456789012", "us-east-1"
# The outage test's length in samples: 30 s at the 1 Hz these tests run at.
OUTAGE_SAMPLES = 30
TASK_ID = "0123456789abcdef0123456789abcdef"
SERVICE_METRICS = ["ClockErrorBound", "EffectiveClockErrorBound", "ClockSynchronized", "ClockReferenceAge", "ClockSampleFailures"]
UNITS = {
    "ClockErrorBound": "Milliseconds",
    "EffectiveClockErrorBound": "Milliseconds",
    "ClockSynchronized": "None",
    "ClockReferenceAge": "Seconds",
    "ClockSampleFailures": "Count",
    "OperationsAllowed": "Count",
    "OperationsRefused": "Count",
}


def stored_datums(namespace: str | None = None) -> list[Any]:
    from moto.cloudwatch.models import cloudwatch_backends

    data = cloudwatch_backends[ACCOUNT][REGION].metric_data
    return [datum for datum in list(data) if namespace is None or datum.namespace == namespace]


def as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


@pytest.fixture
def received_requests(monkeypatch) -> list[dict[str, Any]]:
    """Every PutMetricData the moto server accepted, as the server parsed it."""
    from moto.cloudwatch.models import CloudWatchBackend

    received: list[dict[str, Any]] = []
    original = CloudWatchBackend.put_metric_data

    def spy(self, namespace, metric_data):
        received.append({"Namespace": namespace, "MetricData": [dict(datum) for datum in metric_data]})
        return original(self, namespace, metric_data)

    monkeypatch.setattr(CloudWatchBackend, "put_metric_data", spy)
    return received


def cw_env(tmp_path, emulator, cloudwatch, **settings):
    return base_env(
        tmp_path,
        ECS_CONTAINER_METADATA_URI_V4=emulator.metadata_uri,
        CLOCK_SINK="cloudwatch",
        CLOCK_LOG_LEVEL="DEBUG",  # each sample's timestamp is logged
        **cloudwatch.env(),
        **settings,
    )


def sample_timestamps(worker) -> list[datetime]:
    return [datetime.fromisoformat(entry["timestamp"]) for entry in worker.logs("sampled")]


def read_back(client, namespace, name, dimensions, start, end, *, unit=None, stat="Maximum"):
    metric_stat: dict[str, Any] = {
        "Metric": {"Namespace": namespace, "MetricName": name, "Dimensions": dimensions},
        "Period": 1,
        "Stat": stat,
    }
    if unit:
        metric_stat["Unit"] = unit
    answer = client.get_metric_data(
        MetricDataQueries=[{"Id": "m", "MetricStat": metric_stat}],
        StartTime=start, EndTime=end, ScanBy="TimestampAscending",
    )
    result = answer["MetricDataResults"][0]
    return list(zip([as_utc(t) for t in result["Timestamps"]], result["Values"]))


def whole_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


class _Counters(BaseHTTPRequestHandler):
    """The app's cumulative gate counters: +2 allowed and +1 refused per request."""

    calls = 0

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        type(self).calls += 1
        body = json.dumps({"allowed": 2 * self.calls, "refused": self.calls}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def app_counters():
    handler = type("Counters", (_Counters,), {"calls": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}/api/operations/stats"
    server.shutdown()
    server.server_close()


def test_published_metrics_as_cloudwatch_holds_them(tmp_path, emulator, cloudwatch, received_requests, app_counters,
                                                    start_worker):
    counters, stats_url = app_counters
    worker = start_worker(cw_env(tmp_path, emulator, cloudwatch, CLOCK_SERVICE_NAME="orders", CLOCK_APP_STATS_URL=stats_url))
    # Batched at 1 Hz: the first sample goes alone, the next ones five to a request.
    worker.wait_for(lambda: len(worker.logs("put_metric_data_sent")) >= 2, timeout_s=20, what="2 sends")
    code, took = worker.terminate()
    assert code == 0 and took < 5
    stamps = sample_timestamps(worker)
    assert len(stamps) >= 3
    # boto3's models, made at start-up, are out of the garbage collector's way before the
    # first sample: full collections walking them cost a third of the CPU budget.
    frozen = worker.logs("start_up_heap_frozen")
    assert len(frozen) == 1 and frozen[0]["frozen_objects"] > 20_000, frozen
    client = cloudwatch.client()
    namespace = "FargateClock"

    # Names and both dimension sets.
    listed = {
        (metric["MetricName"], tuple((d["Name"], d["Value"]) for d in metric["Dimensions"]))
        for metric in client.list_metrics(Namespace=namespace)["Metrics"]
    }
    service = (("Service", "orders"),)
    per_task = (("Service", "orders"), ("TaskID", TASK_ID))
    assert listed == {(name, service) for name in [*SERVICE_METRICS, "OperationsAllowed", "OperationsRefused"]} | {
        ("EffectiveClockErrorBound", per_task)
    }

    start = whole_second(stamps[0]) - timedelta(seconds=2)
    end = whole_second(stamps[-1]) + timedelta(seconds=2)
    # One point per second that had a sample (two samples can share a second under jitter).
    expected_seconds = sorted({whole_second(stamp) for stamp in stamps})
    service_dims = [{"Name": "Service", "Value": "orders"}]
    for name in SERVICE_METRICS:
        points = read_back(client, namespace, name, service_dims, start, end, unit=UNITS[name])
        assert [moment for moment, _ in points] == expected_seconds, name
        wrong_unit = "Bytes"
        assert read_back(client, namespace, name, service_dims, start, end, unit=wrong_unit) == [], name
    assert {value for _, value in read_back(client, namespace, "ClockErrorBound", service_dims, start, end)} == {0.446931}
    assert {value for _, value in read_back(client, namespace, "ClockSynchronized", service_dims, start, end)} == {1.0}
    assert {value for _, value in read_back(client, namespace, "ClockSampleFailures", service_dims, start, end)} == {0.0}
    for _, value in read_back(client, namespace, "ClockReferenceAge", service_dims, start, end):
        assert 0 <= value < 2
    task_dims = [{"Name": name, "Value": value} for name, value in per_task]
    effective = read_back(client, namespace, "EffectiveClockErrorBound", task_dims, start, end, unit="Milliseconds")
    assert [moment for moment, _ in effective] == expected_seconds
    # The reported bound grown by a reference age of at most 2 s at the default drift.
    growth_ms = 2 * contract.DEFAULT_MAX_DRIFT_PPM * 0.001
    assert all(0.446931 <= value <= 0.446931 + growth_ms for _, value in effective)

    # The app's counters: deltas summing to the app's cumulative totals.
    allowed = read_back(client, namespace, "OperationsAllowed", service_dims, start, end, unit="Count", stat="Sum")
    refused = read_back(client, namespace, "OperationsRefused", service_dims, start, end, unit="Count", stat="Sum")
    assert sum(value for _, value in allowed) == 2 * counters.calls
    assert sum(value for _, value in refused) == counters.calls

    # Exact timestamps and units on what moto stored.
    datums = stored_datums(namespace)
    assert {as_utc(datum.timestamp) for datum in datums} == set(stamps)
    assert all(datum.unit == UNITS[datum.name] for datum in datums)

    # What the server received: explicit timestamps, units and high resolution on every datum.
    sent = [datum for request in received_requests for datum in request["MetricData"]]
    assert {request["Namespace"] for request in received_requests} == {namespace}
    assert len(sent) == len(datums)
    for datum in sent:
        assert int(datum["StorageResolution"]) == 1
        assert datum["Unit"] == UNITS[datum["MetricName"]]
        assert datum["Timestamp"] is not None


def test_seed_profile_publishes_the_seed_layout(tmp_path, emulator, cloudwatch, start_worker):
    env = cw_env(tmp_path, emulator, cloudwatch, CLOCK_METRICS_PROFILE="seed")
    # The service-specific endpoint variable works as well as the general one.
    env["AWS_ENDPOINT_URL_CLOUDWATCH"] = env.pop("AWS_ENDPOINT_URL")
    worker = start_worker(env)
    worker.wait_for(lambda: len(worker.logs("put_metric_data_sent")) >= 1, timeout_s=15, what="a send")
    worker.terminate()
    client = cloudwatch.client()
    per_task = client.list_metrics(
        Namespace="ECS/ContainerInsights", MetricName="ClockErrorBound",
        Dimensions=[{"Name": "TaskID", "Value": TASK_ID}],
    )["Metrics"]
    assert per_task, "no per-task ClockErrorBound in ECS/ContainerInsights"
    assert {(d["Name"], d["Value"]) for d in per_task[0]["Dimensions"]} == {
        ("ClusterName", "clock-demo-cluster"), ("Family", "clock-demo"), ("TaskID", TASK_ID)
    }


def test_a_high_bound_reaches_cloudwatch_within_an_interval_and_a_second(tmp_path, emulator, cloudwatch, start_worker):
    worker = start_worker(cw_env(tmp_path, emulator, cloudwatch))
    worker.wait_for(lambda: len(worker.logs("put_metric_data_sent")) >= 1, timeout_s=15, what="a send")
    switched = time.monotonic()
    emulator.set_scenario("high_bound", bound_ms=9.25)
    worker.wait_for(
        lambda: any(d.name == "ClockErrorBound" and d.value == 9.25 for d in stored_datums()), timeout_s=5,
        what="the high bound in moto",
    )
    latency_s = time.monotonic() - switched
    worker.terminate()
    assert latency_s <= 1.0 + 1.0, latency_s


def test_steady_samples_go_batched_and_a_high_bound_goes_at_once(tmp_path, emulator, cloudwatch, received_requests,
                                                                start_worker):
    worker = start_worker(cw_env(tmp_path, emulator, cloudwatch))  # the default 5 s delay, at 1 Hz
    worker.wait_for(lambda: len(worker.logs("sampled")) >= 12, timeout_s=25, what="12 samples")
    worker.wait_for(lambda: len(received_requests) >= 3, timeout_s=10, what="3 requests")
    steady_requests = list(received_requests)
    steady_samples = len(worker.logs("sampled"))
    # (b) a switch to a high bound crosses the alarm threshold: it does not wait.
    switched = time.monotonic()
    emulator.set_scenario("high_bound", bound_ms=9.25)
    worker.wait_for(
        lambda: any(d.name == "ClockErrorBound" and d.value == 9.25 for d in stored_datums()), timeout_s=5,
        what="the high bound in moto",
    )
    latency_s = time.monotonic() - switched
    code, took = worker.terminate()
    assert code == 0 and took < 5
    assert latency_s <= 1.0 + 1.0, latency_s

    # (a) steady samples shared requests: far fewer requests than samples.
    def samples_in(request):
        return len({datum["Timestamp"] for datum in request["MetricData"]})

    per_request = [samples_in(request) for request in steady_requests]
    assert per_request[0] == 1, per_request  # the first sample after start goes at once
    assert max(per_request) >= 4, per_request
    assert len(steady_requests) <= steady_samples // 3, (len(steady_requests), steady_samples)
    # ... each datum with its own sample's timestamp, every sample exactly once.
    bounds = [d for d in stored_datums() if d.name == "ClockErrorBound"]
    assert sorted(as_utc(d.timestamp) for d in bounds) == sorted(sample_timestamps(worker))


def test_publish_delay_0_sends_every_sample_at_once(tmp_path, emulator, cloudwatch, received_requests, start_worker):
    worker = start_worker(cw_env(tmp_path, emulator, cloudwatch, CLOCK_PUBLISH_MAX_DELAY_SECONDS="0"))
    worker.wait_for(lambda: len(received_requests) >= 3, timeout_s=15, what="3 requests")
    worker.terminate()
    assert all(len({d["Timestamp"] for d in request["MetricData"]}) == 1 for request in received_requests)
    assert len(received_requests) == len(sample_timestamps(worker))


def test_thirty_second_outage_loses_nothing_and_keeps_timestamps(tmp_path, emulator, cloudwatch, start_worker):
    worker = start_worker(cw_env(tmp_path, emulator, cloudwatch))
    worker.wait_for(lambda: len(worker.logs("put_metric_data_sent")) >= 2, timeout_s=15, what="2 sends")
    cloudwatch.stop()
    try:
        # Thirty seconds of outage at 1 Hz is thirty samples taken while CloudWatch is
        # down, with the sink failing and retrying meanwhile: awaited as such, so a slow
        # machine gets a long enough outage too (a fixed 30 s sleep would not say so).
        before = len(worker.logs("sampled"))
        worker.wait_for(
            lambda: len(worker.logs("sampled")) >= before + OUTAGE_SAMPLES
            and len(worker.logs("put_metric_data_failed")) >= 2,
            timeout_s=3 * OUTAGE_SAMPLES,
            what=f"{OUTAGE_SAMPLES} samples and repeated failed sends with CloudWatch down",
        )
        during = len(worker.logs("sampled"))
        assert worker.logs("put_metric_data_recovered") == []
    finally:
        cloudwatch.start()
    worker.wait_for(lambda: len(worker.logs("put_metric_data_recovered")) >= 1, timeout_s=10, what="recovery")
    worker.wait_for(
        lambda: len({d.timestamp for d in stored_datums()}) >= during + 1, timeout_s=10, what="the backlog delivered"
    )
    code, took = worker.terminate()
    assert code == 0 and took < 5
    stamps = sample_timestamps(worker)
    assert len(stamps) >= OUTAGE_SAMPLES
    bounds = [d for d in stored_datums() if d.name == "ClockErrorBound"]
    # Every sample exactly once, at its own timestamp, including the 30 s without CloudWatch.
    assert sorted(as_utc(d.timestamp) for d in bounds) == sorted(stamps)
    assert worker.logs("buffer_dropped") == []
    client = cloudwatch.client()
    points = read_back(
        client, "FargateClock", "ClockErrorBound", [{"Name": "Service", "Value": "clock-demo"}],
        whole_second(stamps[0]) - timedelta(seconds=1), whole_second(stamps[-1]) + timedelta(seconds=2),
    )
    assert [moment for moment, _ in points] == sorted({whole_second(stamp) for stamp in stamps})


def test_sigterm_flushes_the_buffer_and_exits_0_within_5_s(tmp_path, emulator, cloudwatch, start_worker):
    worker = start_worker(cw_env(tmp_path, emulator, cloudwatch))
    worker.wait_for(lambda: len(worker.logs("put_metric_data_sent")) >= 1, timeout_s=15, what="a send")
    cloudwatch.stop()
    # CloudWatch comes back a second after SIGTERM: the flush keeps trying within its budget.
    restart = threading.Timer(1.0, cloudwatch.start)
    try:
        worker.wait_for(lambda: len(worker.logs("put_metric_data_failed")) >= 2, timeout_s=10, what="failed sends")
    finally:
        restart.start()
        code, took = worker.terminate()
        restart.join()
    assert code == 0 and took < 5, (code, took)
    flushing = worker.logs("flushing")
    assert flushing and flushing[0]["buffered_samples"] >= 2
    assert worker.logs("flushed"), worker.stderr_lines[-5:]
    bounds = [d for d in stored_datums() if d.name == "ClockErrorBound"]
    assert sorted(as_utc(d.timestamp) for d in bounds) == sorted(sample_timestamps(worker))


def test_sigterm_with_cloudwatch_down_still_exits_0_within_5_s(tmp_path, emulator, cloudwatch, start_worker):
    worker = start_worker(cw_env(tmp_path, emulator, cloudwatch))
    worker.wait_for(lambda: len(worker.logs("put_metric_data_sent")) >= 1, timeout_s=15, what="a send")
    cloudwatch.stop()
    try:
        worker.wait_for(lambda: len(worker.logs("put_metric_data_failed")) >= 1, timeout_s=10, what="a failed send")
        code, took = worker.terminate()
    finally:
        cloudwatch.start()
    assert code == 0 and took < 5, (code, took)
    incomplete = worker.logs("flush_incomplete")
    assert incomplete and incomplete[0]["unsent_samples"] >= 1
