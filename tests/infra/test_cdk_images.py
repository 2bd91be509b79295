"""What the construct needs from the two images it builds from `containers/`.

The task mounts a task-scoped bind volume at /tmp in both containers (their root
filesystems are read-only). On Fargate such a volume is owned by root with mode 0755
unless the image declares the path as a VOLUME: then Fargate gives the volume the
image's contents and permissions for that path (AWS docs, "Use bind mounts with Amazon
ECS", considerations). Both images run as uid 10001, so without `VOLUME ["/tmp"]` the
worker could not write its heartbeat file (its health check would fail) on Fargate.
"""

from __future__ import annotations

import re

import pytest

from clock_stack.images import APP_DOCKERFILE, CONTAINERS_DIR, WORKER_DOCKERFILE
from clock_stack.sidecar import SCRATCH_PATH

VOLUME_PATTERN = re.compile(r'^\s*VOLUME\s+(\[.*\]|.+)$', re.MULTILINE | re.IGNORECASE)


def declared_volumes(dockerfile: str) -> set[str]:
    volumes: set[str] = set()
    for match in VOLUME_PATTERN.finditer((CONTAINERS_DIR / dockerfile).read_text()):
        volumes.update(re.findall(r'"([^"]+)"', match.group(1)) or match.group(1).split())
    return volumes


@pytest.mark.parametrize("dockerfile", [APP_DOCKERFILE, WORKER_DOCKERFILE])
def test_images_declare_the_scratch_volume(dockerfile: str):
    assert SCRATCH_PATH in declared_volumes(dockerfile)


@pytest.mark.parametrize("dockerfile", [APP_DOCKERFILE, WORKER_DOCKERFILE])
def test_images_run_as_the_user_the_construct_expects(dockerfile: str):
    text = (CONTAINERS_DIR / dockerfile).read_text()
    assert re.search(r"^USER 10001(:10001)?$", text, re.MULTILINE), "non-root uid 10001"


def test_the_worker_image_declares_the_clockbound_folder_it_writes():
    """The segment's task volume is created from the worker image's folder (owned by
    10001), so the worker can write it under a read-only root on Fargate."""
    from clock_stack.sidecar import CLOCKBOUND_DIR

    assert CLOCKBOUND_DIR == "/var/run/clockbound"
    assert CLOCKBOUND_DIR in declared_volumes(WORKER_DOCKERFILE)
    text = (CONTAINERS_DIR / WORKER_DOCKERFILE).read_text()
    assert re.search(rf"chown 10001:10001 {CLOCKBOUND_DIR}", text)
