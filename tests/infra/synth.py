"""How the infra tests synthesize: cdk.json's context, app.py, and two consumer apps."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
CDK_JSON = ROOT / "cdk.json"
REGION = "us-east-1"
# The settings the variant flips: every optional feature, in one synthesis.
VARIANT_CONTEXT = {
    "clock:sink": "cloudwatch",
    "clock:architecture": "ARM64",
    "clock:certificateArn": "arn:aws:acm:us-east-1:111122223333:certificate/00000000-1111-2222-3333-444444444444",
    "clock:enableExecuteCommand": True,
    "clock:alarmEmail": "oncall@example.com",
    "clock:intervalSeconds": 30,
    "clock:thresholdMs": 2.5,
    "clock:desiredCount": 3,
    "clock:maxTaskCount": 9,
    "clock:cpu": 512,
    "clock:memoryMiB": 1024,
    "clock:logRetentionDays": 7,
    "clock:namespace": "Variant/Clock",
    "clock:serviceName": "variant-service",
    "clock:natGateways": 2,
}


def cdk_context(**overrides: Any) -> dict[str, Any]:
    """cdk.json's context (feature flags and clock:* defaults), as the CLI would pass it."""
    context = json.loads(CDK_JSON.read_text())["context"]
    context.update(overrides)
    return context


