"""The real worker process under a real wall-clock step (libfaketime).

The scheduler's unit tests drive a fake clock; here `python -m clock_worker` runs with
libfaketime preloaded, so its wall clock (`time.time()`, `datetime.now()`, what EMF
timestamps are made of) follows an offset in a file the test rewrites mid-run, while
CLOCK_MONOTONIC stays real (`FAKETIME_DONT_FAKE_MONOTONIC=1`). The wall clock steps
back 1 h, then forward 2 h; the samples must keep coming once per real second.

Verified with this libfaketime (Debian 0.9.10) and Python 3.11: `time.time()`,
`datetime.now()` and `clock_gettime(CLOCK_REALTIME)` follow the file at the next call
(`FAKETIME_NO_CACHE=1`), `time.monotonic()` does not, and `threading.Event.wait` (the
worker's only sleep, also with other threads running) waits real time. Two traps:
without `FAKETIME_DONT_FAKE_MONOTONIC=1` an `Event.wait` hangs (libfaketime issue
#390), and with it `time.sleep` fails with EINVAL (libfaketime issue #426:
`clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)` mangled). The sampling loop never
calls `time.sleep`, so its test runs the worker untouched (a hang or a traceback would
fail it); only the cron test, where `subprocess` polls for the job's exit with
`time.sleep`, gives the worker a `time.sleep` that waits through `Event.wait` instead.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from .conftest import base_env

pytestmark = pytest.mark.timeout(60)

HOUR_MS = 3_600_000


def _libfaketime() -> str:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1") + glob.glob("/usr/lib/faketime/libfaketime.so.1"))
    if not found:
        if os.environ.get("CI"):
            pytest.fail("libfaketime is missing; in CI the wall-clock step test must run "
                        "(make system-packages installs it)")
        pytest.skip("libfaketime is not installed (make system-packages installs it)")
    return found[0]


class SteppedWallClock:
    """The offset file libfaketime reads on every wall-clock call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.set("+0")

    def set(self, offset: str) -> None:
        # Atomically: libfaketime re-reads the file on every call and must never see it half-written.
        scratch = self.path.with_suffix(".new")
        scratch.write_text(offset + "\n", encoding="ascii")
        os.replace(scratch, self.path)

    def env(self) -> dict[str, str]:
        return {
            "LD_PRELOAD": _libfaketime(),
            "FAKETIME_TIMESTAMP_FILE": str(self.path),
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }


@pytest.fixture
def wall_clock(tmp_path: Path) -> SteppedWallClock:
    return SteppedWallClock(tmp_path / "faketime.rc")


PROBE = """
import datetime, threading, time
ticker = threading.Event()
threading.Thread(target=lambda: [ticker.wait(0.05) for _ in range(100)], daemon=True).start()
mono, wall = time.monotonic(), time.time()
threading.Event().wait(0.3)
print(time.time() - wall, time.monotonic() - mono,
      datetime.datetime.now(datetime.timezone.utc).timestamp() - time.time(), flush=True)
"""


def _probe(env: dict[str, str]) -> tuple[float, float, float]:
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=10)
    assert done.returncode == 0, done.stderr
    wall_s, mono_s, datetime_minus_time_s = map(float, done.stdout.split())
    return wall_s, mono_s, datetime_minus_time_s


def test_libfaketime_steps_only_the_wall_clock_of_a_python_process(tmp_path, wall_clock):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **wall_clock.env()}
    wall_clock.set("-1h")
    real_before = time.time()
    faked = float(subprocess.run([sys.executable, "-c", "import time; print(time.time())"], env=env,
                                 capture_output=True, text=True, timeout=10, check=True).stdout)
    assert faked - real_before == pytest.approx(-3600, abs=5)
    # Within one process: a step between two reads moves time.time() and datetime.now(),
    # not time.monotonic(), and Event.wait waits real time.
    wall_clock.set("+0")
    wall_s, mono_s, datetime_minus_time_s = _probe(env)
    assert 0.29 <= mono_s < 1.5 and wall_s == pytest.approx(mono_s, abs=0.05)
    assert abs(datetime_minus_time_s) < 0.05


