"""`ClockMonitoring` alone on a bare Stack: each alarm's metric, threshold, period,
evaluation periods, datapoints to alarm, missing-data treatment and actions, and the
topic they notify.

Two configurations, each synthesized once:
- `known_service`: the defaults (5 s interval, 1 ms threshold, the standard profile with
  the effective bound per task), an ECS service to tell "no task yet" from "no reading",
  and an e-mail subscription on the topic the construct creates;
- `bare_metrics`: a 45 s interval, a 2.5 ms threshold, nothing per task, no ECS
  service, and the team's own topic.

The documented numbers are asserted as literals next to the constants that carry them
(clock_stack.monitoring), so changing a constant fails the test that names its value.

Update the snapshot after an intended change:
pytest tests/infra/test_construct_monitoring.py --snapshot-update
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from clock_stack.metrics import alarm_period, minute_period
from clock_stack.monitoring import (
    BOUND_EVALUATION_PERIODS,
    NO_DATA_EVALUATION_PERIODS,
    TASKS_RUNNING_MINUTES,
    worst_case_detection_seconds,
)
from infra.synth import Synthesized, alarm_rule, alarm_rule_text, metric_stat, synth_construct

SERVICE = "orders"
ECS_CLUSTER, ECS_SERVICE = "orders-cluster", "orders-service"
ALARM_EMAIL = "ops@example.com"
SERVICE_DIMENSIONS = [{"Name": "Service", "Value": SERVICE}]
BOUND_METRIC = {"Namespace": "FargateClock", "MetricName": "EffectiveClockErrorBound", "Dimensions": SERVICE_DIMENSIONS}
ACTION_KEYS = ("AlarmActions", "OKActions", "InsufficientDataActions")


def build_known_service(stack):
    from clock_stack import ClockMonitoring
    from clock_stack.metrics import ClockMetrics
    from clock_stack.settings import ClockSettings

    settings = ClockSettings.create(service_name=SERVICE)
    metrics = ClockMetrics(settings=settings, ecs_service=(ECS_CLUSTER, ECS_SERVICE))
    return ClockMonitoring(stack, "Clock", metrics=metrics, alarm_email=ALARM_EMAIL)


def build_bare_metrics(stack):
    from aws_cdk import aws_sns as sns

    from clock_stack import ClockMonitoring
    from clock_stack.metrics import ClockMetrics
    from clock_stack.settings import ClockSettings

    settings = ClockSettings.create(service_name=SERVICE, interval_seconds=45, threshold_ms=2.5, per_task_metrics=())
    topic = sns.Topic(stack, "TeamTopic")
    monitoring = ClockMonitoring(stack, "Clock", metrics=ClockMetrics(settings=settings), alarm_topic=topic)
    return SimpleNamespace(monitoring=monitoring, topic=topic)


@pytest.fixture(scope="module")
def known_service(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synth_construct(tmp_path_factory.mktemp("monitoring"), "MonitoringStack", build_known_service)


@pytest.fixture(scope="module")
def bare_metrics(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synth_construct(tmp_path_factory.mktemp("monitoring-bare"), "BareMetricsStack", build_bare_metrics)


def alarm(synth: Synthesized, name: str) -> dict:
    """The properties of one of the construct's alarms, by its ClockAlarms field name."""
    monitoring = synth.built if hasattr(synth.built, "alarms") else synth.built.monitoring
    return synth.properties_of(getattr(monitoring.alarms, name))


def assert_notifies_nobody(properties: dict) -> None:
    assert not any(properties.get(key) for key in ACTION_KEYS), properties


# ---------------------------------------------------------------- the bound
def test_bound_alarm_fires_on_the_max_effective_bound_over_threshold_2_of_2_periods_of_10_s(known_service):
    bound = alarm(known_service, "bound_over_threshold")
    assert metric_stat(bound) == {
        "Metric": BOUND_METRIC,
        "Stat": "Maximum",
        # At the default 5 s interval: twice the interval, a high-resolution period.
        "Period": 10,
    }
    assert alarm_period(5).to_seconds() == 10
    assert bound["Threshold"] == 1.0
    assert bound["ComparisonOperator"] == "GreaterThanThreshold"
    assert bound["EvaluationPeriods"] == BOUND_EVALUATION_PERIODS == 2
    assert bound["DatapointsToAlarm"] == BOUND_EVALUATION_PERIODS == 2
    # Silence is the no-data alarm's job.
    assert bound["TreatMissingData"] == "notBreaching"
    assert bound["AlarmDescription"].endswith("above 1 ms for 2 periods of 10 s")
    assert_notifies_nobody(bound)


def test_a_bad_bound_is_in_alarm_25_s_after_it_went_bad_at_the_default_interval():
    # One interval to the next sample, then two whole 10 s periods (README: detection time).
    assert worst_case_detection_seconds(5) == 5 + 2 * 10 == 25


