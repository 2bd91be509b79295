"""The demo stack: network, cluster and the clock-accurate demo service, composed.

Its settings come from CDK context (`cdk.json`, or `cdk synth -c clock:desiredCount=3`);
`DemoConfig.from_context` reads and validates every key, with the defaults below.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from aws_cdk import Aws, CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct, Node

from clock_stack.images import TaskArchitecture
from clock_stack.log_encryption import create_log_encryption_key
from clock_stack.network import AccessLogBucket, ClockNetwork
from clock_stack.service import ClockAccurateFargateService
from clock_stack.settings import ClockProps, ClockPropsError
from clockcore import contract

CONTEXT_PREFIX = "clock:"
FALLBACK_REGION = "us-east-1"


@dataclass(frozen=True)
class DemoConfig:
    """Every context key of the demo, with its default (the README lists them)."""

    stackName: str = "ClockDemo"
    # ALB access logging needs the region at synth time (the bucket policy names the
    # region's log-delivery principal). Empty: the CLI's CDK_DEFAULT_REGION, else us-east-1.
    region: str = ""
    desiredCount: int = 2
    maxTaskCount: int = 4
    cpu: int = 256
    memoryMiB: int = 512
    architecture: str = TaskArchitecture.X86_64.value
    natGateways: int = 1
    thresholdMs: float = contract.DEFAULT_THRESHOLD_MS
    intervalSeconds: float = contract.DEFAULT_INTERVAL_SECONDS
    maxDriftPpm: float = contract.DEFAULT_MAX_DRIFT_PPM
    sink: str = contract.DEFAULT_SINK
    namespace: str = contract.DEFAULT_NAMESPACE
    # The `Service` dimension value the alarms filter on. Empty: stack name + construct
    # path, unique per stack, so two demo stacks in one account never share alarm series.
    serviceName: str = ""
    # Who may reach the load balancer: comma-separated CIDRs. Empty: anyone (IPv4 and IPv6).
    allowedCidrs: str = ""
    alarmEmail: str = ""
    certificateArn: str = ""
    enableExecuteCommand: bool = False
    logRetentionDays: int = 30

    @classmethod
    def context_keys(cls) -> dict[str, Any]:
        return {CONTEXT_PREFIX + field.name: field.default for field in fields(cls)}

    @classmethod
    def from_context(cls, node: Node) -> DemoConfig:
        """Read `clock:*` context; values from `-c key=value` arrive as strings."""
        values: dict[str, Any] = {}
        for field in fields(cls):
            raw = node.try_get_context(CONTEXT_PREFIX + field.name)
            if raw is None:
                continue
            values[field.name] = _coerce(CONTEXT_PREFIX + field.name, raw, type(field.default))
        config = cls(**values)
        if config.architecture not in TaskArchitecture.__members__:
            raise ClockPropsError(
                f"context {CONTEXT_PREFIX}architecture must be one of {', '.join(TaskArchitecture.__members__)}, "
                f"got {config.architecture!r}"
            )
        if config.logRetentionDays not in _RETENTION_BY_DAYS:
            raise ClockPropsError(
                f"context {CONTEXT_PREFIX}logRetentionDays must be one of CloudWatch Logs' values "
                f"{sorted(_RETENTION_BY_DAYS)}, got {config.logRetentionDays}"
            )
        if config.natGateways not in (1, 2):
            raise ClockPropsError(f"context {CONTEXT_PREFIX}natGateways must be 1 or 2, got {config.natGateways}")
        config.ingress_peers()  # refuses a bad CIDR now, with the key's name
        return config

    def ingress_peers(self) -> list[ec2.IPeer] | None:
        """`allowedCidrs` as peers; None (the construct's default: anyone) when empty."""
        if not self.allowedCidrs:
            return None
        peers: list[ec2.IPeer] = []
        for text in (part.strip() for part in self.allowedCidrs.split(",")):
            try:
                network = ipaddress.ip_network(text, strict=True)
            except ValueError as error:
                raise ClockPropsError(
                    f"context {CONTEXT_PREFIX}allowedCidrs must be comma-separated CIDRs like "
                    f"203.0.113.0/24,2001:db8::/32, got {text!r} ({error})"
                ) from None
            peers.append(ec2.Peer.ipv4(str(network)) if network.version == 4 else ec2.Peer.ipv6(str(network)))
        return peers

    def resolved_region(self, environment: Mapping[str, str]) -> str:
        return self.region or environment.get("CDK_DEFAULT_REGION") or FALLBACK_REGION

    @property
    def log_retention(self) -> logs.RetentionDays:
        return _RETENTION_BY_DAYS[self.logRetentionDays]


_RETENTION_BY_DAYS = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
}


