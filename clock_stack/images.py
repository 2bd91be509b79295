"""The project's two images, as Docker image assets of `containers/`.

Both images share one build context (`containers/`) so the clock library is built into
each from the same source; each has its own Dockerfile. `cdk synth` only stages the
context into `cdk.out/`; Docker builds it at `cdk deploy`.
"""

from __future__ import annotations

import enum
from pathlib import Path

from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs

CONTAINERS_DIR = Path(__file__).resolve().parent.parent / "containers"
APP_DOCKERFILE = "app/Dockerfile"
WORKER_DOCKERFILE = "worker/Dockerfile"
# The app image listens here (containers/app).
APP_PORT = 8080
# The images' own health-check entry points (Docker HEALTHCHECK in ECS terms).
APP_HEALTH_CHECK_COMMAND = ("CMD", "python", "-m", "clock_app.healthcheck")
WORKER_HEALTH_CHECK_COMMAND = ("CMD", "python", "-m", "clock_worker.healthcheck")
# Local leftovers that must not change the asset hash or enter the build context.
_ASSET_EXCLUDES = ["**/__pycache__", "**/*.pyc", "**/.pytest_cache", "**/.hypothesis", "**/*.egg-info"]


class TaskArchitecture(str, enum.Enum):
    """CPU architecture of the tasks; the image assets are built for the same platform."""

    X86_64 = "X86_64"
    ARM64 = "ARM64"

    @property
    def cpu_architecture(self) -> ecs.CpuArchitecture:
        return ecs.CpuArchitecture.ARM64 if self is TaskArchitecture.ARM64 else ecs.CpuArchitecture.X86_64

    @property
    def asset_platform(self) -> ecr_assets.Platform:
        return ecr_assets.Platform.LINUX_ARM64 if self is TaskArchitecture.ARM64 else ecr_assets.Platform.LINUX_AMD64

    @property
    def runtime_platform(self) -> ecs.RuntimePlatform:
        return ecs.RuntimePlatform(
            cpu_architecture=self.cpu_architecture, operating_system_family=ecs.OperatingSystemFamily.LINUX
        )


def _image(dockerfile: str, architecture: TaskArchitecture) -> ecs.ContainerImage:
    if not (CONTAINERS_DIR / dockerfile).is_file():
        raise FileNotFoundError(f"{CONTAINERS_DIR / dockerfile} is missing: the image asset needs its Dockerfile")
    return ecs.ContainerImage.from_asset(
        str(CONTAINERS_DIR),
        file=dockerfile,
        platform=architecture.asset_platform,
        exclude=_ASSET_EXCLUDES,
    )


def app_image(architecture: TaskArchitecture) -> ecs.ContainerImage:
    """The clock-aware demo app, built for `architecture`."""
    return _image(APP_DOCKERFILE, architecture)


def worker_image(architecture: TaskArchitecture) -> ecs.ContainerImage:
    """The worker sidecar, built for `architecture`."""
    return _image(WORKER_DOCKERFILE, architecture)
