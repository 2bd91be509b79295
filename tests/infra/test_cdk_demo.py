"""The demo stack keeps every promise of the issue: assertions on the synthesized template.

`demo` is the stack with cdk.json's defaults (EMF sink, HTTP, X86_64, 5 s interval);
`variant` flips every option (PutMetricData, HTTPS, ARM64, ECS Exec, e-mail, 30 s).
"""

from __future__ import annotations

import json

import pytest

from clockcore import contract
from infra.synth import VARIANT_CONTEXT, Synthesized

APP = "app"
WORKER = "clock-worker"


def env_of(container: dict) -> dict[str, object]:
    return {item["Name"]: item["Value"] for item in container.get("Environment", [])}


def policy_statements(synth: Synthesized) -> list[dict]:
    statements = []
    for policy in synth.resources("AWS::IAM::Policy").values():
        statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return statements


def actions_of(statement: dict) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


def alarms_by_id(synth: Synthesized) -> dict[str, dict]:
    """Alarm properties keyed by the construct id part of the logical id."""
    found = {}
    for logical_id, resource in synth.resources("AWS::CloudWatch::Alarm").items():
        for name in ("TaskBoundOverThreshold", "BoundOverThreshold", "NotSynchronized", "NoData"):
            if name in logical_id:
                found[name] = resource["Properties"]
                break
    return found


def metric_stat(alarm: dict) -> dict:
    (query,) = alarm["Metrics"]
    return query["MetricStat"]


