"""What `cdk deploy` creates must work: the templates read as AWS would run them.

Who can reach the load balancer (whatever the consumer's feature flags), what ECS Exec
needs, which alarm series two stacks use, whether a bad task always trips the alarm,
what a fresh deploy notifies, and what starts before what.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clockcore import contract
from infra.synth import REGION, Synthesized, cdk_context

CERTIFICATE_ARN = "arn:aws:acm:us-east-1:111122223333:certificate/00000000-1111-2222-3333-444444444444"
NGINX = "public.ecr.aws/nginx/nginx:1.27"


# ---------------------------------------------------------------- helpers
def alb_inbound_rules(synth: Synthesized) -> set[tuple[str, int, int]]:
    """(source, from port, to port) of every inbound rule on the load balancer's groups."""
    resources = synth.template_json["Resources"]
    balancer = synth.only("AWS::ElasticLoadBalancingV2::LoadBalancer")
    group_ids = {reference["Fn::GetAtt"][0] for reference in balancer["SecurityGroups"]}

    def source(rule: dict[str, Any]) -> str:
        for key in ("CidrIp", "CidrIpv6", "SourcePrefixListId", "SourceSecurityGroupId"):
            if key in rule:
                value = rule[key]
                return value if isinstance(value, str) else json.dumps(value)
        raise AssertionError(f"rule without a source: {rule}")

    rules: set[tuple[str, int, int]] = set()
    for group_id in group_ids:
        for rule in resources[group_id]["Properties"].get("SecurityGroupIngress", []):
            assert rule["IpProtocol"] == "tcp", rule
            rules.add((source(rule), rule["FromPort"], rule["ToPort"]))
    for ingress in synth.resources("AWS::EC2::SecurityGroupIngress").values():
        properties = ingress["Properties"]
        if properties["GroupId"] in [{"Fn::GetAtt": [group_id, "GroupId"]} for group_id in group_ids]:
            rules.add((source(properties), properties["FromPort"], properties["ToPort"]))
    return rules


def listener_ports(synth: Synthesized) -> set[int]:
    return {listener["Properties"]["Port"] for listener in synth.resources("AWS::ElasticLoadBalancingV2::Listener").values()}


def construct_ids(synth: Synthesized, resource_type: str) -> dict[str, str]:
    """Logical id → construct id (of the L2 that owns the resource), from the construct tree."""
    import aws_cdk as cdk

    found = {}
    for construct in synth.stack.node.find_all():
        if isinstance(construct, cdk.CfnResource) and construct.cfn_resource_type == resource_type:
            owner = construct.node.scope if construct.node.id == "Resource" else construct
            found[synth.stack.resolve(construct.logical_id)] = owner.node.id
    return found


def alarms_named(synth: Synthesized, resource_type: str = "AWS::CloudWatch::Alarm") -> dict[str, dict[str, Any]]:
    """Alarm properties keyed by their construct id."""
    names = construct_ids(synth, resource_type)
    return {names[logical_id]: resource["Properties"] for logical_id, resource in synth.resources(resource_type).items()}


def metric_stat(alarm: dict[str, Any]) -> dict[str, Any]:
    (query,) = alarm["Metrics"]
    return query["MetricStat"]


def logical_id_of(synth: Synthesized, construct_id: str, resource_type: str) -> str:
    (logical_id,) = [key for key, name in construct_ids(synth, resource_type).items() if name == construct_id]
    return logical_id


def worker_environment(synth: Synthesized) -> dict[str, str]:
    return {item["Name"]: item["Value"] for item in synth.container("clock-worker")["Environment"]}


# ---------------------------------------------------------------- apps without feature flags
@pytest.fixture(scope="module")
def unflagged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Synthesized]:
    """A consumer app with no feature flags at all: one HTTP stack with narrowed ingress,
    one HTTPS stack with the default (anyone). One synthesis for both."""
    import aws_cdk as cdk
    from aws_cdk import aws_certificatemanager as acm
    from aws_cdk import aws_ec2 as ec2
    from aws_cdk import aws_ecs as ecs
    from aws_cdk.assertions import Template

    from clock_stack import ClockAccurateFargateService

    outdir = tmp_path_factory.mktemp("unflagged")
    app = cdk.App(outdir=str(outdir))  # no context: every feature flag at its library default
    stacks = {}
    for name, https in (("PlainHttp", False), ("PlainHttps", True)):
        stack = cdk.Stack(app, name, env=cdk.Environment(region=REGION))
        ClockAccurateFargateService(
            stack,
            "Orders",
            image=ecs.ContainerImage.from_registry(NGINX),
            container_port=80,
            health_check_path="/",
            app_readonly_root_filesystem=False,
            desired_count=1,
            certificate=acm.Certificate.from_certificate_arn(stack, "Certificate", CERTIFICATE_ARN) if https else None,
            ingress_peers=None if https else [ec2.Peer.ipv4("203.0.113.0/24"), ec2.Peer.ipv6("2001:db8::/32")],
        )
        stacks[name] = stack
    app.synth()
    return {
        name: Synthesized(app=app, stack=stack, template=Template.from_stack(stack), outdir=outdir)
        for name, stack in stacks.items()
    }


