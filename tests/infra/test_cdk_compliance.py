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


def unacknowledged_findings(app, scope) -> list[str]:
    """AwsSolutions findings on `scope` that no acknowledgment covers, one line each."""
    report = AwsSolutionsChecks(app).validate_scope(scope)
    return [
        f"{violation.rule_name} at {[resource.construct_path for resource in violation.violating_resources]}"
        for violation in report.violations
    ]


def checked_scope(synth: Synthesized):
    """The app, or in a consumer app only what the construct adds: their own VPC and
    service are theirs to fix."""
    if not synth.stack.node.id.startswith("Consumer"):
        return synth.app
    (scope,) = [child for child in synth.stack.node.children if child.node.id in ("Orders", "ApiClock")]
    return scope


@pytest.fixture(params=CONFIGURATIONS)
def synth(request: pytest.FixtureRequest) -> Synthesized:
    return request.getfixturevalue(request.param)


def test_aws_solutions_checks_find_nothing_unacknowledged(synth: Synthesized):
    import aws_cdk as cdk

    scope = checked_scope(synth)
    # What the rules look at: the scope's CloudFormation resources, among them the ones
    # whose findings are acknowledged (an empty or wrong scope would pass for nothing).
    resources = [construct for construct in scope.node.find_all() if isinstance(construct, cdk.CfnResource)]
    assert len(resources) >= 10, [construct.node.path for construct in resources]
    acknowledged_paths = {path for path, _, _ in acknowledgments(synth)}
    assert any(path.startswith(scope.node.path) for path in acknowledged_paths)
    assert unacknowledged_findings(synth.app, scope) == []


def test_acknowledgments_are_few_and_explained(synth: Synthesized):
    found = acknowledgments(synth)
    assert found, "the metadata this test reads is where acknowledgments are"
    for path, rule_id, reason in found:
        assert rule_id in ALLOWED_ACKNOWLEDGMENTS, f"{rule_id} acknowledged at {path}"
        assert len(reason) >= MIN_REASON_LENGTH, f"{rule_id} at {path}: the reason is too thin: {reason!r}"


def test_nag_does_report_what_is_not_acknowledged():
    """The check above can fail: through the same helper, a bucket without access logs or
    TLS enforcement is two findings, and acknowledging one leaves the other."""
    import aws_cdk as cdk
    from aws_cdk import aws_s3 as s3

    def bare_bucket_findings(*acknowledged: str) -> set[str]:
        app = cdk.App()
        stack = cdk.Stack(app, "Bare")
        bucket = s3.Bucket(stack, "Plain")
        for rule_id in acknowledged:
            cdk.Validations.of(bucket).acknowledge(cdk.Acknowledgment(id=rule_id, reason="a test of the test"))
        return {finding.split(" at ")[0] for finding in unacknowledged_findings(app, stack)}

    assert {"AwsSolutions-S1", "AwsSolutions-S10"} <= bare_bucket_findings()
    remaining = bare_bucket_findings("AwsSolutions-S1")
    assert "AwsSolutions-S1" not in remaining and "AwsSolutions-S10" in remaining


def test_cfn_lint_finds_no_errors(synth: Synthesized):
    from cfnlint.api import lint_file

    templates = synth.template_files()
    assert templates
    for template in templates:
        matches = lint_file(template, {"regions": ["us-east-1"]})
        errors = [f"{match.rule.id} {match.message} ({match.path})" for match in matches if match.rule.id.startswith("E")]
        assert errors == [], template.name
