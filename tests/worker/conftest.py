"""Run the worker as a real process (`python -m clock_worker`) and watch its output.

The process gets PYTHONPATH=containers:containers/worker, the way the image lays the
two packages out side by side, and nothing else from this test process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from collected_output import CollectedOutput
from emulator import Emulator

ROOT = Path(__file__).resolve().parents[2]
CONTAINERS = ROOT / "containers"
WORKER_PYTHONPATH = os.pathsep.join([str(CONTAINERS), str(CONTAINERS / "worker")])


def base_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """A minimal environment: no AWS or CLOCK_* settings leak in from the test run."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": WORKER_PYTHONPATH,
        "PYTHONDONTWRITEBYTECODE": "1",
        "CLOCK_HEARTBEAT_FILE": str(tmp_path / "heartbeat"),
        "CLOCK_INTERVAL_SECONDS": "1",
    }
    env.update(settings)
    return env


class WorkerProcess:
    """The worker as a subprocess; stdout and stderr lines are collected as they come."""

    def __init__(self, env: dict[str, str], *, python: str = sys.executable, cwd: Path | None = None) -> None:
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            [python, "-m", "clock_worker"],
            env=env,
            cwd=cwd or ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.output = CollectedOutput(self.process)
        self.stdout_lines, self.stderr_lines, self._lock = self.output.stdout, self.output.stderr, self.output.lock

    # ------------------------------------------------------------ output views
    def emf_lines(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(line) for line in self.stdout_lines]

    def logs(self, event: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            entries = [json.loads(line) for line in self.stderr_lines]
        return [entry for entry in entries if event is None or entry.get("event") == event]

    def wait_for(self, predicate: Callable[[], bool], *, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        if predicate():
            return
        raise AssertionError(f"timed out waiting for {what}; exit={self.process.poll()}\nstderr:\n" + "\n".join(self.stderr_lines[-30:]))

    def wait_for_emf(self, count: int, *, timeout_s: float) -> list[dict[str, Any]]:
        self.wait_for(lambda: len(self.stdout_lines) >= count, timeout_s=timeout_s, what=f"{count} EMF lines")
        return self.emf_lines()

    # ------------------------------------------------------------ stopping
    def terminate(self, *, timeout_s: float = 10.0) -> tuple[int, float]:
        """SIGTERM; return (exit code, seconds it took to exit)."""
        sent = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout_s)
        took = time.monotonic() - sent
        self.output.join(2)
        return code, took

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)
        self.output.join(2)


@pytest.fixture
def start_worker() -> Iterator[Callable[..., WorkerProcess]]:
    """Start workers; any still running at the end of the test are killed."""
    started: list[WorkerProcess] = []

    def start(env: dict[str, str], **kwargs: Any) -> WorkerProcess:
        worker = WorkerProcess(env, **kwargs)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()


@pytest.fixture(scope="module")
def module_emulator() -> Iterator[Emulator]:
    """An emulator shared by a module's tests (each resets it as needed)."""
    with Emulator() as running:
        yield running


def assert_on_one_second_grid(stamps_ms: list[int]) -> None:
    """Samples 1 s apart without drift: each gap near 1 s (jitter of a loaded machine
    allowed), and the average gap 1 s. A schedule that slept a full interval after each
    sample would show gaps of 1 s plus the sample's duration."""
    assert len(stamps_ms) >= 3, stamps_ms
    gaps = [later - earlier for earlier, later in zip(stamps_ms, stamps_ms[1:])]
    # Single gaps may stretch by 0.4 s when four test workers share two cores; the mean
    # (next line) is what shows drift.
    assert all(600 <= gap <= 1400 for gap in gaps), gaps
    assert abs((stamps_ms[-1] - stamps_ms[0]) / len(gaps) - 1000) <= 60, gaps


def run_worker_once(env: dict[str, str], *, timeout_s: float = 20.0) -> subprocess.CompletedProcess[str]:
    """Run `python -m clock_worker` to completion (bad configuration exits at once)."""
    return subprocess.run(
        [sys.executable, "-m", "clock_worker"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s
    )