ANYONE = {"0.0.0.0/0", "::/0"}


# ---------------------------------------------------------------- 1. exposure
@pytest.mark.parametrize(
    ("configuration", "peers", "ports"),
    [
        ("demo", ANYONE, {80}),  # cdk.json's flags (the implicit open listener is off there)
        ("variant", ANYONE, {443, 80}),  # HTTPS plus the redirect on 80
        ("PlainHttp", {"203.0.113.0/24", "2001:db8::/32"}, {80}),  # no flags: the pattern would open 80 to all
        ("PlainHttps", ANYONE, {443, 80}),
    ],
)
def test_each_listener_port_has_exactly_the_inbound_rules_asked_for(
    configuration: str, peers: set[str], ports: set[int], request: pytest.FixtureRequest
):
    if configuration.startswith("Plain"):
        synth = request.getfixturevalue("unflagged")[configuration]
    else:
        synth = request.getfixturevalue(configuration)
    assert listener_ports(synth) == ports
    assert alb_inbound_rules(synth) == {(peer, port, port) for peer in peers for port in ports}


def test_narrowed_ingress_is_not_acknowledged_as_open(unflagged: dict[str, Synthesized]):
    import aws_cdk as cdk

    key = cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY

    def acknowledged(synth: Synthesized) -> set[str]:
        rules = set()
        for construct in synth.stack.node.find_all():
            for entry in construct.node.metadata:
                if entry.type == key:
                    rules.update(rule.removeprefix("Annotation::") for rule in entry.data)
        return rules

    assert "AwsSolutions-EC23" not in acknowledged(unflagged["PlainHttp"])
    assert "AwsSolutions-EC23" in acknowledged(unflagged["PlainHttps"])


def test_tasks_take_traffic_from_the_load_balancer_only(demo: Synthesized):
    service = demo.only("AWS::ECS::Service")
    (task_group,) = service["NetworkConfiguration"]["AwsvpcConfiguration"]["SecurityGroups"]
    group_id = task_group["Fn::GetAtt"][0]
    assert "SecurityGroupIngress" not in demo.template_json["Resources"][group_id]["Properties"]
    ingress = [
        resource["Properties"]
        for resource in demo.resources("AWS::EC2::SecurityGroupIngress").values()
        if resource["Properties"]["GroupId"] == {"Fn::GetAtt": [group_id, "GroupId"]}
    ]
    (rule,) = ingress
    balancer_groups = demo.only("AWS::ElasticLoadBalancingV2::LoadBalancer")["SecurityGroups"]
    assert {"Fn::GetAtt": [rule["SourceSecurityGroupId"]["Fn::GetAtt"][0], "GroupId"]} in balancer_groups
    assert (rule["FromPort"], rule["ToPort"]) == (8080, 8080)


def test_ingress_peers_must_be_peers():
    import aws_cdk as cdk

    from clock_stack import ClockAccurateFargateService, ClockPropsError

    stack = cdk.Stack(cdk.App(), "Bad", env=cdk.Environment(region=REGION))
    with pytest.raises(ClockPropsError, match="ingress_peers"):
        ClockAccurateFargateService(stack, "Service", ingress_peers="0.0.0.0/0")  # type: ignore[arg-type]
    with pytest.raises(ClockPropsError, match="ingress_peers must hold ec2.Peer"):
        ClockAccurateFargateService(stack, "Service2", ingress_peers=["10.0.0.0/8"])  # type: ignore[list-item]