# ---------------------------------------------------------------- network and tasks
def test_tasks_get_no_public_ip_and_run_in_private_subnets(demo: Synthesized):
    service = demo.only("AWS::ECS::Service")
    network = service["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "DISABLED"
    private_subnets = {
        key for key, subnet in demo.resources("AWS::EC2::Subnet").items() if subnet["Properties"]["MapPublicIpOnLaunch"] is False
    }
    assert len(network["Subnets"]) == 2
    assert {subnet["Ref"] for subnet in network["Subnets"]} <= private_subnets


def test_vpc_spans_two_zones_with_flow_logs(demo: Synthesized):
    subnets = demo.resources("AWS::EC2::Subnet")
    assert len(subnets) == 4  # public + private in each of 2 zones
    zones = {json.dumps(subnet["Properties"]["AvailabilityZone"]) for subnet in subnets.values()}
    assert len(zones) == 2
    flow_log = demo.only("AWS::EC2::FlowLog")
    assert flow_log["ResourceType"] == "VPC" and flow_log["TrafficType"] == "ALL"
    assert len(demo.resources("AWS::EC2::NatGateway")) == 1


def test_cluster_has_container_insights(demo: Synthesized):
    demo.template.has_resource_properties(
        "AWS::ECS::Cluster", {"ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}]}
    )


def test_platform_version_reports_clock_drift(demo: Synthesized):
    assert demo.only("AWS::ECS::Service")["PlatformVersion"] == "1.4.0"


def test_deployment_circuit_breaker_rolls_back_and_keeps_capacity(demo: Synthesized):
    deployment = demo.only("AWS::ECS::Service")["DeploymentConfiguration"]
    assert deployment["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
    assert deployment["MinimumHealthyPercent"] == 100
    assert deployment["MaximumPercent"] == 200


def test_desired_count_and_scaling_bounds_come_from_context(demo: Synthesized, variant: Synthesized):
    assert demo.only("AWS::ECS::Service")["DesiredCount"] == 2
    target = demo.only("AWS::ApplicationAutoScaling::ScalableTarget")
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 4)
    assert variant.only("AWS::ECS::Service")["DesiredCount"] == 3
    target = variant.only("AWS::ApplicationAutoScaling::ScalableTarget")
    assert (target["MinCapacity"], target["MaxCapacity"]) == (3, 9)


def test_worker_is_a_non_essential_sidecar_that_restarts_in_place(demo: Synthesized):
    worker = demo.container(WORKER)
    assert worker["Essential"] is False
    assert worker["RestartPolicy"] == {"Enabled": True, "RestartAttemptPeriod": 60}
    assert demo.container(APP)["Essential"] is True


def test_containers_have_health_checks(demo: Synthesized):
    assert demo.container(APP)["HealthCheck"]["Command"] == ["CMD", "python", "-m", "clock_app.healthcheck"]
    assert demo.container(WORKER)["HealthCheck"]["Command"] == ["CMD", "python", "-m", "clock_worker.healthcheck"]


def test_root_filesystems_are_read_only_with_a_writable_tmp(demo: Synthesized):
    task_definition = demo.only("AWS::ECS::TaskDefinition")
    volumes = {volume["Name"] for volume in task_definition["Volumes"]}
    for name in (APP, WORKER):
        container = demo.container(name)
        assert container["ReadonlyRootFilesystem"] is True
        # Writable: /tmp only (the worker also writes the ClockBound segment's folder).
        writable = [mount for mount in container["MountPoints"] if not mount["ReadOnly"]]
        expected = ["/tmp", "/var/lib/clockbound"] if name == WORKER else ["/tmp"]
        assert [mount["ContainerPath"] for mount in writable] == expected
        assert all(mount["SourceVolume"] in volumes for mount in container["MountPoints"])


def test_logs_go_to_awslogs_with_retention(demo: Synthesized, variant: Synthesized):
    retention = {
        key: group["Properties"].get("RetentionInDays") for key, group in demo.resources("AWS::Logs::LogGroup").items()
    }
    assert retention and set(retention.values()) == {30}, retention
    for name in (APP, WORKER):
        log = demo.container(name)["LogConfiguration"]
        assert log["LogDriver"] == "awslogs"
        assert log["Options"]["awslogs-group"]["Ref"] in retention
    assert {group["Properties"]["RetentionInDays"] for group in variant.resources("AWS::Logs::LogGroup").values()} == {7}


def test_log_groups_share_one_rotating_key_that_cloudwatch_logs_may_use(demo: Synthesized):
    groups = demo.resources("AWS::Logs::LogGroup")
    assert len(groups) == 3, "app, worker, flow logs"
    key_ids = {group["Properties"]["KmsKeyId"]["Fn::GetAtt"][0] for group in groups.values()}
    assert len(key_ids) == 1, "one key for the stack's log groups"
    (key_id,) = key_ids
    key = demo.resources("AWS::KMS::Key")[key_id]
    assert key["Properties"]["EnableKeyRotation"] is True
    # The demo's log groups go with the stack, and so does their key (never before them).
    assert {group["DeletionPolicy"] for group in groups.values()} == {key["DeletionPolicy"]} == {"Delete"}
    (logs_statement,) = [
        statement
        for statement in key["Properties"]["KeyPolicy"]["Statement"]
        if statement.get("Sid") == "AllowCloudWatchLogsOfThisAccountAndRegion"
    ]
    assert logs_statement["Principal"] == {"Service": "logs.us-east-1.amazonaws.com"}
    assert set(logs_statement["Action"]) >= {"kms:Encrypt*", "kms:Decrypt*", "kms:GenerateDataKey*"}
    condition = logs_statement["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
    assert condition == {"Fn::Join": ["", ["arn:aws:logs:us-east-1:", {"Ref": "AWS::AccountId"}, ":log-group:*"]]}


def test_both_images_are_assets_of_containers_built_for_the_task_architecture(demo: Synthesized, variant: Synthesized):
    for synth, cpu_architecture, platform in ((demo, "X86_64", "linux/amd64"), (variant, "ARM64", "linux/arm64")):
        task_definition = synth.only("AWS::ECS::TaskDefinition")
        assert task_definition["RuntimePlatform"] == {"CpuArchitecture": cpu_architecture, "OperatingSystemFamily": "LINUX"}
        assets = json.loads(next(synth.outdir.glob("*.assets.json")).read_text())["dockerImages"]
        sources = sorted((asset["source"]["dockerFile"], asset["source"]["platform"]) for asset in assets.values())
        assert sources == [("app/Dockerfile", platform), ("worker/Dockerfile", platform)]
        for asset in assets.values():
            staged = synth.outdir / asset["source"]["directory"]
            assert (staged / "clockcore" / "contract.py").is_file(), "the shared clock library is in the build context"
            assert not list(staged.rglob("__pycache__"))


def test_ecs_exec_only_when_enabled(demo: Synthesized, variant: Synthesized):
    assert demo.only("AWS::ECS::Service")["EnableExecuteCommand"] is False
    assert not [s for s in policy_statements(demo) if any(a.startswith("ssmmessages:") for a in actions_of(s))]
    assert variant.only("AWS::ECS::Service")["EnableExecuteCommand"] is True
    assert [s for s in policy_statements(variant) if "ssmmessages:OpenDataChannel" in actions_of(s)]


# ---------------------------------------------------------------- load balancer
def test_internet_facing_alb_with_access_logs(demo: Synthesized):
    load_balancer = demo.only("AWS::ElasticLoadBalancingV2::LoadBalancer")
    assert load_balancer["Scheme"] == "internet-facing"
    attributes = {item["Key"]: item["Value"] for item in load_balancer["LoadBalancerAttributes"]}
    assert attributes["access_logs.s3.enabled"] == "true"
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
    bucket = demo.only("AWS::S3::Bucket")
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"
    }
    assert bucket["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] is True
    # Versioned: an overwritten or deleted log stays 30 days as a noncurrent version.
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["LifecycleConfiguration"]["Rules"] == [
        {"ExpirationInDays": 90, "NoncurrentVersionExpiration": {"NoncurrentDays": 30}, "Status": "Enabled"}
    ]
    statements = demo.only("AWS::S3::BucketPolicy")["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}} for s in statements
    ), "bucket policy enforces TLS"


def test_target_health_check_is_liveness_only(demo: Synthesized):
    target_group = demo.only("AWS::ElasticLoadBalancingV2::TargetGroup")
    assert target_group["HealthCheckPath"] == "/healthz"
    assert target_group["TargetType"] == "ip"
    (target,) = demo.only("AWS::ECS::Service")["LoadBalancers"]
    assert (target["ContainerName"], target["ContainerPort"]) == (APP, 8080)


def test_http_listener_without_certificate(demo: Synthesized):
    (listener,) = [l["Properties"] for l in demo.resources("AWS::ElasticLoadBalancingV2::Listener").values()]
    assert (listener["Protocol"], listener["Port"]) == ("HTTP", 80)
    assert listener["DefaultActions"][0]["Type"] == "forward"


def test_https_listener_and_http_redirect_with_certificate(variant: Synthesized):
    listeners = {l["Properties"]["Port"]: l["Properties"] for l in variant.resources("AWS::ElasticLoadBalancingV2::Listener").values()}
    assert set(listeners) == {80, 443}
    assert listeners[443]["Protocol"] == "HTTPS"
    assert listeners[443]["Certificates"] == [{"CertificateArn": VARIANT_CONTEXT["clock:certificateArn"]}]
    assert listeners[443]["SslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    redirect = listeners[80]["DefaultActions"][0]
    assert redirect["Type"] == "redirect" and redirect["RedirectConfig"]["Protocol"] == "HTTPS"


# ---------------------------------------------------------------- environment contract
def test_worker_environment_comes_from_the_contract(demo: Synthesized):
    assert env_of(demo.container(WORKER)) == {
        contract.ENV_SINK: "emf",
        contract.ENV_NAMESPACE: contract.DEFAULT_NAMESPACE,
        contract.ENV_PROFILE: "standard",
        # Stack name + construct path: unique per stack (cdk.json leaves clock:serviceName empty).
        contract.ENV_SERVICE: "ClockDemo/Service",
        contract.ENV_PER_TASK_METRICS: contract.EFFECTIVE_BOUND.name,
        contract.ENV_INTERVAL: "5",
        contract.ENV_MAX_DRIFT_PPM: "50",
        contract.ENV_THRESHOLD_MS: "1",
        contract.ENV_MAX_REFERENCE_AGE: "120",
        contract.ENV_CLOCKBOUND_SHM: "/var/lib/clockbound/shm0",
        contract.ENV_APP_STATS_URL: "http://127.0.0.1:8080" + contract.APP_STATS_PATH,
    }


def test_app_environment_uses_the_alarm_threshold(demo: Synthesized, variant: Synthesized):
    assert env_of(demo.container(APP)) == {
        contract.ENV_THRESHOLD_MS: "1",
        contract.ENV_CACHE_TTL: "1",
        contract.ENV_MAX_REFERENCE_AGE: "120",
        contract.ENV_MAX_DRIFT_PPM: "50",
        contract.ENV_CLOCKBOUND_SHM: "/var/run/clockbound/shm0",
    }
    assert env_of(variant.container(APP))[contract.ENV_THRESHOLD_MS] == "2.5"


# ---------------------------------------------------------------- least privilege
def test_emf_sink_grants_no_cloudwatch_permission(demo: Synthesized):
    assert not [s for s in policy_statements(demo) if any(a.startswith("cloudwatch:") for a in actions_of(s))]


def test_api_sink_may_put_metric_data_into_its_namespace_only(variant: Synthesized):
    (statement,) = [s for s in policy_statements(variant) if any(a.startswith("cloudwatch:") for a in actions_of(s))]
    assert actions_of(statement) == ["cloudwatch:PutMetricData"]
    assert statement["Condition"] == {"StringEquals": {"cloudwatch:namespace": "Variant/Clock"}}
    assert env_of(variant.container(WORKER))[contract.ENV_SINK] == "cloudwatch"


def test_the_only_other_wildcard_is_ecr_get_authorization_token(demo: Synthesized):
    wildcard_actions = set()
    for statement in policy_statements(demo):
        if statement["Resource"] == "*":
            wildcard_actions.update(actions_of(statement))
    assert wildcard_actions == {"ecr:GetAuthorizationToken"}


# ---------------------------------------------------------------- monitoring
def test_bound_alarm_is_high_resolution_on_the_service_dimension(demo: Synthesized):
    alarm = alarms_by_id(demo)["BoundOverThreshold"]
    stat = metric_stat(alarm)
    assert stat["Metric"] == {
        "Namespace": contract.DEFAULT_NAMESPACE,
        "MetricName": contract.EFFECTIVE_BOUND.name,
        "Dimensions": [{"Name": contract.SERVICE_DIMENSION, "Value": "ClockDemo/Service"}],
    }
    assert (stat["Period"], stat["Stat"]) == (10, "Maximum")  # twice the 5 s interval
    assert alarm["Threshold"] == 1
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"


def test_alarm_period_follows_a_longer_interval(variant: Synthesized):
    alarm = alarms_by_id(variant)["BoundOverThreshold"]
    assert metric_stat(alarm)["Period"] == 60  # twice the 30 s interval
    assert alarm["Threshold"] == 2.5
    assert metric_stat(alarm)["Metric"]["Namespace"] == "Variant/Clock"


def test_not_synchronized_alarm(demo: Synthesized):
    alarm = alarms_by_id(demo)["NotSynchronized"]
    stat = metric_stat(alarm)
    assert stat["Metric"]["MetricName"] == contract.CLOCK_SYNCHRONIZED.name
    assert stat["Metric"]["Dimensions"] == [{"Name": "Service", "Value": "ClockDemo/Service"}]
    assert (stat["Period"], stat["Stat"]) == (10, "Minimum")
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("LessThanThreshold", 1)
    assert alarm["TreatMissingData"] == "notBreaching"


def test_no_data_alarm_treats_missing_data_as_breaching(demo: Synthesized):
    alarm = alarms_by_id(demo)["NoData"]
    stat = metric_stat(alarm)
    assert stat["Metric"]["MetricName"] == contract.CLOCK_SYNCHRONIZED.name
    assert stat["Metric"]["Dimensions"] == [{"Name": "Service", "Value": "ClockDemo/Service"}]
    assert (stat["Period"], stat["Stat"]) == (60, "SampleCount")
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("LessThanThreshold", 1)
    assert alarm["TreatMissingData"] == "breaching"


def test_metrics_insights_alarm_names_the_task(demo: Synthesized):
    alarm = alarms_by_id(demo)["TaskBoundOverThreshold"]
    (query,) = alarm["Metrics"]
    assert query["Period"] == 60
    expression = json.dumps(query["Expression"])
    assert f"SELECT MAX({contract.EFFECTIVE_BOUND.name})" in expression
    assert 'FROM SCHEMA(\\"FargateClock\\", Service, TaskID)' in expression
    assert "GROUP BY TaskID" in expression
    # Scoped to this service's tasks by the deploy-time Service value, never the metadata's ServiceName.
    assert "WHERE Service = 'ClockDemo/Service'" in expression and "ServiceName" not in expression
    assert alarm["Threshold"] == 1 and alarm["TreatMissingData"] == "notBreaching"


def test_composite_alarm_covers_every_clock_alarm_and_notifies(demo: Synthesized):
    composites = demo.resources("AWS::CloudWatch::CompositeAlarm")
    (composite,) = [c["Properties"] for key, c in composites.items() if "ClockUnhealthy" in key]
    rule = json.dumps(composite["AlarmRule"])
    # Every alarm counts, directly or through NoDataWhileRunning (silence while tasks run).
    (no_data_while_running,) = [key for key in composites if "NoDataWhileRunning" in key]
    assert no_data_while_running in rule
    covered = rule + json.dumps(composites[no_data_while_running]["Properties"]["AlarmRule"])
    for logical_id in demo.resources("AWS::CloudWatch::Alarm"):
        assert logical_id in covered
    (topic_id,) = demo.resources("AWS::SNS::Topic")
    assert composite["AlarmActions"] == [{"Ref": topic_id}]
    assert composite["OKActions"] == [{"Ref": topic_id}]
    # One notification per incident: the metric alarms themselves stay silent.
    for alarm in demo.resources("AWS::CloudWatch::Alarm").values():
        assert "AlarmActions" not in alarm["Properties"]


def test_topic_is_kms_encrypted_and_subscribed_only_when_asked(demo: Synthesized, variant: Synthesized):
    key_id, _ = demo.only("AWS::SNS::Topic")["KmsMasterKeyId"]["Fn::GetAtt"]
    key = demo.resources("AWS::KMS::Key")[key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    assert not demo.resources("AWS::SNS::Subscription")
    variant.template.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": VARIANT_CONTEXT["clock:alarmEmail"]}
    )
    key_policy = json.dumps(key["KeyPolicy"])
    assert "cloudwatch.amazonaws.com" in key_policy, "CloudWatch may use the key to publish alarms"


def test_dashboard_shows_every_promised_widget(demo: Synthesized):
    body = json.dumps(demo.only("AWS::CloudWatch::Dashboard")["DashboardBody"])
    assert "SEARCH(" in body and "TaskID" in body
    for metric in (
        contract.EFFECTIVE_BOUND,
        contract.CLOCK_ERROR_BOUND,
        contract.CLOCK_SYNCHRONIZED,
        contract.REFERENCE_AGE,
        contract.SAMPLE_FAILURES,
        contract.OPERATIONS_REFUSED,
    ):
        assert metric.name in body
    assert '\\"horizontal\\":[{\\"value\\":1,' in body and "threshold 1 ms" in body, "the threshold line"
    assert '\\"type\\":\\"alarm\\"' in body, "an alarm status widget"


def test_outputs_url_and_dashboard(demo: Synthesized, variant: Synthesized):
    outputs = demo.template_json["Outputs"]
    assert {"ServiceUrl", "DashboardUrl", "AlarmTopicArn"} <= set(outputs)
    assert json.dumps(outputs["ServiceUrl"]["Value"]).startswith('{"Fn::Join": ["", ["http://"')
    assert "#dashboards:name=" in json.dumps(outputs["DashboardUrl"]["Value"])
    assert json.dumps(variant.template_json["Outputs"]["ServiceUrl"]["Value"]).startswith('{"Fn::Join": ["", ["https://"')


@pytest.mark.parametrize("count", [1, 2])
def test_nat_gateways_from_context(demo: Synthesized, variant: Synthesized, count: int):
    synth = demo if count == 1 else variant
    assert len(synth.resources("AWS::EC2::NatGateway")) == count
