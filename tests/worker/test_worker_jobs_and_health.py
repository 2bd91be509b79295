"""Cron jobs next to sampling, the heartbeat health check, and a task without ServiceName,
with the worker as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from .conftest import assert_on_one_second_grid, ROOT, WORKER_PYTHONPATH, base_env

pytestmark = pytest.mark.timeout(120)


def test_failing_and_hanging_jobs_never_delay_sampling(tmp_path, emulator, start_worker):
    marker = tmp_path / "ran"
    python = sys.executable
    crontab = "\n".join(
        [
            "# every second: a job that works, one that fails, one that hangs past its timeout",
            f"* * * * * * {python} -c \"open('{marker}', 'a').write('x')\"",
            f"* * * * * * {python} -c \"import sys; print('broken', file=sys.stderr); sys.exit(3)\"",
            f"* * * * * * {python} -c \"import time; time.sleep(60)\"",
            "* * * * * * /nonexistent/command --flag",
        ]
    )
    env = base_env(tmp_path, ECS_CONTAINER_METADATA_URI_V4=emulator.metadata_uri, CLOCK_CRONTAB=crontab,
                   CLOCK_JOB_TIMEOUT_SECONDS="1.5")
    worker = start_worker(env)
    worker.wait_for(lambda: len(worker.logs("cron_job_timeout")) >= 1 and len(worker.stdout_lines) >= 5, timeout_s=15,
                    what="a timed-out job and 5 samples")
    code, took = worker.terminate()
    assert code == 0 and took < 5
    assert marker.exists() and len(marker.read_text()) >= 2
    succeeded = worker.logs("cron_job_succeeded")
    assert succeeded and succeeded[0]["job"] == "CLOCK_CRONTAB:2"
    failed = worker.logs("cron_job_failed")
    assert any(entry.get("exit_code") == 3 and entry["stderr"] == "broken" for entry in failed)
    assert any(entry["job"] == "CLOCK_CRONTAB:5" and "could not start" in entry["message"] for entry in failed)
    assert worker.logs("cron_job_timeout")[0]["job"] == "CLOCK_CRONTAB:4"
    # The hanging job overlapped its own next run: skipped, not stacked.
    assert worker.logs("cron_job_skipped")
    # Sampling kept its 1 s grid the whole time, and job output never reached stdout.
    stamps = [document["_aws"]["Timestamp"] for document in worker.emf_lines()]
    assert_on_one_second_grid(stamps)
    assert all(document["ClockSampleFailures"] == 0 for document in worker.emf_lines())
    assert worker.logs("samples_skipped") == []


def _healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clock_worker.healthcheck"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=20
    )


def test_health_check_follows_the_heartbeat(tmp_path, emulator, start_worker):
    env = base_env(tmp_path, ECS_CONTAINER_METADATA_URI_V4=emulator.metadata_uri)
    heartbeat = tmp_path / "heartbeat"
    missing = _healthcheck(env)
    assert missing.returncode == 1 and "no heartbeat file" in missing.stderr

    worker = start_worker(env)
    worker.wait_for_emf(2, timeout_s=10)
    healthy = _healthcheck(env)
    assert healthy.returncode == 0, healthy.stderr
    assert healthy.stdout.startswith("healthy")
    # The heartbeat moves with every loop iteration (one a second here).
    first = heartbeat.stat().st_mtime
    worker.wait_for(lambda: heartbeat.stat().st_mtime > first, timeout_s=5, what="the heartbeat to move")
    worker.terminate()

    # A heartbeat older than 3 intervals is unhealthy.
    old = time.time() - 3.5
    os.utime(heartbeat, (old, old))
    stale = _healthcheck(env)
    assert stale.returncode == 1 and "limit 3 s" in stale.stderr
    bad = _healthcheck({**env, "CLOCK_INTERVAL_SECONDS": "zero"})
    assert bad.returncode == 1 and "CLOCK_INTERVAL_SECONDS" in bad.stderr


def test_a_task_without_service_name_publishes_the_same_per_task_set(tmp_path, emulator, start_worker):
    emulator.set_scenario("ok", service_name=None)
    env = base_env(tmp_path, ECS_CONTAINER_METADATA_URI_V4=emulator.metadata_uri, CLOCK_SERVICE_NAME="orders")
    worker = start_worker(env)
    lines = worker.wait_for_emf(3, timeout_s=10)
    worker.terminate()
    for document in lines:
        assert document["_aws"]["CloudWatchMetrics"][1]["Dimensions"] == [["Service", "TaskID"]]
        assert document["Service"] == "orders" and "ServiceName" not in document


def test_emf_mode_loads_neither_boto3_nor_croniter_it_does_not_need():
    probe = (
        "import sys, os; from clock_worker.settings import load_settings; from clock_worker.worker import Worker, make_sink;"
        "settings = load_settings(os.environ); Worker(settings, sink=make_sink(settings));"
        "print(*(name in sys.modules for name in ('boto3', 'botocore', 'croniter')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], env={"PYTHONPATH": WORKER_PYTHONPATH, "CLOCK_SINK": "emf"},
        capture_output=True, text=True, timeout=20,
    )
    assert result.stdout.split() == ["False", "False", "False"], result.stderr
