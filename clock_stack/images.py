"""The project's two images, as Docker image assets of one build context.

Both images share one build context so the clock library is built into each from the
same source; each has its own Dockerfile. The context ships inside this package
(`clock_stack/_image_context`: a link to `containers/` in the checkout, a copy in the
wheel), so a consumer that pip-installed the package stages both images as a checkout
does. `cdk synth` only stages the context into `cdk.out/`; Docker builds it at deploy.
"""

from __future__ import annotations

import enum
from importlib import resources
from pathlib import Path

from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs

# Resolved, so CDK stages the real folder (in the checkout the package's entry is a link).
IMAGE_CONTEXT_DIR = Path(str(resources.files(__package__) / "_image_context")).resolve()
# The name this folder had before 0.2.0 (it was the checkout's containers/).
CONTAINERS_DIR = IMAGE_CONTEXT_DIR
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
    if not (IMAGE_CONTEXT_DIR / dockerfile).is_file():
        raise FileNotFoundError(
            f"{IMAGE_CONTEXT_DIR / dockerfile} is missing: the image asset needs its Dockerfile "
            "(reinstall fargate-clock-accuracy; in a checkout, clock_stack/_image_context links to containers/)"
        )
    return ecs.ContainerImage.from_asset(
        str(IMAGE_CONTEXT_DIR),
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
