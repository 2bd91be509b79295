"""scripts/images.py without building anything: what it reads, and its one-line errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import images
from scripts.images import ImagesError

ROOT = Path(__file__).resolve().parents[2]


def fake_cdk_out(tmp_path: Path, platform: str = "linux/amd64") -> Path:
    """A cloud assembly shaped like `cdk synth`'s: the two staged folders and the assets manifest."""
    out = tmp_path / "cdk.out"
    entries = {}
    for name, asset_hash in (("app", "a" * 64), ("worker", "b" * 64)):
        context = out / f"asset.{asset_hash}"
        (context / name).mkdir(parents=True)
        (context / name / "Dockerfile").write_text("FROM --platform=$BUILDPLATFORM python:3.11.14-slim-bookworm AS base\n")
        entries[asset_hash] = {"source": {"directory": context.name, "dockerFile": f"{name}/Dockerfile", "platform": platform}}
    (out / "ClockDemo.assets.json").write_text(json.dumps({"version": "48.0.0", "dockerImages": entries}))
    return out


def run_tool(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scripts.images", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_staged_images_are_read_from_the_assets_manifest(tmp_path: Path):
    staged = images.staged_images(fake_cdk_out(tmp_path, "linux/arm64"), "ClockDemo")
    assert [(image.name, image.dockerfile, image.platform) for image in staged] == [
        ("app", "app/Dockerfile", "linux/arm64"), ("worker", "worker/Dockerfile", "linux/arm64")]
    assert images.base_image(staged[0].dockerfile_path) == "python:3.11.14-slim-bookworm"
    assert images.platform_for(None, staged[0]) == "linux/arm64"
    assert images.platform_for("x86_64", staged[0]) == "linux/amd64"
    with pytest.raises(ImagesError, match="not one of x86_64, arm64"):
        images.platform_for("sparc", staged[0])


def test_the_real_dockerfiles_name_the_base_the_stand_in_replaces():
    for dockerfile in ("app/Dockerfile", "worker/Dockerfile"):
        reference = images.base_image(ROOT / "containers" / dockerfile)
        assert images.qualified(reference) == f"docker.io/library/{reference}"
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", reference)


def test_no_staged_assets_is_one_line_naming_make_synth(tmp_path: Path):
    result = run_tool("--cdk-out", str(tmp_path / "nothing"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"make images: no staged assets for stack ClockDemo in {tmp_path / 'nothing'}/: run make synth first"]
    assert result.stdout == ""


def test_no_builder_is_one_line(tmp_path: Path):
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    env = {"PATH": str(empty_bin), "HOME": str(tmp_path)}
    result = run_tool("--cdk-out", str(fake_cdk_out(tmp_path)), env=env)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("make images: no image builder: no Docker engine answers `docker info` and podman is not installed")
    assert "apt-get install -y podman runc debootstrap" in line and "Traceback" not in result.stderr


def test_missing_podman_names_the_install_command():
    for is_root, prefix in ((False, "sudo "), (True, "")):
        message = images.podman_missing_message(is_root=is_root)
        assert "\n" not in message
        assert f"{prefix}apt-get install -y {' '.join(images.PODMAN_PACKAGES)}" in message


def test_the_makefile_installs_what_the_tool_needs():
    makefile = (ROOT / "Makefile").read_text()
    listed = re.search(r"^SYSTEM_PACKAGES :=((?:.*\\\n)*.*)$", makefile, re.MULTILINE).group(1)
    packages = {entry.split(":", 1)[0] for entry in listed.replace("\\\n", " ").split()}
    assert set(images.PODMAN_PACKAGES) <= packages


def test_the_debian_mirror_comes_from_the_apt_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("DEBIAN_MIRROR", raising=False)
    deb822 = tmp_path / "debian.sources"
    deb822.write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main contrib\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
    one_line = tmp_path / "extra.list"
    one_line.write_text("deb [arch=amd64 signed-by=/k.gpg] https://vendor.example/apt stable main\n")
    entries = images.apt_source_entries([one_line, deb822])
    assert images.debian_mirror("bookworm", entries) == "http://mirror.example/debian"
    # A host on another release: its Debian mirror serves bookworm as well.
    trixie = [("http://mirror.example/debian", ["trixie", "trixie-updates"], ["main"])]
    assert images.debian_mirror("bookworm", trixie) == "http://mirror.example/debian"
    with pytest.raises(ImagesError, match="DEBIAN_MIRROR"):
        images.debian_mirror("bookworm", [("https://vendor.example/apt", ["stable"], ["main"])])
    monkeypatch.setenv("DEBIAN_MIRROR", "http://other.example/debian")
    assert images.debian_mirror("bookworm", entries) == "http://other.example/debian"


def test_the_stand_in_takes_the_hosts_reachable_pip_index_settings_only(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(images, "_PIP_CONFIG", {
        "index-url": "https://pypi.mirror.example/simple",
        "extra-index-url": "file:///opt/pypi/simple http://127.0.0.1:3141/simple https://more.example/simple",
        "timeout": "180",
        "find-links": "/opt/wheels",
    })
    conf = images.standin_pip_conf("/etc/ssl/certs/ca-certificates.crt")
    assert conf.splitlines() == [
        "[global]",
        "cert = /etc/ssl/certs/ca-certificates.crt",
        "index-url = https://pypi.mirror.example/simple",
        "extra-index-url = https://more.example/simple",
        "timeout = 180",
    ]


def test_the_generated_podman_configuration(tmp_path: Path):
    conf = images.podman_config(tmp_path).read_text()
    assert 'runtime = "runc"' in conf and 'cgroup_manager = "cgroupfs"' in conf
    assert 'default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]' in conf
    assert os.path.basename(images.WORK_DIR) in (ROOT / ".gitignore").read_text()


FAKE_DOCKER = '''#!{python}
"""A stand-in `docker` CLI: an engine that answers, builds instantly, and logs its calls."""
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_DOCKER_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[:1] == ["info"]:
    print("27.3.1")
elif args[:2] == ["image", "inspect"]:
    reference = args[-1]
    if "{{{{.Size}}}}" in args:
        print(130_000_000 if reference.startswith("python:") else 150_000_000 if "/app:" in reference else 160_000_000)
    else:
        print("sha256:" + "0" * 64)
elif args[:1] == ["images"]:
    pass
'''


def test_with_a_docker_engine_it_builds_with_docker(tmp_path: Path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER.format(python=sys.executable))
    docker.chmod(0o755)
    log = tmp_path / "docker.log"
    cdk_out = fake_cdk_out(tmp_path)
    env = {"PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin", "HOME": str(tmp_path), "FAKE_DOCKER_LOG": str(log)}
    result = run_tool("--cdk-out", str(cdk_out), "--arch", "arm64", env=env)
    assert result.returncode == 0, result.stderr
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    builds = [call for call in calls if call[0] == "build"]
    context = cdk_out / f"asset.{'a' * 64}"
    assert builds[0] == ["build", "--platform", "linux/arm64", "--file", str(context / "app" / "Dockerfile"),
                         "--tag", f"localhost/fargate-clock/app:{'a' * 12}-arm64", str(context)]
    assert len(builds) == 2 and not any("--from" in call for call in calls), "Docker pulls the real base"
    lines = result.stdout.splitlines()
    assert lines[0] == "builder: docker 27.3.1"
    assert "150.0 MB,  20.0 MB above the base (python:3.11.14-slim-bookworm, 130.0 MB)" in lines[1]
    assert lines[2].startswith("worker ") and "30.0 MB above the base" in lines[2]