def test_demo_allowed_cidrs_become_peers_and_bad_ones_name_the_key():
    import aws_cdk as cdk

    from clock_stack import ClockPropsError
    from clock_stack.demo_stack import DemoConfig

    config = DemoConfig.from_context(cdk.App(context=cdk_context(**{"clock:allowedCidrs": "203.0.113.0/24, 2001:db8::/32"})).node)
    assert [peer.unique_id for peer in config.ingress_peers() or []] == ["203.0.113.0/24", "2001:db8::/32"]
    assert DemoConfig.from_context(cdk.App(context=cdk_context()).node).ingress_peers() is None
    for bad in ("203.0.113.5/24", "everyone", "10.0.0.0/8,"):
        with pytest.raises(ClockPropsError, match="context clock:allowedCidrs must be comma-separated CIDRs"):
            DemoConfig.from_context(cdk.App(context=cdk_context(**{"clock:allowedCidrs": bad})).node)


# ---------------------------------------------------------------- 2. ECS Exec
def test_exec_on_gives_every_container_what_the_ssm_agent_needs(variant: Synthesized):
    assert variant.only("AWS::ECS::Service")["EnableExecuteCommand"] is True
    for name in ("app", "clock-worker"):
        container = variant.container(name)
        # AWS: ECS Exec does not work with readonlyRootFilesystem (the agent writes to the root).
        assert container["ReadonlyRootFilesystem"] is False, name
        assert container["LinuxParameters"]["InitProcessEnabled"] is True, name
    statements = [
        statement
        for policy in variant.resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    granted = {action for statement in statements for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])}
    assert {
        "ssmmessages:CreateControlChannel",
        "ssmmessages:CreateDataChannel",
        "ssmmessages:OpenControlChannel",
        "ssmmessages:OpenDataChannel",
    } <= granted


def test_exec_off_keeps_both_roots_read_only(demo: Synthesized):
    assert demo.only("AWS::ECS::Service")["EnableExecuteCommand"] is False
    for name in ("app", "clock-worker"):
        container = demo.container(name)
        assert container["ReadonlyRootFilesystem"] is True and "LinuxParameters" not in container


def test_exec_with_an_explicitly_read_only_app_is_refused():
    import aws_cdk as cdk

    from clock_stack import ClockAccurateFargateService, ClockPropsError

    stack = cdk.Stack(cdk.App(), "Exec", env=cdk.Environment(region=REGION))
    with pytest.raises(ClockPropsError, match="enable_execute_command=True needs writable container root"):
        ClockAccurateFargateService(stack, "Service", enable_execute_command=True, app_readonly_root_filesystem=True)


# ---------------------------------------------------------------- 3. one alarm series per stack
def service_values_watched(synth: Synthesized) -> set[str]:
    values = set()
    for alarm in synth.resources("AWS::CloudWatch::Alarm").values():
        for query in alarm["Properties"]["Metrics"]:
            if "MetricStat" in query:
                for dimension in query["MetricStat"]["Metric"].get("Dimensions", []):
                    if dimension["Name"] == contract.SERVICE_DIMENSION:
                        values.add(dimension["Value"])
            else:
                values.update(re.findall(r"Service = '([^']+)'", json.dumps(query["Expression"])))
    return values


def test_two_demo_stacks_watch_disjoint_service_values(tmp_path: Path):
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    from clock_stack.demo_stack import ClockDemoStack, DemoConfig

    app = cdk.App(context=cdk_context(), outdir=str(tmp_path))
    config = DemoConfig.from_context(app.node)
    stacks = [ClockDemoStack(app, name, config=config, env=cdk.Environment(region=REGION)) for name in ("ClockDemo", "ClockDemo2")]
    synths = [Synthesized(app=app, stack=stack, template=Template.from_stack(stack), outdir=tmp_path) for stack in stacks]
    first, second = (service_values_watched(synth) for synth in synths)
    assert len(first) == len(second) == 1 and first.isdisjoint(second)
    for synth, watched in zip(synths, (first, second)):
        # The worker publishes under the value its stack's alarms watch.
        assert {worker_environment(synth)[contract.ENV_SERVICE]} == watched


# ---------------------------------------------------------------- 4, 5. the alarms
@pytest.mark.parametrize(("configuration", "interval", "period"), [("demo", 5, 10), ("variant", 30, 60)])
def test_bound_alarm_period_holds_every_task_sample(configuration: str, interval: int, period: int, request: pytest.FixtureRequest):
    from clock_stack.monitoring import BOUND_EVALUATION_PERIODS

    synth: Synthesized = request.getfixturevalue(configuration)
    assert float(worker_environment(synth)[contract.ENV_INTERVAL]) == interval
    alarms = alarms_named(synth)
    for name in ("BoundOverThreshold", "NotSynchronized"):
        alarm = alarms[name]
        stat = metric_stat(alarm)
        assert stat["Period"] == period and stat["Period"] >= 2 * interval, name
        assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (BOUND_EVALUATION_PERIODS,) * 2
        assert alarm["TreatMissingData"] == "notBreaching"
        assert [d["Name"] for d in stat["Metric"]["Dimensions"]] == [contract.SERVICE_DIMENSION]
    assert metric_stat(alarms["BoundOverThreshold"])["Stat"] == "Maximum"
    assert metric_stat(alarms["NotSynchronized"])["Stat"] == "Minimum"
    task_alarm = alarms["TaskBoundOverThreshold"]
    (query,) = task_alarm["Metrics"]
    assert query["Period"] >= 2 * interval and query["Period"] % 60 == 0
    assert (task_alarm["EvaluationPeriods"], task_alarm["DatapointsToAlarm"]) == (BOUND_EVALUATION_PERIODS,) * 2


