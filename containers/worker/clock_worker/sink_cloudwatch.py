"""PutMetricData through boto3, from a bounded buffer, on a sender thread.

The sampling loop only appends to the buffer, so a slow or unreachable CloudWatch
never delays a sample. The sender sends the oldest samples first, up to 1,000 datums
per call, each datum with its sample's own timestamp.

Alarm-aware batching: each PutMetricData call costs ~2-3 ms of CPU in botocore
whatever it carries, so samples may wait up to `max_delay_s` to share a call. A sample
that changes what an alarm would see (`changes_what_alarms_see`) never waits: it goes
at once, with everything waiting before it, so detection latency stays one interval
plus a send. The batch also goes as soon as the next sample could not join it in time
(so with an interval longer than the delay every sample is sent when taken), and at the
latest when its oldest sample has waited `max_delay_s`. What CloudWatch does not accept
(endpoint down, throttled, 5xx) stays buffered and is re-sent with back-off. A request
CloudWatch rejects as invalid is dropped and logged: re-sending it would fail forever.

boto3 honours AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_CLOUDWATCH and the standard
credential chain (the task role in ECS) natively.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from clock_worker.buffer import SampleBuffer
from clock_worker.logs import log_event
from clock_worker.metrics import Dimensions, MetricValue, SampleMetrics
from clockcore import contract

log = logging.getLogger("clock_worker.cloudwatch")

MAX_DATUMS_PER_REQUEST = 1000  # PutMetricData's limit
# Codes that mean "this request will never be accepted": drop it instead of retrying.
REJECTED_CODES = frozenset(
    {
        "InvalidParameterValue",
        "InvalidParameterCombination",
        "MissingParameter",
        "InvalidParameterValueException",
        "ValidationError",
    }
)
MIN_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
FLUSH_RETRY_S = 0.25


def _dimensions(dimensions: Dimensions) -> list[dict[str, str]]:
    return [{"Name": name, "Value": value} for name, value in dimensions]


def datums_for(sample: SampleMetrics, *, storage_resolution: int) -> list[dict[str, Any]]:
    """The sample's PutMetricData datums: every value under the service-level set, then
    the per-task values under the per-task set; each with the sample's own timestamp."""

    def datum(metric: MetricValue, dimensions: list[dict[str, str]]) -> dict[str, Any]:
        return {
            "MetricName": metric.spec.name,
            "Dimensions": dimensions,
            "Timestamp": sample.timestamp,
            "Value": metric.value,
            "Unit": metric.spec.unit,
            "StorageResolution": storage_resolution,
        }

    service = _dimensions(sample.service_dimensions)
    datums = [datum(metric, service) for metric in sample.values]
    if sample.task_dimensions is not None:
        per_task = _dimensions(sample.task_dimensions)
        datums.extend(datum(metric, per_task) for metric in sample.per_task_values)
    return datums


def _alarm_view(sample: SampleMetrics, threshold_ms: float) -> tuple[bool | None, ...]:
    """What the clock alarms evaluate in one sample: failed, synchronized, and each bound
    over the threshold (None where the sample has no such value, as a failed one)."""

    def over(spec: contract.MetricSpec) -> bool | None:
        value = sample.value_of(spec.name)
        # The bound alarms compare with GreaterThanThreshold.
        return None if value is None else value > threshold_ms

    failures = sample.value_of(contract.SAMPLE_FAILURES.name)
    synchronized = sample.value_of(contract.CLOCK_SYNCHRONIZED.name)
    return (
        failures is not None and failures >= 1,
        None if synchronized is None else synchronized >= 1,
        over(contract.EFFECTIVE_BOUND),
        over(contract.CLOCK_ERROR_BOUND),
    )


def changes_what_alarms_see(previous: SampleMetrics | None, current: SampleMetrics, *, threshold_ms: float) -> bool:
    """True when `current` must be sent at once instead of waiting for a batch.

    Why: batching saves the per-call CPU, but an alarm acts only on what CloudWatch
    holds, and issue 2 wants a switch to a high bound in CloudWatch within one interval
    plus a second. Only a sample that can move an alarm needs that: the first one after
    start, a change of synchronization status, a sample failing after good ones (or
    recovering), or a bound (effective, or reported: the seed profile's per-task alarm
    watches that one) crossing the alarm threshold in either direction. Steady samples
    change no alarm's state, so they may wait. Decided on the values the sink receives,
    so it holds for whatever the alarms are built from the same contract.
    """
    if previous is None:
        return True
    return _alarm_view(previous, threshold_ms) != _alarm_view(current, threshold_ms)


