"""The KMS key the constructs' CloudWatch Logs log groups are encrypted with.

CloudWatch Logs encrypts and decrypts log events itself, so the key policy must let the
regional CloudWatch Logs service principal use the key, limited by the encryption
context to log groups of this account and region. The containers' awslogs driver and the
VPC flow log role need no KMS permission of their own.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Aws, Duration, RemovalPolicy, Stack, Token
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk.region_info import RegionInfo
from constructs import Construct

from clock_stack.settings import ClockPropsError

# What CloudWatch Logs needs on a customer managed key (AWS's CloudWatch Logs user guide,
# "Encrypt log data in CloudWatch Logs using AWS KMS").
LOGS_KEY_ACTIONS = ("kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*")


def logs_key_policy_statement(scope: Construct) -> iam.PolicyStatement:
    """The key policy statement that lets CloudWatch Logs of `scope`'s account and region
    use a key for that account's log groups in that region (and for nothing else)."""
    stack = Stack.of(scope)
    # logs.<region>.amazonaws.com (.com.cn in China): a literal when the region is known.
    known = None if Token.is_unresolved(stack.region) else RegionInfo.get(stack.region).domain_suffix
    return iam.PolicyStatement(
        sid="AllowCloudWatchLogsOfThisAccountAndRegion",
        principals=[iam.ServicePrincipal(f"logs.{stack.region}.{known or Aws.URL_SUFFIX}")],
        actions=list(LOGS_KEY_ACTIONS),
        resources=["*"],
        conditions={
            "ArnLike": {
                "kms:EncryptionContext:aws:logs:arn": stack.format_arn(
                    service="logs", resource="log-group", resource_name="*", arn_format=ArnFormat.COLON_RESOURCE_NAME
                )
            }
        },
    )


def create_log_encryption_key(scope: Construct, id: str, *, removal_policy: RemovalPolicy) -> kms.Key:
    """A customer managed key (rotation on) for log groups, with the policy CloudWatch Logs needs.

    `removal_policy` must be the log groups' own: a key deleted under retained log groups
    would leave their events unreadable, so with RETAIN the key stays too.
    """
    key = kms.Key(
        scope,
        id,
        description="Encrypts the clock service's CloudWatch Logs log groups",
        enable_key_rotation=True,
        removal_policy=removal_policy,
        # Only deleted together with the log groups it encrypts (same removal policy).
        pending_window=Duration.days(7),
    )
    key.add_to_resource_policy(logs_key_policy_statement(key))
    return key


def validate_log_encryption_key(key: object) -> None:
    """A `kms.IKey` or None; refuses anything else before a resource exists."""
    if key is not None and not hasattr(key, "key_arn"):
        raise ClockPropsError(
            f"log_encryption_key must be a kms.IKey (e.g. kms.Key(...) or kms.Key.from_key_arn(...)), got {key!r}"
        )
