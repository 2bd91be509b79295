"""`ClockAccurateFargateService` alone on a bare Stack: the app container next to the
worker (environment, health check, volumes, waiting for the clock), the service and its
load balancer, IAM, and alarms that watch this very service.

Two configurations, each synthesized once:
- `default_service`: every prop left to its default (the project's app and worker
  images, its own VPC and cluster, HTTP, EMF, a 5 s interval, a 1 ms threshold);
- `exec_service`: ECS Exec, HTTPS with a certificate, ingress from one network only,
  the CloudWatch sink at a 30 s interval with a 2.5 ms threshold.

Update the snapshot after an intended change:
pytest tests/infra/test_construct_service.py --snapshot-update
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from clock_stack.images import APP_PORT
from clock_stack.monitoring import BOUND_EVALUATION_PERIODS
from clock_stack.service import APP_CONTAINER_NAME
from clock_stack.sidecar import WORKER_CONTAINER_NAME
from infra.synth import Synthesized, actions_of, env_of, metric_stat, policy_statements, synth_construct

STACK_NAME = "ServiceStack"
CERTIFICATE_ARN = "arn:aws:acm:us-east-1:111122223333:certificate/00000000-1111-2222-3333-444444444444"
CLIENTS = "203.0.113.0/24"


def build_default_service(stack):
    from clock_stack import ClockAccurateFargateService

    return ClockAccurateFargateService(stack, "Orders")


def build_exec_service(stack):
    from aws_cdk import aws_certificatemanager as acm
    from aws_cdk import aws_ec2 as ec2

    from clock_stack import ClockAccurateFargateService, ClockProps

    certificate = acm.Certificate.from_certificate_arn(stack, "Certificate", CERTIFICATE_ARN)
    service = ClockAccurateFargateService(
        stack,
        "Orders",
        enable_execute_command=True,
        certificate=certificate,
        ingress_peers=[ec2.Peer.ipv4(CLIENTS)],
        clock=ClockProps(sink="cloudwatch", interval_seconds=30, threshold_ms=2.5),
    )
    return SimpleNamespace(service=service)


@pytest.fixture(scope="module")
def default_service(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synth_construct(tmp_path_factory.mktemp("service"), STACK_NAME, build_default_service)


@pytest.fixture(scope="module")
def exec_service(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synth_construct(tmp_path_factory.mktemp("service-exec"), "ExecServiceStack", build_exec_service)


# ---------------------------------------------------------------- the app container
def test_app_environment_is_the_clock_settings_the_alarms_use(default_service):
    app = default_service.container(APP_CONTAINER_NAME)
    assert env_of(app) == {
        "CLOCK_THRESHOLD_MS": "1",
        "CLOCK_CACHE_TTL_SECONDS": "1",
        "CLOCK_MAX_REFERENCE_AGE_SECONDS": "120",
        "CLOCK_MAX_DRIFT_PPM": "50",
        "CLOCK_CLOCKBOUND_SHM": "/var/run/clockbound/shm0",
    }
    # The app's gate and the bound alarm use one threshold, and the worker is told it too.
    bound = default_service.properties_of(default_service.built.alarms.bound_over_threshold)
    assert float(env_of(app)["CLOCK_THRESHOLD_MS"]) == bound["Threshold"] == 1
    assert env_of(default_service.container(WORKER_CONTAINER_NAME))["CLOCK_THRESHOLD_MS"] == "1"


def test_app_is_essential_listens_on_8080_and_has_the_images_health_check(default_service):
    app = default_service.container(APP_CONTAINER_NAME)
    assert app["Essential"] is True
    assert app["PortMappings"] == [{"ContainerPort": 8080, "Protocol": "tcp"}]
    assert APP_PORT == 8080
    assert app["HealthCheck"] == {
        "Command": ["CMD", "python", "-m", "clock_app.healthcheck"],
        "Interval": 30,
        "Timeout": 5,
        "Retries": 3,
        "StartPeriod": 30,
    }


def test_app_starts_once_the_worker_is_healthy_and_reads_its_segment(default_service):
    app = default_service.container(APP_CONTAINER_NAME)
    assert app["DependsOn"] == [{"ContainerName": "clock-worker", "Condition": "HEALTHY"}]
    worker = default_service.container(WORKER_CONTAINER_NAME)
    assert worker["StartTimeout"] == 120
    # The worker reads the app's gate counters over the task's loopback.
    assert env_of(worker)["CLOCK_APP_STATS_URL"] == "http://127.0.0.1:8080/api/operations/stats"
    assert env_of(worker)["CLOCK_CLOCKBOUND_SHM"] == "/var/lib/clockbound/shm0"


def test_roots_are_read_only_and_each_container_writes_only_its_own_volumes(default_service):
    task_definition = default_service.properties_of(default_service.built.task_definition)
    assert task_definition["Volumes"] == [{"Name": "app-tmp"}, {"Name": "clock-worker-tmp"}, {"Name": "clockbound"}]
    app = default_service.container(APP_CONTAINER_NAME)
    assert app["ReadonlyRootFilesystem"] is True
    assert app["MountPoints"] == [
        {"ContainerPath": "/tmp", "SourceVolume": "app-tmp", "ReadOnly": False},
        {"ContainerPath": "/var/run/clockbound", "SourceVolume": "clockbound", "ReadOnly": True},
    ]
    worker = default_service.container(WORKER_CONTAINER_NAME)
    assert worker["ReadonlyRootFilesystem"] is True
    assert [(mount["ContainerPath"], mount["ReadOnly"]) for mount in worker["MountPoints"]] == [
        ("/tmp", False),
        ("/var/lib/clockbound", False),
    ]


def test_with_ecs_exec_both_roots_are_writable_with_an_init_process_and_no_tmp_volume(exec_service):
    for name in (APP_CONTAINER_NAME, WORKER_CONTAINER_NAME):
        container = exec_service.container(name)
        assert container["ReadonlyRootFilesystem"] is False, name
        assert container["LinuxParameters"]["InitProcessEnabled"] is True, name
    volumes = exec_service.properties_of(exec_service.built.service.task_definition)["Volumes"]
    assert "app-tmp" not in [volume["Name"] for volume in volumes]


# ---------------------------------------------------------------- IAM
def test_with_emf_the_task_role_has_no_permission_and_the_execution_role_only_pulls_and_logs(default_service):
    service = default_service.built
    assert policy_statements(default_service, service.task_definition.task_role) == []
    execution = policy_statements(default_service, service.task_definition.execution_role)
    assert sorted(action for statement in execution for action in actions_of(statement)) == [
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetAuthorizationToken",
        "ecr:GetDownloadUrlForLayer",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    ]
    (logs_statement,) = [statement for statement in execution if "logs:PutLogEvents" in actions_of(statement)]
    assert logs_statement["Resource"] == [
        {"Fn::GetAtt": [default_service.logical_id(service.app_log_group), "Arn"]},
        {"Fn::GetAtt": [default_service.logical_id(service.clock.sidecar.log_group), "Arn"]},
    ]


def test_with_exec_and_the_cloudwatch_sink_the_task_role_gets_exactly_those(exec_service):
    service = exec_service.built.service
    statements = policy_statements(exec_service, service.task_definition.task_role)
    assert [sorted(actions_of(statement)) for statement in statements] == [
        [
            "ssmmessages:CreateControlChannel",
            "ssmmessages:CreateDataChannel",
            "ssmmessages:OpenControlChannel",
            "ssmmessages:OpenDataChannel",
        ],
        ["cloudwatch:PutMetricData"],
    ]
    assert statements[1]["Condition"] == {"StringEquals": {"cloudwatch:namespace": "FargateClock"}}


# ---------------------------------------------------------------- the service and its load balancer
def test_service_runs_2_private_tasks_on_platform_1_4_0_with_a_rolling_back_circuit_breaker(default_service):
    service = default_service.properties_of(default_service.built.service)
    assert service["DesiredCount"] == 2
    assert service["PlatformVersion"] == "1.4.0"
    assert service["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == "DISABLED"
    assert service["DeploymentConfiguration"] == {
        "DeploymentCircuitBreaker": {"Enable": True, "Rollback": True},
        "MinimumHealthyPercent": 100,
        "MaximumPercent": 200,
    }
    assert service["HealthCheckGracePeriodSeconds"] == 60
    assert service["LoadBalancers"][0]["ContainerName"] == "app"
    assert service["LoadBalancers"][0]["ContainerPort"] == 8080
    target = default_service.only("AWS::ApplicationAutoScaling::ScalableTarget")
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 4)
    policy = default_service.only("AWS::ApplicationAutoScaling::ScalingPolicy")
    scaling = policy["TargetTrackingScalingPolicyConfiguration"]
    assert scaling["TargetValue"] == 60
    assert scaling["PredefinedMetricSpecification"] == {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"}


def test_load_balancer_checks_liveness_on_healthz_and_opens_port_80_only(default_service):
    target_group = default_service.only("AWS::ElasticLoadBalancingV2::TargetGroup")
    assert (target_group["HealthCheckPath"], target_group["Matcher"]) == ("/healthz", {"HttpCode": "200"})
    assert (target_group["HealthCheckIntervalSeconds"], target_group["HealthCheckTimeoutSeconds"]) == (15, 5)
    assert (target_group["HealthyThresholdCount"], target_group["UnhealthyThresholdCount"]) == (2, 3)
    assert {"Key": "deregistration_delay.timeout_seconds", "Value": "30"} in target_group["TargetGroupAttributes"]
    listener = default_service.only("AWS::ElasticLoadBalancingV2::Listener")
    assert (listener["Port"], listener["Protocol"]) == (80, "HTTP")
    (group_id,) = default_service.built.load_balancer.connections.security_groups
    ingress = default_service.properties_of(group_id)["SecurityGroupIngress"]
    assert sorted((rule.get("CidrIp") or rule["CidrIpv6"], rule["FromPort"], rule["ToPort"]) for rule in ingress) == [
        ("0.0.0.0/0", 80, 80),
        ("::/0", 80, 80),
    ]
    attributes = default_service.only("AWS::ElasticLoadBalancingV2::LoadBalancer")["LoadBalancerAttributes"]
    assert {"Key": "access_logs.s3.enabled", "Value": "true"} in attributes


def test_with_a_certificate_https_serves_and_http_redirects_to_the_given_peers_only(exec_service):
    found = exec_service.resources("AWS::ElasticLoadBalancingV2::Listener").values()
    listeners = sorted((listener["Properties"] for listener in found), key=lambda listener: listener["Port"])
    http, https = listeners
    assert (https["Port"], https["Protocol"]) == (443, "HTTPS")
    assert https["Certificates"] == [{"CertificateArn": CERTIFICATE_ARN}]
    assert https["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert (http["Port"], http["Protocol"]) == (80, "HTTP")
    assert http["DefaultActions"] == [
        {"Type": "redirect", "RedirectConfig": {"Port": "443", "Protocol": "HTTPS", "StatusCode": "HTTP_301"}}
    ]
    (group,) = exec_service.built.service.load_balancer.connections.security_groups
    ingress = exec_service.properties_of(group)["SecurityGroupIngress"]
    assert sorted((rule["CidrIp"], rule["FromPort"]) for rule in ingress) == [(CLIENTS, 80), (CLIENTS, 443)]


# ---------------------------------------------------------------- alarms and logs
def test_alarms_watch_this_service_under_the_constructs_path(default_service):
    service = default_service.built
    assert service.settings.service_name == f"{STACK_NAME}/Orders"
    assert env_of(default_service.container(WORKER_CONTAINER_NAME))["CLOCK_SERVICE_NAME"] == "ServiceStack/Orders"
    bound = default_service.properties_of(service.alarms.bound_over_threshold)
    assert metric_stat(bound)["Metric"]["Dimensions"] == [{"Name": "Service", "Value": "ServiceStack/Orders"}]
    assert (bound["EvaluationPeriods"], bound["DatapointsToAlarm"], metric_stat(bound)["Period"]) == (2, 2, 10)
    assert bound["EvaluationPeriods"] == BOUND_EVALUATION_PERIODS
    tasks = default_service.properties_of(service.alarms.service_has_tasks)
    assert metric_stat(tasks)["Metric"]["Dimensions"] == [
        {"Name": "ClusterName", "Value": {"Ref": default_service.logical_id(service.cluster)}},
        {"Name": "ServiceName", "Value": {"Fn::GetAtt": [default_service.logical_id(service.service), "Name"]}},
    ]
    topic_ref = {"Ref": default_service.logical_id(service.alarm_topic)}
    unhealthy = default_service.properties_of(service.alarms.clock_unhealthy)
    assert (unhealthy["AlarmActions"], unhealthy["OKActions"]) == ([topic_ref], [topic_ref])


def test_at_a_30_s_interval_the_bound_alarm_uses_1_minute_periods_and_everyone_gets_the_threshold(exec_service):
    service = exec_service.built.service
    bound = exec_service.properties_of(service.alarms.bound_over_threshold)
    assert metric_stat(bound)["Period"] == 60
    assert (bound["Threshold"], bound["EvaluationPeriods"], bound["DatapointsToAlarm"]) == (2.5, 2, 2)
    assert env_of(exec_service.container(APP_CONTAINER_NAME))["CLOCK_THRESHOLD_MS"] == "2.5"
    worker = env_of(exec_service.container(WORKER_CONTAINER_NAME))
    assert (worker["CLOCK_THRESHOLD_MS"], worker["CLOCK_INTERVAL_SECONDS"]) == ("2.5", "30")
    assert worker["CLOCK_SINK"] == "cloudwatch"


def test_app_worker_and_flow_logs_share_one_rotating_key_and_a_month_of_retention(default_service):
    service = default_service.built
    key_arn = {"Fn::GetAtt": [default_service.logical_id(service.log_encryption_key), "Arn"]}
    groups = default_service.resources("AWS::Logs::LogGroup")
    assert len(groups) == 3, "app, worker, VPC flow logs"
    assert [group["Properties"]["KmsKeyId"] for group in groups.values()] == [key_arn] * 3
    assert [group["Properties"]["RetentionInDays"] for group in groups.values()] == [30] * 3
    assert default_service.properties_of(service.log_encryption_key)["EnableKeyRotation"] is True


# ---------------------------------------------------------------- snapshot
def test_app_container_and_ecs_service_match_snapshot(default_service, snapshot):
    service = default_service.built
    assert {
        "AppContainer": default_service.container(APP_CONTAINER_NAME),
        "Service": default_service.properties_of(service.service),
    } == snapshot
