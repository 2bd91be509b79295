"""A new user's view: build the wheel, pip-install it into a fresh venv outside the
checkout, and run the real `cdk synth` CLI on examples/consumer/ there.

Nothing of the checkout is on that venv's path: `clock_stack` and `clockcore` come from
the wheel, and both images' build contexts are staged from inside the installed package.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from infra.synth import ROOT

pytestmark = [pytest.mark.synth, pytest.mark.timeout(600)]

CONSUMER = ROOT / "examples" / "consumer"
# Names of the checkout that must not land in a consumer's site-packages.
NOT_INSTALLED = ("app", "app.py", "scripts", "bench", "emulator", "localrun", "tests", "containers", "clock_app", "clock_worker")


def run(command: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: int = 300) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{command[:3]} exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheels = tmp_path_factory.mktemp("wheels")
    # Built from a copy of the sources: setuptools builds in-tree, and a stale build/ in the
    # checkout would carry files of an earlier state into the wheel.
    source = tmp_path_factory.mktemp("source") / "project"
    shutil.copytree(
        ROOT,
        source,
        symlinks=True,  # clock_stack/_image_context is a link to containers/
        ignore=shutil.ignore_patterns(".git", ".venv", "node_modules", "cdk.out", "build", "dist", "*.egg-info",
                                      "__pycache__", ".pytest_cache", ".hypothesis", ".local-run", "tests", "bench"),
    )
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q", "-w", str(wheels), str(source)], cwd=wheels)
    (built,) = wheels.glob("fargate_clock_accuracy-0.2.0-*.whl")
    return built


@pytest.fixture(scope="module")
def consumer(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> dict[str, Path]:
    """A fresh venv and a copy of examples/consumer, both outside the checkout."""
    base = tmp_path_factory.mktemp("consumer")
    venv = base / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=base)
    app_dir = base / "app"
    shutil.copytree(CONSUMER, app_dir, ignore=shutil.ignore_patterns("cdk.out", "__pycache__"))
    run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "--find-links", str(wheel.parent),
         "-r", "requirements.txt"],
        cwd=app_dir,
        timeout=540,
    )
    return {"venv": venv, "app": app_dir}


def consumer_env(venv: Path, home: Path) -> dict[str, str]:
    # Only the venv and the system on PATH; no PYTHONPATH; no AWS configuration at all.
    return {
        "PATH": f"{venv / 'bin'}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", str(home)),
        "AWS_CONFIG_FILE": str(home / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def test_the_wheel_carries_both_libraries_and_the_image_context_only(wheel: Path):
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"clock_stack", "clockcore"}
    for path in (
        "clock_stack/_image_context/app/Dockerfile",
        "clock_stack/_image_context/worker/Dockerfile",
        "clock_stack/_image_context/app/requirements.txt",
        "clock_stack/_image_context/worker/requirements.txt",
        "clock_stack/_image_context/clockcore/contract.py",
        "clock_stack/_image_context/app/clock_app/__main__.py",
        "clock_stack/_image_context/app/clock_app/static/index.html",
        "clock_stack/_image_context/worker/clock_worker/__main__.py",
    ):
        assert path in names, path
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    metadata = zipfile.ZipFile(wheel).read(f"fargate_clock_accuracy-0.2.0.dist-info/METADATA").decode()
    assert "Requires-Dist: aws-cdk-lib<3,>=2.275.0" in metadata
    assert "Requires-Dist: constructs<11,>=10.8.1" in metadata


def test_import_from_the_venv_edits_no_path_and_finds_its_image_context(consumer: dict[str, Path], tmp_path: Path):
    python = consumer["venv"] / "bin" / "python"
    probe = (
        "import json, sys; before = list(sys.path);"
        "import clock_stack, clockcore;"
        "from clock_stack import ClockAccurateFargateService, ClockTaskMonitoring, TaskArchitecture, ClockPropsError;"
        "print(json.dumps({'same_path': before == sys.path, 'clock_stack': clock_stack.__file__,"
        " 'clockcore': clockcore.__file__, 'context': str(clock_stack.IMAGE_CONTEXT_DIR)}))"
    )
    found = json.loads(run([str(python), "-c", probe], cwd=tmp_path, env=consumer_env(consumer["venv"], tmp_path)))
    site_packages = str(consumer["venv"])
    assert found["same_path"], "importing clock_stack must not edit sys.path"
    for key in ("clock_stack", "clockcore", "context"):
        assert found[key].startswith(site_packages) and str(ROOT) not in found[key], (key, found[key])
    assert (Path(found["context"]) / "app" / "Dockerfile").is_file()
    installed = {path.name for path in next((consumer["venv"] / "lib").glob("python3.*/site-packages")).iterdir()}
    assert not installed & set(NOT_INSTALLED), installed & set(NOT_INSTALLED)


def test_cdk_synth_in_the_consumer_app_stages_both_images(consumer: dict[str, Path], tmp_path: Path):
    cdk = ROOT / "node_modules" / ".bin" / "cdk"
    assert cdk.exists(), "run `make setup` first (the pinned CDK CLI)"
    app_dir = consumer["app"]
    run([str(cdk), "synth", "--quiet"], cwd=app_dir, env=consumer_env(consumer["venv"], tmp_path), timeout=300)

    out = app_dir / "cdk.out"
    assets = json.loads((out / "ConsumerOrders.assets.json").read_text())["dockerImages"]
    dockerfiles = sorted(asset["source"]["dockerFile"] for asset in assets.values())
    assert dockerfiles == ["app/Dockerfile", "worker/Dockerfile"]  # the two workers share one asset
    for asset in assets.values():
        source = asset["source"]
        assert source["platform"] == "linux/arm64"
        staged = out / source["directory"]
        assert (staged / source["dockerFile"]).is_file()
        assert (staged / "clockcore" / "contract.py").is_file()
        assert not list(staged.rglob("__pycache__"))

    template = json.loads((out / "ConsumerOrders.template.json").read_text())
    alarms = [resource["Properties"] for resource in template["Resources"].values() if resource["Type"] == "AWS::CloudWatch::Alarm"]
    watched = {
        dimension["Value"]
        for alarm in alarms
        for query in alarm["Metrics"]
        if "MetricStat" in query
        for dimension in query["MetricStat"]["Metric"].get("Dimensions", [])
        if dimension["Name"] == "Service"
    }
    assert watched == {"orders-clock", "ledger-clock"}
    composites = [resource for resource in template["Resources"].values() if resource["Type"] == "AWS::CloudWatch::CompositeAlarm"]
    assert len([c for c in composites if c["Properties"].get("AlarmActions")]) == 2  # one notifying composite each
    workers = [
        container
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::ECS::TaskDefinition"
        for container in resource["Properties"]["ContainerDefinitions"]
        if container["Name"] == "clock-worker"
    ]
    assert len(workers) == 2
    assert {env["Value"] for worker in workers for env in worker["Environment"] if env["Name"] == "CLOCK_SINK"} == {"cloudwatch"}