def test_per_task_bound_alarm_queries_metrics_insights_for_the_worst_task_2_of_2_minutes(known_service):
    task_bound = alarm(known_service, "task_bound_over_threshold")
    (query,) = task_bound["Metrics"]
    assert query["Expression"] == (
        'SELECT MAX(EffectiveClockErrorBound) FROM SCHEMA("FargateClock", Service, TaskID) '
        "WHERE Service = 'orders' GROUP BY TaskID ORDER BY MAX() DESC"
    )
    # Metrics Insights aggregates to one minute whatever the storage resolution.
    assert query["Period"] == 60
    assert task_bound["Threshold"] == 1.0
    assert task_bound["ComparisonOperator"] == "GreaterThanThreshold"
    assert (task_bound["EvaluationPeriods"], task_bound["DatapointsToAlarm"]) == (2, 2)
    assert task_bound["EvaluationPeriods"] == BOUND_EVALUATION_PERIODS
    assert task_bound["TreatMissingData"] == "notBreaching"
    assert_notifies_nobody(task_bound)


# ---------------------------------------------------------------- synchronization and silence
def test_sync_alarm_fires_when_the_min_of_clock_synchronized_is_below_1_for_2_of_2_periods_of_10_s(known_service):
    sync = alarm(known_service, "not_synchronized")
    assert metric_stat(sync) == {
        "Metric": {"Namespace": "FargateClock", "MetricName": "ClockSynchronized", "Dimensions": SERVICE_DIMENSIONS},
        "Stat": "Minimum",
        "Period": 10,
    }
    assert (sync["Threshold"], sync["ComparisonOperator"]) == (1, "LessThanThreshold")
    assert (sync["EvaluationPeriods"], sync["DatapointsToAlarm"]) == (2, 2)
    assert sync["EvaluationPeriods"] == BOUND_EVALUATION_PERIODS
    assert sync["TreatMissingData"] == "notBreaching"
    assert_notifies_nobody(sync)


def test_no_data_alarm_fires_after_3_of_3_minutes_without_a_reading_and_counts_silence_as_breaching(known_service):
    no_data = alarm(known_service, "readings_missing")
    assert metric_stat(no_data) == {
        "Metric": {"Namespace": "FargateClock", "MetricName": "ClockSynchronized", "Dimensions": SERVICE_DIMENSIONS},
        "Stat": "SampleCount",
        "Period": 60,
    }
    assert (no_data["Threshold"], no_data["ComparisonOperator"]) == (1, "LessThanThreshold")
    assert (no_data["EvaluationPeriods"], no_data["DatapointsToAlarm"]) == (3, 3)
    assert no_data["EvaluationPeriods"] == NO_DATA_EVALUATION_PERIODS
    assert no_data["TreatMissingData"] == "breaching"
    assert "for 3 min" in no_data["AlarmDescription"]
    assert_notifies_nobody(no_data)