def test_per_task_alarm_names_only_deploy_time_dimensions(demo: Synthesized):
    alarm = alarms_named(demo)["TaskBoundOverThreshold"]
    (query,) = alarm["Metrics"]
    expression = query["Expression"]
    assert isinstance(expression, str), "no token: nothing in it is left to the task metadata"
    service = worker_environment(demo)[contract.ENV_SERVICE]
    assert expression == (
        f'SELECT MAX(EffectiveClockErrorBound) FROM SCHEMA("FargateClock", Service, TaskID) '
        f"WHERE Service = '{service}' GROUP BY TaskID ORDER BY MAX() DESC"
    )
    assert "ServiceName" not in expression


def test_dashboard_per_task_widget_filters_on_the_service_value(demo: Synthesized):
    body = json.dumps(demo.only("AWS::CloudWatch::Dashboard")["DashboardBody"])
    service = worker_environment(demo)[contract.ENV_SERVICE]
    assert 'SEARCH(\'{\\\\\\"FargateClock\\\\\\",Service,TaskID} MetricName=\\\\\\"EffectiveClockErrorBound\\\\\\" ' in body
    assert f'Service=\\\\\\"{service}\\\\\\"' in body
    assert "ServiceName" not in body


@pytest.mark.parametrize("interval", [1, 2, 5, 9.5, 10, 14, 15, 16, 20, 29, 30, 45, 59, 60, 61, 90, 600, 3600])
def test_alarm_period_is_the_shortest_allowed_that_is_twice_the_interval(interval: float):
    from clock_stack.metrics import alarm_period

    period = alarm_period(interval).to_seconds()
    allowed = [10, 30] if interval < 60 else []
    allowed += [60 * minutes for minutes in range(1, 24 * 60)]
    assert period >= 2 * interval and period in allowed
    assert all(shorter < 2 * interval for shorter in allowed if shorter < period)


@settings(max_examples=300, deadline=None)
@given(
    interval=st.sampled_from([1, 2, 5, 10, 15, 20, 30, 45, 60, 120, 300]),
    phase=st.floats(min_value=0, max_value=1),
    jitter=st.lists(st.floats(min_value=-0.5, max_value=0.5), min_size=200, max_size=200),
)
def test_one_bad_task_makes_every_period_breach(interval: int, phase: float, jitter: list[float]):
    """A task samples every interval, each sample late or early by up to half an interval,
    out of step with CloudWatch's periods: every period still holds one of its samples,
    so with the Maximum statistic no period of healthy values only can break the chain."""
    from clock_stack.metrics import alarm_period

    period = alarm_period(interval).to_seconds()
    samples = sorted((index + phase + offset) * interval for index, offset in enumerate(jitter))
    end = samples[-1] - period
    start = period * math.ceil(samples[0] / period)
    boundaries = range(int(start), int(end), int(period))
    assert boundaries, "the run covers several periods"
    for boundary in boundaries:
        assert any(boundary <= sample < boundary + period for sample in samples), (boundary, period)


def test_worst_case_detection_time_at_the_defaults():
    from clock_stack.monitoring import worst_case_detection_seconds

    # The next sample within 10 s, then two 30 s periods.
    assert worst_case_detection_seconds(5) == 25  # the default: the next sample, then two 10 s periods
    assert worst_case_detection_seconds(10) == 70
    assert worst_case_detection_seconds(1) == 21
    assert worst_case_detection_seconds(60) == 300


