"""What to measure: CloudWatch metrics for the clock, built from `clockcore.contract`.

One factory serves both the dashboard and the alarms, so a widget and the alarm next to
it always name the same namespace, metric and dimensions as the worker publishes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch

from clockcore import contract
from clock_stack.settings import ClockSettings

# CloudWatch accepts high-resolution alarm periods of 10, 20 and 30 s (CDK's Metric
# rejects 20), otherwise multiples of 60 s.
_HIGH_RESOLUTION_PERIODS = (10, 30)
# Metrics Insights alarms aggregate to one minute whatever the storage resolution.
METRICS_INSIGHTS_PERIOD = Duration.minutes(1)


def alarm_period(interval_seconds: float) -> Duration:
    """The shortest alarm period that sees at least one sample from every task."""
    for seconds in _HIGH_RESOLUTION_PERIODS:
        if interval_seconds <= seconds:
            return Duration.seconds(seconds)
    return Duration.minutes(math.ceil(interval_seconds / 60))


def no_data_period(interval_seconds: float) -> Duration:
    """Period for the "no data" alarm: a whole minute at least, so a late line is not an outage."""
    return Duration.minutes(max(1, math.ceil(interval_seconds / 60)))


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ClockMetrics:
    """Metric factory for one monitored service.

    `task_filter` names the per-task dimension values known at synth time (they may be
    tokens, such as the ECS service name); they scope the SEARCH and Metrics Insights
    queries to this service's tasks.
    """

    def __init__(self, *, settings: ClockSettings, task_filter: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.period = alarm_period(settings.interval_seconds)
        known = set(settings.profile.per_task_dimensions)
        self.task_filter = {name: value for name, value in (task_filter or {}).items() if name in known}

    @property
    def namespace(self) -> str:
        return self.settings.namespace

    @property
    def service_dimensions(self) -> dict[str, str]:
        return contract.service_dimensions(self.settings.service_name)

    def service_metric(
        self,
        spec: contract.MetricSpec,
        *,
        statistic: str,
        period: Duration | None = None,
        label: str | None = None,
    ) -> cloudwatch.Metric:
        """A metric on the fixed service-level dimensions (what alarms can name)."""
        return cloudwatch.Metric(
            namespace=self.namespace,
            metric_name=spec.name,
            dimensions_map=self.service_dimensions,
            statistic=statistic,
            period=period or self.period,
            label=label or spec.name,
        )

    # The metrics the alarms watch; the dashboard draws the same objects.
    def effective_bound_max(self) -> cloudwatch.Metric:
        return self.service_metric(contract.EFFECTIVE_BOUND, statistic="Maximum", label="effective bound, max of tasks (ms)")

    def reported_bound_max(self) -> cloudwatch.Metric:
        return self.service_metric(contract.CLOCK_ERROR_BOUND, statistic="Maximum", label="reported bound, max of tasks (ms)")

    def synchronized_min(self) -> cloudwatch.Metric:
        return self.service_metric(contract.CLOCK_SYNCHRONIZED, statistic="Minimum", label="synchronized (1) / not (0), min of tasks")

    def samples(self) -> cloudwatch.Metric:
        """How many readings arrived: the heartbeat of the worker(s)."""
        return self.service_metric(
            contract.CLOCK_SYNCHRONIZED,
            statistic="SampleCount",
            period=no_data_period(self.settings.interval_seconds),
            label="readings received",
        )

    def reference_age_max(self) -> cloudwatch.Metric:
        return self.service_metric(contract.REFERENCE_AGE, statistic="Maximum", label="reference age, max of tasks (s)")

    def sample_failures(self) -> cloudwatch.Metric:
        return self.service_metric(contract.SAMPLE_FAILURES, statistic="Sum", label="failed samples")

    def operations(self, spec: contract.MetricSpec) -> cloudwatch.Metric:
        return self.service_metric(spec, statistic="Sum", period=Duration.minutes(1), label=spec.name)

    # ---------------------------------------------------------------- per task
    @property
    def per_task_bound_spec(self) -> contract.MetricSpec | None:
        """The bound metric published per task, if any: effective preferred, else reported."""
        for spec in (contract.EFFECTIVE_BOUND, contract.CLOCK_ERROR_BOUND):
            if spec.name in self.settings.per_task_metrics:
                return spec
        return None

    def per_task_search(self, spec: contract.MetricSpec) -> cloudwatch.MathExpression:
        """SEARCH over the per-task dimension set (dashboards only: alarms cannot SEARCH)."""
        schema = ",".join([_quote(self.namespace), *self.settings.profile.per_task_dimensions])
        terms = [f'MetricName="{spec.name}"', *(f'{name}="{value}"' for name, value in self.task_filter.items())]
        period = int(self.period.to_seconds())
        return cloudwatch.MathExpression(
            expression=f"SEARCH('{{{schema}}} {' '.join(terms)}', 'Maximum', {period})",
            using_metrics={},
            label="",  # each series keeps its own label (its dimension values)
            period=self.period,
        )

    def per_task_insights_query(self, spec: contract.MetricSpec) -> str:
        """Metrics Insights: the worst task per minute, one contributor per TaskID."""
        schema = ", ".join([_quote(self.namespace), *self.settings.profile.per_task_dimensions])
        query = f"SELECT MAX({spec.name}) FROM SCHEMA({schema})"
        conditions = [f"{name} = '{value}'" for name, value in self.task_filter.items()]
        if conditions:
            query += " WHERE " + " AND ".join(conditions)
        return query + f" GROUP BY {contract.TASK_ID_DIMENSION} ORDER BY MAX() DESC"

    def per_task_insights(self, spec: contract.MetricSpec) -> cloudwatch.MathExpression:
        return cloudwatch.MathExpression(
            expression=self.per_task_insights_query(spec),
            using_metrics={},
            label=f"{spec.name} per task",
            period=METRICS_INSIGHTS_PERIOD,
        )
