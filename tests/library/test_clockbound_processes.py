"""Writer and reader in separate processes, as the worker and its clients run.

- torn reads: a reader process copies continuously while a writer process publishes
  10,000 records whose fields all derive from one counter; no accepted copy mixes two
  records, and the reader saw many different ones;
- a killed writer: a reader finds the segment void within three intervals;
- a restarted writer: a reader that mapped the file before the restart sees its values.
"""

from __future__ import annotations

import json
import signal
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from clockbound_segments import NS, PYTHON, containers_env, monotonic_ns
from clockcore.clockbound import ClockBoundReader, ClockStatus

T = TypeVar("T")

UPDATES = 10_000

# Every field of record n derives from n, so any mix of two records is detectable.
COUNTER_RECORD = """
def counter_record(n):
    return SegmentRecord(
        as_of_ns=n * 1_000_003,
        void_after_ns=n * 1_000_003 + 17 * n,
        bound_ns=7 * n,
        max_drift_ppb=n % 999_999_937,
        status=SegmentStatus(n % 4),
        disruption_marker=11 * n,
        disruption_support=n % 2 == 1,
    )
"""

# The reader reports the last record it saw in a side file; the writer stays at most
# AHEAD records in front of it. The two still race (the writer runs while the reader
# copies), but a reader descheduled on a busy machine cannot miss the whole run.
AHEAD = 16

TORN_WRITER = COUNTER_RECORD + """
import mmap, os, sys, time
from clockcore.clockbound import ClockBoundWriter, SegmentRecord, SegmentStatus

path, updates, ahead = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
writer = ClockBoundWriter(path)
writer.write(counter_record(0))
with open(path + ".progress", "wb") as side:
    side.write(bytes(8))
progress_file = open(path + ".progress", "r+b")
progress = memoryview(mmap.mmap(progress_file.fileno(), 8)).cast("q")
print("ready", flush=True)
sys.stdin.readline()  # go
for n in range(1, updates + 1):
    while n - progress[0] > ahead:
        os.sched_yield()
    writer.write(counter_record(n))
    next_at = time.perf_counter_ns() + 20_000  # spread the updates a little
    while time.perf_counter_ns() < next_at:
        pass
writer.close()
"""

TORN_READER = """
import json, mmap, struct, sys
from clockcore.clockbound import ClockBoundReader

path, last = sys.argv[1], int(sys.argv[2])
reader = ClockBoundReader(path, max_attempts=1_000_000)
progress_file = open(path + ".progress", "r+b")
progress = memoryview(mmap.mmap(progress_file.fileno(), 8)).cast("q")
# A second, unguarded mapping: copies taken without the generation rule, counted to show
# that torn states occur while the guarded copies stay clean.
raw_file = open(path, "rb")
raw = mmap.mmap(raw_file.fileno(), 80, prot=mmap.PROT_READ)
raw_fields = struct.Struct("=qqqqqQIiB")
print("ready", flush=True)
seen, inconsistent, copies, raw_torn = set(), [], 0, 0
while True:
    s_as, ns_as, s_void, ns_void, bound, marker, drift, status, support = raw_fields.unpack_from(raw, 16)
    k = bound // 7
    if (s_as * 10**9 + ns_as, s_void * 10**9 + ns_void, marker, drift) != (k * 1_000_003, k * 1_000_003 + 17 * k, 11 * k, k % 999_999_937):
        raw_torn += 1
    snap = reader.snapshot()
    copies += 1
    n = snap.bound_ns // 7
    fields = (
        snap.as_of.ns, snap.void_after.ns, snap.bound_ns, snap.max_drift_ppb,
        int(snap.status), snap.disruption_marker, snap.disruption_support,
    )
    expected = (n * 1_000_003, n * 1_000_003 + 17 * n, 7 * n, n % 999_999_937, n % 4, 11 * n, n % 2 == 1)
    if fields != expected or snap.generation % 2:
        inconsistent.append(repr(snap))
    else:
        progress[0] = n
    seen.add(n)
    if n == last:
        break
print(json.dumps({
    "distinct": len(seen), "copies": copies, "raw_torn": raw_torn, "inconsistent": inconsistent[:5], "bad": len(inconsistent)
}))
"""

