#!/usr/bin/env python3
"""Another team's CDK app that pip-installs fargate-clock-accuracy and uses both constructs.

- `ClockAccurateFargateService`: the project's clock-aware app on ARM64 in this app's own
  VPC and cluster, publishing with PutMetricData (the `cloudwatch` sink).
- `ClockTaskMonitoring`: clock monitoring added to a task definition and service this
  app already has (its own image; the worker sidecar, dashboard and alarms come along).
"""

from __future__ import annotations

import os

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs

from clock_stack import ClockAccurateFargateService, ClockProps, ClockTaskMonitoring, TaskArchitecture

REGION = os.environ.get("CDK_DEFAULT_REGION") or "eu-west-1"


class OrdersStack(cdk.Stack):
    def __init__(self, scope: cdk.App, id: str, **kwargs: object) -> None:
        super().__init__(scope, id, **kwargs)
        vpc = ec2.Vpc(self, "Vpc", max_azs=2, nat_gateways=1)
        cluster = ecs.Cluster(self, "Cluster", vpc=vpc, container_insights_v2=ecs.ContainerInsights.ENABLED)

        self.orders = ClockAccurateFargateService(
            self,
            "Orders",
            cluster=cluster,
            architecture=TaskArchitecture.ARM64,
            clock=ClockProps(service_name="orders-clock", sink="cloudwatch", threshold_ms=2),
            ingress_peers=[ec2.Peer.ipv4("203.0.113.0/24")],
        )

        # A service this team already runs; only clock monitoring is added to it.
        ledger_task = ecs.FargateTaskDefinition(
            self,
            "LedgerTask",
            cpu=512,
            memory_limit_mib=1024,
            runtime_platform=TaskArchitecture.ARM64.runtime_platform,
        )
        ledger_task.add_container(
            "ledger",
            image=ecs.ContainerImage.from_registry("public.ecr.aws/nginx/nginx:1.27"),
            port_mappings=[ecs.PortMapping(container_port=80)],
            logging=ecs.LogDrivers.aws_logs(stream_prefix="ledger"),
        )
        ledger = ecs.FargateService(
            self,
            "Ledger",
            cluster=cluster,
            task_definition=ledger_task,
            desired_count=2,
            min_healthy_percent=100,
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
        )
        self.ledger_clock = ClockTaskMonitoring(
            self,
            "LedgerClock",
            task_definition=ledger_task,
            service=ledger,
            architecture=TaskArchitecture.ARM64,
            clock=ClockProps(service_name="ledger-clock", sink="cloudwatch", threshold_ms=0.5),
        )


app = cdk.App()
OrdersStack(app, "ConsumerOrders", env=cdk.Environment(region=REGION))
app.synth()