def _wait_for_next_line(worker, seen: int, *, timeout_s: float) -> tuple[float, int]:
    """Block until stdout holds more than `seen` lines; (monotonic time it was seen, count)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        count = len(worker.stdout_lines)
        if count > seen:
            return time.monotonic(), count
        assert worker.process.poll() is None, "\n".join(worker.stderr_lines[-20:])
        time.sleep(0.005)
    raise AssertionError(f"no EMF line within {timeout_s} s; stderr:\n" + "\n".join(worker.stderr_lines[-20:]))


def test_a_wall_clock_step_neither_skips_nor_doubles_samples(tmp_path, emulator, wall_clock, start_worker):
    env = base_env(tmp_path, ECS_CONTAINER_METADATA_URI_V4=emulator.metadata_uri, CLOCK_SINK="emf",
                   CLOCK_INTERVAL_SECONDS="1", **wall_clock.env())
    worker = start_worker(env)
    worker.wait_for_emf(2, timeout_s=10)
    # The window opens as a sample arrives, so it holds a whole number of intervals.
    opened_at, opened_with = _wait_for_next_line(worker, len(worker.stdout_lines), timeout_s=3)
    time.sleep(2.5)
    wall_clock.set("-1h")  # back one hour, between two samples
    stepped_back_at = time.time()
    time.sleep(4)
    wall_clock.set("+1h")  # forward two hours from there
    stepped_forward_at = time.time()
    time.sleep(4)
    seen_real_ms = time.time() * 1000
    closed_at, closed_with = _wait_for_next_line(worker, len(worker.stdout_lines), timeout_s=3)
    code, took = worker.terminate()
    assert code == 0 and took < 5

    # Samples in the window: one per real (monotonic) second, no catch-up burst after the
    # step back, no gap after the step forward.
    elapsed_s = closed_at - opened_at
    assert elapsed_s >= 10
    assert abs((closed_with - opened_with) - elapsed_s) <= 1, (closed_with - opened_with, elapsed_s)

    # The EMF timestamps follow the stepped wall clock: one jump of about -1 h, one of
    # about +2 h, every other gap about one second.
    lines = worker.emf_lines()
    stamps = [document["_aws"]["Timestamp"] for document in lines]
    gaps = [later - earlier for earlier, later in zip(stamps, stamps[1:])]
    back = [gap for gap in gaps if gap < -HOUR_MS / 2]
    forward = [gap for gap in gaps if gap > HOUR_MS / 2]
    steady = [gap for gap in gaps if abs(gap) <= HOUR_MS / 2]
    assert len(back) == 1 and -HOUR_MS + 700 <= back[0] <= -HOUR_MS + 1300, gaps
    assert len(forward) == 1 and 2 * HOUR_MS + 700 <= forward[0] <= 2 * HOUR_MS + 1300, gaps
    assert all(700 <= gap <= 1300 for gap in steady), gaps
    assert gaps.index(back[0]) < gaps.index(forward[0])
    # ...and match the real time shifted by the offset in force (loose: arrival latency).
    after_forward = [stamp for stamp in stamps if stamp > stepped_forward_at * 1000 + HOUR_MS - 2000]
    assert len(after_forward) >= 3
    assert abs(stamps[-1] - (seen_real_ms + HOUR_MS)) < 3000
    assert any(abs(stamp - (stepped_back_at * 1000 - HOUR_MS)) < 2500 for stamp in stamps)
    # Every sample is a good one: the step is not a sample failure.
    assert all(document["ClockSampleFailures"] == 0 for document in lines)

    # Nothing alarming in the logs: no warning, no error, no skipped slot, a clean stop.
    entries = worker.logs()
    # A run skipped because the previous one (a process start) was still running is load
    # on a shared machine, neither a replay nor a burst; anything else is a problem.
    problems = [e for e in entries if e["level"] not in ("debug", "info") and e.get("event") != "cron_job_skipped"]
    assert problems == []
    assert {"started", "stopping", "stopped"} <= {entry["event"] for entry in entries}
    assert worker.logs("samples_skipped") == [] and worker.logs("sample_failed") == []
    stopped = worker.logs("stopped")[-1]
    assert stopped["samples_total"] == len(lines) and stopped["failures_total"] == 0


class Arrivals:
    """Real (monotonic) arrival time of each stderr line, noted by a polling thread."""

    def __init__(self, worker) -> None:
        self._worker = worker
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            self.times.extend([now] * (len(self._worker.stderr_lines) - len(self.times)))
            self._stop.wait(0.01)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


SLEEP_SHIM = """
import threading, time

