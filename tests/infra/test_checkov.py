"""checkov, the scanner platform teams run on synthesized templates, over every
configuration: no failed check, and every suppression carries a reason.

checkov runs from its own venv (`make checkov`, which `make test` runs), scanning only
the templates the session fixtures wrote (one run, --framework cloudformation): about
3.5 s. Suppressions live on the resource as template metadata
(`Metadata.checkov.skip[].{id, comment}`, written by clock_stack.scanners).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.synth import ROOT, Synthesized

CHECKOV = Path(os.environ.get("CHECKOV", ROOT / ".tools" / "checkov-venv" / "bin" / "checkov"))
CONFIGURATIONS = ("demo", "variant", "consumer_service", "consumer_task_definition")
# A consumer's own resources (their VPC and its CDK handler, their cluster, their task's
# log group) are theirs to fix or suppress: in their apps only the construct is checked.
CONSUMER_CONSTRUCTS = {"ConsumerService": "Orders", "ConsumerTaskDefinition": "ApiClock"}
# What may be suppressed, and nothing else (the reasons are in clock_stack and the README's
# "Security scanners"). Adding one here needs the same justification.
ALLOWED_SKIPS = {
    "CKV_AWS_2",  # HTTP listener, only when no certificate is given
    "CKV_AWS_103",  # its TLS policy, same condition
    "CKV_AWS_260",  # the ALB's port 80 open to ingress_peers' anyone (default)
    "CKV_AWS_18",  # the access-log bucket does not log its own access
    "CKV_AWS_115",  # CDK's restrictDefaultSecurityGroup handler: no reserved concurrency
    "CKV_AWS_116",  # ... no dead-letter queue
    "CKV_AWS_117",  # ... not in the VPC
}
MIN_REASON_LENGTH = 60
NO_COMMENT = "No comment provided"  # what checkov reports for a skip that has none


@dataclass(frozen=True)
class Check:
    check_id: str
    resource_type: str
    logical_id: str
    result: str
    comment: str | None

    def __str__(self) -> str:
        return f"{self.check_id} on {self.resource_type} {self.logical_id}"


def run_checkov(templates: list[Path]) -> list[dict]:
    """checkov's JSON report entries (passed, failed and skipped checks) for `templates`, one run."""
    if not CHECKOV.exists():
        pytest.fail(f"checkov is not installed at {CHECKOV}: run `make checkov` (make test does)", pytrace=False)
    command = [str(CHECKOV), "--framework", "cloudformation", "--output", "json", "--compact", "--skip-download"]
    for template in templates:
        command += ["--file", str(template)]
    # No update check or mapping download: checkov reaches no network here.
    environment = {**os.environ, "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true", "BC_SKIP_MAPPING": "TRUE"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment, cwd=ROOT)
    # Exit status 1 means "failed checks": the report says which.
    assert result.returncode in (0, 1), f"checkov failed ({result.returncode}): {result.stderr[-2000:]}"
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    entries = []
    for report in reports:
        assert report.get("check_type", "cloudformation") == "cloudformation"
        assert report["results"].get("parsing_errors", []) == [], report["results"]["parsing_errors"]
        for kind in ("passed_checks", "failed_checks", "skipped_checks"):
            entries.extend(report["results"].get(kind, []))
    return entries


def checks_of(entries: list[dict], template: Path) -> list[Check]:
    found = []
    for entry in entries:
        if Path(entry["file_abs_path"]).resolve() != template.resolve():
            continue
        resource_type, logical_id = entry["resource"].rsplit(".", 1)
        result = entry["check_result"]
        comment = result.get("suppress_comment")
        found.append(Check(entry["check_id"], resource_type, logical_id, result["result"], comment))
    return found


def unexplained(checks: list[Check]) -> list[str]:
    """Every failed check, and every skip that is not allowed or has no real reason."""
    problems = []
    for check in checks:
        if check.result == "PASSED":
            continue
        if check.result != "SKIPPED":
            problems.append(f"{check}: {check.result}")
        elif check.check_id not in ALLOWED_SKIPS:
            problems.append(f"{check}: suppressed, but not an allowed suppression")
        elif not check.comment or check.comment == NO_COMMENT or len(check.comment) < MIN_REASON_LENGTH:
            problems.append(f"{check}: suppressed without a reason (comment {check.comment!r})")
    return problems


def construct_logical_ids(synth: Synthesized, construct_id: str) -> set[str]:
    """Logical IDs of every template resource under `construct_id` (a child of the stack)."""
    import aws_cdk as cdk

    construct = synth.stack.node.find_child(construct_id)
    return {
        synth.stack.resolve(child.logical_id)
        for child in construct.node.find_all()
        if isinstance(child, cdk.CfnResource)
    }


@pytest.fixture(scope="module")
def checkov_entries(demo, variant, consumer_service, consumer_task_definition) -> list[dict]:
    configurations = (demo, variant, consumer_service, consumer_task_definition)
    templates = [template for synth in configurations for template in synth.template_files()]
    return run_checkov(templates)


