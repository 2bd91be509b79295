"""Findings of template scanners that have no fix, recorded on the resource with a reason.

cdk-nag findings are acknowledged through CDK's Validations API (see the constructs);
checkov, which platform teams run on the synthesized templates, reads suppressions from
the resource's own template metadata:

    Metadata:
      checkov:
        skip:
          - id: CKV_AWS_2
            comment: why this finding has no fix here

A suppression is only ever added on the one resource that needs it, under the condition
that makes it necessary (an HTTP listener only when no certificate was given, ...).
"""

from __future__ import annotations

from aws_cdk import CfnResource, Stack
from constructs import Construct

CHECKOV_METADATA_KEY = "checkov"
# The singleton CDK adds at stack level when a VPC restricts its default security group
# (feature flag @aws-cdk/aws-ec2:restrictDefaultSecurityGroup): a Lambda function that
# revokes the default group's rules once, at deploy time. CDK owns its code and props.
VPC_RESTRICT_DEFAULT_SG_PROVIDER_ID = "Custom::VpcRestrictDefaultSGCustomResourceProvider"
_CDK_PROVIDER_HANDLER = "CDK's own custom-resource handler that removes the VPC default security group's rules"
CDK_PROVIDER_LAMBDA_SKIPS = {
    "CKV_AWS_115": f"{_CDK_PROVIDER_HANDLER}: CloudFormation invokes it only when the VPC is created, updated "
    "or deleted; reserving concurrency for it would take from the account's pool for nothing",
    "CKV_AWS_116": f"{_CDK_PROVIDER_HANDLER}: a failed invocation fails the CloudFormation deployment, which "
    "reports it and rolls back; a dead-letter queue would collect events that nothing reads",
    "CKV_AWS_117": f"{_CDK_PROVIDER_HANDLER}: it only calls the EC2 API at deploy time and handles no data of "
    "the VPC; placed in the VPC it would need a NAT gateway or an EC2 endpoint just to reach that API",
}


def checkov_skip(resource: CfnResource, check_id: str, comment: str) -> None:
    """Suppress checkov's `check_id` on `resource` with `comment` (keeps its other skips)."""
    if not isinstance(resource, CfnResource):
        raise TypeError(f"checkov reads skips from a template resource (CfnResource), got {resource!r}")
    existing = resource.get_metadata(CHECKOV_METADATA_KEY) or {}
    skips = [skip for skip in existing.get("skip", []) if skip.get("id") != check_id]
    skips.append({"id": check_id, "comment": comment})
    resource.add_metadata(CHECKOV_METADATA_KEY, {**existing, "skip": skips})


def checkov_skip_construct(construct: Construct, check_id: str, comment: str) -> None:
    """`checkov_skip` on a construct's own resource (an L2's `node.default_child`)."""
    resource = construct.node.default_child
    if not isinstance(resource, CfnResource):
        raise TypeError(f"{construct.node.path} has no template resource of its own to carry a checkov skip")
    checkov_skip(resource, check_id, comment)


def skip_cdk_vpc_provider_checks(scope: Construct) -> bool:
    """Suppress checkov's Lambda checks (concurrency, DLQ, VPC) on the handler CDK adds to
    `scope`'s stack for VPCs that restrict their default security group.

    Call it after creating the VPC (the provider is created with it). Returns whether the
    stack has that handler: it has none when the feature flag is off.
    """
    provider = Stack.of(scope).node.try_find_child(VPC_RESTRICT_DEFAULT_SG_PROVIDER_ID)
    handler = provider.node.try_find_child("Handler") if provider is not None else None
    if not isinstance(handler, CfnResource) or handler.cfn_resource_type != "AWS::Lambda::Function":
        return False
    for check_id, comment in CDK_PROVIDER_LAMBDA_SKIPS.items():
        checkov_skip(handler, check_id, comment)
    return True
