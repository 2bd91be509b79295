"""Bad props fail at construction time with a message that names the prop."""

from __future__ import annotations

import re

import pytest

from clock_stack import ClockAccurateFargateService, ClockProps, ClockPropsError, ClockSettings, ClockTaskMonitoring, TaskArchitecture
from clock_stack.demo_stack import DemoConfig
from clock_stack.metrics import alarm_period
from clock_stack.settings import format_number
from clockcore import contract
from infra.synth import REGION, cdk_context


def new_stack(region: str | None = REGION):
    import aws_cdk as cdk

    app = cdk.App(context=cdk_context())
    env = cdk.Environment(region=region) if region else None
    return cdk.Stack(app, "Props", env=env)


# ---------------------------------------------------------------- settings
@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"service_name": ""}, "service_name must be 1-255 characters"),
        ({"service_name": " padded "}, "service_name must be 1-255 characters"),
        ({"service_name": "x" * 256}, "service_name must be 1-255 characters"),
        ({"namespace": "AWS/ECS"}, "not starting with AWS/ in any case (reserved for AWS services), got 'AWS/ECS'"),
        ({"namespace": "aws/Clock"}, "got 'aws/Clock', which starts with 'aws/'"),
        ({"namespace": "x" * 256}, "which is 256 characters long"),
        ({"namespace": "has space"}, "CloudWatch's rule"),
        ({"namespace": ""}, "namespace must be 1-255 characters of letters, digits and . - _ / # :"),
        ({"sink": "stdout"}, "sink must be one of cloudwatch, emf (any case), got 'stdout'"),
        ({"metrics_profile": "fancy"}, "metrics_profile must be one of seed, standard (any case), got 'fancy'"),
        ({"per_task_metrics": ["Nope"]}, "got ['Nope'], which lists unknown name 'Nope'"),
        ({"per_task_metrics": "ClockErrorBound"}, "per_task_metrics must be a list of distinct names from"),
        ({"per_task_metrics": ["ClockErrorBound", "ClockErrorBound"]}, "which lists 'ClockErrorBound' twice"),
        ({"interval_seconds": 0.5}, "interval_seconds must be a number from 1 to 3600, got 0.5"),
        ({"interval_seconds": float("nan")}, "interval_seconds must be a number"),
        ({"interval_seconds": True}, "interval_seconds must be a number"),
        ({"threshold_ms": 0}, "threshold_ms must be a number greater than 0 and at most 3600000, got 0"),
        ({"threshold_ms": 5e6}, "threshold_ms must be a number greater than 0 and at most 3600000, got 5000000.0"),
        ({"threshold_ms": "1"}, "got '1', which is not a number"),
        ({"max_drift_ppm": -1}, "max_drift_ppm must be a number from 0 to 1000"),
        ({"cache_ttl_seconds": 0}, "cache_ttl_seconds must be a number greater than 0 and at most 60, got 0"),
        ({"max_reference_age_seconds": 1e5}, "max_reference_age_seconds must be a number greater than 0 and at most"),
    ],
)
def test_settings_reject_bad_values(props: dict, message: str):
    arguments = {"service_name": "svc", **props}
    with pytest.raises(ClockPropsError, match=re.escape(message)):
        ClockSettings.create(**arguments)


def test_settings_defaults_come_from_the_contract():
    settings = ClockSettings.create(service_name="svc")
    assert settings.sink == contract.DEFAULT_SINK == "emf"
    assert settings.namespace == contract.DEFAULT_NAMESPACE
    assert settings.interval_seconds == contract.DEFAULT_INTERVAL_SECONDS
    assert settings.per_task_metrics == contract.STANDARD_PROFILE.per_task_metrics
    seed = ClockSettings.create(service_name="svc", metrics_profile="seed")
    assert seed.namespace == contract.SEED_NAMESPACE
    assert seed.worker_environment(app_port=None)[contract.ENV_PER_TASK_METRICS] == contract.CLOCK_ERROR_BOUND.name
    assert contract.ENV_APP_STATS_URL not in seed.worker_environment(app_port=None)


