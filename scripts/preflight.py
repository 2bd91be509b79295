"""Preflight for `make deploy` and `make destroy`: fail in one line, before the CDK CLI
fails in fifty.

    python -m scripts.preflight deploy    # AWS credentials, an image builder (Docker, else podman),
                                          # QEMU for ARM64 on x86, CDK bootstrap
    python -m scripts.preflight builder-env  # `export CDK_DOCKER=...` for the CDK CLI
    python -m scripts.preflight destroy   # AWS credentials (nothing is built)

Exit status 0 when the command can run; otherwise one line on stderr saying what is
missing and how to fix it, and exit status 1. Never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scripts.images import Builder

ROOT = Path(__file__).resolve().parent.parent
CDK = ".venv/bin/npx cdk"
# The default bootstrap qualifier; `cdk bootstrap` records its version here.
BOOTSTRAP_PARAMETER = "/cdk-bootstrap/hnb659fds/version"
FALLBACK_REGION = "us-east-1"  # app.py's fallback as well
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


def check_builder(env: dict[str, str] | None = None) -> Builder:
    """What `cdk deploy` builds the images with: a Docker engine that answers, else podman
    (scripts/images.py: the same choice and containers.conf as `make images`)."""
    from scripts.images import ImagesError, find_builder

    try:
        return find_builder("auto", env=env)
    except ImagesError as error:
        raise PreflightError(f"{error}; `cdk deploy` builds the app and worker images locally") from None


def builder_environment(builder: Builder) -> dict[str, str]:
    """What the CDK CLI needs to build with `builder` (it runs the binary in CDK_DOCKER)."""
    environment = {"CDK_DOCKER": builder.binary}
    if "CONTAINERS_CONF" in builder.env:
        environment["CONTAINERS_CONF"] = builder.env["CONTAINERS_CONF"]
    return environment


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
        print(
            f"preflight: could not check the CDK bootstrap ({code}); if deploy fails, run `{bootstrap}`",
            file=sys.stderr,
        )
    except BotoCoreError as error:
        print(
            f"preflight: could not check the CDK bootstrap ({error}); if deploy fails, run `{bootstrap}`",
            file=sys.stderr,
        )


def preflight(action: str) -> str:
    identity = check_credentials()
    if action == "destroy":
        return f"preflight ok: destroying in account {identity.account}, {identity.region}"
    builder = check_builder()
    cross_note = check_cross_build(context_value("clock:architecture") or "X86_64", machine=platform.machine())
    check_bootstrap(identity)
    what = f"Docker engine {builder.version}" if builder.name == "docker" else f"podman {builder.version} (CDK_DOCKER)"
    return (
        f"preflight ok: deploying to account {identity.account}, {identity.region}; "
        f"images built with {what}{cross_note}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.preflight", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("deploy", "destroy", "builder-env"))
    arguments = parser.parse_args(argv)
    try:
        if arguments.action == "builder-env":
            # For the Makefile: `eval` these before `cdk deploy` so the CLI builds with the same tool.
            environment = builder_environment(check_builder())
            print(" ".join(f"export {name}={shlex.quote(value)};" for name, value in environment.items()))
            return 0
        print(preflight(arguments.action))
    except PreflightError as error:
        print(f"make {arguments.action}: {error}", file=sys.stderr)
        return 1
    except Exception as error:
        print(f"make {arguments.action}: preflight failed: {error.__class__.__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
