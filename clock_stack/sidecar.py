"""The worker sidecar on a Fargate task definition: container, scratch volume, logs, IAM."""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Size, Validations
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from clockcore import contract
from clock_stack.images import WORKER_HEALTH_CHECK_COMMAND, TaskArchitecture, worker_image
from clock_stack.settings import ClockPropsError, ClockSettings

WORKER_CONTAINER_NAME = "clock-worker"
# The images run as uid 10001 with a read-only root; /tmp is their only writable path
# (the worker keeps its heartbeat file there). Fargate creates the volume root-owned
# 0755 unless the image declares VOLUME ["/tmp"], whose permissions it then copies.
SCRATCH_PATH = "/tmp"
# The worker holds one reading and a small HTTP client; a hard cap keeps a leak in the
# sidecar from taking memory the app needs.
WORKER_MEMORY_LIMIT_MIB = 128
# The ClockBound segment: a task volume at ClockBound's own folder, so every client finds
# it at its default path. The worker image declares the folder as a VOLUME owned by its
# uid, so Fargate creates the volume writable for the worker.
CLOCKBOUND_VOLUME = "clockbound"
CLOCKBOUND_DIR = posixpath.dirname(contract.CLOCKBOUND_SHM_PATH)
# How long a container waiting for the worker's HEALTHY (a synchronized sample) waits
# before ECS gives up on it: Fargate's maximum startTimeout.
WORKER_START_TIMEOUT = Duration.seconds(120)


def awslogs_driver(log_group: logs.ILogGroup, stream_prefix: str) -> ecs.LogDriver:
    # Non-blocking: a CloudWatch Logs hiccup must never stall a container's stdout
    # (for the app that would stall requests); the 25 MiB buffer absorbs bursts.
    return ecs.LogDrivers.aws_logs(
        log_group=log_group,
        stream_prefix=stream_prefix,
        mode=ecs.AwsLogDriverMode.NON_BLOCKING,
        max_buffer_size=Size.mebibytes(25),
    )


def container_health_check(command: Sequence[str], *, interval: Duration = Duration.seconds(30)) -> ecs.HealthCheck:
    """The health check both images get: every 30 s (the worker: 10 s), 3 misses to
    unhealthy, and 30 s of grace at start (the worker's first heartbeat, the app's first answer)."""
    return ecs.HealthCheck(
        command=list(command),
        interval=interval,
        timeout=Duration.seconds(5),
        retries=3,
        start_period=Duration.seconds(30),
    )


def exec_linux_parameters(scope: Construct, id: str) -> ecs.LinuxParameters:
    """What a container needs besides a writable root for ECS Exec: AWS recommends an init
    process, so the shells Exec starts are reaped."""
    return ecs.LinuxParameters(scope, id, init_process_enabled=True)


def add_scratch_volume(task_definition: ecs.TaskDefinition, container: ecs.ContainerDefinition, volume_name: str) -> None:
    """Mount a task-local writable volume at /tmp so the root filesystem can be read-only."""
    # A volume without a host path is task storage that lives as long as the task.
    task_definition.add_volume(name=volume_name)
    container.add_mount_points(ecs.MountPoint(container_path=SCRATCH_PATH, source_volume=volume_name, read_only=False))


