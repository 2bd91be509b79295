"""The worker's loop: sample, build metrics, publish, beat; until SIGTERM.

On SIGTERM (ECS stopping the task) or SIGINT the loop ends at once, cron jobs are
killed, the sink sends what it still holds, and the process exits 0, all within
`SHUTDOWN_BUDGET_S`.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType
from typing import Protocol

from clockcore import contract
from clockcore.clockbound import SegmentStatus
from clockcore.heap import freeze_start_up_heap

from clock_worker.app_stats import AppStatsPoller
from clock_worker.cron import CronRunner
from clock_worker.heartbeat import Heartbeat
from clock_worker.logs import log_event
from clock_worker.metrics import MetricBuilder, SampleMetrics
from clock_worker.sampler import Sampler, SampleFailure
from clock_worker.scheduler import MonotonicSchedule
from clock_worker.segment import ClockBoundSegment
from clock_worker.settings import WorkerSettings

log = logging.getLogger("clock_worker")

# The contract with ECS and the tests: exit within 5 s of SIGTERM. Leave a margin for
# interpreter shutdown after the flush.
SHUTDOWN_BUDGET_S = 4.0


class Sink(Protocol):
    def publish(self, metrics: SampleMetrics) -> None: ...

    def close(self, *, deadline_monotonic: float) -> None: ...


def make_sink(settings: WorkerSettings) -> Sink:
    if settings.sink == contract.SINK_CLOUDWATCH:
        # Imported here: boto3 costs ~25 MiB and ~0.2 s CPU, which EMF mode never pays.
        from clock_worker.sink_cloudwatch import CloudWatchSink, make_client

        client = make_client(
            region=settings.region,
            connect_timeout_s=settings.cloudwatch_connect_timeout_s,
            read_timeout_s=settings.cloudwatch_read_timeout_s,
            max_attempts=settings.cloudwatch_max_attempts,
        )
        return CloudWatchSink(
            namespace=settings.namespace,
            storage_resolution=settings.storage_resolution,
            buffer_samples=settings.buffer_samples,
            client=client,
            interval_s=settings.interval_s,
            max_delay_s=settings.publish_max_delay_s,
            threshold_ms=settings.threshold_ms,
        )
    from clock_worker.sink_emf import EmfSink

    return EmfSink(namespace=settings.namespace, storage_resolution=settings.storage_resolution)


class Worker:
    def __init__(self, settings: WorkerSettings, *, sink: Sink | None = None) -> None:
        self._settings = settings
        self._sink = sink  # made in run() when not given, after the signal handlers are in place
        self._stop = threading.Event()
        self._stop_requested_at: float | None = None
        self._sampler = Sampler(
            settings.metadata_uri,
            max_drift_ppm=settings.max_drift_ppm,
            connect_timeout_s=settings.metadata_connect_timeout_s,
            read_timeout_s=settings.metadata_read_timeout_s,
        )
        self._builder = MetricBuilder(
            profile=settings.profile, service_name=settings.service_name, per_task_metrics=settings.per_task_metrics
        )
        self._app_stats = (
            AppStatsPoller(
                settings.app_stats_url,
                connect_timeout_s=settings.metadata_connect_timeout_s,
                read_timeout_s=settings.metadata_read_timeout_s,
            )
            if settings.app_stats_url
            else None
        )
        self._heartbeat = Heartbeat(settings.heartbeat_file)
        self._cron = CronRunner(settings.cron_jobs, timeout_s=settings.job_timeout_s)
        self._segment = (
            ClockBoundSegment(
                settings.clockbound_shm,
                interval_s=settings.interval_s,
                max_reference_age_s=settings.max_reference_age_s,
            )
            if settings.clockbound_shm is not None
            else None
        )
        # Healthy only once a synchronized sample was taken (and, with a segment, written):
        # a task waiting on the worker's health starts on a clock that can be trusted.
        self.synchronized = False

    def request_stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        if self._stop_requested_at is None:
            self._stop_requested_at = time.monotonic()
        if signum is not None and not self._stop.is_set():
            log_event(log, logging.INFO, "stopping", f"received {signal.Signals(signum).name}; flushing and exiting",
                      signal=signal.Signals(signum).name)
        self._stop.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def run_once(self) -> SampleMetrics:
        assert self._sink is not None
        outcome = self._sampler.sample()
        reading = None if isinstance(outcome, SampleFailure) else outcome
        if self._segment is not None:
            # First: the segment is what the task's clients read; the metrics can wait.
            written = self._segment.update(reading)
            if written is SegmentStatus.SYNCHRONIZED:
                self.synchronized = True
        elif reading is not None and reading.synchronized:
            self.synchronized = True
        operations = self._app_stats.poll() if self._app_stats is not None else None
        metrics = self._builder.build(outcome, operations)
        self._sink.publish(metrics)
        if not isinstance(outcome, SampleFailure) and log.isEnabledFor(logging.DEBUG):
            log_event(log, logging.DEBUG, "sampled", "sample published", timestamp=outcome.sampled_at.isoformat(),
                      bound_ms=outcome.bound_ms, effective_bound_ms=outcome.effective_bound_ms,
                      status=outcome.status.value)
        return metrics

    def run(self) -> int:
        settings = self._settings
        log_event(
            log, logging.INFO, "started", "clock worker started",
            sink=settings.sink, profile=settings.profile.name, namespace=settings.namespace,
            service=settings.service_name, per_task_metrics=list(settings.per_task_metrics),
            interval_s=settings.interval_s, storage_resolution=settings.storage_resolution,
            publish_max_delay_s=settings.publish_max_delay_s, threshold_ms=settings.threshold_ms,
            app_stats_url=settings.app_stats_url, cron_jobs=len(settings.cron_jobs),
            clockbound_shm=str(settings.clockbound_shm) if settings.clockbound_shm else None,
        )
        if settings.unknown_settings:
            log_event(log, logging.WARNING, "unknown_settings",
                      f"ignoring unknown settings (typos?): {', '.join(settings.unknown_settings)}",
                      settings=list(settings.unknown_settings))
        if self._sink is None:
            self._sink = make_sink(settings)
        self._heartbeat.beat(synchronized=False)
        self._cron.start()
        frozen = freeze_start_up_heap()
        log_event(log, logging.DEBUG, "start_up_heap_frozen",
                  f"{frozen} start-up objects taken out of garbage collection", frozen_objects=frozen)
        schedule = MonotonicSchedule(settings.interval_s)
        while not self._stop.is_set():
            self.run_once()
            self._heartbeat.beat(synchronized=self.synchronized)
            delay_s, skipped = schedule.advance()
            if skipped:
                log_event(log, logging.WARNING, "samples_skipped",
                          f"a sample overran the interval; skipped {skipped} sample slot(s) to stay on schedule",
                          skipped=skipped, skipped_total=schedule.skipped_total)
            self._stop.wait(delay_s)
        return self.shutdown()

    def shutdown(self) -> int:
        # The budget runs from the signal, not from the end of the sample in flight.
        deadline = (self._stop_requested_at or time.monotonic()) + SHUTDOWN_BUDGET_S
        self._cron.stop()
        self._sampler.close()
        if self._segment is not None:
            self._segment.close()
        if self._app_stats is not None:
            self._app_stats.close()
        if self._sink is not None:
            self._sink.close(deadline_monotonic=deadline)
        log_event(log, logging.INFO, "stopped", "clock worker stopped",
                  samples_total=self._sampler.samples_total, failures_total=self._sampler.failures_total)
        return 0
