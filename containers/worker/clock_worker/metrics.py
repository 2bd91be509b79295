"""Turn a sample into the metrics the contract defines, with both dimension sets.

Every metric carries the service-level set `{Service: CLOCK_SERVICE_NAME}` (alarms name
it at deploy time); the metrics listed in `per_task_metrics` are also published under
the profile's per-task set (dashboards, Metrics Insights by TaskID). The metadata's
`ServiceName`, which Fargate may omit, is carried as information only. Both sinks consume
the same `SampleMetrics`, so EMF and PutMetricData publish identical data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from clock_worker.app_stats import OperationDeltas
from clock_worker.sampler import SampleFailure, SampleOutcome
from clockcore import ClockReading, TaskIdentity, contract
from clockcore.contract import MetricSpec, MetricsProfile

Dimensions = tuple[tuple[str, str], ...]
Properties = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class MetricValue:
    spec: MetricSpec
    value: float


@dataclass(frozen=True)
class SampleMetrics:
    """What one sample publishes: values, their timestamp, and the dimension sets."""

    timestamp: datetime
    values: tuple[MetricValue, ...]
    service_dimensions: Dimensions
    # None until a task document has told us who the task is.
    task_dimensions: Dimensions | None
    per_task_metrics: frozenset[str]
    # Information about the task that is no dimension (the metadata's ServiceName).
    task_properties: Properties = ()

    def value_of(self, name: str) -> float | None:
        for metric in self.values:
            if metric.spec.name == name:
                return metric.value
        return None

    @property
    def per_task_values(self) -> tuple[MetricValue, ...]:
        if self.task_dimensions is None:
            return ()
        return tuple(metric for metric in self.values if metric.spec.name in self.per_task_metrics)

    @property
    def datum_count(self) -> int:
        return len(self.values) + len(self.per_task_values)


class MetricBuilder:
    def __init__(self, *, profile: MetricsProfile, service_name: str, per_task_metrics: tuple[str, ...]) -> None:
        self._profile = profile
        self._service_name = service_name
        self._per_task_metrics = frozenset(per_task_metrics)
        self._service_dimensions: Dimensions = tuple(contract.service_dimensions(service_name).items())
        self._task_dimensions: Dimensions | None = None
        self._task_properties: Properties = ()
        self._identity: TaskIdentity | None = None

    def task_dimensions_for(self, identity: TaskIdentity) -> Dimensions:
        # Only values the agent always reports, or fixed at deploy time: the alarms and
        # dashboards filter on them, so none may depend on an optional metadata field.
        values: dict[str, str] = {
            contract.SERVICE_DIMENSION: self._service_name,
            contract.CLUSTER_DIMENSION: identity.cluster_name,
            contract.FAMILY_DIMENSION: identity.family,
            contract.TASK_ID_DIMENSION: identity.task_id,
        }
        return tuple((name, values[name]) for name in self._profile.per_task_dimensions)

    @staticmethod
    def task_properties_for(identity: TaskIdentity) -> Properties:
        """What the task metadata says beyond the dimensions, as information (EMF log fields)."""
        if identity.service_name:
            return ((contract.SERVICE_NAME_DIMENSION, identity.service_name),)
        return ()

    def build(self, outcome: SampleOutcome, operations: OperationDeltas | None = None) -> SampleMetrics:
        values: list[MetricValue] = []
        if isinstance(outcome, SampleFailure):
            timestamp = outcome.at
            values.append(MetricValue(contract.SAMPLE_FAILURES, 1.0))
        else:
            reading: ClockReading = outcome
            timestamp = reading.sampled_at
            if reading.identity != self._identity:
                self._identity = reading.identity
                self._task_dimensions = self.task_dimensions_for(reading.identity)
                self._task_properties = self.task_properties_for(reading.identity)
            values.append(MetricValue(contract.CLOCK_ERROR_BOUND, reading.bound_ms))
            values.append(MetricValue(contract.EFFECTIVE_BOUND, reading.effective_bound_ms))
            values.append(MetricValue(contract.CLOCK_SYNCHRONIZED, 1.0 if reading.synchronized else 0.0))
            age_s = reading.reference_age_s
            if age_s is not None:
                values.append(MetricValue(contract.REFERENCE_AGE, age_s))
            values.append(MetricValue(contract.SAMPLE_FAILURES, 0.0))
        if operations is not None:
            values.append(MetricValue(contract.OPERATIONS_ALLOWED, float(operations.allowed)))
            values.append(MetricValue(contract.OPERATIONS_REFUSED, float(operations.refused)))
        # After a failure the per-task set is the last one seen: the task has not changed.
        return SampleMetrics(
            timestamp=timestamp,
            values=tuple(values),
            service_dimensions=self._service_dimensions,
            task_dimensions=self._task_dimensions,
            per_task_metrics=self._per_task_metrics,
            task_properties=self._task_properties,
        )
