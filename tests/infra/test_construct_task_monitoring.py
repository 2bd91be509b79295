"""`ClockTaskMonitoring` alone on a bare Stack, added to a task definition someone else
owns: what it adds to their containers, the service it waits on, its IAM, and how its
alarms name the service.

Two configurations, each synthesized once:
- `with_service`: a task definition with an `api` container and a FargateService
  running it; the CloudWatch sink; every other setting the default (the `Service`
  dimension is then the stack name and the construct's path);
- `task_only`: no ECS service; two containers of which only `api` reads the segment
  and waits for the clock; the seed metrics profile, a 2 ms threshold, an e-mail.

Update the snapshot after an intended change:
pytest tests/infra/test_construct_task_monitoring.py --snapshot-update
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from clock_stack.monitoring import BOUND_EVALUATION_PERIODS
from clock_stack.sidecar import WORKER_CONTAINER_NAME
from infra.synth import (
    CONSUMER_IMAGE,
    Synthesized,
    alarm_rule,
    alarm_rule_text,
    env_of,
    metric_stat,
    policy_statements,
    synth_construct,
)

STACK_NAME = "TaskMonitoringStack"
READER_MOUNT = {"ContainerPath": "/var/run/clockbound", "SourceVolume": "clockbound", "ReadOnly": True}


def build_with_service(stack):
    from aws_cdk import aws_ec2 as ec2
    from aws_cdk import aws_ecs as ecs

    from clock_stack import ClockProps, ClockTaskMonitoring

    vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=1)
    cluster = ecs.Cluster(stack, "Cluster", vpc=vpc)
    task_definition = ecs.FargateTaskDefinition(stack, "Api")
    api = task_definition.add_container(
        "ApiContainer",
        container_name="api",
        image=ecs.ContainerImage.from_registry(CONSUMER_IMAGE),
        port_mappings=[ecs.PortMapping(container_port=80)],
    )
    service = ecs.FargateService(
        stack,
        "ApiService",
        cluster=cluster,
        task_definition=task_definition,
        min_healthy_percent=100,
        circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
    )
    clock = ClockTaskMonitoring(
        stack, "Clock", task_definition=task_definition, service=service, clock=ClockProps(sink="cloudwatch")
    )
    return SimpleNamespace(clock=clock, task_definition=task_definition, service=service, cluster=cluster, api=api)


def build_task_only(stack):
    from aws_cdk import aws_ecs as ecs

    from clock_stack import ClockProps, ClockTaskMonitoring

    task_definition = ecs.FargateTaskDefinition(stack, "Api", family="team-api")
    image = ecs.ContainerImage.from_registry(CONSUMER_IMAGE)
    api = task_definition.add_container("ApiContainer", container_name="api", image=image)
    task_definition.add_container("ProxyContainer", container_name="proxy", image=image)
    clock = ClockTaskMonitoring(
        stack,
        "Clock",
        task_definition=task_definition,
        clock=ClockProps(service_name="team-api", metrics_profile="seed", threshold_ms=2),
        clockbound_readers=[api],
        wait_for_clock_sync=True,
        alarm_email="team@example.com",
    )
    return SimpleNamespace(clock=clock, task_definition=task_definition, api=api)


@pytest.fixture(scope="module")
def with_service(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synth_construct(tmp_path_factory.mktemp("task-monitoring"), STACK_NAME, build_with_service)


@pytest.fixture(scope="module")
def task_only(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synth_construct(tmp_path_factory.mktemp("task-monitoring-alone"), "TaskOnlyStack", build_task_only)


# ---------------------------------------------------------------- the containers
def test_the_worker_joins_the_task_and_is_told_the_default_service_name(with_service):
    clock = with_service.built.clock
    assert clock.settings.service_name == f"{STACK_NAME}/Clock"
    worker = with_service.container(WORKER_CONTAINER_NAME)
    environment = env_of(worker)
    assert environment["CLOCK_SERVICE_NAME"] == "TaskMonitoringStack/Clock"
    assert environment["CLOCK_SINK"] == "cloudwatch"
    assert environment["CLOCK_NAMESPACE"] == "FargateClock"
    # Not the project's app: no counters to read unless app_port is given.
    assert "CLOCK_APP_STATS_URL" not in environment
    # The worker is no reader of its own segment: it writes it in its own folder, and
    # does not get the readers' read-only mount (nor their path, which would be it).
    assert environment["CLOCK_CLOCKBOUND_SHM"] == "/var/lib/clockbound/shm0"
    assert worker["MountPoints"] == [
        {"ContainerPath": "/tmp", "SourceVolume": "clock-worker-tmp", "ReadOnly": False},
        {"ContainerPath": "/var/lib/clockbound", "SourceVolume": "clockbound", "ReadOnly": False},
    ]
    containers = with_service.properties_of(with_service.built.task_definition)["ContainerDefinitions"]
    names = [container["Name"] for container in containers]
    assert names == ["api", "clock-worker"]


def test_every_other_container_reads_the_segment_and_by_default_does_not_wait(with_service):
    api = with_service.container("api")
    assert api["MountPoints"] == [READER_MOUNT]
    assert env_of(api) == {"CLOCK_CLOCKBOUND_SHM": "/var/run/clockbound/shm0"}
    assert "DependsOn" not in api
    readers = with_service.built.clock.clockbound_readers
    assert [reader.node.path for reader in readers] == [with_service.built.api.node.path]


def test_only_the_named_readers_get_the_segment_and_they_wait_for_the_clock(task_only):
    api = task_only.container("api")
    assert api["MountPoints"] == [READER_MOUNT]
    assert env_of(api) == {"CLOCK_CLOCKBOUND_SHM": "/var/run/clockbound/shm0"}
    assert api["DependsOn"] == [{"ContainerName": "clock-worker", "Condition": "HEALTHY"}]
    proxy = task_only.container("proxy")
    assert "MountPoints" not in proxy and "Environment" not in proxy and "DependsOn" not in proxy


# ---------------------------------------------------------------- IAM and ordering
def test_the_service_starts_only_after_the_worker_may_publish(with_service):
    built = with_service.built
    policy = built.clock.sidecar.put_metric_data_policy
    assert with_service.logical_id(policy) in with_service.resource_of(built.service)["DependsOn"]
    assert policy_statements(with_service, built.task_definition.task_role) == [
        {
            "Action": "cloudwatch:PutMetricData",
            "Effect": "Allow",
            "Resource": "*",
            "Condition": {"StringEquals": {"cloudwatch:namespace": "FargateClock"}},
        }
    ]


def test_emf_gives_the_task_role_nothing(task_only):
    built = task_only.built
    assert built.clock.sidecar.put_metric_data_policy is None
    assert policy_statements(task_only, built.task_definition.task_role) == []


def test_worker_logs_are_encrypted_with_a_rotating_key_made_here(with_service):
    clock = with_service.built.clock
    group = with_service.properties_of(clock.sidecar.log_group)
    assert group["KmsKeyId"] == {"Fn::GetAtt": [with_service.logical_id(clock.log_encryption_key), "Arn"]}
    assert group["RetentionInDays"] == 30
    assert with_service.properties_of(clock.log_encryption_key)["EnableKeyRotation"] is True


# ---------------------------------------------------------------- alarms
def test_alarms_name_the_default_service_and_silence_counts_while_the_ecs_service_runs(with_service):
    built = with_service.built
    alarms = built.clock.alarms
    bound = with_service.properties_of(alarms.bound_over_threshold)
    assert metric_stat(bound)["Metric"]["Dimensions"] == [{"Name": "Service", "Value": "TaskMonitoringStack/Clock"}]
    assert (bound["EvaluationPeriods"], bound["DatapointsToAlarm"], metric_stat(bound)["Period"]) == (2, 2, 10)
    assert bound["EvaluationPeriods"] == BOUND_EVALUATION_PERIODS
    tasks = with_service.properties_of(alarms.service_has_tasks)
    assert metric_stat(tasks)["Metric"]["Dimensions"] == [
        {"Name": "ClusterName", "Value": {"Ref": with_service.logical_id(built.cluster)}},
        {"Name": "ServiceName", "Value": {"Fn::GetAtt": [with_service.logical_id(built.service), "Name"]}},
    ]
    no_data = with_service.properties_of(alarms.no_data)
    assert alarm_rule_text(no_data["AlarmRule"]) == alarm_rule(
        "AND", with_service.logical_id(alarms.readings_missing), with_service.logical_id(alarms.service_has_tasks)
    )


def test_alarms_notify_an_encrypted_topic_made_here(with_service):
    clock = with_service.built.clock
    topic_ref = {"Ref": with_service.logical_id(clock.alarm_topic)}
    unhealthy = with_service.properties_of(clock.alarms.clock_unhealthy)
    assert (unhealthy["AlarmActions"], unhealthy["OKActions"]) == ([topic_ref], [topic_ref])
    assert "KmsMasterKeyId" in with_service.properties_of(clock.alarm_topic)
    assert with_service.resources("AWS::SNS::Subscription") == {}


def test_seed_profile_alarms_watch_the_seed_namespace_and_the_task_family(task_only):
    alarms = task_only.built.clock.alarms
    bound = task_only.properties_of(alarms.bound_over_threshold)
    assert metric_stat(bound)["Metric"] == {
        "Namespace": "ECS/ContainerInsights",
        "MetricName": "EffectiveClockErrorBound",
        "Dimensions": [{"Name": "Service", "Value": "team-api"}],
    }
    assert bound["Threshold"] == 2
    task_bound = task_only.properties_of(alarms.task_bound_over_threshold)
    (query,) = task_bound["Metrics"]
    # The seed publishes the reported bound per task, under ClusterName, Family, TaskID;
    # without a service only the family is known at deploy time.
    assert query["Expression"] == (
        'SELECT MAX(ClockErrorBound) FROM SCHEMA("ECS/ContainerInsights", ClusterName, Family, TaskID) '
        "WHERE Family = 'team-api' GROUP BY TaskID ORDER BY MAX() DESC"
    )
    assert task_bound["Threshold"] == 2
    assert (task_bound["EvaluationPeriods"], task_bound["DatapointsToAlarm"]) == (2, 2)
    worker = env_of(task_only.container(WORKER_CONTAINER_NAME))
    assert (worker["CLOCK_NAMESPACE"], worker["CLOCK_METRICS_PROFILE"], worker["CLOCK_PER_TASK_METRICS"]) == (
        "ECS/ContainerInsights",
        "seed",
        "ClockErrorBound",
    )
    assert worker["CLOCK_THRESHOLD_MS"] == "2"


def test_without_a_service_silence_alone_is_an_incident_and_the_email_is_subscribed(task_only):
    alarms = task_only.built.clock.alarms
    assert alarms.service_has_tasks is None and alarms.no_data is alarms.readings_missing
    unhealthy = task_only.properties_of(alarms.clock_unhealthy)
    assert alarm_rule_text(unhealthy["AlarmRule"]) == alarm_rule(
        "OR",
        *(
            task_only.logical_id(member)
            for member in (
                alarms.bound_over_threshold,
                alarms.not_synchronized,
                alarms.readings_missing,
                alarms.task_bound_over_threshold,
            )
        ),
    )
    (subscription,) = task_only.resources("AWS::SNS::Subscription").values()
    properties = subscription["Properties"]
    assert (properties["Protocol"], properties["Endpoint"]) == ("email", "team@example.com")


# ---------------------------------------------------------------- snapshot
def test_task_definition_containers_and_volumes_match_snapshot(with_service, snapshot):
    task_definition = with_service.properties_of(with_service.built.task_definition)
    assert {key: task_definition[key] for key in ("ContainerDefinitions", "Volumes")} == snapshot