@pytest.mark.parametrize(
    ("interval", "period"), [(1, 10), (5, 10), (10, 30), (15, 30), (15.5, 60), (30, 60), (45, 120), (60, 120), (61, 180), (300, 600)]
)
def test_alarm_period_sees_every_sample(interval: float, period: int):
    assert alarm_period(interval).to_seconds() == period


def test_numbers_are_written_plainly():
    assert [format_number(value) for value in (10, 10.0, 2.5, 0.001)] == ["10", "10", "2.5", "0.001"]


# ---------------------------------------------------------------- the service construct
@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"cpu": 300}, "cpu must be one of Fargate's task sizes"),
        ({"cpu": 256, "memory_limit_mib": 4096}, "memory_limit_mib 4096 does not fit cpu 256: Fargate allows 512-2048 in steps of 512 MiB"),
        ({"desired_count": 0}, "desired_count must be at least 1"),
        ({"desired_count": 3, "max_task_count": 2}, "need min_task_count <= desired_count <= max_task_count, got 3 <= 3 <= 2"),
        ({"desired_count": 2, "min_task_count": 3, "max_task_count": 4}, "got 3 <= 2 <= 4"),
        ({"container_port": 0}, "container_port must be a TCP port from 1 to 65535, got 0"),
        ({"container_port": 9000}, "container_port 9000 needs your own image: the project's app listens on 8080"),
        ({"app_environment": {"CLOCK_THRESHOLD_MS": "9"}}, "app_environment sets CLOCK_THRESHOLD_MS, which the construct derives"),
        ({"health_check_path": "healthz"}, "health_check_path must start with '/'"),
        ({"architecture": "ARM64"}, "architecture must be TaskArchitecture.X86_64 or TaskArchitecture.ARM64"),
        ({"alarm_email": "not-an-address"}, "alarm_email must be an e-mail address"),
        ({"clock": ClockProps(threshold_ms=-2)}, "threshold_ms must be a number greater than 0 and at most 3600000, got -2"),
        ({"clock": ClockProps(sink="PutMetricData")}, "sink must be one of cloudwatch, emf"),
        ({"clock": {"threshold_ms": 2}}, "clock must be a ClockProps(...), got dict"),
        ({"target_cpu_utilization_percent": 100}, "target_cpu_utilization_percent must be from 10 to 95"),
        ({"log_encryption_key": "alias/logs"}, "log_encryption_key must be a kms.IKey"),
    ],
)
def test_service_rejects_bad_props(props: dict, message: str):
    stack = new_stack()
    with pytest.raises(ClockPropsError, match=re.escape(message)):
        ClockAccurateFargateService(stack, "Service", **props)
    # Nothing was half-built: validation runs before any resource is created.
    assert stack.node.try_find_child("Service").node.children == []


def test_service_rejects_vpc_and_cluster_that_do_not_belong_together():
    from aws_cdk import aws_ec2 as ec2
    from aws_cdk import aws_ecs as ecs

    stack = new_stack()
    cluster = ecs.Cluster(stack, "Cluster", vpc=ec2.Vpc(stack, "VpcA"))
    with pytest.raises(ClockPropsError, match="give vpc or cluster, not both"):
        ClockAccurateFargateService(stack, "Service", vpc=ec2.Vpc(stack, "VpcB"), cluster=cluster)


def test_service_rejects_topic_and_email_together():
    from aws_cdk import aws_sns as sns

    stack = new_stack()
    topic = sns.Topic(stack, "Theirs")
    with pytest.raises(ClockPropsError, match="give alarm_topic or alarm_email, not both"):
        ClockAccurateFargateService(stack, "Service", alarm_topic=topic, alarm_email="ops@example.com")


