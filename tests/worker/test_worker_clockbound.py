"""The real worker keeps a ClockBound segment: worker → segment → ClockBound reader, through
every emulator scenario; killed, the segment goes void; restarted, an old mapping sees it.

The reader is clockcore's, written from ClockBound's protocol independently of the writer.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clockcore.clockbound import ClockBoundReader, ClockStatus, SegmentSnapshot
from clockcore.clockbound.reader import CLOCK_MONOTONIC_COARSE

from .conftest import ROOT, base_env

pytestmark = pytest.mark.timeout(120)

EMULATOR_BOUND_MS = 0.446931  # the emulator's "ok" bound
NS_PER_MS = 1_000_000


def segment_env(tmp_path: Path, emulator, **settings: str) -> dict[str, str]:
    return base_env(
        tmp_path,
        ECS_CONTAINER_METADATA_URI_V4=emulator.metadata_uri,
        CLOCK_CLOCKBOUND_SHM=str(tmp_path / "clockbound" / "shm0"),
        **settings,
    )


def wait_for_snapshot(path: Path, condition, *, timeout_s: float, worker=None) -> SegmentSnapshot:
    deadline = time.monotonic() + timeout_s
    last: SegmentSnapshot | None = None
    while time.monotonic() < deadline:
        if path.exists():
            try:
                with ClockBoundReader(path) as reader:
                    last = reader.snapshot()
            except ValueError:
                last = None  # not initialized yet
            if last is not None and condition(last):
                return last
        if worker is not None and worker.process.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"segment condition not met within {timeout_s} s; last {last}")


def healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clock_worker.healthcheck"], env=env, capture_output=True, text=True,
                          timeout=30, cwd=ROOT)


def test_a_synchronized_sample_is_a_synchronized_segment_any_client_reads(tmp_path, emulator, start_worker):
    env = segment_env(tmp_path, emulator)
    worker = start_worker(env)
    path = tmp_path / "clockbound" / "shm0"
    snapshot = wait_for_snapshot(path, lambda s: s.status is ClockStatus.SYNCHRONIZED, timeout_s=10, worker=worker)
    # The reported bound, rounded up (plus the nanosecond that covers the client's truncation).
    assert 0 <= snapshot.bound_ns - EMULATOR_BOUND_MS * NS_PER_MS <= 2
    assert snapshot.max_drift_ppb == 50_000  # CLOCK_MAX_DRIFT_PPM's default, 50 ppm
    assert snapshot.disruption_support is False or snapshot.disruption_support == 0
    with ClockBoundReader(path) as reader:
        now = reader.now()
    wall_ns = time.time_ns()
    assert now.earliest_ns <= wall_ns <= now.latest_ns + 5 * NS_PER_MS
    # At least the reported bound, grown by its age at 50 ppm.
    assert now.bound_ns >= EMULATOR_BOUND_MS * NS_PER_MS
    assert oct(path.stat().st_mode & 0o777) == oct(0o644), "other uids (the app, your containers) read it"
    # Healthy only now: a synchronized sample was written.
    worker.wait_for(lambda: healthcheck(env).returncode == 0, timeout_s=10, what="healthy")
    worker.terminate()


@pytest.mark.parametrize(
    ("scenario", "values", "expected"),
    [
        ("high_bound", {"bound_ms": 7.5}, "bound"),
        ("bound_omitted", {}, "zero"),
        ("unsynchronized", {}, "free_running"),
        ("http_500", {}, "unchanged"),
        ("garbage", {}, "unchanged"),
        ("no_clock_drift", {}, "unchanged"),
        ("stale_reference", {"stale_s": 600}, "void"),
    ],
)
def test_every_scenario_after_a_synchronized_start(tmp_path, emulator, start_worker, scenario, values, expected):
    env = segment_env(tmp_path, emulator)
    worker = start_worker(env)
    path = tmp_path / "clockbound" / "shm0"
    first = wait_for_snapshot(path, lambda s: s.status is ClockStatus.SYNCHRONIZED, timeout_s=10, worker=worker)
    emulator.set_scenario(scenario, **values)
    if expected == "unchanged":
        # A failed sample writes nothing: the record (and its generation) stays, its bound
        # keeps growing, and it is void 3 intervals after the last good write.
        worker.wait_for(lambda: len(worker.logs("sample_failed")) >= 1, timeout_s=10, what="a failed sample")
        with ClockBoundReader(path) as reader:
            kept = reader.snapshot()
        failed = len(worker.logs("sample_failed"))
        worker.wait_for(lambda: len(worker.logs("sample_failed")) >= failed + 2, timeout_s=10, what="two more failures")
        with ClockBoundReader(path) as reader:
            later = reader.snapshot()
        # Nothing was written meanwhile: the same record under the same generation.
        assert (later.generation, later.as_of, later.bound_ns, later.status) == (
            kept.generation, kept.as_of, kept.bound_ns, kept.status
        )
        assert kept.status is ClockStatus.SYNCHRONIZED and kept.bound_ns == first.bound_ns
        void = wait_for_snapshot(path, lambda s: s.is_void_at(time.clock_gettime_ns(CLOCK_MONOTONIC_COARSE)), timeout_s=6)
        assert void.generation == kept.generation
    elif expected == "bound":
        snapshot = wait_for_snapshot(path, lambda s: s.bound_ns >= 7.5 * NS_PER_MS, timeout_s=10, worker=worker)
        assert snapshot.status is ClockStatus.SYNCHRONIZED and snapshot.bound_ns - 7.5 * NS_PER_MS <= 2
    elif expected == "zero":
        snapshot = wait_for_snapshot(path, lambda s: s.bound_ns <= 2, timeout_s=10, worker=worker)
        assert snapshot.status is ClockStatus.SYNCHRONIZED
    elif expected == "free_running":
        # NOT_SYNCHRONIZED: FreeRunning, keeping the last synchronized bound and as-of.
        snapshot = wait_for_snapshot(path, lambda s: s.status is ClockStatus.FREE_RUNNING, timeout_s=10, worker=worker)
        assert snapshot.as_of == first.as_of and snapshot.bound_ns == first.bound_ns
        assert snapshot.generation != first.generation  # rewritten, not left as it was
    elif expected == "void":
        # A reference older than CLOCK_MAX_REFERENCE_AGE_SECONDS: void at once.
        snapshot = wait_for_snapshot(path, lambda s: s.bound_ns != first.bound_ns or s.as_of != first.as_of,
                                     timeout_s=10, worker=worker)
        assert snapshot.is_void_at(time.clock_gettime_ns(CLOCK_MONOTONIC_COARSE))
    worker.terminate()


def test_never_synchronized_is_unknown_and_unhealthy(tmp_path, emulator, start_worker):
    emulator.set_scenario("unsynchronized")
    env = segment_env(tmp_path, emulator)
    worker = start_worker(env)
    path = tmp_path / "clockbound" / "shm0"
    snapshot = wait_for_snapshot(path, lambda s: True, timeout_s=10, worker=worker)
    assert snapshot.status is ClockStatus.UNKNOWN
    worker.wait_for(lambda: len(worker.stdout_lines) >= 2, timeout_s=10, what="two samples")
    unhealthy = healthcheck(env)
    assert unhealthy.returncode == 1 and "no synchronized clock sample yet" in unhealthy.stderr
    # The first synchronized sample makes it healthy (and the segment Synchronized).
    emulator.set_scenario("ok")
    wait_for_snapshot(path, lambda s: s.status is ClockStatus.SYNCHRONIZED, timeout_s=10, worker=worker)
    worker.wait_for(lambda: healthcheck(env).returncode == 0, timeout_s=10, what="healthy after sync")
    # ...and stays healthy while the loop runs, even if sync is lost later.
    emulator.set_scenario("unsynchronized")
    wait_for_snapshot(path, lambda s: s.status is ClockStatus.FREE_RUNNING, timeout_s=10, worker=worker)
    assert healthcheck(env).returncode == 0
    worker.terminate()


def test_killed_worker_leaves_a_segment_that_goes_void_within_three_intervals(tmp_path, emulator, start_worker):
    env = segment_env(tmp_path, emulator)
    worker = start_worker(env)
    path = tmp_path / "clockbound" / "shm0"
    wait_for_snapshot(path, lambda s: s.status is ClockStatus.SYNCHRONIZED, timeout_s=10, worker=worker)
    early_reader = ClockBoundReader(path)  # mapped before the kill and the restart
    before = early_reader.snapshot()
    os.kill(worker.process.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    worker.process.wait(timeout=10)
    while not early_reader.snapshot().is_void_at(time.clock_gettime_ns(CLOCK_MONOTONIC_COARSE)):
        assert time.monotonic() - killed_at < 3 * 1.0 + 0.5, "still valid 3 intervals after the last write"
        time.sleep(0.02)
    # A ClockBound client trusts a Synchronized record for 5 s after its as-of whatever its
    # void-after says, then reports Unknown past void-after: at 1 s intervals that comes
    # later than 3 intervals.
    while early_reader.now().status is not ClockStatus.UNKNOWN:
        assert time.monotonic() - killed_at < 5 + 1.0 + 0.5, "a client still trusts a dead worker's segment"
        time.sleep(0.05)

    restarted = start_worker(env)
    deadline = time.monotonic() + 10
    while early_reader.snapshot().generation == before.generation or early_reader.snapshot().is_void_at(
        time.clock_gettime_ns(CLOCK_MONOTONIC_COARSE)
    ):
        assert time.monotonic() < deadline, "the old mapping never saw the restarted worker's record"
        time.sleep(0.05)
    assert early_reader.now().status is not ClockStatus.UNKNOWN
    early_reader.close()
    restarted.terminate()


def test_an_unwritable_segment_never_stops_the_metrics(tmp_path, emulator, start_worker):
    blocked = tmp_path / "clockbound"
    blocked.mkdir()
    (blocked / "shm0").mkdir()  # a directory where the file should be
    env = segment_env(tmp_path, emulator)
    worker = start_worker(env)
    worker.wait_for(lambda: len(worker.stdout_lines) >= 3, timeout_s=10, what="three EMF lines")
    failures = worker.logs("clockbound_segment_failed")
    assert len(failures) == 1 and "shm0" in failures[0]["message"]  # once per outage, not per sample
    unhealthy = healthcheck(env)
    assert unhealthy.returncode == 1 and "ClockBound segment cannot be written" in unhealthy.stderr
    assert worker.process.poll() is None
    code, _ = worker.terminate()
    assert code == 0


def test_without_the_setting_no_segment_and_health_after_sync(tmp_path, emulator, start_worker):
    env = base_env(tmp_path, ECS_CONTAINER_METADATA_URI_V4=emulator.metadata_uri)
    worker = start_worker(env)
    worker.wait_for(lambda: healthcheck(env).returncode == 0, timeout_s=10, what="healthy")
    worker.terminate()
    assert not list(tmp_path.rglob("shm0"))
