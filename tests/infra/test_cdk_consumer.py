"""Other people's CDK apps reuse the constructs (see infra/synth.py for the two apps):
one puts ClockAccurateFargateService into its own VPC and cluster with its own image,
one adds clock monitoring to a task definition and service it already has."""

from __future__ import annotations

import json

from clockcore import contract
from infra.synth import CONSUMER_IMAGE, Synthesized


def env_of(container: dict) -> dict[str, object]:
    return {item["Name"]: item["Value"] for item in container.get("Environment", [])}


def test_public_import_path():
    import clock_stack
    from clock_stack import ClockAccurateFargateService, ClockTaskMonitoring

    assert ClockAccurateFargateService.__module__ == "clock_stack.service"
    assert ClockTaskMonitoring.__module__ == "clock_stack.task_monitoring"
    assert set(clock_stack.__all__) >= {"ClockAccurateFargateService", "ClockTaskMonitoring", "ClockMonitoring"}


def test_importable_without_the_containers_folder_on_the_path(tmp_path):
    """As a consumer's app imports it: only the repository root on the path."""
    import os
    import subprocess
    import sys

    from infra.synth import ROOT

    code = "import sys; from clock_stack import ClockAccurateFargateService; import clockcore.contract; print('ok')"
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "HOME": os.environ.get("HOME", str(tmp_path))}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


def test_service_goes_into_the_consumers_own_vpc_and_cluster(consumer_service: Synthesized):
    synth = consumer_service
    assert len(synth.resources("AWS::EC2::VPC")) == 1, "no VPC of our own"
    (cluster_id,) = synth.resources("AWS::ECS::Cluster")
    assert "TeamCluster" in cluster_id
    assert synth.only("AWS::ECS::Service")["Cluster"] == {"Ref": cluster_id}


def test_consumers_own_image_runs_next_to_our_worker(consumer_service: Synthesized):
    synth = consumer_service
    app = synth.container("app")
    assert app["Image"] == CONSUMER_IMAGE
    assert app["PortMappings"] == [{"ContainerPort": 80, "Protocol": "tcp"}]
    # Not our app: no clock-gate settings, no health-check command it may not have.
    # Only the ClockBound segment's path, for any ClockBound client in it; it starts on a synchronized clock.
    assert app["Environment"] == [{"Name": contract.ENV_CLOCKBOUND_SHM, "Value": contract.CLOCKBOUND_SHM_PATH}]
    assert "HealthCheck" not in app
    assert app["DependsOn"] == [{"Condition": "HEALTHY", "ContainerName": "clock-worker"}]
    assert app.get("ReadonlyRootFilesystem") is False
    worker = synth.container("clock-worker")
    assert "Fn::Sub" in worker["Image"], "the worker is still our image asset"
    assert contract.ENV_APP_STATS_URL not in env_of(worker)
    assert synth.only("AWS::ElasticLoadBalancingV2::TargetGroup")["HealthCheckPath"] == "/"


def test_consumer_service_alarms_use_its_threshold_and_email(consumer_service: Synthesized):
    synth = consumer_service
    thresholds = {alarm["Properties"]["Threshold"] for alarm in synth.resources("AWS::CloudWatch::Alarm").values()}
    assert 5 in thresholds
    synth.template.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "team@example.com"})
    # The default Service dimension is unique per stack and construct path.
    assert env_of(synth.container("clock-worker"))[contract.ENV_SERVICE] == "ConsumerService/Orders"


def test_monitoring_is_added_to_an_existing_task_definition(consumer_task_definition: Synthesized):
    synth = consumer_task_definition
    (task_definition,) = synth.resources("AWS::ECS::TaskDefinition").values()
    names = [container["Name"] for container in task_definition["Properties"]["ContainerDefinitions"]]
    assert names == ["api", "clock-worker"]
    worker = synth.container("clock-worker")
    assert worker["Essential"] is False and worker["RestartPolicy"]["Enabled"] is True
    assert worker["ReadonlyRootFilesystem"] is True
    environment = env_of(worker)
    assert environment[contract.ENV_SINK] == "cloudwatch"
    assert environment[contract.ENV_NAMESPACE] == "Team/Clock"
    assert environment[contract.ENV_SERVICE] == "team-api"
    # The consumer's own container is left as it was.
    assert synth.container("api").get("ReadonlyRootFilesystem") is None


