"""PutMetricData through boto3, from a bounded buffer, on a sender thread.

The sampling loop only appends to the buffer, so a slow or unreachable CloudWatch
never delays a sample. The sender sends the oldest samples first, up to 1,000 datums
per call, each datum with its sample's own timestamp; what CloudWatch does not accept
(endpoint down, throttled, 5xx) stays buffered and is re-sent with back-off. A request
CloudWatch rejects as invalid is dropped and logged: re-sending it would fail forever.

boto3 honours AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_CLOUDWATCH and the standard
credential chain (the task role in ECS) natively.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from clock_worker.buffer import SampleBuffer
from clock_worker.logs import log_event
from clock_worker.metrics import Dimensions, SampleMetrics

log = logging.getLogger("clock_worker.cloudwatch")

MAX_DATUMS_PER_REQUEST = 1000  # PutMetricData's limit
# Codes that mean "this request will never be accepted": drop it instead of retrying.
REJECTED_CODES = frozenset(
    {"InvalidParameterValue", "InvalidParameterCombination", "MissingParameter", "InvalidParameterValueException", "ValidationError"}
)
MIN_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
FLUSH_RETRY_S = 0.25


def _dimensions(dimensions: Dimensions) -> list[dict[str, str]]:
    return [{"Name": name, "Value": value} for name, value in dimensions]


def datums_for(sample: SampleMetrics, *, storage_resolution: int) -> list[dict[str, Any]]:
    datums: list[dict[str, Any]] = []
    service = _dimensions(sample.service_dimensions)
    for metric in sample.values:
        datums.append(
            {
                "MetricName": metric.spec.name,
                "Dimensions": service,
                "Timestamp": sample.timestamp,
                "Value": metric.value,
                "Unit": metric.spec.unit,
                "StorageResolution": storage_resolution,
            }
        )
    if sample.task_dimensions is not None:
        per_task = _dimensions(sample.task_dimensions)
        for metric in sample.per_task_values:
            datums.append(
                {
                    "MetricName": metric.spec.name,
                    "Dimensions": per_task,
                    "Timestamp": sample.timestamp,
                    "Value": metric.value,
                    "Unit": metric.spec.unit,
                    "StorageResolution": storage_resolution,
                }
            )
    return datums


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
    ) -> None:
        self._namespace = namespace
        self._storage_resolution = storage_resolution
        self._client = client
        self._max_backoff_s = max(MIN_BACKOFF_S, min(MAX_BACKOFF_S, interval_s))
        self.buffer = SampleBuffer(buffer_samples)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._send_lock = threading.Lock()  # the sender thread and the final flush never send at once
        self._failing = False
        self.sent_samples = 0
        self.rejected_samples = 0
        self._thread = threading.Thread(target=self._run, name="cloudwatch-sender", daemon=True)
        self._thread.start()

    def publish(self, metrics: SampleMetrics) -> None:
        self.buffer.add(metrics)
        self._wake.set()

    def _run(self) -> None:
        backoff_s = 0.0
        while not self._stopping.is_set():
            if backoff_s:
                # After a failure, wait (a new sample does not cut the wait short).
                self._stopping.wait(backoff_s)
            else:
                self._wake.wait()
            self._wake.clear()
            if self._stopping.is_set():
                break
            outcome = self._send_pending(deadline_monotonic=None)
            backoff_s = 0.0 if outcome else min(self._max_backoff_s, max(MIN_BACKOFF_S, backoff_s * 2))

    def _send_pending(self, *, deadline_monotonic: float | None) -> bool:
        """Send until the buffer is empty; False when CloudWatch could not take it now."""
        with self._send_lock:
            while True:
                if deadline_monotonic is not None and time.monotonic() >= deadline_monotonic:
                    return False
                batch = self.buffer.peek_batch(MAX_DATUMS_PER_REQUEST)
                if not batch:
                    return True
                if not self._send(batch):
                    return False

    def _send(self, batch: list[SampleMetrics]) -> bool:
        metric_data = [datum for sample in batch for datum in datums_for(sample, storage_resolution=self._storage_resolution)]
        try:
            self._client.put_metric_data(Namespace=self._namespace, MetricData=metric_data)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in REJECTED_CODES:
                self.buffer.remove(batch)
                self.rejected_samples += len(batch)
                log_event(log, logging.ERROR, "put_metric_data_rejected",
                          f"CloudWatch rejected {len(batch)} sample(s) as invalid; dropped: {code}: {error}"[:500],
                          code=code, samples=len(batch))
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
            log_event(log, logging.INFO, "put_metric_data_recovered", "CloudWatch accepts metrics again",
                      buffered_samples=len(self.buffer))
        if log.isEnabledFor(logging.DEBUG):
            log_event(log, logging.DEBUG, "put_metric_data_sent", f"sent {len(batch)} sample(s), {len(metric_data)} datums",
                      samples=len(batch), datums=len(metric_data))
        return True

    def _note_failure(self, detail: str) -> None:
        if not self._failing:
            self._failing = True
            log_event(log, logging.WARNING, "put_metric_data_failed",
                      f"CloudWatch did not take the metrics; keeping them to re-send: {detail}"[:500],
                      buffered_samples=len(self.buffer))
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
        log_event(log, logging.INFO, "flushing", f"sending {len(self.buffer)} buffered sample(s) before exit",
                  buffered_samples=len(self.buffer))
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
            log_event(log, logging.INFO, "flushed", "buffered metrics delivered before exit", sent_samples=self.sent_samples)
        else:
            log_event(log, logging.ERROR, "flush_incomplete", f"{left} buffered sample(s) could not be delivered before exit",
                      unsent_samples=left, dropped_total=self.buffer.dropped_total)
