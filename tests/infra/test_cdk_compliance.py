"""cdk-nag (AwsSolutions, through CDK's Validations API) and cfn-lint over every
synthesized configuration: zero unacknowledged findings, zero lint errors."""

from __future__ import annotations

import pytest
from cdk_nag import AwsSolutionsChecks

from infra.synth import Synthesized

CONFIGURATIONS = ("demo", "variant", "consumer_service", "consumer_task_definition")
# What may be acknowledged, and nothing else: each has no fix (see the reasons in
# clock_stack). Adding one here needs the same justification.
ALLOWED_ACKNOWLEDGMENTS = {
    "AwsSolutions-ECS2",  # non-secret settings in the environment; the alarms are built from them
    "AwsSolutions-IAM5[Resource::*]",  # ecr:GetAuthorizationToken; PutMetricData; ECS Exec's ssmmessages
    "AwsSolutions-S1",  # the access-log bucket does not log its own access
    "AwsSolutions-EC23",  # the internet-facing ALB's listener ports, open to ingress_peers (default anyone)
}
MIN_REASON_LENGTH = 60


def acknowledgments(synth: Synthesized) -> list[tuple[str, str, str]]:
    """(construct path, rule id, reason) of every acknowledgment in the app."""
    import aws_cdk as cdk

    key = cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    found = []
    for construct in synth.app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type != key:
                continue
            for rule_id, reason in entry.data.items():
                # CDK's own template validation acknowledges its own rules (W3010 on stacks).
                if rule_id.startswith("CloudFormation-Validate::"):
                    continue
                found.append((construct.node.path, rule_id.removeprefix("Annotation::"), reason))
    return found


@pytest.fixture(params=CONFIGURATIONS)
def synth(request: pytest.FixtureRequest) -> Synthesized:
    return request.getfixturevalue(request.param)


def test_aws_solutions_checks_find_nothing_unacknowledged(synth: Synthesized):
    import aws_cdk as cdk

    scope = synth.app
    if synth.stack.node.id.startswith("Consumer"):
        # A consumer's own VPC and service are theirs to fix; check what the construct adds.
        scope = next(child for child in synth.stack.node.children if child.node.id in ("Orders", "ApiClock"))
    report = AwsSolutionsChecks(synth.app).validate_scope(scope)
    findings = [
        f"{violation.rule_name} at {[resource.construct_path for resource in violation.violating_resources]}"
        for violation in report.violations
    ]
    assert findings == []
    assert isinstance(report, cdk.PolicyValidationPluginReport)


def test_acknowledgments_are_few_and_explained(synth: Synthesized):
    found = acknowledgments(synth)
    assert found, "the metadata this test reads is where acknowledgments are"
    for path, rule_id, reason in found:
        assert rule_id in ALLOWED_ACKNOWLEDGMENTS, f"{rule_id} acknowledged at {path}"
        assert len(reason) >= MIN_REASON_LENGTH, f"{rule_id} at {path}: the reason is too thin: {reason!r}"


def test_nag_does_report_what_is_not_acknowledged():
    """The check can fail: a bucket without TLS enforcement is a finding."""
    import aws_cdk as cdk
    from aws_cdk import aws_s3 as s3

    app = cdk.App()
    stack = cdk.Stack(app, "Bare")
    s3.Bucket(stack, "Plain")
    rules = {violation.rule_name for violation in AwsSolutionsChecks(app).validate_scope(app).violations}
    assert {"AwsSolutions-S1", "AwsSolutions-S10"} <= rules


def test_cfn_lint_finds_no_errors(synth: Synthesized):
    from cfnlint.api import lint_file

    templates = synth.template_files()
    assert templates
    for template in templates:
        matches = lint_file(template, {"regions": ["us-east-1"]})
        errors = [f"{match.rule.id} {match.message} ({match.path})" for match in matches if match.rule.id.startswith("E")]
        assert errors == [], template.name
