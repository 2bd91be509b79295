"""Clock monitoring for a Fargate task definition that already exists: one construct."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from clockcore import contract
from clock_stack.images import TaskArchitecture
from clock_stack.metrics import ClockMetrics
from clock_stack.monitoring import ClockMonitoring, validate_alarm_email
from clock_stack.settings import ClockProps, ClockPropsError, clock_props
from clock_stack.sidecar import ClockWorkerSidecar


def default_clock_service_name(scope: Construct) -> str:
    """A `Service` dimension value unique in the account and region: stack name + construct path."""
    stack = Stack.of(scope)
    relative = scope.node.path[len(stack.node.path) :].strip("/")
    return f"{stack.stack_name}/{relative}" if relative else stack.stack_name


class ClockTaskMonitoring(Construct):
    """Add the worker sidecar, its IAM, a dashboard and alarms to `task_definition`.

    `clock` (a `ClockProps`) holds the clock settings; its `service_name` is the value of
    the `Service` dimension every alarm and widget filters on (default: stack name +
    construct path). It must be unique per account and region: two services publishing
    the same value share their alarm series.
    `service` (optional, recommended) is the ECS service running the task definition:
    with it the no-data alarm fires only while that service runs tasks (a fresh deploy
    does not notify), and its tasks start only after the worker's IAM policy exists.
    `enable_execute_command`: set it when the service runs with ECS Exec, so the worker's
    root filesystem is writable as the SSM agent needs.
    `clockbound_segment` (default True): the worker keeps a ClockBound segment at
    /var/run/clockbound/shm0 on a task volume, mounted read-only into `clockbound_readers`
    (default: every other container the task definition has when this construct is made),
    which get CLOCK_CLOCKBOUND_SHM too: any ClockBound client there reads bounded time.
    `wait_for_clock_sync` (default False here): those containers start only once the
    worker is HEALTHY, i.e. has written a synchronized sample (ECS gives up after 120 s).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        task_definition: ecs.FargateTaskDefinition,
        service: ecs.FargateService | None = None,
        clock: ClockProps | None = None,
        architecture: TaskArchitecture = TaskArchitecture.X86_64,
        worker_image: ecs.ContainerImage | None = None,
        app_port: int | None = None,
        alarm_topic: sns.ITopic | None = None,
        alarm_email: str | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        enable_execute_command: bool = False,
        clockbound_segment: bool = True,
        clockbound_readers: Sequence[ecs.ContainerDefinition] | None = None,
        wait_for_clock_sync: bool = False,
    ) -> None:
        super().__init__(scope, id)
        if not isinstance(architecture, TaskArchitecture):
            raise ClockPropsError(f"architecture must be a TaskArchitecture (X86_64 or ARM64), got {architecture!r}")
        validate_alarm_email(alarm_email, alarm_topic)
        settings = clock_props(clock).resolve(default_service_name=default_clock_service_name(self))
        if not isinstance(wait_for_clock_sync, bool):
            raise ClockPropsError(f"wait_for_clock_sync must be True or False, got {wait_for_clock_sync!r}")
        for reader in clockbound_readers or ():
            if not isinstance(reader, ecs.ContainerDefinition) or reader.task_definition is not task_definition:
                raise ClockPropsError(
                    f"clockbound_readers must be containers of task_definition, got {reader!r}"
                )
        self.settings = settings

        self.sidecar = ClockWorkerSidecar(
            self,
            "Worker",
            task_definition=task_definition,
            settings=settings,
            architecture=architecture,
            image=worker_image,
            app_port=app_port,
            log_retention=log_retention,
            log_removal_policy=removal_policy,
            enable_execute_command=enable_execute_command,
            clockbound_segment=clockbound_segment,
        )
        self.worker_container = self.sidecar.container
        readers = list(clockbound_readers) if clockbound_readers is not None else self.sidecar.other_containers()
        self.sidecar.share_segment(readers, wait_for_clock_sync=wait_for_clock_sync)
        self.clockbound_readers = readers

        # Per-task filters name only what is fixed at deploy time (the `Service` value is
        # added by ClockMetrics); the seed profile's set has Family and ClusterName.
        task_filter: dict[str, str] = {contract.FAMILY_DIMENSION: task_definition.family}
        ecs_service: tuple[str, str] | None = None
        if service is not None:
            task_filter[contract.CLUSTER_DIMENSION] = service.cluster.cluster_name
            ecs_service = (service.cluster.cluster_name, service.service_name)
            # Tasks must not start before the worker may publish: CloudFormation creates
            # the service only after the PutMetricData policy is attached.
            if self.sidecar.put_metric_data_policy is not None:
                service.node.add_dependency(self.sidecar.put_metric_data_policy)
        self.metrics = ClockMetrics(settings=settings, task_filter=task_filter, ecs_service=ecs_service)
        self.monitoring = ClockMonitoring(
            self,
            "Monitoring",
            metrics=self.metrics,
            alarm_topic=alarm_topic,
            alarm_email=alarm_email,
            removal_policy=removal_policy,
        )
        self.alarms = self.monitoring.alarms
        self.dashboard = self.monitoring.dashboard
        self.alarm_topic = self.monitoring.alarm_topic
