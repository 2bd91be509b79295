"""The shared fixtures themselves work: a reading comes through the emulator, and
a datum put into moto can be read back."""

from datetime import datetime, timezone

from clockcore import read_clock


def test_emulator_serves_a_reading(emulator):
    reading = read_clock(emulator.metadata_uri, max_drift_ppm=15)
    assert reading.synchronized
    assert emulator.task_requests == 1


def test_moto_round_trip(cloudwatch):
    client = cloudwatch.client()
    client.put_metric_data(
        Namespace="Smoke", MetricData=[{"MetricName": "M", "Value": 1.5, "Timestamp": datetime.now(timezone.utc)}]
    )
    assert [m["MetricName"] for m in client.list_metrics(Namespace="Smoke")["Metrics"]] == ["M"]
