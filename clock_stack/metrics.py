"""What to measure: CloudWatch metrics for the clock, built from `clockcore.contract`.

One factory serves both the dashboard and the alarms, so a widget and the alarm next to
it always name the same namespace, metric and dimensions as the worker publishes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch

from clock_stack.settings import ClockSettings
from clockcore import contract

# CloudWatch accepts high-resolution alarm periods of 10, 20 and 30 s (CDK's Metric
# rejects 20) on data stored at 1-second resolution, otherwise multiples of 60 s.
_HIGH_RESOLUTION_PERIODS = (10, 30)
# The worker stores at 1-second resolution below a 60 s interval (contract: high resolution).
_HIGH_RESOLUTION_BELOW_INTERVAL = 60.0


def alarm_period(interval_seconds: float) -> Duration:
    """The shortest alarm period that holds a sample of every task however the samples fall.

    A task samples every `interval_seconds`, but not in step with CloudWatch's period
    boundaries, and a sample can come late by up to an interval (a slow metadata answer,
    a retry). A period at least twice the interval always holds one of its samples, so
    with the Maximum statistic one bad task makes every period breach: no period of
    healthy values only can break an M-of-M chain.
    """
    needed = 2 * interval_seconds
    if interval_seconds < _HIGH_RESOLUTION_BELOW_INTERVAL:
        for seconds in _HIGH_RESOLUTION_PERIODS:
            if needed <= seconds:
                return Duration.seconds(seconds)
    return Duration.minutes(math.ceil(needed / 60))


def minute_period(interval_seconds: float) -> Duration:
    """Whole minutes, at least twice the interval: the "no data" alarm (a late line is not
    an outage) and the Metrics Insights alarm (it aggregates to one minute whatever the
    storage resolution) use it."""
    return Duration.minutes(max(1, math.ceil(2 * interval_seconds / 60)))


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ClockMetrics:
    """Metric factory for one monitored service.

    `task_filter` names per-task dimension values known at deploy time (they may be
    tokens, such as the cluster name); those of the profile's per-task set scope the
    SEARCH and Metrics Insights queries. The `Service` value is always among them.
    `ecs_service` (cluster name, service name) is the ECS service the tasks run in, if known.
    """

    def __init__(
        self,
        *,
        settings: ClockSettings,
        task_filter: Mapping[str, str] | None = None,
        ecs_service: tuple[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.period = alarm_period(settings.interval_seconds)
        self.ecs_service = ecs_service
        known = set(settings.profile.per_task_dimensions)
        fixed = {**(task_filter or {}), contract.SERVICE_DIMENSION: settings.service_name}
        self.task_filter = {name: value for name, value in fixed.items() if name in known}

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
        return self.service_metric(
            contract.EFFECTIVE_BOUND, statistic="Maximum", label="effective bound, max of tasks (ms)"
        )

    def reported_bound_max(self) -> cloudwatch.Metric:
        return self.service_metric(
            contract.CLOCK_ERROR_BOUND, statistic="Maximum", label="reported bound, max of tasks (ms)"
        )

    def synchronized_min(self) -> cloudwatch.Metric:
        return self.service_metric(
            contract.CLOCK_SYNCHRONIZED, statistic="Minimum", label="synchronized (1) / not (0), min of tasks"
        )

    def samples(self) -> cloudwatch.Metric:
        """How many readings arrived: the heartbeat of the worker(s)."""
        return self.service_metric(
            contract.CLOCK_SYNCHRONIZED,
            statistic="SampleCount",
            period=minute_period(self.settings.interval_seconds),
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
            period=minute_period(self.settings.interval_seconds),
        )

    # ---------------------------------------------------------------- the ECS service
    def service_has_tasks(self) -> cloudwatch.Metric | None:
        """Reports from the ECS service's running tasks (AWS/ECS, every service, 1 per minute).

        None without a known service. With it, "no clock reading" can be told apart from
        "no task yet": a fresh deploy publishes nothing before its first task runs.
        """
        if self.ecs_service is None:
            return None
        cluster_name, service_name = self.ecs_service
        return cloudwatch.Metric(
            namespace="AWS/ECS",
            metric_name="CPUUtilization",
            dimensions_map={"ClusterName": cluster_name, "ServiceName": service_name},
            statistic="SampleCount",
            period=Duration.minutes(1),
            label="ECS service reports (tasks running)",
        )