def load_app_module():
    """app.py, the CLI's entry point, imported by path (a `containers/app` folder exists too)."""
    spec = importlib.util.spec_from_file_location("clock_cdk_app", ROOT / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Synthesized:
    app: Any  # aws_cdk.App
    stack: Any  # aws_cdk.Stack
    template: Any  # aws_cdk.assertions.Template
    outdir: Path
    # What `build(stack)` returned, for a stack made by synth_construct.
    built: Any = None

    @property
    def template_json(self) -> dict[str, Any]:
        return self.template.to_json()

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {key: value for key, value in self.template_json["Resources"].items() if value["Type"] == resource_type}

    def only(self, resource_type: str) -> dict[str, Any]:
        found = list(self.resources(resource_type).values())
        assert len(found) == 1, f"expected one {resource_type}, found {len(found)}"
        return found[0]["Properties"]

    def container(self, name: str) -> dict[str, Any]:
        for task_definition in self.resources("AWS::ECS::TaskDefinition").values():
            for container in task_definition["Properties"]["ContainerDefinitions"]:
                if container["Name"] == name:
                    return container
        raise AssertionError(f"no container named {name!r}")

    def template_files(self) -> list[Path]:
        return sorted(self.outdir.glob("*.template.json"))

    def logical_id(self, construct: Any) -> str:
        """The logical id of an L2 construct's CloudFormation resource (its default child)."""
        return self.stack.get_logical_id(construct.node.default_child)

    def resource_of(self, construct: Any) -> dict[str, Any]:
        return self.template_json["Resources"][self.logical_id(construct)]

    def properties_of(self, construct: Any) -> dict[str, Any]:
        return self.resource_of(construct)["Properties"]


def synth_demo(outdir: Path, **context: Any) -> Synthesized:
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    app_module = load_app_module()
    app = cdk.App(context=cdk_context(**{"clock:region": REGION, **context}), outdir=str(outdir))
    app_module.build_app(app)
    app.synth()
    stack = next(child for child in app.node.children if isinstance(child, cdk.Stack))
    return Synthesized(app=app, stack=stack, template=Template.from_stack(stack), outdir=outdir)


def synth_stack(outdir: Path, build: Callable[[Any], Any]) -> Synthesized:
    """Build one stack with `build(app) -> stack` under cdk.json's feature flags."""
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    app = cdk.App(context=cdk_context(), outdir=str(outdir))
    stack = build(app)
    app.synth()
    return Synthesized(app=app, stack=stack, template=Template.from_stack(stack), outdir=outdir)


def synth_construct(outdir: Path, stack_name: str, build: Callable[[Any], Any]) -> Synthesized:
    """A bare Stack in REGION under cdk.json's feature flags, with what `build(stack)` adds
    (one construct and what it needs); what `build` returns is `Synthesized.built`."""
    import aws_cdk as cdk

    built: list[Any] = []

    def make(app: Any) -> Any:
        stack = cdk.Stack(app, stack_name, env=cdk.Environment(region=REGION))
        built.append(build(stack))
        return stack

    synth = synth_stack(outdir, make)
    synth.built = built[0]
    return synth


# ---------------------------------------------------------------- template reading
def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """A container definition's environment as a dict."""
    return {item["Name"]: item["Value"] for item in container.get("Environment", [])}


def metric_stat(alarm: dict[str, Any]) -> dict[str, Any]:
    """The one MetricStat a single-metric alarm watches."""
    (query,) = alarm["Metrics"]
    return query["MetricStat"]


def alarm_rule_text(rule: Any) -> str:
    """A composite alarm's rule with each alarm ARN written as its logical id:
    `(ALARM("BoundAlarm1234") OR ALARM("SyncAlarm5678"))`."""
    if isinstance(rule, str):
        return rule
    (_, parts) = rule["Fn::Join"]
    return "".join(part if isinstance(part, str) else part["Fn::GetAtt"][0] for part in parts)


def alarm_rule(operator: str, *logical_ids: str) -> str:
    """What alarm_rule_text gives for ALARM(a) `operator` ALARM(b) ..."""
    return "(" + f" {operator} ".join(f'ALARM("{logical_id}")' for logical_id in logical_ids) + ")"


def policy_statements(synth: Synthesized, role: Any) -> list[dict[str, Any]]:
    """Every statement of the IAM policies attached to `role` (an iam.Role of the stack)."""
    role_ref = {"Ref": synth.logical_id(role)}
    statements: list[dict[str, Any]] = []
    for policy in synth.resources("AWS::IAM::Policy").values():
        if role_ref in policy["Properties"]["Roles"]:
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return statements


def actions_of(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


# ---------------------------------------------------------------- consumer apps
CONSUMER_IMAGE = "public.ecr.aws/nginx/nginx:1.27"


def build_consumer_service(app: Any) -> Any:
    """Someone else's app: their VPC, their cluster, their image, our construct."""
    import aws_cdk as cdk
    from aws_cdk import aws_ec2 as ec2
    from aws_cdk import aws_ecs as ecs

    from clock_stack import ClockAccurateFargateService, ClockProps

    stack = cdk.Stack(app, "ConsumerService", env=cdk.Environment(region=REGION))
    vpc = ec2.Vpc(stack, "TeamVpc", max_azs=2, nat_gateways=1)
    cluster = ecs.Cluster(stack, "TeamCluster", vpc=vpc)
    ClockAccurateFargateService(
        stack,
        "Orders",
        cluster=cluster,
        image=ecs.ContainerImage.from_registry(CONSUMER_IMAGE),
        container_port=80,
        health_check_path="/",
        app_readonly_root_filesystem=False,
        desired_count=1,
        max_task_count=3,
        clock=ClockProps(threshold_ms=5),
        alarm_email="team@example.com",
    )
    return stack


def build_consumer_task_definition(app: Any) -> Any:
    """Someone else's task definition and service; we add only clock monitoring."""
    import aws_cdk as cdk
    from aws_cdk import aws_ec2 as ec2
    from aws_cdk import aws_ecs as ecs

    from clock_stack import ClockProps, ClockTaskMonitoring

    stack = cdk.Stack(app, "ConsumerTaskDefinition", env=cdk.Environment(region=REGION))
    vpc = ec2.Vpc(stack, "TeamVpc", max_azs=2, nat_gateways=1)
    cluster = ecs.Cluster(stack, "TeamCluster", vpc=vpc)
    task_definition = ecs.FargateTaskDefinition(stack, "Api", cpu=512, memory_limit_mib=1024)
    task_definition.add_container(
        "api",
        image=ecs.ContainerImage.from_registry(CONSUMER_IMAGE),
        port_mappings=[ecs.PortMapping(container_port=80)],
        logging=ecs.LogDrivers.aws_logs(stream_prefix="api"),
    )
    service = ecs.FargateService(
        stack,
        "ApiService",
        cluster=cluster,
        task_definition=task_definition,
        desired_count=2,
        min_healthy_percent=100,
        circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
    )
    ClockTaskMonitoring(
        stack,
        "ApiClock",
        task_definition=task_definition,
        service=service,
        clock=ClockProps(service_name="team-api", sink="cloudwatch", namespace="Team/Clock", threshold_ms=2),
    )
    return stack
