"""`ClockAccurateFargateService`: a Fargate service behind an ALB whose clock is watched."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Stack, Token, Validations
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_ecs_patterns as ecs_patterns
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from clock_stack.images import APP_HEALTH_CHECK_COMMAND, APP_PORT, TaskArchitecture, app_image
from clock_stack.monitoring import validate_alarm_email
from clock_stack.network import AccessLogBucket, ClockNetwork
from clock_stack.settings import ClockProps, ClockPropsError, clock_props
from clock_stack.sidecar import add_scratch_volume, awslogs_driver, container_health_check, exec_linux_parameters
from clock_stack.task_monitoring import ClockTaskMonitoring, default_clock_service_name

APP_CONTAINER_NAME = "app"
# Fargate task sizes: CPU units → allowed memory (MiB).
FARGATE_MEMORY_BY_CPU: dict[int, range] = {
    256: range(512, 2048 + 1, 512),
    512: range(1024, 4096 + 1, 1024),
    1024: range(2048, 8192 + 1, 1024),
    2048: range(4096, 16384 + 1, 1024),
    4096: range(8192, 30720 + 1, 1024),
    8192: range(16384, 61440 + 1, 4096),
    16384: range(32768, 122880 + 1, 8192),
}
MAX_TASKS = 1000  # ECS's per-service task quota


# Who may reach the listeners when the caller does not say: anyone, IPv4 and IPv6.
_ANYWHERE = ("0.0.0.0/0", "::/0")


def _ingress_peers(peers: Sequence[ec2.IPeer] | None) -> tuple[ec2.IPeer, ...]:
    if peers is None:
        return (ec2.Peer.any_ipv4(), ec2.Peer.any_ipv6())
    if isinstance(peers, (str, bytes)) or not isinstance(peers, Sequence):
        raise ClockPropsError(
            f"ingress_peers must be a list of ec2.Peer (e.g. [ec2.Peer.ipv4('203.0.113.0/24')]), got {peers!r}"
        )
    for peer in peers:
        if not hasattr(peer, "to_ingress_rule_config"):
            raise ClockPropsError(
                f"ingress_peers must hold ec2.Peer values (ec2.Peer.ipv4(...), ec2.Peer.prefix_list(...), a "
                f"security group), got {peer!r}"
            )
    return tuple(peers)


def _readonly_root(app_readonly_root_filesystem: bool | None, enable_execute_command: bool) -> bool:
    """Read-only by default; ECS Exec needs a writable root (AWS: the SSM agent it injects
    writes under /var/lib/amazon and /var/log/amazon), so with Exec the default flips."""
    if app_readonly_root_filesystem is None:
        return not enable_execute_command
    if app_readonly_root_filesystem and enable_execute_command:
        raise ClockPropsError(
            "enable_execute_command=True needs writable container root filesystems (ECS Exec's SSM agent "
            "writes to them; AWS does not support Exec with readonlyRootFilesystem): drop "
            "app_readonly_root_filesystem=True, or turn Exec off"
        )
    return bool(app_readonly_root_filesystem)


def _memory_choices(cpu: int) -> str:
    allowed = FARGATE_MEMORY_BY_CPU[cpu]
    return f"{allowed.start}-{allowed.stop - 1} in steps of {allowed.step}"


class ClockAccurateFargateService(Construct):
    """A Fargate service behind an internet-facing ALB, with the clock worker sidecar,
    a dashboard and alarms on the tasks' clock error bound.

    Bring your own `vpc` or `cluster` (or neither: a VPC with flow logs and a cluster
    with Container Insights are created), and your own `alarm_topic` (or an encrypted
    one is created, optionally subscribed by `alarm_email`). Without `image` the
    project's clock-aware demo app is built from `containers/`.

    Props (keyword-only; defaults in brackets):
        vpc, cluster: where the service runs [a 2-AZ VPC with flow logs and a cluster
            with Container Insights]; give one, the cluster brings its VPC.
        image, container_port: the app [the project's app asset, 8080].
        app_environment: extra app variables [none]; app_health_check: container health
            check [the app image's own; none for other images]; app_readonly_root_filesystem
            [True with a writable /tmp volume; False with ECS Exec, which needs a writable
            root]; health_check_path: ALB liveness [/healthz].
        cpu, memory_limit_mib: a Fargate task size [256, 512]; the worker takes <= 128 MiB.
        architecture: X86_64 or ARM64, image assets built to match [X86_64].
        desired_count [2], min_task_count [desired], max_task_count [2 x desired],
            target_cpu_utilization_percent [60]: auto scaling.
        clock: a `ClockProps` (threshold_ms [1.0], interval_seconds [10], sink ["emf"],
            namespace, metrics_profile ["standard"], per_task_metrics, max_drift_ppm,
            max_reference_age_seconds, cache_ttl_seconds, service_name [stack name +
            construct path]). Its service_name is the `Service` dimension every alarm
            filters on: it must be unique per account and region.
        alarm_topic / alarm_email: one of them or neither [an encrypted topic, no subscription].
        certificate: HTTPS with an HTTP redirect [none: HTTP].
        ingress_peers: who may reach the listener ports (80; or 443 and the 80 redirect with
            a certificate); nothing else is open, whatever the app's feature flags
            [anyone: ec2.Peer.any_ipv4() and ec2.Peer.any_ipv6()].
        access_logs_bucket, log_alb_access_logs: ALB access logs [a retained bucket, True].
        enable_execute_command: ECS Exec, its permissions, an init process, and writable
            container roots as the SSM agent needs [False].
        clockbound_segment: the worker keeps a ClockBound segment at
            /var/run/clockbound/shm0, read-only in the app, whose gate then reads bounded
            time from memory [True].
        wait_for_clock_sync: the app starts only once the worker is HEALTHY, i.e. has
            written a synchronized sample; a task whose clock never synchronizes stops after
            ECS's 120 s start timeout and the circuit breaker acts [True].
        log_retention [one month], removal_policy of logs and the topic key [RETAIN].

    Raises `ClockPropsError` for an invalid prop before creating anything.
    Attributes: service, task_definition, app_container, worker_container, load_balancer,
    target_group, scaling, alarms (ClockAlarms), dashboard, alarm_topic, metrics,
    settings, cluster, vpc.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        vpc: ec2.IVpc | None = None,
        cluster: ecs.ICluster | None = None,
        image: ecs.ContainerImage | None = None,
        container_port: int = APP_PORT,
        app_environment: Mapping[str, str] | None = None,
        app_health_check: ecs.HealthCheck | None = None,
        app_readonly_root_filesystem: bool | None = None,
        health_check_path: str = "/healthz",
        cpu: int = 256,
        memory_limit_mib: int = 512,
        architecture: TaskArchitecture = TaskArchitecture.X86_64,
        desired_count: int = 2,
        min_task_count: int | None = None,
        max_task_count: int | None = None,
        target_cpu_utilization_percent: int = 60,
        clock: ClockProps | None = None,
        alarm_topic: sns.ITopic | None = None,
        alarm_email: str | None = None,
        certificate: acm.ICertificate | None = None,
        ingress_peers: Sequence[ec2.IPeer] | None = None,
        clockbound_segment: bool = True,
        wait_for_clock_sync: bool = True,
        access_logs_bucket: s3.IBucket | None = None,
        log_alb_access_logs: bool = True,
        enable_execute_command: bool = False,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, id)
        # Every prop is validated before any resource exists: a bad one fails fast and clearly.
        app_readonly_root_filesystem = _readonly_root(app_readonly_root_filesystem, enable_execute_command)
        ingress_peers = _ingress_peers(ingress_peers)
        min_task_count = desired_count if min_task_count is None else min_task_count
        max_task_count = max(2 * desired_count, min_task_count) if max_task_count is None else max_task_count
        self._validate(
            vpc=vpc,
            cluster=cluster,
            container_port=container_port,
            health_check_path=health_check_path,
            cpu=cpu,
            memory_limit_mib=memory_limit_mib,
            architecture=architecture,
            desired_count=desired_count,
            min_task_count=min_task_count,
            max_task_count=max_task_count,
            target_cpu_utilization_percent=target_cpu_utilization_percent,
            access_logs_bucket=access_logs_bucket,
            log_alb_access_logs=log_alb_access_logs,
            region=Stack.of(self).region,
            uses_project_app=image is None,
        )
        validate_alarm_email(alarm_email, alarm_topic)
        # The `Service` value is this construct's path (not the monitoring part's) unless given.
        clock = clock_props(clock)
        service_name = clock.service_name or default_clock_service_name(self)
        clock = replace(clock, service_name=service_name)
        settings = clock.resolve(default_service_name=service_name)
        self.settings = settings
        uses_project_app = image is None
        # The app reads the same threshold the alarms use, so those keys come from props only.
        contract_environment = settings.app_environment() if uses_project_app else {}
        overlap = sorted(set(app_environment or {}) & set(contract_environment))
        if overlap:
            raise ClockPropsError(
                f"app_environment sets {', '.join(overlap)}, which the construct derives from its props "
                "(threshold_ms, max_drift_ppm, ...) so the app and the alarms agree; set the props instead"
            )

        self.network: ClockNetwork | None = None
        if cluster is None:
            if vpc is None:
                self.network = ClockNetwork(self, "Network", removal_policy=removal_policy)
                vpc, cluster = self.network.vpc, self.network.cluster
            else:
                cluster = ecs.Cluster(self, "Cluster", vpc=vpc, container_insights_v2=ecs.ContainerInsights.ENABLED)
        self.cluster = cluster
        self.vpc = cluster.vpc

        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "TaskDefinition",
            cpu=cpu,
            memory_limit_mib=memory_limit_mib,
            runtime_platform=architecture.runtime_platform,
        )
        if app_health_check is None and uses_project_app:
            app_health_check = container_health_check(APP_HEALTH_CHECK_COMMAND)
        self.app_log_group = logs.LogGroup(self, "AppLogs", retention=log_retention, removal_policy=removal_policy)
        environment = {**contract_environment, **(app_environment or {})}
        self.app_container = self.task_definition.add_container(
            "App",
            container_name=APP_CONTAINER_NAME,
            image=image or app_image(architecture),
            essential=True,
            port_mappings=[ecs.PortMapping(container_port=container_port, protocol=ecs.Protocol.TCP)],
            environment=environment,
            health_check=app_health_check,
            logging=awslogs_driver(self.app_log_group, "app"),
            readonly_root_filesystem=app_readonly_root_filesystem,
            linux_parameters=exec_linux_parameters(self, "AppLinuxParameters") if enable_execute_command else None,
        )
        if app_readonly_root_filesystem:
            add_scratch_volume(self.task_definition, self.app_container, "app-tmp")

        self.load_balancer = elbv2.ApplicationLoadBalancer(
            self,
            "LoadBalancer",
            vpc=self.vpc,
            internet_facing=True,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            drop_invalid_header_fields=True,
        )
        self.access_logs_bucket: s3.IBucket | None = None
        if log_alb_access_logs:
            # Retained whatever removal_policy says: CloudFormation cannot delete a bucket
            # that holds logs, and access logs are evidence worth keeping.
            self.access_logs_bucket = access_logs_bucket or AccessLogBucket(self, "AccessLogs").bucket
            self.load_balancer.log_access_logs(self.access_logs_bucket, prefix="alb")

        https = certificate is not None
        self.load_balanced = ecs_patterns.ApplicationLoadBalancedFargateService(
            self,
            "Service",
            cluster=cluster,
            task_definition=self.task_definition,
            load_balancer=self.load_balancer,
            desired_count=desired_count,
            # No public IP: tasks sit in private subnets and leave through NAT.
            assign_public_ip=False,
            task_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            # 1.4.0 is the first platform version whose task metadata carries ClockDrift
            # (LATEST resolves to it on Linux today; pinned so it cannot move back).
            platform_version=ecs.FargatePlatformVersion.VERSION1_4,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            # Never below desired capacity during a deployment: new tasks start first.
            min_healthy_percent=100,
            max_healthy_percent=200,
            health_check_grace_period=Duration.seconds(60),
            enable_execute_command=enable_execute_command,
            certificate=certificate,
            # The construct opens exactly the listener ports to `ingress_peers` below,
            # whatever the app's feature flags would make the pattern do by default.
            open_listener=False,
            protocol=elbv2.ApplicationProtocol.HTTPS if https else elbv2.ApplicationProtocol.HTTP,
            redirect_http=https,
            ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS if https else None,
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
        )
        self.service = self.load_balanced.service
        self.listener_ports = (443, 80) if https else (80,)
        self._allow_ingress(ingress_peers)
        self.target_group = self.load_balanced.target_group
        # Liveness only: a bad clock makes the app refuse critical work (readiness,
        # /readyz), it must not get healthy tasks killed by the load balancer.
        self.target_group.configure_health_check(
            path=health_check_path,
            healthy_http_codes="200",
            interval=Duration.seconds(15),
            timeout=Duration.seconds(5),
            healthy_threshold_count=2,
            unhealthy_threshold_count=3,
        )
        self.target_group.set_attribute("deregistration_delay.timeout_seconds", "30")

        self.scaling = self.service.auto_scale_task_count(min_capacity=min_task_count, max_capacity=max_task_count)
        self.scaling.scale_on_cpu_utilization(
            "CpuScaling", target_utilization_percent=target_cpu_utilization_percent
        )

        self.clock = ClockTaskMonitoring(
            self,
            "Clock",
            task_definition=self.task_definition,
            service=self.service,
            architecture=architecture,
            app_port=container_port if uses_project_app else None,
            alarm_topic=alarm_topic,
            alarm_email=alarm_email,
            log_retention=log_retention,
            removal_policy=removal_policy,
            clock=clock,
            enable_execute_command=enable_execute_command,
            clockbound_segment=clockbound_segment,
            clockbound_readers=[self.app_container],
            wait_for_clock_sync=wait_for_clock_sync,
        )
        self.worker_container = self.clock.worker_container
        self.metrics = self.clock.metrics
        self.alarms = self.clock.alarms
        self.dashboard = self.clock.dashboard
        self.alarm_topic = self.clock.alarm_topic
        self._acknowledge(enable_execute_command=enable_execute_command)

    def _allow_ingress(self, peers: Sequence[ec2.IPeer]) -> None:
        """Exactly the listener ports, from exactly `peers`: the only inbound rules of the ALB."""
        for port in self.listener_ports:
            for peer in peers:
                self.load_balancer.connections.allow_from(
                    peer, ec2.Port.tcp(port), f"clients of the {'HTTP' if port == 80 else 'HTTPS'} listener"
                )
        if any(peer.unique_id in _ANYWHERE for peer in peers):
            for security_group in self.load_balancer.connections.security_groups:
                Validations.of(security_group).acknowledge(
                    Acknowledgment(
                        id="AwsSolutions-EC23",
                        reason="An internet-facing load balancer for a public service: ingress_peers (default "
                        "anyone) opens only the listener ports; narrow it with ingress_peers",
                    )
                )

    def _acknowledge(self, *, enable_execute_command: bool) -> None:
        """cdk-nag findings that have no fix, each with the reason it has none."""
        Validations.of(self.task_definition).acknowledge(
            Acknowledgment(
                id="AwsSolutions-ECS2",
                reason="The environment carries only non-secret settings (metric namespace, interval, "
                "threshold) that the alarms are built from at synth time; secrets would use `secrets`",
            )
        )
        execution_role = self.task_definition.obtain_execution_role()
        Validations.of(execution_role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="ecr:GetAuthorizationToken has no resource-level permissions; AWS requires Resource *. "
                "Image pulls themselves are limited to the asset repository",
            )
        )
        if enable_execute_command:
            Validations.of(self.task_definition.task_role).acknowledge(
                Acknowledgment(
                    id="AwsSolutions-IAM5[Resource::*]",
                    reason="ECS Exec's ssmmessages channel actions have no resource-level permissions, so "
                    "their Resource must be *; they are granted only because enable_execute_command is set",
                )
            )

    @staticmethod
    def _validate(
        *,
        vpc: ec2.IVpc | None,
        cluster: ecs.ICluster | None,
        container_port: int,
        health_check_path: str,
        cpu: int,
        memory_limit_mib: int,
        architecture: TaskArchitecture,
        desired_count: int,
        min_task_count: int,
        max_task_count: int,
        target_cpu_utilization_percent: int,
        access_logs_bucket: s3.IBucket | None,
        log_alb_access_logs: bool,
        region: str,
        uses_project_app: bool,
    ) -> None:
        def require(condition: bool, message: str) -> None:
            if not condition:
                raise ClockPropsError(message)

        def is_int(value: object) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        if vpc is not None and cluster is not None:
            require(
                cluster.vpc is vpc,
                "give vpc or cluster, not both (the cluster brings its VPC), unless vpc is cluster.vpc",
            )
        require(
            isinstance(architecture, TaskArchitecture),
            f"architecture must be TaskArchitecture.X86_64 or TaskArchitecture.ARM64, got {architecture!r}",
        )
        require(
            is_int(container_port) and 1 <= container_port <= 65535,
            f"container_port must be a TCP port from 1 to 65535, got {container_port!r}",
        )
        require(
            not uses_project_app or container_port == APP_PORT,
            f"container_port {container_port} needs your own image: the project's app listens on {APP_PORT}",
        )
        require(
            isinstance(health_check_path, str) and health_check_path.startswith("/"),
            f"health_check_path must start with '/', got {health_check_path!r}",
        )
        require(
            is_int(cpu) and cpu in FARGATE_MEMORY_BY_CPU,
            f"cpu must be one of Fargate's task sizes {sorted(FARGATE_MEMORY_BY_CPU)} (CPU units), got {cpu!r}",
        )
        require(
            is_int(memory_limit_mib) and memory_limit_mib in FARGATE_MEMORY_BY_CPU[cpu],
            f"memory_limit_mib {memory_limit_mib!r} does not fit cpu {cpu}: Fargate allows "
            f"{_memory_choices(cpu)} MiB",
        )
        for name, value in (("desired_count", desired_count), ("min_task_count", min_task_count), ("max_task_count", max_task_count)):
            require(
                is_int(value) and not Token.is_unresolved(value) and 0 <= value <= MAX_TASKS,
                f"{name} must be a whole number from 0 to {MAX_TASKS}, got {value!r}",
            )
        require(desired_count >= 1, f"desired_count must be at least 1 (a service with no task has no clock), got {desired_count}")
        require(
            min_task_count <= desired_count <= max_task_count,
            f"need min_task_count <= desired_count <= max_task_count, got {min_task_count} <= {desired_count} <= {max_task_count}",
        )
        require(
            is_int(target_cpu_utilization_percent) and 10 <= target_cpu_utilization_percent <= 95,
            f"target_cpu_utilization_percent must be from 10 to 95, got {target_cpu_utilization_percent!r}",
        )
        require(
            access_logs_bucket is None or log_alb_access_logs,
            "access_logs_bucket is given but log_alb_access_logs is False: drop one of them",
        )
        require(
            not (log_alb_access_logs and Token.is_unresolved(region)),
            "ALB access logs need the stack's region at synth time (the bucket policy names the region's "
            "log-delivery principal): give the stack env=Environment(region=...), or set log_alb_access_logs=False",
        )
