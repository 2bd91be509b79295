"""The worker image without a Docker engine: hadolint on the Dockerfile, and the image's
entrypoint run from a fresh venv built from the image's requirements file, with the
files laid out by replaying the Dockerfile's own COPY, ENV, WORKDIR and CMD lines."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import CONTAINERS, WorkerProcess
from .test_parts import validate_emf

pytestmark = pytest.mark.timeout(600)

DOCKERFILE = CONTAINERS / "worker" / "Dockerfile"
REQUIREMENTS = CONTAINERS / "worker" / "requirements.txt"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in logical]


def test_hadolint_passes():
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_pins_runs_unprivileged_and_has_no_shell_glue():
    steps = instructions()
    kinds = [kind for kind, _ in steps]
    base = dict(steps)["FROM"]
    # A specific patch release of a slim image, not a floating tag.
    assert re.fullmatch(r"docker\.io/library/python:3\.\d+\.\d+-slim-[a-z]+", base), base
    assert dict(steps)["USER"].split(":")[0] == "10001"
    # The read-only root's writable /tmp volume is writable for a non-root user only if declared.
    assert json.loads(dict(steps)["VOLUME"]) == ["/tmp", "/var/lib/clockbound"]
    assert kinds.index("USER") < kinds.index("CMD")
    assert json.loads(dict(steps)["CMD"]) == ["python", "-m", "clock_worker"]
    healthcheck = dict(steps)["HEALTHCHECK"]
    assert json.loads(healthcheck.split("CMD", 1)[1]) == ["python", "-m", "clock_worker.healthcheck"]
    env = dict(steps)["ENV"]
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PYTHONUNBUFFERED=1" in env
    runs = [arguments for kind, arguments in steps if kind == "RUN"]
    assert any("--no-cache-dir" in run and "requirements.txt" in run for run in runs)
    # Every requirement pinned to one version.
    for line in REQUIREMENTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][A-Za-z0-9.\-]*", line.strip()), line


def test_dockerignore_keeps_caches_and_tests_out_of_the_context():
    ignored = (CONTAINERS / ".dockerignore").read_text().split()
    assert {"**/__pycache__", "**/*.pyc", "**/tests"} <= set(ignored)


def lay_out_image(root: Path) -> tuple[Path, dict[str, str], list[str]]:
    """Replay COPY/ENV/WORKDIR/CMD into `root` (standing in for /): (workdir, env, cmd)."""
    env: dict[str, str] = {}
    workdir = root
    cmd: list[str] = []
    for kind, arguments in instructions():
        if kind == "WORKDIR":
            workdir = root / arguments.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif kind == "ENV":
            for assignment in shlex.split(arguments):
                name, value = assignment.split("=", 1)
                env[name] = value
        elif kind == "COPY":
            source, destination = shlex.split(arguments)
            target = root / destination.lstrip("/")
            origin = CONTAINERS / source  # the build context is containers/
            assert origin.exists(), f"COPY {source}: not in the build context {CONTAINERS}"
            if origin.is_dir():
                shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target)
        elif kind == "CMD":
            cmd = json.loads(arguments)
    # Paths inside the image become paths under `root`.
    env = {name: value.replace("/opt/", f"{root}/opt/") for name, value in env.items()}
    return workdir, env, cmd


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory) -> Path:
    """A venv with nothing but the image's pinned requirements."""
    venv = tmp_path_factory.mktemp("image") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input",
         "--requirement", str(REQUIREMENTS)],
        capture_output=True, text=True, timeout=480,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    return python


def test_the_image_entrypoint_runs_from_a_fresh_venv(tmp_path, fresh_venv, emulator):
    workdir, image_env, cmd = lay_out_image(tmp_path / "root")
    assert cmd[0] == "python"
    env = {
        "PATH": f"{fresh_venv.parent}:/usr/bin:/bin",
        **image_env,
        "ECS_CONTAINER_METADATA_URI_V4": emulator.metadata_uri,
        "CLOCK_INTERVAL_SECONDS": "1",
        "CLOCK_HEARTBEAT_FILE": str(tmp_path / "heartbeat"),
    }
    worker = WorkerProcess(env, python=str(fresh_venv), cwd=workdir)
    # The image's CMD with the venv's python: python -m clock_worker from WORKDIR.
    assert worker.process.args == [str(fresh_venv), *cmd[1:]]
    try:
        lines = worker.wait_for_emf(2, timeout_s=15)
        health = subprocess.run([str(fresh_venv), "-m", "clock_worker.healthcheck"], env=env, cwd=workdir,
                                capture_output=True, text=True, timeout=20)
    finally:
        code, took = worker.terminate()
    assert code == 0 and took < 5
    for document in lines:
        validate_emf(document)
        assert document["ClockErrorBound"] == 0.446931
    assert health.returncode == 0, health.stderr
    # Nothing was written next to the code (the root filesystem is read-only in ECS).
    assert not list((tmp_path / "root").rglob("__pycache__"))


def test_the_fresh_venv_has_what_the_cloudwatch_sink_needs(tmp_path, fresh_venv, emulator, cloudwatch):
    workdir, image_env, _ = lay_out_image(tmp_path / "root")
    env = {
        "PATH": f"{fresh_venv.parent}:/usr/bin:/bin",
        **image_env,
        **cloudwatch.env(),
        "ECS_CONTAINER_METADATA_URI_V4": emulator.metadata_uri,
        "CLOCK_SINK": "cloudwatch",
        "CLOCK_INTERVAL_SECONDS": "1",
        "CLOCK_HEARTBEAT_FILE": str(tmp_path / "heartbeat"),
    }
    worker = WorkerProcess(env, python=str(fresh_venv), cwd=workdir)
    try:
        worker.wait_for(lambda: _bounds_in(cloudwatch), timeout_s=15, what="ClockErrorBound in moto")
    finally:
        code, _ = worker.terminate()
    assert code == 0
    assert _bounds_in(cloudwatch)


def _bounds_in(cloudwatch) -> bool:
    metrics = cloudwatch.client().list_metrics(Namespace="FargateClock", MetricName="ClockErrorBound")["Metrics"]
    return bool(metrics)

