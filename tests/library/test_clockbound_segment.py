"""The ClockBound segment: writer layout and refusals, reader checks, the client's now().

Expected values come from aws/clock-bound (docs/PROTOCOL.md, clock-bound-shm's writer,
reader and `compute_bound_at`), not from the code under test.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import pytest

from clockbound_segments import MAGIC, NS, live_segment, monotonic_ns, segment_bytes, write_segment
from clockcore.clockbound import (
    ClockBoundError,
    ClockBoundReader,
    ClockBoundWriter,
    ClockStatus,
    SegmentRecord,
    SegmentStatus,
)
from clockcore.clockbound.reader import SegmentSnapshot, Timespec


def record(**changes: object) -> SegmentRecord:
    fields: dict[str, object] = dict(
        as_of_ns=1_000 * NS + 5,
        void_after_ns=1_030 * NS + 7,
        bound_ns=446_931,
        max_drift_ppb=15_000,
        status=SegmentStatus.SYNCHRONIZED,
        disruption_marker=9,
        disruption_support=False,
    )
    fields.update(changes)
    return SegmentRecord(**fields)  # type: ignore[arg-type]


# ---------------------------------------------------------------- writer


def test_a_written_segment_has_the_v2_layout_byte_for_byte(tmp_path: Path):
    path = tmp_path / "shm0"
    with ClockBoundWriter(path) as writer:
        assert writer.write(record()) == 2
    expected = segment_bytes(
        generation=2,
        as_of=(1_000, 5),
        void_after=(1_030, 7),
        bound_ns=446_931,
        disruption_marker=9,
        max_drift_ppb=15_000,
        status=1,
        disruption_support=0,
    )
    assert path.read_bytes() == expected
    assert len(expected) == 80


@pytest.mark.skipif(sys.byteorder != "little", reason="the byte order of the magic words is the host's")
def test_the_magic_is_two_native_words_not_the_protocol_pages_byte_listing(tmp_path: Path):
    path = tmp_path / "shm0"
    with ClockBoundWriter(path):
        pass
    assert path.read_bytes()[:8] == bytes.fromhex("4e5a4d41 00024243")


def test_the_file_and_new_folders_are_readable_by_other_users(tmp_path: Path):
    path = tmp_path / "run" / "clockbound" / "shm0"
    old_umask = os.umask(0o077)
    try:
        ClockBoundWriter(path).close()
    finally:
        os.umask(old_umask)
    assert path.stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "run" / "clockbound").stat().st_mode & 0o777 == 0o755


def test_the_generation_is_odd_while_the_fields_change(tmp_path: Path):
    path = tmp_path / "shm0"
    writer = ClockBoundWriter(path)
    writer.write(record(bound_ns=1))
    seen: list[tuple[int, bytes]] = []
    writer._fence = lambda: seen.append((writer.generation, path.read_bytes()[16:]))  # type: ignore[method-assign]
    assert writer.write(record(bound_ns=2)) == 4
    (first_generation, before), (second_generation, after) = seen
    assert first_generation == second_generation == 3
    assert before != after  # the fields were written between the two fences, under the odd generation
    assert writer.generation == 4
    writer.close()


def test_reopening_continues_the_generation_in_the_same_file(tmp_path: Path):
    path = tmp_path / "shm0"
    with ClockBoundWriter(path) as writer:
        for bound in (1, 2, 3):
            writer.write(record(bound_ns=bound))
    inode = path.stat().st_ino
    with ClockBoundWriter(path) as writer:
        assert writer.generation == 6
        assert writer.write(record(bound_ns=4)) == 8
    assert path.stat().st_ino == inode


def test_a_generation_left_odd_by_a_dead_writer_is_closed_with_an_even_one(tmp_path: Path):
    path = write_segment(tmp_path / "shm0", generation=7)
    with ClockBoundWriter(path) as writer:
        assert writer.write(record()) == 8


@pytest.mark.parametrize("content", [b"", bytes(80), bytes(16)], ids=["empty", "80 zero bytes", "16 zero bytes"])
def test_an_empty_or_zeroed_file_is_initialized(tmp_path: Path, content: bytes):
    path = tmp_path / "shm0"
    path.write_bytes(content)
    with ClockBoundWriter(path) as writer:
        assert writer.generation == 0
        writer.write(record())
    assert ClockBoundReader(path).snapshot().bound_ns == 446_931


def test_a_directory_is_refused(tmp_path: Path):
    with pytest.raises(ClockBoundError) as raised:
        ClockBoundWriter(tmp_path)
    assert raised.value.kind == "not_a_file"
    assert str(tmp_path) in str(raised.value) and "directory" in str(raised.value)


@pytest.mark.parametrize(
    "content, kind, words",
    [
        (b"some operator's notes\n" * 10, "foreign", "magic"),
        (segment_bytes(length=96), "foreign", "96 bytes"),
        (segment_bytes(version=1), "bad_version", "version 1"),
        (segment_bytes(segment_size=88), "bad_size", "88"),
    ],
    ids=["text file", "wrong file size", "other version", "wrong declared size"],
)
def test_a_file_that_is_not_a_v2_segment_is_refused_and_left_alone(tmp_path: Path, content: bytes, kind: str, words: str):
    path = tmp_path / "shm0"
    path.write_bytes(content)
    with pytest.raises(ClockBoundError) as raised:
        ClockBoundWriter(path)
    assert raised.value.kind == kind
    assert words in str(raised.value) and "refusing to overwrite" in str(raised.value)
    assert path.read_bytes() == content


def test_a_second_writer_on_the_same_segment_is_refused(tmp_path: Path):
    path = tmp_path / "shm0"
    first = ClockBoundWriter(path)
    with pytest.raises(ClockBoundError) as raised:
        ClockBoundWriter(path)
    assert raised.value.kind == "in_use"
    first.close()
    ClockBoundWriter(path).close()  # the lock went with the first writer


def test_an_unwritable_location_is_refused_with_a_permission_error(tmp_path: Path):
    if os.geteuid() == 0:
        # root ignores mode bits; sysfs refuses new files even to root.
        if not Path("/sys/kernel").is_dir():
            pytest.skip("running as root without /sys/kernel: no location root cannot write")
        path = Path("/sys/kernel/clockbound-test-shm0")
    else:
        folder = tmp_path / "locked"
        folder.mkdir(mode=0o555)
        path = folder / "shm0"
    with pytest.raises(ClockBoundError) as raised:
        ClockBoundWriter(path)
    assert raised.value.kind == "permission"
    assert str(path) in str(raised.value)


@pytest.mark.parametrize(
    "changes",
    [
        {"bound_ns": -1},
        {"max_drift_ppb": 1_000_000_000},
        {"max_drift_ppb": -1},
        {"status": 4},
        {"disruption_marker": 2**64},
        {"as_of_ns": 2**63},
        {"bound_ns": 1.5},
    ],
)
def test_a_record_the_protocol_cannot_carry_is_refused(changes: dict[str, object]):
    with pytest.raises(ValueError):
        record(**changes)


def test_writing_after_close_is_an_error(tmp_path: Path):
    writer = ClockBoundWriter(tmp_path / "shm0")
    writer.close()
    writer.close()  # twice is fine
    with pytest.raises(ClockBoundError) as raised:
        writer.write(record())
    assert raised.value.kind == "closed"


# ---------------------------------------------------------------- reader: opening


def _open_error(path: Path) -> ClockBoundError:
    with pytest.raises(ClockBoundError) as raised:
        ClockBoundReader(path)
    assert str(path) in str(raised.value), "the error names the path"
    return raised.value


def test_a_missing_segment_is_a_clear_error(tmp_path: Path):
    error = _open_error(tmp_path / "shm0")
    assert error.kind == "missing" and "no such file" in str(error)


def test_a_file_shorter_than_the_header_is_not_initialized(tmp_path: Path):
    path = tmp_path / "shm0"
    path.write_bytes(MAGIC + b"\x50\0\0")
    error = _open_error(path)
    assert error.kind == "not_initialized" and "11 bytes" in str(error)


def test_a_wrong_magic_is_named(tmp_path: Path):
    error = _open_error(write_segment(tmp_path / "shm0", magic=b"NOTCLOCK"))
    assert error.kind == "bad_magic" and "4e 4f 54 43 4c 4f 43 4b" in str(error)


@pytest.mark.skipif(sys.byteorder != "little", reason="on a big-endian host the listing is the right magic")
def test_the_protocol_pages_byte_listing_is_refused_with_a_hint(tmp_path: Path):
    error = _open_error(write_segment(tmp_path / "shm0", magic=bytes([0x41, 0x4D, 0x5A, 0x4E, 0x43, 0x42, 0x02, 0x00])))
    assert error.kind == "bad_magic" and "native-endian u32" in str(error)


@pytest.mark.parametrize("fields, words", [({"version": 0}, "version is 0"), ({"generation": 0}, "generation is 0")])
def test_a_segment_never_written_is_not_initialized(tmp_path: Path, fields: dict[str, int], words: str):
    error = _open_error(write_segment(tmp_path / "shm0", **fields))
    assert error.kind == "not_initialized" and words in str(error)


def test_another_layout_version_is_refused(tmp_path: Path):
    error = _open_error(write_segment(tmp_path / "shm0", version=3))
    assert error.kind == "bad_version" and "version 3" in str(error)


@pytest.mark.parametrize(
    "fields, words",
    [
        ({"segment_size": 72}, "too small"),
        ({"segment_size": 16}, "too small"),
        ({"segment_size": 81}, "larger than the file"),
        ({"segment_size": 4096}, "larger than the file"),
    ],
)
def test_a_wrong_segment_size_is_refused(tmp_path: Path, fields: dict[str, int], words: str):
    error = _open_error(write_segment(tmp_path / "shm0", **fields))
    assert error.kind == "bad_size" and words in str(error)


def test_a_larger_segment_is_read_as_the_client_does(tmp_path: Path):
    # The client requires at least header + ClockErrorBound; the rest is padding.
    path = write_segment(tmp_path / "shm0", segment_size=128, length=128, bound_ns=77)
    snapshot = ClockBoundReader(path).snapshot()
    assert (snapshot.segment_size, snapshot.bound_ns) == (128, 77)


@pytest.mark.parametrize("fields, words", [({"status": 4}, "clock status 4"), ({"disruption_support": 2}, "support byte is 2")])
def test_field_values_outside_the_protocol_are_malformed(tmp_path: Path, fields: dict[str, int], words: str):
    reader = ClockBoundReader(write_segment(tmp_path / "shm0", **fields))
    with pytest.raises(ClockBoundError) as raised:
        reader.snapshot()
    assert raised.value.kind == "malformed" and words in str(raised.value)


def test_a_directory_is_not_a_segment(tmp_path: Path):
    error = _open_error(tmp_path)
    assert error.kind == "not_a_file" and "directory" in str(error)


# ---------------------------------------------------------------- the client's now() rules


def snapshot_of(**changes: object) -> SegmentSnapshot:
    # The clock-bound-shm unit tests' record: 10 µs bound, 1 ppm, as-of 0, void-after 10 s.
    fields: dict[str, object] = dict(
        magic_ok=True,
        segment_size=80,
        version=2,
        generation=2,
        as_of=Timespec(0, 0),
        void_after=Timespec(10, 0),
        bound_ns=10_000,
        disruption_marker=0,
        max_drift_ppb=1_000,
        status=ClockStatus.SYNCHRONIZED,
        disruption_support=False,
    )
    fields.update(changes)
    return SegmentSnapshot(**fields)  # type: ignore[arg-type]


def test_the_bound_grows_by_elapsed_time_times_max_drift():
    # clock-bound-shm `compute_bound_ok`: 2 s at 1 ppm adds 2 µs to the 10 µs bound.
    now = snapshot_of().bounded_at(2 * NS, 2 * NS)
    assert (now.earliest_ns, now.latest_ns, now.bound_ns) == (2 * NS - 12_000, 2 * NS + 12_000, 12_000)
    assert now.status is ClockStatus.SYNCHRONIZED
    # `compute_bound_ok_when_real_ahead`: growth follows the monotonic clock, not the realtime one.
    assert snapshot_of().bounded_at(20 * NS, 4 * NS).bound_ns == 14_000


def test_growth_is_truncated_to_whole_nanoseconds_like_the_client():
    # 1.5 s at 333 ppb is 499.5 ns: the client's `as i64` keeps 499.
    assert snapshot_of(max_drift_ppb=333).bounded_at(0, 1_500_000_000).bound_ns == 10_000 + 499


@pytest.mark.parametrize("stored", [ClockStatus.SYNCHRONIZED, ClockStatus.FREE_RUNNING])
def test_a_live_status_holds_for_the_grace_period_then_runs_free_then_is_unknown_past_void_after(stored: ClockStatus):
    snapshot = snapshot_of(status=stored, void_after=Timespec(10, 0))
    assert snapshot.bounded_at(0, 5 * NS - 1).status is stored
    assert snapshot.bounded_at(0, 5 * NS).status is ClockStatus.FREE_RUNNING
    assert snapshot.bounded_at(0, 10 * NS - 1).status is ClockStatus.FREE_RUNNING
    void = snapshot.bounded_at(0, 10 * NS)
    assert void.status is ClockStatus.UNKNOWN and not void.trusted
    assert void.bound_ns == 10_000 + 10_000  # the client still returns an interval, marked Unknown


def test_inside_the_grace_period_the_stored_status_holds_even_past_void_after():
    # The client tests `mono < as_of + grace` before it looks at void-after.
    snapshot = snapshot_of(void_after=Timespec(2, 0))
    assert snapshot.is_void_at(3 * NS)
    assert snapshot.bounded_at(0, 3 * NS).status is ClockStatus.SYNCHRONIZED
    assert snapshot.bounded_at(0, 5 * NS).status is ClockStatus.UNKNOWN


@pytest.mark.parametrize("stored", [ClockStatus.UNKNOWN, ClockStatus.DISRUPTED])
def test_unknown_and_disrupted_are_passed_through(stored: ClockStatus):
    snapshot = snapshot_of(status=stored)
    assert snapshot.bounded_at(0, 1 * NS).status is stored
    assert snapshot.bounded_at(0, 7 * NS).status is stored
    assert not stored.trusted


def test_an_as_of_a_hair_ahead_means_no_growth_and_further_ahead_is_a_causality_breach():
    snapshot = snapshot_of(as_of=Timespec(5, 0))
    assert snapshot.bounded_at(0, 5 * NS - 999).bound_ns == 10_000
    with pytest.raises(ClockBoundError) as raised:
        snapshot.bounded_at(0, 5 * NS - 1_000)
    assert raised.value.kind == "causality"


def test_a_max_drift_of_a_second_per_second_is_malformed():
    with pytest.raises(ClockBoundError) as raised:
        snapshot_of(max_drift_ppb=1_000_000_000).bounded_at(0, 0)
    assert raised.value.kind == "malformed"


# ---------------------------------------------------------------- reader: now() on a live segment


def test_now_brackets_the_realtime_clock(tmp_path: Path):
    reader = ClockBoundReader(live_segment(tmp_path / "shm0", bound_ns=500_000))
    before = time.clock_gettime_ns(time.CLOCK_REALTIME)
    now = reader.now()
    after = time.clock_gettime_ns(time.CLOCK_REALTIME)
    assert now.status is ClockStatus.SYNCHRONIZED and now.trusted
    assert now.earliest_ns <= after and before <= now.latest_ns
    assert 500_000 <= now.bound_ns < 500_000 + 15_000  # under a second of growth at 15 ppm
    assert now.latest_ns - now.earliest_ns == 2 * now.bound_ns
    assert now.earliest <= now.latest


def test_now_keeps_the_last_copy_while_an_update_is_in_progress(tmp_path: Path):
    path = live_segment(tmp_path / "shm0", bound_ns=500_000)
    reader = ClockBoundReader(path)
    assert reader.now().bound_ns >= 500_000
    now = monotonic_ns()
    fields = dict(as_of=divmod(now, NS), void_after=divmod(now + 60 * NS, NS), bound_ns=9_000_000)
    path.write_bytes(segment_bytes(generation=3, **fields))  # odd: the writer is mid-update
    assert reader.now().bound_ns < 9_000_000
    path.write_bytes(segment_bytes(generation=4, **fields))
    assert reader.now().bound_ns >= 9_000_000


def test_now_reports_a_version_change_under_its_feet(tmp_path: Path):
    path = live_segment(tmp_path / "shm0")
    reader = ClockBoundReader(path)
    reader.now()
    path.write_bytes(segment_bytes(version=3))
    with pytest.raises(ClockBoundError) as raised:
        reader.now()
    assert raised.value.kind == "bad_version"


def test_now_refuses_a_segment_that_wants_the_vmclock_checked(tmp_path: Path):
    now = monotonic_ns()
    path = write_segment(
        tmp_path / "shm0", as_of=divmod(now, NS), void_after=divmod(now + 60 * NS, NS), disruption_support=1
    )
    reader = ClockBoundReader(path)
    for _ in range(2):  # the second call must not slip through on the cached copy
        with pytest.raises(ClockBoundError) as raised:
            reader.now()
        assert raised.value.kind == "unsupported" and "VMClock" in str(raised.value)


def test_snapshot_discards_a_copy_during_which_the_generation_moved(tmp_path: Path):
    path = tmp_path / "shm0"
    writer = ClockBoundWriter(path)
    writer.write(record(bound_ns=111))
    reader = ClockBoundReader(path)
    fences: list[int] = []

    def update_during_the_first_copy() -> None:
        fences.append(writer.generation)
        if len(fences) == 1:  # between the first generation read and the copy
            writer.write(record(bound_ns=222))

    reader._fence = update_during_the_first_copy  # type: ignore[method-assign]
    snapshot = reader.snapshot()
    assert len(fences) == 4, "the first copy was thrown away and a second one taken"
    assert (snapshot.generation, snapshot.bound_ns) == (4, 222)
    writer.close()


def test_a_generation_of_zero_seen_mid_read_is_retried_not_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = live_segment(tmp_path / "shm0", bound_ns=333)
    reader = ClockBoundReader(path)
    good = path.read_bytes()
    path.write_bytes(good[:14] + b"\0\0" + good[16:])  # what a torn 255 -> 256 store looks like
    import clockcore.clockbound.reader as reader_module

    monkeypatch.setattr(reader_module.os, "sched_yield", lambda: path.write_bytes(good))
    assert reader.snapshot().bound_ns == 333


def test_a_generation_that_stays_zero_is_not_initialized(tmp_path: Path):
    path = live_segment(tmp_path / "shm0")
    reader = ClockBoundReader(path, max_attempts=5)
    content = path.read_bytes()
    path.write_bytes(content[:14] + b"\0\0" + content[16:])
    with pytest.raises(ClockBoundError) as raised:
        reader.snapshot()
    assert raised.value.kind == "not_initialized"


def test_snapshot_gives_up_on_a_generation_that_stays_odd(tmp_path: Path):
    reader = ClockBoundReader(write_segment(tmp_path / "shm0", generation=5), max_attempts=20)
    with pytest.raises(ClockBoundError) as raised:
        reader.snapshot()
    assert raised.value.kind == "busy" and "20 attempts" in str(raised.value)


def test_now_after_close_is_an_error(tmp_path: Path):
    reader = ClockBoundReader(live_segment(tmp_path / "shm0"))
    reader.close()
    with pytest.raises(ClockBoundError) as raised:
        reader.now()
    assert raised.value.kind == "closed"


def test_now_median_cost_is_within_five_microseconds(tmp_path: Path):
    reader = ClockBoundReader(live_segment(tmp_path / "shm0"))
    now, clock = reader.now, time.perf_counter_ns
    costs = []
    for _ in range(20_000):
        started = clock()
        now()
        costs.append(clock() - started)
    assert statistics.median(costs) <= 5_000