def _sleep(seconds):
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    threading.Event().wait(seconds)

time.sleep = _sleep
"""


def test_a_wall_clock_step_neither_replays_nor_bursts_cron_jobs(tmp_path, emulator, wall_clock, start_worker):
    # A job every second (6 fields, seconds first). Cron times are wall-clock times, so
    # the cron thread must notice a step: back 1 h must not leave it waiting an hour for
    # the stale next run (nor re-run the hour), forward 2 h must not fire a burst.
    # The sampling is not under test here, yet every warning fails it: the metadata read
    # gets about the longest timeout a 1 s interval allows (0.75 s beside the 0.2 s
    # connect timeout, not 0.5), so a loaded machine starving the in-test emulator for
    # half a second is not a failure. (Its deadlines are monotonic, which libfaketime
    # leaves real: no step can time it out.)
    env = base_env(tmp_path, ECS_CONTAINER_METADATA_URI_V4=emulator.metadata_uri, CLOCK_SINK="emf",
                   CLOCK_INTERVAL_SECONDS="1", CLOCK_METADATA_READ_TIMEOUT_SECONDS="0.75",
                   CLOCK_CRONTAB="* * * * * * /bin/true", **wall_clock.env())
    # subprocess reaps a job with a time.sleep poll loop, which libfaketime breaks (issue
    # #426, EINVAL; not the worker's doing): give the worker a time.sleep that waits the
    # same real time through Event.wait, which libfaketime leaves alone.
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(SLEEP_SHIM, encoding="ascii")
    env["PYTHONPATH"] = os.pathsep.join([str(shim), env["PYTHONPATH"]])
    worker = start_worker(env)
    arrivals = Arrivals(worker)
    worker.wait_for(lambda: len(worker.logs("cron_job_succeeded")) >= 2, timeout_s=10, what="two cron runs")
    opened_at = time.monotonic()
    time.sleep(2.5)
    wall_clock.set("-1h")
    time.sleep(4)
    wall_clock.set("+1h")
    time.sleep(4)
    closed_at = time.monotonic()
    code, took = worker.terminate()
    arrivals.stop()
    assert code == 0 and took < 5

    entries = worker.logs()  # every stderr line is JSON: no traceback from a cron thread
    runs = [arrivals.times[index] for index, entry in enumerate(entries)
            if entry["event"] == "cron_job_succeeded" and opened_at <= arrivals.times[index] <= closed_at]
    elapsed_s = closed_at - opened_at
    gaps = [later - earlier for earlier, later in zip(runs, runs[1:])]
    # One run a real second. Only the step back may cost one run: the cron thread wakes
    # at the stale due time, a moment past the first second boundary of the new time,
    # and the next run it finds is the boundary after that.
    assert elapsed_s - 2.5 <= len(runs) <= elapsed_s + 1, (len(runs), elapsed_s, gaps)
    assert all(0.4 <= gap for gap in gaps), gaps  # no burst
    assert all(gap <= 2.5 for gap in gaps) and sum(gap > 1.5 for gap in gaps) <= 1, gaps  # no stall
    # Nothing above info, but for a run or two skipped because /bin/true was still
    # running a second later: a machine starved by other work (a fresh-clone run beside
    # valgrind) does that, and the gap checks above bound it. A replay of the hour after
    # the step back would skip thousands; an error or a traceback fails the test.
    warnings = [entry for entry in entries if entry["level"] not in ("debug", "info")]
    skipped = [entry for entry in warnings if entry["event"] == "cron_job_skipped"]
    assert len(skipped) <= 2 and [entry for entry in warnings if entry not in skipped] == [], warnings
    # The sampling went on as usual next to the jobs.
    assert all(document["ClockSampleFailures"] == 0 for document in worker.emf_lines())
    assert abs(len(worker.emf_lines()) - worker.logs("stopped")[-1]["samples_total"]) == 0