def test_existing_task_role_gets_namespace_scoped_put_metric_data(consumer_task_definition: Synthesized):
    synth = consumer_task_definition
    statements = [
        statement
        for policy in synth.resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if "cloudwatch:PutMetricData" in json.dumps(statement["Action"])
    ]
    assert len(statements) == 1
    assert statements[0]["Condition"] == {"StringEquals": {"cloudwatch:namespace": "Team/Clock"}}
    (role_id,) = [key for key in synth.resources("AWS::IAM::Role") if "ApiTaskRole" in key]
    policy = next(
        policy["Properties"]
        for policy in synth.resources("AWS::IAM::Policy").values()
        if "cloudwatch:PutMetricData" in json.dumps(policy)
    )
    assert policy["Roles"] == [{"Ref": role_id}]


def test_existing_service_is_watched_by_name(consumer_task_definition: Synthesized):
    synth = consumer_task_definition
    (service_id,) = synth.resources("AWS::ECS::Service")
    insights = [
        alarm["Properties"]
        for alarm in synth.resources("AWS::CloudWatch::Alarm").values()
        if "Expression" in alarm["Properties"]["Metrics"][0]
    ]
    assert len(insights) == 1
    expression = json.dumps(insights[0]["Metrics"][0]["Expression"])
    assert "Team/Clock" in expression and "WHERE Service = 'team-api'" in expression
    # The ECS service by name: the no-data alarm counts only while it runs tasks.
    running = [
        alarm["Properties"]
        for key, alarm in synth.resources("AWS::CloudWatch::Alarm").items()
        if "ServiceHasRunningTasks" in key
    ]
    dimensions = running[0]["Metrics"][0]["MetricStat"]["Metric"]["Dimensions"]
    assert {"Name": "ServiceName", "Value": {"Fn::GetAtt": [service_id, "Name"]}} in dimensions
    bound = [
        alarm["Properties"]
        for key, alarm in synth.resources("AWS::CloudWatch::Alarm").items()
        if "ApiClockMonitoringBoundOverThreshold" in key
    ]
    assert bound[0]["Metrics"][0]["MetricStat"]["Metric"]["Dimensions"] == [{"Name": "Service", "Value": "team-api"}]
    assert bound[0]["Threshold"] == 2


def test_seed_profile_keeps_the_seeds_namespace_and_dimensions():
    """metrics_profile="seed": ECS/ContainerInsights with ClusterName, Family, TaskID."""
    import aws_cdk as cdk
    from aws_cdk import aws_ecs as ecs
    from aws_cdk.assertions import Template

    from clock_stack import ClockProps, ClockTaskMonitoring
    from infra.synth import REGION, cdk_context

    app = cdk.App(context=cdk_context())
    stack = cdk.Stack(app, "Seed", env=cdk.Environment(region=REGION))
    task_definition = ecs.FargateTaskDefinition(stack, "Task", family="seed-family")
    image = ecs.ContainerImage.from_registry(CONSUMER_IMAGE)
    task_definition.add_container("main", image=image)
    ClockTaskMonitoring(stack, "Clock", task_definition=task_definition, clock=ClockProps(metrics_profile="seed"), worker_image=image)
    template = Template.from_stack(stack).to_json()
    worker = next(
        container
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::ECS::TaskDefinition"
        for container in resource["Properties"]["ContainerDefinitions"]
        if container["Name"] == "clock-worker"
    )
    environment = env_of(worker)
    assert environment[contract.ENV_PROFILE] == "seed"
    assert environment[contract.ENV_NAMESPACE] == contract.SEED_NAMESPACE
    assert environment[contract.ENV_PER_TASK_METRICS] == contract.CLOCK_ERROR_BOUND.name
    queries = [
        resource["Properties"]["Metrics"][0]["Expression"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::CloudWatch::Alarm" and "Expression" in resource["Properties"]["Metrics"][0]
    ]
    assert queries == [
        'SELECT MAX(ClockErrorBound) FROM SCHEMA("ECS/ContainerInsights", ClusterName, Family, TaskID) '
        "WHERE Family = 'seed-family' GROUP BY TaskID ORDER BY MAX() DESC"
    ]
