"""`python -m clockcore.clockbound [PATH]`, run as a subprocess the way a person runs it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from clockbound_segments import NS, PYTHON, containers_env, live_segment, monotonic_ns, write_segment
from clockcore.clockbound import ClockBoundWriter, SegmentRecord, SegmentStatus
from clockcore.clockbound.__main__ import describe
from clockcore.clockbound.reader import DEFAULT_PATH, ClockStatus, SegmentSnapshot, Timespec


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "clockcore.clockbound", *args],
        capture_output=True,
        text=True,
        env=containers_env(),
        timeout=60,
    )


def test_a_live_segment_is_described(tmp_path: Path):
    path = tmp_path / "shm0"
    now = monotonic_ns()
    with ClockBoundWriter(path) as writer:
        writer.write(SegmentRecord(now - 2 * NS, now + 30 * NS, 446_931, 15_000, SegmentStatus.SYNCHRONIZED))
    result = run(str(path))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == f"segment      {path} (version 2, 80 bytes, generation 2)"
    assert lines[1] == "status       SYNCHRONIZED (trusted; stored SYNCHRONIZED)"
    assert lines[2].startswith("bound        0.4") and lines[2].endswith("ms now (0.446931 ms at as-of)")
    assert lines[3].startswith("as-of        2.") and lines[3].endswith(" s ago")
    assert lines[4].startswith("void-after   in 2") or lines[4].startswith("void-after   in 3")
    assert lines[5].startswith("max drift    15000 ppb (15 ppm")
    assert lines[6] == "disruption   support off, marker 0"


def test_a_void_segment_is_shown_as_void_with_success(tmp_path: Path):
    now = monotonic_ns()
    path = write_segment(tmp_path / "shm0", as_of=divmod(now - 10 * NS, NS), void_after=divmod(now - 4 * NS, NS))
    result = run(str(path))
    assert result.returncode == 0, result.stderr
    assert "status       UNKNOWN (NOT trusted; stored SYNCHRONIZED)" in result.stdout
    assert "ago: VOID, clients report UNKNOWN" in result.stdout


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda path: None, "no such file"),
        (lambda path: path.write_bytes(b"#!/bin/sh\necho this is not a segment\n" * 3), "not a ClockBound segment"),
        (lambda path: path.write_bytes(b"NZMA"), "shorter than the 16-byte segment header"),
        (lambda path: write_segment(path, version=3), "layout version 3 is not supported"),
        (lambda path: write_segment(path, segment_size=40), "too small"),
        (lambda path: path.mkdir(), "directory"),
    ],
    ids=["missing", "text file", "truncated", "other version", "small size", "directory"],
)
def test_a_missing_or_invalid_segment_is_one_line_and_a_failure(tmp_path: Path, make, words: str):
    path = tmp_path / "shm0"
    make(path)
    result = run(str(path))
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    error_lines = result.stderr.splitlines()
    assert len(error_lines) == 1, result.stderr
    assert error_lines[0].startswith(f"clockbound: {path}: ") and words in error_lines[0]


@pytest.mark.skipif(Path(DEFAULT_PATH).exists(), reason="this host has a real ClockBound segment")
def test_without_a_path_the_default_segment_is_read():
    result = run()
    assert result.returncode == 1
    assert result.stderr.startswith(f"clockbound: {DEFAULT_PATH}: ")


def test_the_description_at_fixed_clock_readings():
    snapshot = SegmentSnapshot(
        magic_ok=True,
        segment_size=80,
        version=2,
        generation=42,
        as_of=Timespec(100, 0),
        void_after=Timespec(130, 500_000_000),
        bound_ns=500_000,
        disruption_marker=0,
        max_drift_ppb=50_000,
        status=ClockStatus.SYNCHRONIZED,
        disruption_support=False,
    )
    lines = describe(snapshot, "/run/shm0", realtime_ns=0, monotonic_ns=110 * NS)
    assert lines == [
        "segment      /run/shm0 (version 2, 80 bytes, generation 42)",
        "status       FREE_RUNNING (trusted; stored SYNCHRONIZED)",  # past the client's 5 s grace period
        "bound        1.000000 ms now (0.500000 ms at as-of)",
        "as-of        10.000 s ago",
        "void-after   in 20.500 s",
        "max drift    50000 ppb (50 ppm; 50 µs per second of growth)",
        "disruption   support off, marker 0",
    ]


def test_a_free_running_segment_is_described_as_trusted(tmp_path: Path):
    path = live_segment(tmp_path / "shm0", status=int(ClockStatus.FREE_RUNNING))
    result = run(str(path))
    assert result.returncode == 0
    assert "status       FREE_RUNNING (trusted; stored FREE_RUNNING)" in result.stdout
