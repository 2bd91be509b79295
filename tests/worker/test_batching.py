"""Alarm-aware batching in the CloudWatch sink, with a fake PutMetricData client.

- `changes_what_alarms_see`: which samples must not wait;
- the sender: steady samples wait (up to the max delay, or until no further sample could
  join in time), a sample that changes what an alarm sees goes at once with everything
  waiting, and close() sends what is still waiting.

The sender thread runs for real; where its timing matters the tests use a fake monotonic
clock (the sink and its buffer read time only through it) or short real delays. Where a
test asserts that something was *not* sent yet, it first waits for the sink's positive
signal that the sender has looked at every sample published so far and chose to wait
(`CloudWatchSink.wait_until_idle`), never for a fixed time.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

pytest.importorskip("boto3")

from clock_worker.metrics import MetricValue, SampleMetrics  # noqa: E402
from clock_worker.sink_cloudwatch import CloudWatchSink, changes_what_alarms_see  # noqa: E402
from clockcore import contract  # noqa: E402

T0 = datetime(2026, 11, 28, 7, 0, 0, 125_000, tzinfo=timezone.utc)
THRESHOLD_MS = 1.0


def sample(
    seconds: float = 0.0, *, bound: float = 0.45, effective: float | None = None, synchronized: bool = True,
    failed: bool = False,
) -> SampleMetrics:
    if failed:
        values = (MetricValue(contract.SAMPLE_FAILURES, 1.0),)
    else:
        values = (
            MetricValue(contract.CLOCK_ERROR_BOUND, bound),
            MetricValue(contract.EFFECTIVE_BOUND, bound + 0.01 if effective is None else effective),
            MetricValue(contract.CLOCK_SYNCHRONIZED, 1.0 if synchronized else 0.0),
            MetricValue(contract.REFERENCE_AGE, 0.5),
            MetricValue(contract.SAMPLE_FAILURES, 0.0),
        )
    return SampleMetrics(
        timestamp=T0 + timedelta(seconds=seconds),
        values=values,
        service_dimensions=(("Service", "s"),),
        task_dimensions=None,
        per_task_metrics=frozenset(),
    )


# ------------------------------------------------------------------ change detection
@pytest.mark.parametrize(
    ("previous", "current", "changes"),
    [
        (None, sample(), True),  # the first sample after start
        (sample(), sample(1, bound=0.6), False),  # steady: below the threshold both times
        (sample(bound=3.0), sample(1, bound=7.5), False),  # still over it: the alarm already sees that
        (sample(), sample(1, bound=5.0), True),  # crossed up
        (sample(bound=5.0), sample(1), True),  # crossed down
        (sample(), sample(1, bound=0.9, effective=1.0), False),  # at the threshold is not over it (GreaterThan)
        (sample(), sample(1, bound=0.9, effective=1.0001), True),  # the effective bound alone crossed
        (sample(bound=0.9, effective=1.2), sample(1, bound=1.1, effective=1.3), True),  # the reported one (seed alarm)
        (sample(), sample(1, synchronized=False), True),  # sync status changed
        (sample(synchronized=False), sample(1, synchronized=False), False),
        (sample(synchronized=False), sample(1), True),
        (sample(), sample(1, failed=True), True),  # ok -> failed
        (sample(failed=True), sample(1, failed=True), False),
        (sample(failed=True), sample(1), True),  # failed -> ok
    ],
)
def test_what_changes_what_an_alarm_sees(previous, current, changes):
    assert changes_what_alarms_see(previous, current, threshold_ms=THRESHOLD_MS) is changes


def test_the_threshold_is_the_configured_one():
    assert changes_what_alarms_see(sample(), sample(1, bound=5.0), threshold_ms=10.0) is False
    assert changes_what_alarms_see(sample(), sample(1, bound=12.0), threshold_ms=10.0) is True


# ------------------------------------------------------------------ the sender
class FakeClient:
    """Records each put_metric_data call: when (real monotonic) and which sample timestamps."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, list[datetime]]] = []
        self._lock = threading.Lock()

    def put_metric_data(self, *, Namespace: str, MetricData: list[dict[str, Any]]) -> None:  # noqa: N803 - boto3's names
        stamps = sorted({datum["Timestamp"] for datum in MetricData})
        with self._lock:
            self.calls.append((time.monotonic(), stamps))

    def batches(self) -> list[list[datetime]]:
        with self._lock:
            return [stamps for _, stamps in self.calls]

    def wait_for_calls(self, count: int, timeout_s: float = 3.0) -> list[list[datetime]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and len(self.batches()) < count:
            time.sleep(0.005)
        return self.batches()


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_sink(client: FakeClient, *, interval_s: float, max_delay_s: float, monotonic=time.monotonic) -> CloudWatchSink:
    return CloudWatchSink(
        namespace="N", storage_resolution=1, buffer_samples=100, client=client, interval_s=interval_s,
        max_delay_s=max_delay_s, threshold_ms=THRESHOLD_MS, monotonic=monotonic,
    )


def stamps(*seconds: float) -> list[datetime]:
    return [T0 + timedelta(seconds=s) for s in seconds]


def sender_idle(sink: CloudWatchSink) -> None:
    """Wait until the sender has seen every sample published so far and, with nothing due,
    waits: what it would have sent at once for them is sent by now."""
    assert sink.wait_until_idle(timeout_s=5.0), "the sender never got round to the samples published"


def test_at_1_hz_steady_samples_go_five_to_a_call():
    client, clock = FakeClient(), FakeMonotonic()
    sink = make_sink(client, interval_s=1.0, max_delay_s=5.0, monotonic=clock)
    sink.publish(sample(0))
    assert client.wait_for_calls(1) == [stamps(0)]  # the first sample after start goes at once
    for second in range(1, 5):
        clock.now += 1.0
        sink.publish(sample(second))
    sender_idle(sink)
    assert client.batches() == [stamps(0)]  # 1..4 wait
    clock.now += 1.0
    sink.publish(sample(5))  # the next would come after sample 1 must have gone: send now
    assert client.wait_for_calls(2) == [stamps(0), stamps(1, 2, 3, 4, 5)]
    sink.close(deadline_monotonic=time.monotonic() + 2)


def _first_sent_then_two_waiting(*, max_delay_s: float) -> tuple[FakeClient, FakeMonotonic, CloudWatchSink]:
    """A 1 Hz sink whose first sample went at once and whose samples 1 and 2 wait."""
    client, clock = FakeClient(), FakeMonotonic()
    sink = make_sink(client, interval_s=1.0, max_delay_s=max_delay_s, monotonic=clock)
    sink.publish(sample(0))
    client.wait_for_calls(1)
    for second in (1, 2):
        clock.now += 1.0
        sink.publish(sample(second))
    sender_idle(sink)
    assert client.batches() == [stamps(0)]
    return client, clock, sink


def test_a_sample_that_changes_what_an_alarm_sees_goes_at_once_with_everything_waiting():
    client, clock, sink = _first_sent_then_two_waiting(max_delay_s=5.0)
    clock.now += 1.0
    sink.publish(sample(3, bound=9.25))  # over the threshold
    assert client.wait_for_calls(2) == [stamps(0), stamps(1, 2, 3)]
    clock.now += 1.0
    sink.publish(sample(4, bound=9.5))  # still over: waits
    sender_idle(sink)
    assert len(client.batches()) == 2
    clock.now += 1.0
    sink.publish(sample(5, failed=True))  # ok -> failed
    assert client.wait_for_calls(3)[-1] == stamps(4, 5)
    sink.close(deadline_monotonic=time.monotonic() + 2)


def test_with_an_interval_longer_than_the_delay_every_sample_goes_when_taken():
    client, clock = FakeClient(), FakeMonotonic()
    sink = make_sink(client, interval_s=10.0, max_delay_s=5.0, monotonic=clock)
    for index in range(3):
        sink.publish(sample(10 * index))
        assert client.wait_for_calls(index + 1) == [stamps(10 * i) for i in range(index + 1)]
        clock.now += 10.0
    sink.close(deadline_monotonic=time.monotonic() + 2)


def test_delay_0_sends_every_sample_at_once():
    client, clock = FakeClient(), FakeMonotonic()
    sink = make_sink(client, interval_s=1.0, max_delay_s=0.0, monotonic=clock)
    for second in range(3):
        sink.publish(sample(second))
        assert client.wait_for_calls(second + 1)[-1] == stamps(second)
        clock.now += 1.0
    sink.close(deadline_monotonic=time.monotonic() + 2)


def test_the_oldest_waiting_sample_goes_at_the_max_delay_without_a_new_sample():
    # Real time: a 0.4 s delay; after the last sample no other comes to trigger a send.
    client = FakeClient()
    sink = make_sink(client, interval_s=0.1, max_delay_s=0.4)
    sink.publish(sample(0))
    client.wait_for_calls(1)
    first_waiting = time.monotonic()
    sink.publish(sample(1))
    time.sleep(0.1)
    sink.publish(sample(2))
    batches = client.wait_for_calls(2, timeout_s=3)
    waited = client.calls[1][0] - first_waiting
    assert batches == [stamps(0), stamps(1, 2)]
    assert 0.35 <= waited <= 1.0, waited
    sink.close(deadline_monotonic=time.monotonic() + 2)


def test_close_sends_what_is_waiting():
    client, _clock, sink = _first_sent_then_two_waiting(max_delay_s=60.0)
    sink.close(deadline_monotonic=time.monotonic() + 2)
    assert client.batches() == [stamps(0), stamps(1, 2)]
    assert len(sink.buffer) == 0


class BlockingClient(FakeClient):
    """A client whose put_metric_data hangs until released."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def put_metric_data(self, **kwargs: Any) -> None:
        self.entered.set()
        assert self.release.wait(10), "never released"
        super().put_metric_data(**kwargs)


def test_the_sender_is_idle_only_once_it_has_acted_on_every_published_sample():
    """What sender_idle relies on: while an urgent sample is still being sent the sink is
    not idle; once it is, the send has happened; a sample that may wait leaves it idle."""
    client, clock = BlockingClient(), FakeMonotonic()
    sink = make_sink(client, interval_s=1.0, max_delay_s=5.0, monotonic=clock)
    sink.publish(sample(0))  # the first after start: sent at once
    assert client.entered.wait(5)
    assert sink.wait_until_idle(timeout_s=0.2) is False  # sending, not idle
    client.release.set()
    assert sink.wait_until_idle(timeout_s=5)
    assert client.batches() == [stamps(0)]
    clock.now += 1.0
    sink.publish(sample(1))  # steady: may wait
    assert sink.wait_until_idle(timeout_s=5)
    assert client.batches() == [stamps(0)]
    sink.close(deadline_monotonic=time.monotonic() + 2)
    assert client.batches() == [stamps(0), stamps(1)]