# A worker-shaped loop: SegmentPublisher on synchronized readings every `interval`.
PUBLISHING_WRITER = """
import sys, time
from datetime import datetime, timedelta, timezone
from clockcore.clockbound import ClockBoundWriter, SegmentPublisher
from clockcore.reading import ClockReading, SyncStatus, TaskIdentity

path, interval, bound_ms = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
publisher = SegmentPublisher(interval_s=interval, max_reference_age_s=120)
writer = ClockBoundWriter(path)
identity = TaskIdentity("cluster", "task", "family")
announced = False
while True:
    now = datetime.now(timezone.utc)
    # A reference 6 s old (whole seconds, as TMDS stamps it): past the client's 5 s
    # grace period, so the status a client sees follows void-after.
    reference = now.replace(microsecond=0) - timedelta(seconds=6)
    reading = ClockReading(now, bound_ms, SyncStatus.SYNCHRONIZED, reference, 15.0, identity)
    generation = writer.write(publisher.record_for(reading))
    if not announced:
        print(generation, flush=True)
        announced = True
    time.sleep(interval)
"""


def start(script: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTHON, "-c", textwrap.dedent(script), *map(str, args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=containers_env(),
    )


def first_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise AssertionError(f"process ended before speaking: {process.wait(5)} {process.stderr.read() if process.stderr else ''}")
    return line.strip()


def poll(check: Callable[[], T | None], *, within_s: float, every_s: float = 0.002) -> T:
    deadline = time.monotonic() + within_s
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within_s} s")
        time.sleep(every_s)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream:
                stream.close()


def test_a_reader_process_never_accepts_a_torn_record(tmp_path: Path, processes: list[subprocess.Popen[str]]):
    path = tmp_path / "shm0"
    writer = start(TORN_WRITER, path, UPDATES, AHEAD)
    processes.append(writer)
    assert first_line(writer) == "ready"
    reader = start(TORN_READER, path, UPDATES)
    processes.append(reader)
    assert first_line(reader) == "ready"
    assert writer.stdin is not None
    writer.stdin.write("go\n")
    writer.stdin.flush()
    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    summary = json.loads(out)
    assert summary["bad"] == 0, summary["inconsistent"]
    assert writer.wait(30) == 0
    # "Many": the writer never runs more than AHEAD records in front of the reader.
    assert summary["distinct"] >= UPDATES // (AHEAD + 1), summary


def _void_now(reader: ClockBoundReader) -> bool | None:
    return True if reader.now().status is ClockStatus.UNKNOWN else None


def test_a_killed_writer_leaves_a_segment_that_goes_void_within_three_intervals(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
):
    path, interval = tmp_path / "shm0", 0.3
    writer = start(PUBLISHING_WRITER, path, interval, 0.5)
    processes.append(writer)
    first_generation = int(first_line(writer))
    reader = ClockBoundReader(path)
    poll(lambda: True if reader.snapshot().generation > first_generation else None, within_s=5)  # a few writes in
    alive = reader.now()
    assert alive.trusted and alive.status is ClockStatus.FREE_RUNNING  # 6 s old reference: past the grace period

    writer.send_signal(signal.SIGKILL)
    writer.wait(10)
    killed_at = monotonic_ns()
    assert not reader.snapshot().is_void_at(killed_at)
    poll(lambda: _void_now(reader), within_s=3 * interval + 1.0)
    void_after_kill_s = (monotonic_ns() - killed_at) / NS

    snapshot = reader.snapshot()
    assert snapshot.is_void_at(monotonic_ns())
    # The last write was at most one interval before the kill: void-after, three intervals
    # after it, falls between two and three intervals after the kill (plus scheduling slack).
    assert 2 * interval - 0.2 <= void_after_kill_s <= 3 * interval + 0.3, void_after_kill_s


def test_a_reader_mapped_before_a_writer_restart_sees_the_new_writers_values(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
):
    path, interval = tmp_path / "shm0", 0.2
    first = start(PUBLISHING_WRITER, path, interval, 0.5)
    processes.append(first)
    first_line(first)
    reader = ClockBoundReader(path)
    before = reader.snapshot()
    assert before.bound_ns == 500_001  # 0.5 ms, and the 1 ns the mapping adds for the client's truncation
    inode = path.stat().st_ino

    first.send_signal(signal.SIGKILL)
    first.wait(10)
    second = start(PUBLISHING_WRITER, path, interval, 0.9)
    processes.append(second)
    first_line(second)

    def new_values() -> object | None:
        snapshot = reader.snapshot()
        return snapshot if snapshot.bound_ns == 900_001 else None

    after = poll(new_values, within_s=5)
    assert after.generation > before.generation, "the restarted writer continued the generation"
    assert path.stat().st_ino == inode, "same file: the writer reopened it, never replaced it"
    now = reader.now()
    assert now.trusted and now.bound_ns >= 900_000

