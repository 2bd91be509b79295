"""The real CDK CLI, as `make synth` runs it: cdk.json's "app" command, offline, no
account, no Docker. One run (about 8 s); its output goes to a temporary directory so
it never touches a developer's cdk.out/."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from infra.synth import ROOT

pytestmark = [pytest.mark.synth, pytest.mark.timeout(300)]
VENV_BIN = ROOT / ".venv" / "bin"


def test_cdk_synth_with_the_pinned_cli(tmp_path: Path):
    npx = VENV_BIN / "npx"
    assert npx.exists() and (ROOT / "node_modules" / ".bin" / "cdk").exists(), "run `make setup` first"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "CDK_"))}
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        # No AWS configuration at all: the synth needs none (HOME stays: jsii caches there).
        AWS_CONFIG_FILE=str(tmp_path / "no-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    result = subprocess.run(
        [str(npx), "cdk", "synth", "--quiet", "--output", str(tmp_path / "out")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    template = json.loads((tmp_path / "out" / "ClockDemo.template.json").read_text())
    types = {resource["Type"] for resource in template["Resources"].values()}
    assert {"AWS::ECS::Service", "AWS::CloudWatch::CompositeAlarm", "AWS::CloudWatch::Dashboard"} <= types
    # cdk-nag ran as a validation plugin and found nothing.
    report = json.loads((tmp_path / "out" / "validation-report.json").read_text())
    assert [plugin for plugin in report["pluginReports"] if plugin.get("conclusion") != "success"] == []
    # Both image build contexts were staged; nothing was built.
    assets = json.loads((tmp_path / "out" / "ClockDemo.assets.json").read_text())["dockerImages"]
    assert len(assets) == 2
    assert not (ROOT / "cdk.context.json").exists(), "no context lookups"


def test_a_bad_context_value_is_one_line_without_a_traceback(tmp_path: Path):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "CDK_"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"
    result = subprocess.run(
        [str(VENV_BIN / "npx"), "cdk", "synth", "--quiet", "-c", "clock:desiredCount=abc", "--output", str(tmp_path / "out")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and "File \"" not in result.stderr
    app_lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert app_lines == ["error: context clock:desiredCount must be a whole number, got 'abc'"], result.stderr