def make_client(*, region: str | None, connect_timeout_s: float, read_timeout_s: float, max_attempts: int) -> Any:
    config = Config(
        region_name=region,
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        # The datums are built here from typed values; botocore's validation of them
        # was a fifth of the CPU of every call.
        parameter_validation=False,
    )
    return boto3.session.Session().client("cloudwatch", config=config)


class CloudWatchSink:
    def __init__(
        self,
        *,
        namespace: str,
        storage_resolution: int,
        buffer_samples: int,
        client: Any,
        interval_s: float,
        max_delay_s: float = 0.0,
        threshold_ms: float = contract.DEFAULT_THRESHOLD_MS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._namespace = namespace
        self._storage_resolution = storage_resolution
        self._client = client
        self._interval_s = interval_s
        self._max_backoff_s = max(MIN_BACKOFF_S, min(MAX_BACKOFF_S, interval_s))
        self._max_delay_s = max_delay_s
        self._threshold_ms = threshold_ms
        self._monotonic = monotonic
        self._previous: SampleMetrics | None = None
        self.buffer = SampleBuffer(buffer_samples, monotonic=monotonic)
        self._send_now = threading.Event()  # a sample that must not wait is in the buffer
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._send_lock = threading.Lock()  # the sender thread and the final flush never send at once
        self._failing = False
        # How far the sender has looked: `_published` counts publish() calls, and
        # `_considered` how many of them the sender had seen when it last decided that
        # nothing is due and went to wait (`_idle` while it waits). Nothing reads them
        # but wait_until_idle().
        self._progress = threading.Condition()
        self._published = 0
        self._considered = 0
        self._idle = False
        self.sent_samples = 0
        self.rejected_samples = 0
        self._thread = threading.Thread(target=self._run, name="cloudwatch-sender", daemon=True)
        self._thread.start()

    def publish(self, metrics: SampleMetrics) -> None:
        urgent = changes_what_alarms_see(self._previous, metrics, threshold_ms=self._threshold_ms)
        self._previous = metrics
        self.buffer.add(metrics)
        if urgent or self._batch_is_complete():
            self._send_now.set()
        with self._progress:
            self._published += 1
        self._wake.set()  # also when it may wait: the sender times the oldest sample's wait

    def wait_until_idle(self, timeout_s: float) -> bool:
        """Wait until the sender has seen every sample published so far and, with nothing
        due, waits: whatever it would send at once for them is sent by then. False if
        that did not happen within `timeout_s`. A positive signal for tests, which can
        then assert what was not sent without guessing how long the thread needs."""
        with self._progress:
            return self._progress.wait_for(lambda: self._idle and self._considered == self._published, timeout_s)

    def _batch_is_complete(self) -> bool:
        """No further sample could join the waiting ones in time: the next one is due
        (give or take half an interval of jitter) after the oldest must have gone."""
        oldest = self.buffer.oldest_added_at()
        if oldest is None:
            return False
        return self._monotonic() + 1.5 * self._interval_s > oldest + self._max_delay_s

    def _wait_until_due(self) -> None:
        """Wait until the buffer should be sent: a sample that must not wait is in it, or
        the oldest sample has waited `max_delay_s` (also when no new sample comes)."""
        while not self._stopping.is_set():
            self._wake.clear()
            # A publish() counted after this read sets _wake again, so the wait below
            # returns at once and the next round sees it.
            with self._progress:
                seen = self._published
            if self._send_now.is_set():
                return
            oldest = self.buffer.oldest_added_at()
            wait_s: float | None = None
            if oldest is not None:
                wait_s = oldest + self._max_delay_s - self._monotonic()
                if wait_s <= 0:
                    return
            self._set_idle(True, seen)
            self._wake.wait(wait_s)
            self._set_idle(False, seen)

    def _set_idle(self, idle: bool, seen: int) -> None:
        with self._progress:
            self._idle, self._considered = idle, seen
            self._progress.notify_all()

    def _run(self) -> None:
        backoff_s = 0.0
        while not self._stopping.is_set():
            if backoff_s:
                # After a failure, wait (a new sample does not cut the wait short), then
                # re-send everything waiting, whatever its age.
                self._stopping.wait(backoff_s)
            else:
                self._wait_until_due()
            if self._stopping.is_set():
                break
            outcome = self._send_pending(deadline_monotonic=None)
            backoff_s = 0.0 if outcome else min(self._max_backoff_s, max(MIN_BACKOFF_S, backoff_s * 2))

    def _send_pending(self, *, deadline_monotonic: float | None) -> bool:
        """Send until the buffer is empty; False when CloudWatch could not take it now."""
        with self._send_lock:
            # Everything in the buffer goes now; a sample added meanwhile joins this round.
            self._send_now.clear()
            while True:
                if deadline_monotonic is not None and time.monotonic() >= deadline_monotonic:
                    return False
                batch = self.buffer.peek_batch(MAX_DATUMS_PER_REQUEST)
                if not batch:
                    return True
                if not self._send(batch):
                    return False

    def _send(self, batch: list[SampleMetrics]) -> bool:
        metric_data = [
            datum for sample in batch for datum in datums_for(sample, storage_resolution=self._storage_resolution)
        ]
        try:
            self._client.put_metric_data(Namespace=self._namespace, MetricData=metric_data)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in REJECTED_CODES:
                self.buffer.remove(batch)
                self.rejected_samples += len(batch)
                log_event(
                    log,
                    logging.ERROR,
                    "put_metric_data_rejected",
                    f"CloudWatch rejected {len(batch)} sample(s) as invalid; dropped: {code}: {error}"[:500],
                    code=code,
                    samples=len(batch),
                )
                return True
            self._note_failure(f"{code or 'ClientError'}: {error}")
            return False
        except BotoCoreError as error:  # endpoint down, timeouts, no credentials
            self._note_failure(f"{error.__class__.__name__}: {error}")
            return False
        self.buffer.remove(batch)
        self.sent_samples += len(batch)
        if self._failing:
            self._failing = False
            log_event(
                log,
                logging.INFO,
                "put_metric_data_recovered",
                "CloudWatch accepts metrics again",
                buffered_samples=len(self.buffer),
            )
        if log.isEnabledFor(logging.DEBUG):
            log_event(
                log,
                logging.DEBUG,
                "put_metric_data_sent",
                f"sent {len(batch)} sample(s), {len(metric_data)} datums",
                samples=len(batch),
                datums=len(metric_data),
            )
        return True

    def _note_failure(self, detail: str) -> None:
        if not self._failing:
            self._failing = True
            log_event(
                log,
                logging.WARNING,
                "put_metric_data_failed",
                f"CloudWatch did not take the metrics; keeping them to re-send: {detail}"[:500],
                buffered_samples=len(self.buffer),
            )
        else:
            log_event(log, logging.DEBUG, "put_metric_data_failed", detail[:500], buffered_samples=len(self.buffer))

    def close(self, *, deadline_monotonic: float) -> None:
        """Stop the sender and send what is buffered, giving up at the deadline.

        The flush runs on its own daemon thread: a request hanging on a dead endpoint
        must not hold the process past the deadline (ECS kills it 30 s after SIGTERM,
        the contract here is 5 s).
        """
        self._stopping.set()
        self._wake.set()
        log_event(
            log,
            logging.INFO,
            "flushing",
            f"sending {len(self.buffer)} buffered sample(s) before exit",
            buffered_samples=len(self.buffer),
        )
        outcome: list[bool] = []

        def flush() -> None:
            # Keep trying until the deadline: an endpoint that is back a second later
            # still gets everything.
            while True:
                if self._send_pending(deadline_monotonic=deadline_monotonic):
                    outcome.append(True)
                    return
                remaining = deadline_monotonic - time.monotonic()
                if remaining <= 0:
                    return
                time.sleep(min(FLUSH_RETRY_S, remaining))

        flusher = threading.Thread(target=flush, name="cloudwatch-flush", daemon=True)
        flusher.start()
        flusher.join(timeout=max(0.0, deadline_monotonic - time.monotonic()))
        left = len(self.buffer)
        if outcome and outcome[0] and not left:
            log_event(
                log, logging.INFO, "flushed", "buffered metrics delivered before exit", sent_samples=self.sent_samples
            )
        else:
            log_event(
                log,
                logging.ERROR,
                "flush_incomplete",
                f"{left} buffered sample(s) could not be delivered before exit",
                unsent_samples=left,
                dropped_total=self.buffer.dropped_total,
            )