class ClockWorkerSidecar(Construct):
    """Adds the clock worker to `task_definition` as a non-essential, self-restarting sidecar.

    `enable_execute_command`: the task runs with ECS Exec, so the worker's root filesystem
    stays writable (the SSM agent needs it) and it gets an init process.
    `clockbound_segment`: the worker keeps a ClockBound segment on a task volume at
    /var/run/clockbound, which `share_segment` mounts read-only into other containers.
    In the `cloudwatch` sink the task role may call `cloudwatch:PutMetricData` for the
    configured namespace only; in the `emf` sink it gets no CloudWatch permission at all
    (the awslogs driver, with the execution role, carries the metric lines).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        task_definition: ecs.FargateTaskDefinition,
        settings: ClockSettings,
        architecture: TaskArchitecture = TaskArchitecture.X86_64,
        image: ecs.ContainerImage | None = None,
        app_port: int | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
        log_removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        enable_execute_command: bool = False,
        clockbound_segment: bool = True,
    ) -> None:
        super().__init__(scope, id)
        if not isinstance(task_definition, ecs.FargateTaskDefinition):
            raise ClockPropsError(
                "task_definition must be an ecs.FargateTaskDefinition: ClockDrift is reported by Fargate's "
                f"task metadata endpoint only, got {type(task_definition).__name__}"
            )
        if task_definition.find_container(WORKER_CONTAINER_NAME) is not None:
            raise ClockPropsError(f"task_definition already has a container named {WORKER_CONTAINER_NAME!r}")
        if not isinstance(clockbound_segment, bool):
            raise ClockPropsError(f"clockbound_segment must be True or False, got {clockbound_segment!r}")
        self.segment_path = contract.CLOCKBOUND_SHM_PATH if clockbound_segment else None
        # Validates app_port (clockcore's rule for CLOCK_APP_PORT) before anything is built.
        environment = settings.worker_environment(app_port=app_port, clockbound_shm=self.segment_path)
        self._task_definition = task_definition

        self.settings = settings
        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=log_removal_policy)
        self.container = task_definition.add_container(
            "ClockWorker",
            container_name=WORKER_CONTAINER_NAME,
            image=image or worker_image(architecture),
            # The app keeps serving if the worker dies; ECS restarts it in place instead.
            essential=False,
            enable_restart_policy=True,
            restart_attempt_period=Duration.seconds(60),
            environment=environment,
            logging=awslogs_driver(self.log_group, "worker"),
            # Every 10 s: containers that wait for its HEALTHY (a synchronized sample) start
            # 10 s after it, not 30.
            health_check=container_health_check(WORKER_HEALTH_CHECK_COMMAND, interval=Duration.seconds(10)),
            # What a container waiting for its HEALTHY waits at most (ECS: the dependency's startTimeout).
            start_timeout=WORKER_START_TIMEOUT,
            # ECS Exec's SSM agent writes to the container's root; AWS does not support
            # Exec with a read-only root, so with Exec on the worker's root is writable.
            readonly_root_filesystem=not enable_execute_command,
            linux_parameters=exec_linux_parameters(self, "LinuxParameters") if enable_execute_command else None,
            memory_limit_mib=WORKER_MEMORY_LIMIT_MIB,
            stop_timeout=Duration.seconds(10),
        )
        add_scratch_volume(task_definition, self.container, "clock-worker-tmp")
        if self.segment_path is not None:
            task_definition.add_volume(name=CLOCKBOUND_VOLUME)
            self.container.add_mount_points(
                ecs.MountPoint(container_path=CLOCKBOUND_DIR, source_volume=CLOCKBOUND_VOLUME, read_only=False)
            )

        self.put_metric_data_policy: iam.Policy | None = None
        if settings.publishes_with_api:
            # A policy of its own (not the role's default policy): the acknowledgment below
            # then covers this statement only, never a wildcard the caller's role may have.
            self.put_metric_data_policy = iam.Policy(
                self,
                "PutMetricData",
                roles=[task_definition.task_role],
                statements=[
                    iam.PolicyStatement(
                        actions=["cloudwatch:PutMetricData"],
                        # PutMetricData has no resource-level permissions; the namespace
                        # condition is how it is scoped (Metric.grant_put_metric_data omits it).
                        resources=["*"],
                        conditions={"StringEquals": {"cloudwatch:namespace": settings.namespace}},
                    )
                ],
            )
            Validations.of(self.put_metric_data_policy).acknowledge(
                Acknowledgment(
                    id="AwsSolutions-IAM5[Resource::*]",
                    reason="cloudwatch:PutMetricData supports no resource ARNs, so its Resource must be *; "
                    "the statement is limited to one namespace with the cloudwatch:namespace condition",
                )
            )

    def share_segment(self, containers: Sequence[ecs.ContainerDefinition], *, wait_for_clock_sync: bool) -> None:
        """Mount the segment's folder read-only into `containers` and tell them its path;
        with `wait_for_clock_sync`, each starts only once the worker is HEALTHY, that is
        once it has written a synchronized sample (what `cbctl waitsync` does on EC2)."""
        for container in containers:
            if self.segment_path is not None:
                container.add_mount_points(
                    ecs.MountPoint(container_path=CLOCKBOUND_DIR, source_volume=CLOCKBOUND_VOLUME, read_only=True)
                )
                container.add_environment(contract.ENV_CLOCKBOUND_SHM, self.segment_path)
            if wait_for_clock_sync:
                container.add_container_dependencies(
                    ecs.ContainerDependency(container=self.container, condition=ecs.ContainerDependencyCondition.HEALTHY)
                )

    def other_containers(self) -> list[ecs.ContainerDefinition]:
        """The task definition's containers besides the worker, as added so far."""
        return [
            child
            for child in self._task_definition.node.children
            if isinstance(child, ecs.ContainerDefinition) and child is not self.container
        ]
