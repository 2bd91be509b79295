"""`make deploy` / `make destroy` preflight: one line and a non-zero exit when AWS
credentials, a Docker engine or the CDK bootstrap are missing; never a traceback.

AWS is a moto server on loopback; `docker` is a stand-in script on PATH, so the test
does not depend on whether this machine has a Docker engine.
"""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from infra.synth import ROOT

pytestmark = pytest.mark.timeout(120)
MOTO_ACCOUNT = "123456789012"


def fake_docker(directory: Path, *, works: bool) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "docker"
    if works:
        script.write_text("#!/bin/sh\necho 27.3.1\n")
    else:
        script.write_text(
            "#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
            "Is the docker daemon running?' >&2\nexit 1\n"
        )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return directory


def run_preflight(action: str, tmp_path: Path, *, path: Path, aws: dict[str, str] | None = None):
    env = {
        "PATH": str(path),
        "HOME": str(tmp_path),
        # No shared config or credentials files, no instance metadata: only what the test gives.
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        **(aws or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "scripts.preflight", action],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_line(result) -> str:
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_missing_credentials(tmp_path: Path):
    result = run_preflight("deploy", tmp_path, path=fake_docker(tmp_path / "bin", works=True))
    assert result.returncode == 1
    line = one_line(result)
    assert line.startswith("make deploy: no AWS credentials found")
    assert "aws configure" in line


def test_credentials_that_cannot_be_checked(tmp_path: Path, cloudwatch):
    # An endpoint nobody listens on: STS cannot be asked, so deploying would fail too.
    aws = {**cloudwatch.env(), "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    result = run_preflight("destroy", tmp_path, path=tmp_path, aws=aws)
    assert result.returncode == 1
    assert one_line(result).startswith("make destroy: cannot check the AWS credentials with STS")


def test_no_docker_engine_and_no_podman(tmp_path: Path, cloudwatch):
    result = run_preflight("deploy", tmp_path, path=fake_docker(tmp_path / "bin", works=False), aws=cloudwatch.env())
    assert result.returncode == 1
    line = one_line(result)
    assert line.startswith("make deploy: no image builder: no Docker engine answers `docker info` and podman is not installed")
    assert "apt-get install" in line and "podman" in line


def test_no_builder_at_all(tmp_path: Path, cloudwatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_preflight("deploy", tmp_path, path=empty, aws=cloudwatch.env())
    assert result.returncode == 1
    assert one_line(result).startswith("make deploy: no image builder")


def fake_podman(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, body in (("podman", "#!/bin/sh\necho 4.3.1\n"), ("runc", "#!/bin/sh\nexit 0\n")):
        script = directory / name
        script.write_text(body)
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return directory


def test_podman_builds_when_no_docker_engine_answers(tmp_path: Path, cloudwatch):
    import boto3

    ssm = boto3.client("ssm", endpoint_url=cloudwatch.endpoint_url, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    ssm.put_parameter(Name="/cdk-bootstrap/hnb659fds/version", Value="30", Type="String", Overwrite=True)
    bin_dir = fake_podman(fake_docker(tmp_path / "bin", works=False))
    result = run_preflight("deploy", tmp_path, path=bin_dir, aws=cloudwatch.env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("images built with podman 4.3.1 (CDK_DOCKER)")
    # What `make deploy` evals before `cdk deploy`: the CLI builds with the same podman and config.
    exported = run_preflight("builder-env", tmp_path, path=bin_dir)
    assert exported.returncode == 0, exported.stderr
    assert f"export CDK_DOCKER={bin_dir / 'podman'};" in exported.stdout
    assert "export CONTAINERS_CONF=" in exported.stdout and "containers.conf" in exported.stdout


def test_not_bootstrapped_says_how(tmp_path: Path, cloudwatch):
    result = run_preflight("deploy", tmp_path, path=fake_docker(tmp_path / "bin", works=True), aws=cloudwatch.env())
    assert result.returncode == 1
    line = one_line(result)
    assert "is not bootstrapped" in line
    assert f".venv/bin/npx cdk bootstrap aws://{MOTO_ACCOUNT}/us-east-1" in line


def test_ready_to_deploy(tmp_path: Path, cloudwatch):
    import boto3

    ssm = boto3.client("ssm", endpoint_url=cloudwatch.endpoint_url, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    ssm.put_parameter(Name="/cdk-bootstrap/hnb659fds/version", Value="30", Type="String")
    result = run_preflight("deploy", tmp_path, path=fake_docker(tmp_path / "bin", works=True), aws=cloudwatch.env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"preflight ok: deploying to account {MOTO_ACCOUNT}, us-east-1; images built with Docker engine 27.3.1"
    )


def test_destroy_needs_no_docker(tmp_path: Path, cloudwatch):
    result = run_preflight("destroy", tmp_path, path=tmp_path, aws=cloudwatch.env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"preflight ok: destroying in account {MOTO_ACCOUNT}")


def test_unknown_action_is_a_usage_error(tmp_path: Path):
    result = run_preflight("launch", tmp_path, path=tmp_path)
    assert result.returncode == 2
    assert "invalid choice" in result.stderr and "Traceback" not in result.stderr


# ---------------------------------------------------------------- ARM64 images on an x86 host
def test_arm64_on_x86_without_qemu_says_what_to_install(tmp_path: Path):
    from scripts.preflight import PreflightError, check_cross_build

    with pytest.raises(PreflightError) as raised:
        check_cross_build("ARM64", machine="x86_64", binfmt_dir=tmp_path)  # no qemu-aarch64 entry
    message = str(raised.value)
    assert "exec format error" in message and "qemu-user-static" in message and "\n" not in message


def test_arm64_on_x86_with_a_disabled_qemu_entry_is_refused_too(tmp_path: Path):
    from scripts.preflight import PreflightError, check_cross_build

    (tmp_path / "qemu-aarch64").write_text("disabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n")
    with pytest.raises(PreflightError):
        check_cross_build("ARM64", machine="x86_64", binfmt_dir=tmp_path)


def test_arm64_on_x86_with_qemu_registered_goes_ahead(tmp_path: Path):
    from scripts.preflight import check_cross_build

    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n")
    assert "QEMU" in check_cross_build("ARM64", machine="x86_64", binfmt_dir=tmp_path)


@pytest.mark.parametrize(("architecture", "machine"), [("X86_64", "x86_64"), ("ARM64", "aarch64"), ("ARM64", "arm64")])
def test_native_builds_need_no_emulation(tmp_path: Path, architecture: str, machine: str):
    from scripts.preflight import check_cross_build

    assert check_cross_build(architecture, machine=machine, binfmt_dir=tmp_path) == ""