def test_access_logs_need_a_region_at_synth_time():
    with pytest.raises(ClockPropsError, match=r"ALB access logs need the stack's region"):
        ClockAccurateFargateService(new_stack(region=None), "Service")


def test_task_monitoring_needs_a_fargate_task_definition():
    from aws_cdk import aws_ecs as ecs

    stack = new_stack()
    task_definition = ecs.Ec2TaskDefinition(stack, "Ec2")
    with pytest.raises(ClockPropsError, match="task_definition must be an ecs.FargateTaskDefinition"):
        ClockTaskMonitoring(stack, "Clock", task_definition=task_definition)


def test_task_monitoring_rejects_a_second_worker():
    from aws_cdk import aws_ecs as ecs

    stack = new_stack()
    task_definition = ecs.FargateTaskDefinition(stack, "Task")
    image = ecs.ContainerImage.from_registry("public.ecr.aws/docker/library/busybox:1.36")
    task_definition.add_container("main", image=image)
    ClockTaskMonitoring(stack, "Clock", task_definition=task_definition, worker_image=image)
    with pytest.raises(ClockPropsError, match="already has a container named 'clock-worker'"):
        ClockTaskMonitoring(stack, "Again", task_definition=task_definition, worker_image=image)


def test_log_groups_use_the_key_they_are_given_and_create_none():
    """Bring your own key (one per account, say): every log group uses it, no key is made."""
    from aws_cdk import aws_ecs as ecs
    from aws_cdk import aws_kms as kms
    from aws_cdk.assertions import Template

    stack = new_stack()
    key = kms.Key.from_key_arn(
        stack, "TeamKey", "arn:aws:kms:us-east-1:111122223333:key/00000000-1111-2222-3333-444444444444"
    )
    task_definition = ecs.FargateTaskDefinition(stack, "Task")
    image = ecs.ContainerImage.from_registry("public.ecr.aws/docker/library/busybox:1.36")
    task_definition.add_container("main", image=image)
    monitoring = ClockTaskMonitoring(
        stack, "Clock", task_definition=task_definition, worker_image=image, log_encryption_key=key
    )
    assert monitoring.log_encryption_key is key
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::KMS::Key", 1)  # the alarm topic's only
    template.has_resource_properties("AWS::Logs::LogGroup", {"KmsKeyId": key.key_arn})


# ---------------------------------------------------------------- context
def test_demo_context_is_read_and_checked():
    import aws_cdk as cdk

    app = cdk.App(context=cdk_context(**{"clock:desiredCount": "3", "clock:enableExecuteCommand": "true"}))
    config = DemoConfig.from_context(app.node)
    assert (config.desiredCount, config.enableExecuteCommand) == (3, True)
    for key, value, message in [
        ("clock:desiredCount", "two", "context clock:desiredCount must be a whole number, got 'two'"),
        ("clock:desiredCount", 2.5, "context clock:desiredCount must be a whole number"),
        ("clock:enableExecuteCommand", "yes", "context clock:enableExecuteCommand must be true or false"),
        ("clock:architecture", "arm", "context clock:architecture must be one of X86_64, ARM64"),
        ("clock:logRetentionDays", 10, "context clock:logRetentionDays must be one of CloudWatch Logs' values"),
        ("clock:natGateways", 3, "context clock:natGateways must be 1 or 2"),
    ]:
        bad = cdk.App(context=cdk_context(**{key: value}))
        with pytest.raises(ClockPropsError, match=re.escape(message)):
            DemoConfig.from_context(bad.node)


def test_cdk_json_documents_every_context_key_with_its_default():
    context = cdk_context()
    for key, default in DemoConfig.context_keys().items():
        assert key in context, f"{key} missing from cdk.json"
        assert context[key] == default, f"cdk.json's {key} differs from the code's default"


def test_architectures_map_to_matching_platforms():
    assert TaskArchitecture.ARM64.asset_platform.platform == "linux/arm64"
    assert TaskArchitecture.X86_64.asset_platform.platform == "linux/amd64"