def test_running_tasks_condition_needs_ecs_reports_2_of_2_minutes_and_notifies_nobody(known_service):
    tasks = alarm(known_service, "service_has_tasks")
    assert metric_stat(tasks) == {
        "Metric": {
            "Namespace": "AWS/ECS",
            "MetricName": "CPUUtilization",
            "Dimensions": [
                {"Name": "ClusterName", "Value": ECS_CLUSTER},
                {"Name": "ServiceName", "Value": ECS_SERVICE},
            ],
        },
        "Stat": "SampleCount",
        "Period": 60,
    }
    assert (tasks["Threshold"], tasks["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert (tasks["EvaluationPeriods"], tasks["DatapointsToAlarm"]) == (2, 2)
    assert tasks["EvaluationPeriods"] == TASKS_RUNNING_MINUTES
    assert tasks["TreatMissingData"] == "notBreaching"
    assert_notifies_nobody(tasks)


def test_silence_counts_only_while_the_ecs_service_runs_tasks(known_service):
    monitoring = known_service.built
    no_data_while_running = known_service.properties_of(monitoring.alarms.no_data)
    assert alarm_rule_text(no_data_while_running["AlarmRule"]) == alarm_rule(
        "AND",
        known_service.logical_id(monitoring.alarms.readings_missing),
        known_service.logical_id(monitoring.alarms.service_has_tasks),
    )
    assert_notifies_nobody(no_data_while_running)


# ---------------------------------------------------------------- what notifies
def test_only_the_composite_notifies_the_topic_on_alarm_and_on_ok(known_service):
    monitoring = known_service.built
    alarms = monitoring.alarms
    topic_ref = {"Ref": known_service.logical_id(monitoring.alarm_topic)}
    unhealthy = known_service.properties_of(alarms.clock_unhealthy)
    assert unhealthy["AlarmActions"] == [topic_ref]
    assert unhealthy["OKActions"] == [topic_ref]
    assert not unhealthy.get("InsufficientDataActions")
    members = (alarms.bound_over_threshold, alarms.not_synchronized, alarms.no_data, alarms.task_bound_over_threshold)
    assert alarm_rule_text(unhealthy["AlarmRule"]) == alarm_rule(
        "OR", *(known_service.logical_id(member) for member in members)
    )
    notifying = [
        logical_id
        for kind in ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm")
        for logical_id, resource in known_service.resources(kind).items()
        if any(resource["Properties"].get(key) for key in ACTION_KEYS)
    ]
    assert notifying == [known_service.logical_id(alarms.clock_unhealthy)]


def test_the_topic_is_encrypted_with_a_rotating_key_cloudwatch_may_use_and_subscribed_by_email(known_service):
    monitoring = known_service.built
    topic = known_service.properties_of(monitoring.alarm_topic)
    key_id = known_service.logical_id(monitoring.topic_key)
    assert topic["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    key = known_service.properties_of(monitoring.topic_key)
    assert key["EnableKeyRotation"] is True
    cloudwatch_may = [
        statement
        for statement in key["KeyPolicy"]["Statement"]
        if statement.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert [statement["Action"] for statement in cloudwatch_may] == [["kms:Decrypt", "kms:GenerateDataKey*"]]

    (policy,) = known_service.resources("AWS::SNS::TopicPolicy").values()
    statements = {statement.get("Sid"): statement for statement in policy["Properties"]["PolicyDocument"]["Statement"]}
    publish = statements["AllowCloudWatchAlarmsOfThisAccount"]
    assert publish["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert publish["Action"] == "sns:Publish"
    assert publish["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    # enforce_ssl: a deny on anything not over TLS.
    assert any(
        statement["Effect"] == "Deny" and statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        for statement in statements.values()
    )

    (subscription,) = known_service.resources("AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["Endpoint"] == ALARM_EMAIL
    assert subscription["Properties"]["TopicArn"] == {"Ref": known_service.logical_id(monitoring.alarm_topic)}


def test_the_dashboard_shows_every_alarm(known_service):
    monitoring = known_service.built
    body = json.dumps(known_service.properties_of(monitoring.dashboard)["DashboardBody"])
    for member in (*monitoring.alarms.metric_alarms, monitoring.alarms.clock_unhealthy):
        assert known_service.logical_id(member) in body


# ---------------------------------------------------------------- another configuration
def test_at_a_45_s_interval_the_alarms_use_2_minute_periods_and_the_given_threshold(bare_metrics):
    bound = alarm(bare_metrics, "bound_over_threshold")
    # Twice the interval is 90 s: above the high-resolution periods, so whole minutes.
    assert metric_stat(bound)["Period"] == 120 == alarm_period(45).to_seconds()
    assert bound["Threshold"] == 2.5
    assert (bound["EvaluationPeriods"], bound["DatapointsToAlarm"]) == (2, 2)
    no_data = alarm(bare_metrics, "readings_missing")
    assert metric_stat(no_data)["Period"] == 120 == minute_period(45).to_seconds()
    assert (no_data["EvaluationPeriods"], no_data["DatapointsToAlarm"]) == (3, 3)
    assert "for 6 min" in no_data["AlarmDescription"]


def test_without_an_ecs_service_or_a_per_task_metric_those_alarms_are_left_out(bare_metrics):
    alarms = bare_metrics.built.monitoring.alarms
    assert alarms.service_has_tasks is None and alarms.task_bound_over_threshold is None
    assert alarms.no_data is alarms.readings_missing
    assert len(bare_metrics.resources("AWS::CloudWatch::Alarm")) == 3
    assert len(bare_metrics.resources("AWS::CloudWatch::CompositeAlarm")) == 1
    unhealthy = bare_metrics.properties_of(alarms.clock_unhealthy)
    assert alarm_rule_text(unhealthy["AlarmRule"]) == alarm_rule(
        "OR",
        *(
            bare_metrics.logical_id(member)
            for member in (alarms.bound_over_threshold, alarms.not_synchronized, alarms.readings_missing)
        ),
    )


def test_a_given_topic_is_notified_and_no_topic_or_key_is_created(bare_metrics):
    built = bare_metrics.built
    topic_ref = {"Ref": bare_metrics.logical_id(built.topic)}
    unhealthy = bare_metrics.properties_of(built.monitoring.alarms.clock_unhealthy)
    assert (unhealthy["AlarmActions"], unhealthy["OKActions"]) == ([topic_ref], [topic_ref])
    assert list(bare_metrics.resources("AWS::SNS::Topic")) == [bare_metrics.logical_id(built.topic)]
    assert bare_metrics.resources("AWS::KMS::Key") == {}
    assert built.monitoring.topic_key is None


# ---------------------------------------------------------------- snapshot
def test_alarms_match_snapshot(known_service, snapshot):
    alarms = {
        logical_id: resource["Properties"]
        for kind in ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm")
        for logical_id, resource in known_service.resources(kind).items()
    }
    assert alarms == snapshot