# ---------------------------------------------------------------- 6. a fresh deploy does not notify
def test_no_data_fires_only_while_the_service_runs_tasks(demo: Synthesized):
    alarms = alarms_named(demo)
    readings_missing = alarms["NoData"]
    assert readings_missing["TreatMissingData"] == "breaching"
    assert (readings_missing["EvaluationPeriods"], readings_missing["DatapointsToAlarm"]) == (3, 3)
    assert metric_stat(readings_missing)["Stat"] == "SampleCount"

    running = alarms["ServiceHasRunningTasks"]
    stat = metric_stat(running)
    assert (stat["Metric"]["Namespace"], stat["Metric"]["MetricName"], stat["Stat"]) == ("AWS/ECS", "CPUUtilization", "SampleCount")
    dimensions = {d["Name"]: d["Value"] for d in stat["Metric"]["Dimensions"]}
    cluster_id = logical_id_of(demo, "Cluster", "AWS::ECS::Cluster")
    service_id = next(iter(demo.resources("AWS::ECS::Service")))
    assert dimensions == {"ClusterName": {"Ref": cluster_id}, "ServiceName": {"Fn::GetAtt": [service_id, "Name"]}}
    # Before the first task runs there is no report: not breaching, so no ALARM.
    assert running["TreatMissingData"] == "notBreaching"
    assert (running["ComparisonOperator"], running["Threshold"]) == ("GreaterThanOrEqualToThreshold", 1)
    assert (running["EvaluationPeriods"], running["DatapointsToAlarm"]) == (2, 2)

    composites = alarms_named(demo, "AWS::CloudWatch::CompositeAlarm")
    rule = json.dumps(composites["NoDataWhileRunning"]["AlarmRule"])
    no_data_id = logical_id_of(demo, "NoData", "AWS::CloudWatch::Alarm")
    running_id = logical_id_of(demo, "ServiceHasRunningTasks", "AWS::CloudWatch::Alarm")
    assert re.search(rf'ALARM\(\\"", {{"Fn::GetAtt": \["{no_data_id}", "Arn"\]}}, "\\"\) AND ALARM\(\\"", {{"Fn::GetAtt": \["{running_id}", "Arn"\]}}', rule), rule
    # The notifying composite sees silence only through NoDataWhileRunning.
    unhealthy = json.dumps(composites["ClockUnhealthy"]["AlarmRule"])
    assert no_data_id not in unhealthy and running_id not in unhealthy
    assert logical_id_of(demo, "NoDataWhileRunning", "AWS::CloudWatch::CompositeAlarm") in unhealthy


def test_only_the_clock_unhealthy_composite_notifies(demo: Synthesized, variant: Synthesized):
    for synth in (demo, variant):
        for resource_type in ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm"):
            for name, alarm in alarms_named(synth, resource_type).items():
                notifies = bool(alarm.get("AlarmActions") or alarm.get("OKActions") or alarm.get("InsufficientDataActions"))
                assert notifies == (name == "ClockUnhealthy"), name


def test_task_monitoring_without_a_service_keeps_the_plain_no_data_alarm(tmp_path: Path):
    import aws_cdk as cdk
    from aws_cdk import aws_ecs as ecs
    from aws_cdk.assertions import Template

    from clock_stack import ClockProps, ClockTaskMonitoring

    app = cdk.App(context=cdk_context(), outdir=str(tmp_path))
    stack = cdk.Stack(app, "Bare", env=cdk.Environment(region=REGION))
    task_definition = ecs.FargateTaskDefinition(stack, "Task")
    task_definition.add_container("api", image=ecs.ContainerImage.from_registry(NGINX))
    ClockTaskMonitoring(stack, "Clock", task_definition=task_definition, clock=ClockProps(service_name="bare"))
    synth = Synthesized(app=app, stack=stack, template=Template.from_stack(stack), outdir=tmp_path)
    assert set(alarms_named(synth)) >= {"NoData", "BoundOverThreshold"}
    assert "ServiceHasRunningTasks" not in alarms_named(synth)
    rule = json.dumps(synth.only("AWS::CloudWatch::CompositeAlarm")["AlarmRule"])
    assert logical_id_of(synth, "NoData", "AWS::CloudWatch::Alarm") in rule


# ---------------------------------------------------------------- 7. what starts before what
@pytest.mark.parametrize("configuration", ["variant", "consumer_task_definition"])
def test_tasks_start_after_the_put_metric_data_policy_exists(configuration: str, request: pytest.FixtureRequest):
    synth: Synthesized = request.getfixturevalue(configuration)
    (policy_id,) = [
        logical_id
        for logical_id, policy in synth.resources("AWS::IAM::Policy").items()
        if "cloudwatch:PutMetricData" in json.dumps(policy["Properties"]["PolicyDocument"])
    ]
    (service,) = synth.resources("AWS::ECS::Service").values()
    assert policy_id in service.get("DependsOn", [])