def _coerce(key: str, raw: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
            return raw.strip().lower() == "true"
        raise ClockPropsError(f"context {key} must be true or false, got {raw!r}")
    if kind in (int, float):
        try:
            number = kind(raw) if not isinstance(raw, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or (kind is int and isinstance(raw, float) and not raw.is_integer()):
            raise ClockPropsError(f"context {key} must be a {'whole ' if kind is int else ''}number, got {raw!r}")
        return number
    if not isinstance(raw, str):
        raise ClockPropsError(f"context {key} must be a string, got {raw!r}")
    return raw.strip()


class ClockDemoStack(Stack):
    """VPC over 2 AZs with flow logs, a cluster with Container Insights, the demo app
    as a `ClockAccurateFargateService` with ALB access logs, and its outputs."""

    def __init__(self, scope: Construct, id: str, *, config: DemoConfig, **kwargs: Any) -> None:
        super().__init__(scope, id, **kwargs)
        self.config = config
        # A demo is torn down with `make destroy`: its logs go with it.
        removal = RemovalPolicy.DESTROY
        # One key for the stack's log groups (app, worker, flow logs), deleted with them.
        self.log_encryption_key = create_log_encryption_key(self, "LogsKey", removal_policy=removal)
        self.network = ClockNetwork(
            self,
            "Network",
            max_azs=2,
            nat_gateways=config.natGateways,
            flow_log_retention=config.log_retention,
            removal_policy=removal,
            log_encryption_key=self.log_encryption_key,
        )
        # Access logs are evidence: the bucket outlives the stack (delete it by hand).
        self.access_logs = AccessLogBucket(self, "AccessLogs")
        certificate = (
            acm.Certificate.from_certificate_arn(self, "Certificate", config.certificateArn)
            if config.certificateArn
            else None
        )
        self.service = ClockAccurateFargateService(
            self,
            "Service",
            cluster=self.network.cluster,
            cpu=config.cpu,
            memory_limit_mib=config.memoryMiB,
            architecture=TaskArchitecture(config.architecture),
            desired_count=config.desiredCount,
            max_task_count=config.maxTaskCount,
            clock=ClockProps(
                service_name=config.serviceName or None,
                threshold_ms=config.thresholdMs,
                interval_seconds=config.intervalSeconds,
                max_drift_ppm=config.maxDriftPpm,
                sink=config.sink,
                namespace=config.namespace,
            ),
            ingress_peers=config.ingress_peers(),
            alarm_email=config.alarmEmail or None,
            certificate=certificate,
            access_logs_bucket=self.access_logs.bucket,
            enable_execute_command=config.enableExecuteCommand,
            log_retention=config.log_retention,
            removal_policy=removal,
            log_encryption_key=self.log_encryption_key,
        )
        scheme = "https" if certificate is not None else "http"
        CfnOutput(
            self,
            "ServiceUrl",
            description="The demo app behind the load balancer",
            value=f"{scheme}://{self.service.load_balancer.load_balancer_dns_name}",
        )
        CfnOutput(
            self,
            "DashboardUrl",
            description="The clock dashboard in the CloudWatch console",
            value=(
                f"https://{Aws.REGION}.console.aws.amazon.com/cloudwatch/home?region={Aws.REGION}"
                f"#dashboards:name={self.service.dashboard.dashboard_name}"
            ),
        )
        CfnOutput(
            self,
            "AlarmTopicArn",
            description="SNS topic the clock alarms notify",
            value=self.service.alarm_topic.topic_arn,
        )
