"""The network and cluster the service runs in when the caller brings none, and the
bucket the load balancer writes its access logs to."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from clock_stack.log_encryption import create_log_encryption_key, validate_log_encryption_key
from clock_stack.scanners import checkov_skip_construct, skip_cdk_vpc_provider_checks

ACCESS_LOG_BUCKET_REASON = (
    "This bucket is the destination of access logs; logging its own access would need "
    "another log bucket with the same finding, without end"
)


class ClockNetwork(Construct):
    """A VPC over `max_azs` zones (public subnets for the ALB, private ones with NAT for
    tasks), VPC flow logs, and an ECS cluster with Container Insights.

    The flow log group is encrypted with `log_encryption_key`, or with a key created here
    (rotation on, `removal_policy` as the log group's; `self.log_encryption_key`).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        max_azs: int = 2,
        nat_gateways: int = 1,
        flow_log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        log_encryption_key: kms.IKey | None = None,
    ) -> None:
        super().__init__(scope, id)
        validate_log_encryption_key(log_encryption_key)
        self.log_encryption_key = log_encryption_key or create_log_encryption_key(
            self, "LogsKey", removal_policy=removal_policy
        )
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=max_azs,
            nat_gateways=nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(name="tasks", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22),
            ],
        )
        # CDK's handler that empties the default security group comes with the VPC.
        skip_cdk_vpc_provider_checks(self)
        self.flow_log_group = logs.LogGroup(
            self,
            "FlowLogs",
            retention=flow_log_retention,
            removal_policy=removal_policy,
            encryption_key=self.log_encryption_key,
        )
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(self.flow_log_group),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )
        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=self.vpc,
            # Task-level CPU/memory next to the clock metrics on the same timeline.
            container_insights_v2=ecs.ContainerInsights.ENABLED,
        )


class AccessLogBucket(Construct):
    """An S3 bucket for ALB access logs: SSE-S3 (the only encryption ALB log delivery
    supports), public access blocked, TLS enforced, versioned (an overwritten or deleted
    log stays as a noncurrent version for `noncurrent_version_expiration`), logs expiring
    after `expiration`."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        expiration: Duration = Duration.days(90),
        noncurrent_version_expiration: Duration = Duration.days(30),
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            # Expiring a current version leaves a noncurrent one (and a delete marker,
            # which S3 removes once it is the last version): both go, so nothing piles up.
            lifecycle_rules=[
                s3.LifecycleRule(expiration=expiration, noncurrent_version_expiration=noncurrent_version_expiration)
            ],
            removal_policy=removal_policy,
        )
        Validations.of(self.bucket).acknowledge(Acknowledgment(id="AwsSolutions-S1", reason=ACCESS_LOG_BUCKET_REASON))
        checkov_skip_construct(self.bucket, "CKV_AWS_18", ACCESS_LOG_BUCKET_REASON)
