"""Embedded Metric Format: one JSON line per sample on stdout.

With the awslogs driver CloudWatch Logs extracts the metrics from these lines: no IAM
permission and no API call. The line has two metric directives over the same values:
every metric under `[["Service"]]`, and the per-task metrics under the per-task set
(when the task is known). This module must not import boto3: EMF mode stays small.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from clock_worker.metrics import SampleMetrics

# EMF limits (specification): 100 metrics per directive, 30 dimension keys per set.
MAX_METRICS_PER_DIRECTIVE = 100


def emf_document(metrics: SampleMetrics, *, namespace: str, storage_resolution: int) -> dict[str, Any]:
    def definition(metric_name: str, unit: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"Name": metric_name, "Unit": unit}
        if storage_resolution == 1:
            entry["StorageResolution"] = 1
        return entry

    directives: list[dict[str, Any]] = [
        {
            "Namespace": namespace,
            "Dimensions": [[name for name, _ in metrics.service_dimensions]],
            "Metrics": [definition(metric.spec.name, metric.spec.unit) for metric in metrics.values],
        }
    ]
    per_task = metrics.per_task_values
    if per_task and metrics.task_dimensions is not None:
        directives.append(
            {
                "Namespace": namespace,
                "Dimensions": [[name for name, _ in metrics.task_dimensions]],
                "Metrics": [definition(metric.spec.name, metric.spec.unit) for metric in per_task],
            }
        )
    document: dict[str, Any] = {
        "_aws": {
            "Timestamp": int(metrics.timestamp.timestamp() * 1000),
            "CloudWatchMetrics": directives,
        }
    }
    # Target members: every dimension value (a string) and every metric value at the root.
    for name, value in metrics.service_dimensions:
        document[name] = value
    for name, value in metrics.task_dimensions or ():
        document[name] = value
    for name, value in metrics.task_properties:
        document.setdefault(name, value)
    for metric in metrics.values:
        document[metric.spec.name] = metric.value
    return document


class EmfSink:
    def __init__(self, *, namespace: str, storage_resolution: int, stream: TextIO | None = None) -> None:
        self._namespace = namespace
        self._storage_resolution = storage_resolution
        self._stream = stream
        # The directives and dimension members repeat from sample to sample; their JSON
        # is made once per shape (this runs every second, and on a sidecar's CPU budget).
        self._fragments: dict[tuple[object, ...], tuple[str, str]] = {}

    def line(self, metrics: SampleMetrics) -> str:
        """The sample's EMF document as one JSON line (same content as `emf_document`)."""
        shape = (
            tuple(metric.spec.name for metric in metrics.values),
            metrics.service_dimensions,
            metrics.task_dimensions,
            metrics.per_task_metrics,
            metrics.task_properties,
        )
        fragments = self._fragments.get(shape)
        if fragments is None:
            document = emf_document(metrics, namespace=self._namespace, storage_resolution=self._storage_resolution)
            directives = json.dumps(document["_aws"]["CloudWatchMetrics"], separators=(",", ":"))
            members = json.dumps(
                {name: value for name, value in document.items() if name != "_aws" and isinstance(value, str)},
                separators=(",", ":"),
            )[1:-1]
            fragments = (directives, members)
            if len(self._fragments) > 64:
                self._fragments.clear()  # shapes are few; never let an odd stream of them grow this
            self._fragments[shape] = fragments
        directives, members = fragments
        values = json.dumps(
            {metric.spec.name: metric.value for metric in metrics.values}, separators=(",", ":"), allow_nan=False
        )[1:-1]
        timestamp_ms = int(metrics.timestamp.timestamp() * 1000)
        return f'{{"_aws":{{"Timestamp":{timestamp_ms},"CloudWatchMetrics":{directives}}},{members},{values}}}'

    def publish(self, metrics: SampleMetrics) -> None:
        stream = self._stream or sys.stdout
        line = self.line(metrics)
        try:
            stream.write(line + "\n")
            stream.flush()
        except (BrokenPipeError, ValueError):
            pass  # stdout closed (the log driver went away): nothing left to write to

    def close(self, *, deadline_monotonic: float) -> None:
        stream = self._stream or sys.stdout
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):
            pass