@pytest.fixture(params=CONFIGURATIONS)
def synth(request: pytest.FixtureRequest) -> Synthesized:
    return request.getfixturevalue(request.param)


def in_scope(synth: Synthesized) -> set[str] | None:
    """The logical IDs this project answers for: all (None), or the construct's in a consumer app."""
    construct_id = CONSUMER_CONSTRUCTS.get(synth.stack.node.id)
    return None if construct_id is None else construct_logical_ids(synth, construct_id)


def test_checkov_finds_nothing_without_a_reason(synth: Synthesized, checkov_entries: list[dict]):
    (template,) = synth.template_files()
    scope = in_scope(synth)
    checks = [check for check in checks_of(checkov_entries, template) if scope is None or check.logical_id in scope]
    assert checks, "checkov did scan what this project answers for"
    assert unexplained(checks) == [], f"checkov findings without a reason in {template.name}"


def test_every_suppression_in_the_template_has_a_reason_checkov_reads(synth: Synthesized, checkov_entries: list[dict]):
    """Each skip in the metadata is well formed and is one checkov itself reports as skipped."""
    (template,) = synth.template_files()
    reported = {
        (check.check_id, check.logical_id) for check in checks_of(checkov_entries, template) if check.result == "SKIPPED"
    }
    written = set()
    for logical_id, resource in json.loads(template.read_text())["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert set(skip) == {"id", "comment"}, skip
            assert skip["id"] in ALLOWED_SKIPS, f"{skip['id']} suppressed on {logical_id}"
            assert len(skip["comment"]) >= MIN_REASON_LENGTH, f"{skip['id']} on {logical_id}: {skip['comment']!r}"
            written.add((skip["id"], logical_id))
    assert written <= reported, f"checkov did not apply {sorted(written - reported)}"


def test_suppressions_are_made_only_where_they_are_needed(demo: Synthesized, variant: Synthesized):
    def skipped(synth: Synthesized, resource_type: str) -> set[str]:
        return {
            skip["id"]
            for resource in synth.resources(resource_type).values()
            for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
        }

    listener = "AWS::ElasticLoadBalancingV2::Listener"
    assert skipped(demo, listener) == {"CKV_AWS_2", "CKV_AWS_103"}, "HTTP: no certificate in the demo's defaults"
    assert skipped(variant, listener) == set(), "with a certificate nothing on a listener is suppressed"
    for synth in (demo, variant):
        assert skipped(synth, "AWS::Lambda::Function") == {"CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117"}
        assert skipped(synth, "AWS::S3::Bucket") == {"CKV_AWS_18"}
        assert skipped(synth, "AWS::Logs::LogGroup") == set(), "log groups are fixed (KMS), not suppressed"
        (handler_id,) = synth.resources("AWS::Lambda::Function")
        assert handler_id.startswith("CustomVpcRestrictDefaultSGCustomResourceProviderHandler")


def test_narrow_ingress_peers_need_no_security_group_suppression():
    import aws_cdk as cdk
    from aws_cdk import aws_ec2 as ec2
    from aws_cdk.assertions import Template

    from clock_stack import ClockAccurateFargateService
    from infra.synth import REGION, cdk_context

    app = cdk.App(context=cdk_context())
    stack = cdk.Stack(app, "Narrow", env=cdk.Environment(region=REGION))
    ClockAccurateFargateService(stack, "Service", ingress_peers=[ec2.Peer.ipv4("203.0.113.0/24")])
    groups = Template.from_stack(stack).find_resources("AWS::EC2::SecurityGroup")
    assert groups
    assert all("checkov" not in group.get("Metadata", {}) for group in groups.values())


def test_checkov_does_report_what_is_not_fixed_or_explained(tmp_path: Path):
    """The check can fail: an unencrypted log group is a finding, and so are a skip of a
    check not on the list and a skip without a comment (checkov honours both)."""
    template = tmp_path / "Bare.template.json"
    template.write_text(
        json.dumps(
            {
                "Resources": {
                    "Plain": {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 7}},
                    "Hushed": {
                        "Type": "AWS::Logs::LogGroup",
                        "Properties": {"RetentionInDays": 7},
                        "Metadata": {"checkov": {"skip": [{"id": "CKV_AWS_158", "comment": "KMS costs money"}]}},
                    },
                    "Quiet": {
                        "Type": "AWS::S3::Bucket",
                        "Properties": {"VersioningConfiguration": {"Status": "Enabled"}},
                        "Metadata": {"checkov": {"skip": [{"id": "CKV_AWS_18"}]}},
                    },
                }
            }
        )
    )
    problems = unexplained(checks_of(run_checkov([template]), template))
    assert "CKV_AWS_158 on AWS::Logs::LogGroup Plain: FAILED" in problems
    assert "CKV_AWS_158 on AWS::Logs::LogGroup Hushed: suppressed, but not an allowed suppression" in problems
    assert f"CKV_AWS_18 on AWS::S3::Bucket Quiet: suppressed without a reason (comment {NO_COMMENT!r})" in problems
