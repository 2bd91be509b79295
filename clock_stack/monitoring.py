"""How to watch the clock: a dashboard, alarms and an encrypted SNS topic.

Every widget and alarm takes its metric from `ClockMetrics`, so they name exactly what
the worker publishes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from clock_stack.metrics import ClockMetrics, alarm_period, minute_period
from clock_stack.settings import ClockPropsError
from clockcore import contract

# Enough to catch a typo, not an RFC 5322 parser: SNS confirms the address anyway.
_EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Consecutive periods over the threshold before the bound and sync alarms fire. Each
# period is at least twice the sampling interval (`alarm_period`), so a bad task breaches
# every one of them: one jittery sample is one breaching period, not an incident; a
# bound over the threshold for two periods (20 s at the default 5 s interval) is.
BOUND_EVALUATION_PERIODS = 2
NO_DATA_EVALUATION_PERIODS = 3
# The ECS service must have reported running tasks this many minutes in a row before
# silence counts as "stopped publishing": by then its workers have published.
TASKS_RUNNING_MINUTES = 2


def worst_case_detection_seconds(interval_seconds: float) -> int:
    """From a task's bound going bad to the bound alarm in ALARM (before CloudWatch's own
    ingestion and evaluation delay): the next sample comes within an interval, it lands in
    some period, and the following one completes the chain."""
    return math.ceil(interval_seconds + BOUND_EVALUATION_PERIODS * alarm_period(interval_seconds).to_seconds())


@dataclass(frozen=True)
class ClockAlarms:
    """The alarms of one monitored service."""

    bound_over_threshold: cloudwatch.Alarm
    not_synchronized: cloudwatch.Alarm
    # No reading arrived for NO_DATA_EVALUATION_PERIODS periods.
    readings_missing: cloudwatch.Alarm
    # The ECS service has had running tasks for TASKS_RUNNING_MINUTES (a condition, not a
    # problem: it notifies nobody). None when the construct knows no ECS service.
    service_has_tasks: cloudwatch.Alarm | None
    # Readings missing while tasks run: a composite of the two above when the service is
    # known, else `readings_missing` itself.
    no_data: cloudwatch.IAlarm
    # None when no bound metric is published per task (per_task_metrics without one).
    task_bound_over_threshold: cloudwatch.Alarm | None
    clock_unhealthy: cloudwatch.CompositeAlarm

    @property
    def metric_alarms(self) -> list[cloudwatch.Alarm]:
        """The alarms that say something is wrong (the running-tasks condition is not one)."""
        alarms = [self.bound_over_threshold, self.not_synchronized, self.readings_missing]
        if self.task_bound_over_threshold is not None:
            alarms.append(self.task_bound_over_threshold)
        return alarms


def validate_alarm_email(alarm_email: str | None, alarm_topic: sns.ITopic | None) -> None:
    if alarm_email is None:
        return
    if not isinstance(alarm_email, str) or not _EMAIL_PATTERN.match(alarm_email):
        raise ClockPropsError(f"alarm_email must be an e-mail address like ops@example.com, got {alarm_email!r}")
    if alarm_topic is not None:
        raise ClockPropsError(
            "give alarm_topic or alarm_email, not both: alarm_email subscribes the topic this construct "
            "creates; subscribe your own alarm_topic where you manage it"
        )


class ClockMonitoring(Construct):
    """Dashboard, alarms and the topic they notify, for one service's clock metrics."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        metrics: ClockMetrics,
        alarm_topic: sns.ITopic | None = None,
        alarm_email: str | None = None,
        dashboard_name: str | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, id)
        validate_alarm_email(alarm_email, alarm_topic)
        self.metrics = metrics
        settings = metrics.settings

        self.topic_key: kms.Key | None = None
        if alarm_topic is None:
            alarm_topic = self._encrypted_topic(removal_policy)
            if alarm_email is not None:
                alarm_topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        self.alarm_topic = alarm_topic

        self.alarms = self._alarms()
        action = cloudwatch_actions.SnsAction(self.alarm_topic)
        # Only the composite notifies: one message per incident, not one per symptom.
        self.alarms.clock_unhealthy.add_alarm_action(action)
        self.alarms.clock_unhealthy.add_ok_action(action)

        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=dashboard_name,
            default_interval=Duration.hours(3),
            period_override=cloudwatch.PeriodOverride.INHERIT,
        )
        self._widgets(settings.threshold_ms)

    def _encrypted_topic(self, removal_policy: RemovalPolicy) -> sns.Topic:
        self.topic_key = kms.Key(
            self,
            "TopicKey",
            description="Encrypts the clock alarm topic",
            enable_key_rotation=True,
            # The key protects notifications in flight only; once the topic is gone it
            # protects nothing, so it may go with the stack (after KMS's waiting period).
            removal_policy=removal_policy,
            pending_window=Duration.days(7),
        )
        cloudwatch_principal = iam.ServicePrincipal("cloudwatch.amazonaws.com")
        # CloudWatch publishes alarm notifications itself, so it needs the key (an AWS
        # managed SNS key cannot grant that).
        self.topic_key.grant(cloudwatch_principal, "kms:Decrypt", "kms:GenerateDataKey*")
        topic = sns.Topic(self, "AlarmTopic", display_name="Clock alarms", master_key=self.topic_key, enforce_ssl=True)
        # The topic policy replaces SNS's default one; let this account's alarms publish.
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsOfThisAccount",
                principals=[cloudwatch_principal],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}:alarm:*"
                    },
                },
            )
        )
        return topic

    def _alarms(self) -> ClockAlarms:
        metrics = self.metrics
        settings = metrics.settings
        threshold = settings.threshold_ms
        bound = cloudwatch.Alarm(
            self,
            "BoundOverThreshold",
            alarm_description=(
                f"Effective clock error bound of some task in {settings.service_name} above {threshold:g} ms "
                f"for {BOUND_EVALUATION_PERIODS} periods of {int(metrics.period.to_seconds())} s"
            ),
            metric=metrics.effective_bound_max(),
            threshold=threshold,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=BOUND_EVALUATION_PERIODS,
            datapoints_to_alarm=BOUND_EVALUATION_PERIODS,
            # Silence is the no-data alarm's job.
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        not_synchronized = cloudwatch.Alarm(
            self,
            "NotSynchronized",
            alarm_description=(
                f"Some task in {settings.service_name} reports ClockSynchronizationStatus NOT_SYNCHRONIZED"
            ),
            metric=metrics.synchronized_min(),
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            evaluation_periods=BOUND_EVALUATION_PERIODS,
            datapoints_to_alarm=BOUND_EVALUATION_PERIODS,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        no_data_minutes = int(minute_period(settings.interval_seconds).to_minutes()) * NO_DATA_EVALUATION_PERIODS
        readings_missing = cloudwatch.Alarm(
            self,
            "NoData",
            alarm_description=(
                f"No clock reading from any worker of {settings.service_name} for {no_data_minutes} min: "
                "the worker is down, cannot read task metadata, or cannot publish"
            ),
            metric=metrics.samples(),
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            evaluation_periods=NO_DATA_EVALUATION_PERIODS,
            datapoints_to_alarm=NO_DATA_EVALUATION_PERIODS,
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )
        service_has_tasks: cloudwatch.Alarm | None = None
        no_data: cloudwatch.IAlarm = readings_missing
        tasks_metric = metrics.service_has_tasks()
        if tasks_metric is not None:
            # Before the first task of a fresh deploy runs there is no reading and no
            # task: silence then is not an outage, and must not notify. Silence while the
            # service has run tasks for a while is.
            service_has_tasks = cloudwatch.Alarm(
                self,
                "ServiceHasRunningTasks",
                alarm_description=(
                    f"Condition, not a problem (notifies nobody): the ECS service of {settings.service_name} "
                    f"has reported running tasks for {TASKS_RUNNING_MINUTES} min. NoDataWhileRunning uses it."
                ),
                metric=tasks_metric,
                threshold=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                evaluation_periods=TASKS_RUNNING_MINUTES,
                datapoints_to_alarm=TASKS_RUNNING_MINUTES,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            no_data = cloudwatch.CompositeAlarm(
                self,
                "NoDataWhileRunning",
                alarm_description=(
                    f"The ECS service of {settings.service_name} runs tasks but no clock reading arrived for "
                    f"{no_data_minutes} min"
                ),
                alarm_rule=cloudwatch.AlarmRule.all_of(
                    cloudwatch.AlarmRule.from_alarm(readings_missing, cloudwatch.AlarmState.ALARM),
                    cloudwatch.AlarmRule.from_alarm(service_has_tasks, cloudwatch.AlarmState.ALARM),
                ),
            )
        task_bound: cloudwatch.Alarm | None = None
        spec = metrics.per_task_bound_spec
        if spec is not None:
            task_bound = cloudwatch.Alarm(
                self,
                "TaskBoundOverThreshold",
                alarm_description=(
                    f"{spec.name} of a task in {settings.service_name} above {threshold:g} ms; "
                    f"the contributor names the {contract.TASK_ID_DIMENSION} (Metrics Insights, 1-minute data)"
                ),
                metric=metrics.per_task_insights(spec),
                threshold=threshold,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=BOUND_EVALUATION_PERIODS,
                datapoints_to_alarm=BOUND_EVALUATION_PERIODS,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        rules = [
            cloudwatch.AlarmRule.from_alarm(alarm, cloudwatch.AlarmState.ALARM)
            for alarm in (bound, not_synchronized, no_data)
        ]
        if task_bound is not None:
            rules.append(cloudwatch.AlarmRule.from_alarm(task_bound, cloudwatch.AlarmState.ALARM))
        unhealthy = cloudwatch.CompositeAlarm(
            self,
            "ClockUnhealthy",
            alarm_description=f"Clock of {settings.service_name} cannot be trusted (any clock alarm is in ALARM)",
            alarm_rule=cloudwatch.AlarmRule.any_of(*rules),
        )
        return ClockAlarms(
            bound_over_threshold=bound,
            not_synchronized=not_synchronized,
            readings_missing=readings_missing,
            service_has_tasks=service_has_tasks,
            no_data=no_data,
            task_bound_over_threshold=task_bound,
            clock_unhealthy=unhealthy,
        )

    def _widgets(self, threshold_ms: float) -> None:
        metrics = self.metrics
        threshold_line = cloudwatch.HorizontalAnnotation(
            value=threshold_ms, label=f"threshold {threshold_ms:g} ms", color="#d62728"
        )
        width = 12
        per_task_spec = metrics.per_task_bound_spec
        bound_widgets: list[cloudwatch.IWidget] = []
        if per_task_spec is not None:
            bound_widgets.append(
                cloudwatch.GraphWidget(
                    title=f"{per_task_spec.name} per task (ms)",
                    left=[metrics.per_task_search(per_task_spec)],
                    left_annotations=[threshold_line],
                    left_y_axis=cloudwatch.YAxisProps(min=0, show_units=False),
                    width=width,
                )
            )
        bound_widgets.append(
            cloudwatch.GraphWidget(
                title="Clock error bound, service maximum (ms)",
                left=[metrics.effective_bound_max(), metrics.reported_bound_max()],
                left_annotations=[threshold_line],
                left_y_axis=cloudwatch.YAxisProps(min=0, show_units=False),
                width=width,
            )
        )
        self.dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=(
                    f"# Clock of `{metrics.settings.service_name}`\n"
                    f"Namespace `{metrics.namespace}`, a sample every {metrics.settings.interval_seconds:g} s, "
                    f"threshold {threshold_ms:g} ms. The effective bound is the reported bound grown by "
                    f"reference age × {metrics.settings.max_drift_ppm:g} ppm."
                ),
                width=24,
                height=2,
            )
        )
        self.dashboard.add_widgets(*bound_widgets)
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Synchronized (1) / not synchronized (0)",
                left=[metrics.synchronized_min()],
                left_y_axis=cloudwatch.YAxisProps(min=0, max=1, show_units=False),
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Reference age, service maximum (s)",
                left=[metrics.reference_age_max()],
                left_y_axis=cloudwatch.YAxisProps(min=0, show_units=False),
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Failed samples",
                left=[metrics.sample_failures()],
                left_y_axis=cloudwatch.YAxisProps(min=0, show_units=False),
                width=8,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Critical operations: allowed and refused by the clock gate",
                left=[metrics.operations(contract.OPERATIONS_ALLOWED), metrics.operations(contract.OPERATIONS_REFUSED)],
                left_y_axis=cloudwatch.YAxisProps(min=0, show_units=False),
                stacked=True,
                width=12,
            ),
            cloudwatch.AlarmStatusWidget(
                title="Clock alarms",
                alarms=[*self.alarms.metric_alarms, self.alarms.clock_unhealthy],
                width=12,
            ),
        )
