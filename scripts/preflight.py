"""Preflight for `make deploy` and `make destroy`: fail in one line, before the CDK CLI
fails in fifty.

    python -m scripts.preflight deploy    # AWS credentials, Docker engine, QEMU for ARM64 on x86, CDK bootstrap
    python -m scripts.preflight destroy   # AWS credentials (nothing is built)

Exit status 0 when the command can run; otherwise one line on stderr saying what is
missing and how to fix it, and exit status 1. Never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CDK = ".venv/bin/npx cdk"
# The default bootstrap qualifier; `cdk bootstrap` records its version here.
BOOTSTRAP_PARAMETER = "/cdk-bootstrap/hnb659fds/version"
FALLBACK_REGION = "us-east-1"  # app.py's fallback as well
DOCKER_TIMEOUT_S = 20
AWS_TIMEOUTS = {"connect_timeout": 5, "read_timeout": 10, "retries": {"max_attempts": 2}}


class PreflightError(Exception):
    """Something `cdk deploy`/`cdk destroy` needs is missing; the message says what to do."""


@dataclass(frozen=True)
class Identity:
    account: str
    region: str


def context_value(key: str, cdk_json: Path = ROOT / "cdk.json") -> str:
    try:
        return str(json.loads(cdk_json.read_text())["context"].get(key) or "")
    except (OSError, ValueError, KeyError, AttributeError):
        return ""


def context_region(cdk_json: Path = ROOT / "cdk.json") -> str:
    return context_value("clock:region", cdk_json)


# Where the kernel lists the foreign binary formats it can run (QEMU user emulation).
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
_X86_MACHINES = ("x86_64", "amd64")


def check_cross_build(architecture: str, *, machine: str, binfmt_dir: Path = BINFMT_DIR) -> str:
    """ARM64 images on an x86 host build only under QEMU emulation registered with binfmt_misc.

    Without it `docker build --platform linux/arm64` fails at the first RUN step with
    "exec format error", minutes into the deploy. Returns a note for the ok line.
    """
    if architecture.upper() != "ARM64" or machine.lower() not in _X86_MACHINES:
        return ""
    entry = binfmt_dir / "qemu-aarch64"
    try:
        enabled = entry.read_text().splitlines()[:1] == ["enabled"]
    except OSError:
        enabled = False
    if not enabled:
        raise PreflightError(
            f"clock:architecture is ARM64 but this {machine} host cannot run ARM64 binaries, so the image "
            "builds would fail with 'exec format error': install QEMU emulation (Debian/Ubuntu: "
            "`sudo apt-get install qemu-user-static`; or `docker run --privileged --rm tonistiigi/binfmt "
            "--install arm64`), or build on an ARM64 host, then retry"
        )
    return "; ARM64 images built under QEMU emulation (slower)"


def check_credentials() -> Identity:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        session = boto3.Session()
        credentials = session.get_credentials()
    except (BotoCoreError, ClientError) as error:
        raise PreflightError(f"AWS credentials cannot be loaded: {error}") from None
    if credentials is None:
        raise PreflightError(
            "no AWS credentials found: run `aws configure` or `aws sso login`, or set AWS_PROFILE "
            "(or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), then retry"
        )
    region = context_region() or session.region_name or FALLBACK_REGION
    try:
        sts = session.client("sts", region_name=region, config=Config(**AWS_TIMEOUTS))
        account = sts.get_caller_identity()["Account"]
    except ClientError as error:
        details = error.response.get("Error", {})
        raise PreflightError(
            f"AWS rejected the credentials ({details.get('Code', 'error')}: {details.get('Message', error)}); "
            "refresh them (e.g. `aws sso login`) and retry"
        ) from None
    except BotoCoreError as error:
        raise PreflightError(f"cannot check the AWS credentials with STS in {region}: {error}") from None
    return Identity(account=account, region=region)


def check_docker() -> str:
    """The Docker engine's version; `cdk deploy` builds both images with it."""
    docker = shutil.which("docker")
    if docker is None:
        raise PreflightError(
            "Docker is not installed: `cdk deploy` builds the app and worker images locally; install Docker "
            "Engine or Docker Desktop and retry"
        )
    try:
        result = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=DOCKER_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise PreflightError(f"the Docker engine did not answer `docker info` within {DOCKER_TIMEOUT_S} s") from None
    except OSError as error:
        raise PreflightError(f"cannot run docker: {error}") from None
    if result.returncode != 0:
        reason = next((line.strip() for line in result.stderr.splitlines() if line.strip()), f"exit {result.returncode}")
        raise PreflightError(
            f"no Docker engine is running (`docker info`: {reason[:200]}): start Docker; `cdk deploy` builds "
            "the images with it"
        )
    return result.stdout.strip() or "unknown version"


def check_bootstrap(identity: Identity) -> None:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    bootstrap = f"{CDK} bootstrap aws://{identity.account}/{identity.region}"
    try:
        ssm = boto3.Session().client("ssm", region_name=identity.region, config=Config(**AWS_TIMEOUTS))
        ssm.get_parameter(Name=BOOTSTRAP_PARAMETER)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "ParameterNotFound":
            raise PreflightError(
                f"account {identity.account} in {identity.region} is not bootstrapped for the CDK: "
                f"run `{bootstrap}` once, then retry"
            ) from None
        # No ssm:GetParameter permission: cannot tell, so let `cdk deploy` decide.
        print(f"preflight: could not check the CDK bootstrap ({code}); if deploy fails, run `{bootstrap}`", file=sys.stderr)
    except BotoCoreError as error:
        print(f"preflight: could not check the CDK bootstrap ({error}); if deploy fails, run `{bootstrap}`", file=sys.stderr)


def preflight(action: str) -> str:
    identity = check_credentials()
    if action == "destroy":
        return f"preflight ok: destroying in account {identity.account}, {identity.region}"
    docker_version = check_docker()
    cross_note = check_cross_build(context_value("clock:architecture") or "X86_64", machine=platform.machine())
    check_bootstrap(identity)
    return (
        f"preflight ok: deploying to account {identity.account}, {identity.region}; "
        f"Docker engine {docker_version}{cross_note}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.preflight", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("deploy", "destroy"))
    arguments = parser.parse_args(argv)
    try:
        print(preflight(arguments.action))
    except PreflightError as error:
        print(f"make {arguments.action}: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 - the promise is one line, never a traceback
        print(f"make {arguments.action}: preflight failed: {error.__class__.__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
