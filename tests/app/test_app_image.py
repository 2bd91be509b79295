"""The app image without a Docker engine: hadolint, the Dockerfile's promises, and its
entrypoint run from a fresh venv built from containers/app/requirements.txt, laid out
as the Dockerfile lays it out (read-only, like ECS's root file system)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
CONTEXT = REPO / "containers"  # the docker build context the CDK construct uses
DOCKERFILE = CONTEXT / "app" / "Dockerfile"
REQUIREMENTS = CONTEXT / "app" / "requirements.txt"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = DOCKERFILE.read_text().replace("\\\n", " ")
    pairs = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def one(keyword: str) -> str:
    found = [rest for key, rest in instructions() if key == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {found}"
    return found[0]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for key, rest in instructions():
        if key == "ENV":
            for item in shlex.split(rest):
                name, _, value = item.partition("=")
                env[name] = value
    return env


def test_hadolint_passes():
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_promises():
    base = one("FROM")
    assert base.startswith("docker.io/library/python:3.11.") and "slim" in base and "latest" not in base
    assert base.split(":")[1].count(".") == 2, "pin the patch version"
    assert one("USER") == "10001:10001"
    assert one("EXPOSE") == "8080"
    assert json.loads(one("VOLUME")) == ["/tmp"]  # writable for uid 10001 under a read-only root
    assert json.loads(one("CMD")) == ["python", "-m", "clock_app"]
    healthcheck = one("HEALTHCHECK")
    assert json.loads(healthcheck.split("CMD", 1)[1]) == ["python", "-m", "clock_app.healthcheck"]
    env = image_env()
    assert env["CLOCK_APP_HOST"] == "0.0.0.0" and env["CLOCK_APP_PORT"] == "8080"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    # Every requirement pinned to one version.
    for line in REQUIREMENTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert "==" in line, f"unpinned requirement {line!r}"


def _fresh_venv() -> Path:
    """A venv built from the image's requirements file alone, reused while the file is unchanged."""
    key = hashlib.sha256(REQUIREMENTS.read_bytes() + sys.version.encode()).hexdigest()[:16]
    venv = Path(tempfile.gettempdir()) / f"clock-app-image-venv-{key}"
    done = venv / ".complete"
    if not done.exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        install = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(REQUIREMENTS)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert install.returncode == 0, install.stdout + install.stderr
        done.touch()
    return venv


def _lay_out(root: Path) -> Path:
    """Copy what the Dockerfile's COPY instructions copy, where they copy it."""
    workdir = Path(one("WORKDIR"))
    for key, rest in instructions():
        if key == "COPY":
            source, destination = rest.split()
            target = root / Path(destination).relative_to("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            if (CONTEXT / source).is_dir():
                shutil.copytree(CONTEXT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(CONTEXT / source, target)
    return root / workdir.relative_to("/")


def _read_only(tree: Path) -> None:
    for path in [tree, *tree.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)


def test_entrypoint_serves_from_a_fresh_venv(tmp_path, emulator):
    venv = _fresh_venv()
    workdir = _lay_out(tmp_path / "image")
    _read_only(workdir)
    port = _free_port()
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        **image_env(),
        # What ECS would set; loopback and a free port instead of 0.0.0.0:8080 in a test.
        "CLOCK_APP_HOST": "127.0.0.1",
        "CLOCK_APP_PORT": str(port),
        "ECS_CONTAINER_METADATA_URI_V4": emulator.metadata_uri,
    }
    env["PYTHONPATH"] = str(workdir)  # the image's /opt/clock
    process = subprocess.Popen(json.loads(one("CMD")), cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the entrypoint did not serve /healthz within 30 s"
            time.sleep(0.2)
        healthcheck = json.loads(one("HEALTHCHECK").split("CMD", 1)[1])
        assert subprocess.run(healthcheck, cwd=workdir, env=env, timeout=30).returncode == 0
        assert httpx.get(f"{url}/api/clock", timeout=5).json()["verdict"] == "SAFE"
        assert httpx.get(f"{url}/", timeout=5).status_code == 200  # the page's files are in the package
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=15)
    # uvicorn shuts down cleanly, then re-raises SIGTERM so the exit status says why it stopped.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Finished server process" in output
    # FastAPI's and pydantic's start-up objects are out of the collector's way: a full
    # collection walking them paused the event loop ~35 ms.
    frozen = re.search(r"start-up heap frozen: (\d+) objects", output)
    assert frozen and int(frozen.group(1)) > 20_000, output
    assert "Traceback" not in output
    assert not list(workdir.rglob("__pycache__")), "nothing may be written under the read-only image tree"
    # With the app gone, the health check says so.
    assert subprocess.run(healthcheck, cwd=workdir, env=env, timeout=30, capture_output=True).returncode == 1


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("CLOCK_THRESHOLD_MS", "abc", "CLOCK_THRESHOLD_MS: 'abc' is not a number"),
        ("CLOCK_CACHE_TTL_SECONDS", "0", "CLOCK_CACHE_TTL_SECONDS: '0' is out of range"),
        ("CLOCK_APP_PORT", "70000", "CLOCK_APP_PORT: '70000' is out of range"),
        ("ECS_CONTAINER_METADATA_URI_V4", "ftp://x", "ECS_CONTAINER_METADATA_URI_V4: 'ftp://x' is not an http(s) URL"),
    ],
)
def test_bad_setting_is_one_line_and_a_non_zero_exit(name, value, says):
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": f"{CONTEXT}:{CONTEXT / 'app'}", name: value}
    result = subprocess.run([sys.executable, "-m", "clock_app"], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"clock_app: invalid setting {says}" + result.stderr.strip().split(says, 1)[1]]
    assert says in result.stderr and "Traceback" not in result.stderr and result.stdout == ""
