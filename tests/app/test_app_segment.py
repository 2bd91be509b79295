"""The gate on the ClockBound segment (CLOCK_CLOCKBOUND_SHM): which source answers, and
what happens when the file is missing, late, replaced, broken or void.

Guard-level tests move the source's clocks forward instead of waiting; the API tests run
the app in uvicorn against a segment written from the emulator's readings.
"""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clock_app.guard import ClockCheck, ClockGuard, SourceKind
from clock_app.history import ReadingHistory
from clock_app.settings import load_settings
from clock_app.segment import Stamp
from clockcore import SyncStatus, VerdictReason
from clockcore.clockbound import SegmentRecord, SegmentStatus
from segment_feed import Clocks, SegmentFeed, segment_source

NS = 1_000_000_000


@pytest.fixture
def shm(tmp_path: Path) -> Path:
    return tmp_path / "clockbound" / "shm0"


@pytest.fixture
def feed(shm: Path, emulator) -> Iterator[SegmentFeed]:
    running = SegmentFeed(shm, emulator.metadata_uri)
    try:
        yield running
    finally:
        running.close()


def make_guard(emulator, shm: Path, clocks: Clocks, **kwargs: object) -> ClockGuard:
    settings = load_settings({"ECS_CONTAINER_METADATA_URI_V4": emulator.metadata_uri, "CLOCK_CLOCKBOUND_SHM": str(shm)})
    return ClockGuard(settings, ReadingHistory(50), segment=segment_source(shm, clocks, **kwargs))


def check(guard: ClockGuard) -> ClockCheck:
    return asyncio.run(guard.check())


def admit(guard: ClockGuard) -> Stamp | ClockCheck:
    return asyncio.run(guard.admit())


class CountingStat:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, path: str) -> os.stat_result:
        self.calls += 1
        return os.stat(path)


# ---------------------------------------------------------------- which source answers
def test_the_metadata_endpoint_answers_until_the_segment_exists(emulator, shm, feed):
    clocks = Clocks()
    guard = make_guard(emulator, shm, clocks)
    before = check(guard)
    assert before.verdict.safe and before.source.kind is SourceKind.METADATA
    assert before.source.segment_path == str(shm) and "no file at" in (before.source.note or "")
    assert emulator.task_requests == 1

    feed.sample()  # the worker starts and writes its first record
    assert check(guard).source.kind is SourceKind.METADATA  # not looked at again within the second
    clocks.advance(1.0)
    after = check(guard)
    assert after.source.kind is SourceKind.CLOCKBOUND and after.verdict.safe
    assert after.reading is None and after.segment is not None and after.bounded is not None
    assert emulator.task_requests == 2  # the feed's one; the guard asked the endpoint only before


def test_the_path_is_looked_at_once_per_second_whatever_the_request_rate(emulator, shm, feed):
    feed.sample()
    clocks, stat = Clocks(), CountingStat()
    guard = make_guard(emulator, shm, clocks, stat_path=stat)
    for _ in range(2000):
        assert isinstance(admit(guard), tuple)  # a stamp: (earliest, latest, status, bound_ms)
    assert stat.calls == 1
    clocks.advance(1.0)
    admit(guard)
    assert stat.calls == 2


def test_a_created_but_unwritten_segment_is_not_a_source_yet(emulator, shm, feed):
    feed.writer  # noqa: B018 - the worker has created the file, nothing written yet
    clocks = Clocks()
    guard = make_guard(emulator, shm, clocks)
    first = check(guard)
    assert first.source.kind is SourceKind.METADATA and "holds no record yet" in (first.source.note or "")
    feed.sample()
    clocks.advance(1.0)
    assert check(guard).source.kind is SourceKind.CLOCKBOUND


def test_a_removed_file_hands_the_checks_back_to_the_metadata_endpoint(emulator, shm, feed):
    feed.sample()
    clocks = Clocks()
    guard = make_guard(emulator, shm, clocks)
    assert check(guard).source.kind is SourceKind.CLOCKBOUND
    feed.close()
    shm.unlink()
    clocks.advance(1.0)
    back = check(guard)
    assert back.source.kind is SourceKind.METADATA and back.verdict.safe


def test_a_file_replaced_under_the_same_name_is_reopened(emulator, shm, feed):
    feed.sample()
    clocks = Clocks()
    guard = make_guard(emulator, shm, clocks)
    first = check(guard)
    feed.close()
    shm.unlink()  # a new inode at the same path: the old mapping would never change again
    replacement = SegmentFeed(shm, emulator.metadata_uri)
    try:
        emulator.set_scenario("high_bound")
        replacement.sample()
        clocks.advance(1.0)
        second = check(guard)
    finally:
        replacement.close()
    assert first.verdict.safe
    assert second.source.kind is SourceKind.CLOCKBOUND and second.verdict.reasons == (VerdictReason.BOUND_OVER_THRESHOLD,)


# ---------------------------------------------------------------- the cached verdict
def test_a_safe_verdict_is_reused_until_a_new_record_or_its_end(emulator, shm, feed):
    feed.sample()
    clocks = Clocks()
    guard = make_guard(emulator, shm, clocks)
    source = guard._segment
    assert source is not None
    first = source.current(clocks.monotonic_ns())
    assert first is not None and first.verdict.safe and first.judgement is not None
    assert source.current(clocks.monotonic_ns()) is first  # nothing judged again
    # A new record (a new generation) is judged afresh.
    feed.sample()
    second = source.current(clocks.monotonic_ns())
    assert second is not first and second is not None and second.snapshot.generation == first.snapshot.generation + 2
    # Just before the verdict stops holding it is still the same; at that instant it is judged again.
    assert second.judgement is not None
    end = second.judgement.valid_until_ns
    assert source.current(end - 1) is second
    third = source.current(end)
    assert third is not second and third is not None and not third.verdict.safe


def test_a_writer_caught_mid_update_leaves_the_last_copy_in_use(emulator, shm, feed):
    feed.sample()
    clocks = Clocks()
    guard = make_guard(emulator, shm, clocks)
    assert check(guard).verdict.safe
    with open(shm, "r+b") as raw:  # the generation word, odd: an update in progress
        generation = struct.unpack("=H", raw.read(16)[14:16])[0]
        raw.seek(14)
        raw.write(struct.pack("=H", generation + 1))
    during = check(guard)
    assert during.verdict.safe and during.segment is not None and during.segment.snapshot.generation == generation


def test_a_void_segment_is_metadata_unavailable_saying_so(emulator, shm, feed):
    feed.sample()
    clocks = Clocks()
    guard = make_guard(emulator, shm, clocks)
    record = feed.last_record
    assert record is not None
    clocks.advance((record.void_after_ns - clocks.monotonic_ns()) / NS + 0.01)
    void = admit(guard)
    assert isinstance(void, ClockCheck) and void.verdict.reasons == (VerdictReason.METADATA_UNAVAILABLE,)
    assert f"ClockBound segment {shm} is void since" in void.verdict.details[0]
    assert void.error_kind == "clockbound_void" and void.bounded is None and void.now is None


# ---------------------------------------------------------------- broken files
def _foreign(path: Path) -> None:
    path.write_bytes(b"<html>not a segment</html>" + bytes(80))


def _folder(path: Path) -> None:
    path.mkdir()


def _rewritten(path: Path, offset: int, value: bytes) -> None:
    """A field changed in place under a new generation, as a writer publishes a change."""
    data = bytearray(path.read_bytes())
    data[offset : offset + len(value)] = value
    data[14:16] = struct.pack("=H", struct.unpack("=H", bytes(data[14:16]))[0] + 2)
    path.write_bytes(bytes(data))


def _version_3(path: Path) -> None:
    _rewritten(path, 12, struct.pack("=H", 3))


def _status_9(path: Path) -> None:
    _rewritten(path, 68, struct.pack("=i", 9))


@pytest.mark.parametrize(
    ("breaks", "kind", "fragment"),
    [
        (_foreign, "clockbound_bad_magic", "cannot be opened: not a ClockBound segment: magic is"),
        (_folder, "clockbound_not_a_file", "cannot be opened: is not a regular file"),
        (_version_3, "clockbound_bad_version", "layout version 3 is not supported"),
        (_status_9, "clockbound_malformed", "cannot be read: clock status 9 is not one of 0 to 3"),
    ],
)
def test_a_file_that_is_not_a_readable_segment_is_a_clear_unsafe_reason(emulator, shm, feed, breaks, kind, fragment):
    feed.sample()
    clocks = Clocks()
    guard = make_guard(emulator, shm, clocks)
    assert check(guard).verdict.safe
    feed.close()
    if breaks in (_foreign, _folder):
        shm.unlink()  # a different file at the path
    breaks(shm)
    clocks.advance(1.0)
    broken = check(guard)
    refused = admit(guard)
    assert broken.source.kind is SourceKind.CLOCKBOUND
    assert broken.verdict.reasons == (VerdictReason.METADATA_UNAVAILABLE,)
    assert broken.error_kind == kind and fragment in broken.verdict.details[0], broken.verdict.details
    assert broken.verdict.details[0].startswith(f"ClockBound segment {shm} ")
    assert isinstance(refused, ClockCheck) and refused.verdict == broken.verdict

    # Repaired: a good segment again, found by the next look.
    if shm.is_dir():
        shm.rmdir()
    else:
        shm.unlink()
    repaired = SegmentFeed(shm, emulator.metadata_uri)
    try:
        repaired.sample()
        clocks.advance(1.0)
        assert check(guard).verdict.safe
    finally:
        repaired.close()


def test_a_segment_that_shrinks_is_let_go_before_it_is_read(emulator, shm, feed):
    feed.sample()
    clocks = Clocks()
    guard = make_guard(emulator, shm, clocks)
    assert check(guard).verdict.safe
    os.truncate(shm, 40)  # the mapping's page still exists; a read past the file's end would not
    clocks.advance(1.0)
    shrunk = check(guard)
    assert shrunk.verdict.reasons == (VerdictReason.METADATA_UNAVAILABLE,)
    assert "shrank to 40 bytes" in shrunk.verdict.details[0] and shrunk.error_kind == "clockbound_bad_size"


# ---------------------------------------------------------------- the stamp
def test_the_stamp_is_bounded_by_the_segment_at_the_verdicts_instant(emulator, shm, feed):
    now = Clocks().monotonic_ns()
    record = SegmentRecord(
        as_of_ns=now, void_after_ns=now + 30 * NS, bound_ns=400_000, max_drift_ppb=50_000, status=SegmentStatus.SYNCHRONIZED
    )
    feed.write(record)
    stamp = admit(make_guard(emulator, shm, Clocks()))
    assert isinstance(stamp, tuple)
    earliest_us, latest_us, status, bound_ms = stamp
    assert type(earliest_us) is int and type(latest_us) is int  # microseconds since the epoch
    assert status == SyncStatus.SYNCHRONIZED.value and type(status) is str  # the value the answer serializes
    assert 0.4 <= bound_ms < 0.41  # 0.4 ms grown for the moments since as-of
    # [now - bound, now + bound], rounded outwards to whole microseconds.
    assert 2 * bound_ms <= (latest_us - earliest_us) / 1000 <= 2 * bound_ms + 0.002


# ---------------------------------------------------------------- through the API
def test_the_api_says_the_segment_answered(serve_app, emulator, shm, feed):
    feed.sample()
    app = serve_app(clockbound_shm=str(shm))
    with app.client() as client:
        clock = client.get("/api/clock").json()
        operation = client.post("/api/operations", json={"label": "from-the-segment"})
        ready = client.get("/readyz")
        commit = client.post("/api/commit", json={"label": "order-1"})
        history = client.get("/api/history").json()["readings"]
    assert clock["verdict"] == "SAFE"
    assert clock["source"] == {
        "kind": "clockbound",
        "description": f"ClockBound segment {shm}",
        "segment_path": str(shm),
        "note": None,
    }
    reading = clock["reading"]
    assert reading["task"] is None and reading["status"] == "SYNCHRONIZED"
    assert reading["bound_ms"] == pytest.approx(0.446932) and reading["max_drift_ppm"] == 50
    assert 0 <= reading["reference_age_s"] < 5 and reading["effective_bound_ms"] < 1
    segment = clock["segment"]
    assert segment["path"] == str(shm) and segment["stored_status"] == "Synchronized" and segment["void"] is False
    assert segment["generation"] == 2 and segment["void_after_in_s"] > 0
    assert clock["error"] is None and clock["bounded_now"]["earliest"] < clock["bounded_now"]["latest"]
    assert operation.status_code == 200 and operation.json()["stamped"]["bound_ms"] <= 1.0
    assert ready.status_code == 200 and ready.json()["source"]["kind"] == "clockbound"
    assert commit.status_code == 200
    body = commit.json()
    assert body["visible_at"]["earliest"] > body["timestamp"]
    assert [entry["source"] for entry in history] == ["clockbound"]
    assert emulator.task_requests == 1  # the feed's; the app never asked the endpoint


def test_the_api_refuses_with_the_segments_reasons(serve_app, emulator, shm, feed):
    emulator.set_scenario("high_bound")
    feed.sample()
    app = serve_app(clockbound_shm=str(shm))
    with app.client() as client:
        refused = client.post("/api/operations", json={"label": "x"})
        clock = client.get("/api/clock").json()
        ready = client.get("/readyz")
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert refused.json()["reasons"] == ["bound_over_threshold"] and refused.json()["source"] == "clockbound"
    assert clock["reasons"] == ["bound_over_threshold"] and clock["reading"]["bound_ms"] == pytest.approx(5.000001)
    assert ready.status_code == 503 and ready.json()["source"]["kind"] == "clockbound"


def test_the_api_names_an_unreadable_segment(serve_app, emulator, shm):
    shm.parent.mkdir(parents=True)
    shm.write_bytes(b"\x00" * 8 + b"not a segment at all" * 4)
    app = serve_app(clockbound_shm=str(shm))
    with app.client() as client:
        clock = client.get("/api/clock").json()
        refused = client.post("/api/operations", json={"label": "x"})
    assert clock["verdict"] == "UNSAFE" and clock["reasons"] == ["metadata_unavailable"]
    assert clock["error"]["kind"] == "clockbound_bad_magic"
    assert clock["error"]["message"].startswith(f"ClockBound segment {shm} cannot be opened: not a ClockBound segment")
    assert clock["reading"] is None and clock["segment"] is None and clock["bounded_now"] is None
    assert refused.status_code == 503 and refused.json()["source"] == "clockbound"
    assert emulator.task_requests == 0


def test_the_api_falls_back_to_the_metadata_endpoint_without_a_segment(serve_app, emulator, shm):
    app = serve_app(clockbound_shm=str(shm))
    with app.client() as client:
        clock = client.get("/api/clock").json()
    assert clock["verdict"] == "SAFE" and clock["source"]["kind"] == "metadata"
    assert clock["source"]["segment_path"] == str(shm) and "no file at" in clock["source"]["note"]
    assert clock["reading"]["task"]["task_id"] == "0123456789abcdef0123456789abcdef" and clock["segment"] is None


def test_without_the_setting_the_source_is_the_metadata_endpoint(live_app):
    with live_app.client() as client:
        source = client.get("/api/clock").json()["source"]
    assert source == {"kind": "metadata", "description": "task metadata endpoint", "segment_path": None, "note": None}


def test_history_has_one_entry_per_record_not_per_request(serve_app, emulator, shm, feed):
    feed.sample()
    app = serve_app(clockbound_shm=str(shm))
    with httpx.Client(base_url=app.url, timeout=10) as client:
        for _ in range(20):
            client.post("/api/operations", json={"label": "x"})
        feed.sample()
        for _ in range(20):
            client.post("/api/operations", json={"label": "x"})
        readings = client.get("/api/history").json()["readings"]
    assert len(readings) == 2 and all(entry["safe"] and entry["source"] == "clockbound" for entry in readings)


def test_stamps_round_outwards_to_whole_microseconds_at_any_instant():
    """The stamp's instants are integers: earliest rounds down, latest up, exactly, from
    1970 to past 2106 (where a float division would no longer give the microsecond); the
    BoundedTime made from them holds the same microseconds."""
    import random
    from datetime import datetime, timedelta, timezone

    from clock_app.segment import SegmentRead, SegmentSource
    from clockcore import SyncStatus, Verdict

    def record(bound_ns: int) -> SegmentRead:
        return SegmentRead(
            path="p", snapshot=None, judgement=None, verdict=Verdict(True), problem=None,
            as_of_ns=0, bound_ns=bound_ns, max_drift_ppb=0, sync_status=SyncStatus.SYNCHRONIZED,
        )  # fmt: skip

    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    source = SegmentSource("p", limits=None)  # type: ignore[arg-type]  # bounded() reads no limits
    generator = random.Random(7)
    now_ns = Clocks().realtime_ns()
    instants = [now_ns + generator.randrange(-(10**15), 10**15) for _ in range(5_000)]
    instants += [generator.randrange(0, 2**37 * 10**9) for _ in range(5_000)]
    for realtime_ns in instants + [2**32 * 10**9 - 1000, 2**32 * 10**9, 999, 0]:
        bound_ns = generator.randrange(0, 2_000_000)
        earliest_us, latest_us, _, bound_ms = SegmentSource.stamp(record(bound_ns), realtime_ns, 0)
        assert earliest_us == (realtime_ns - bound_ns) // 1000
        assert latest_us == -(-(realtime_ns + bound_ns) // 1000)
        assert bound_ms == bound_ns / 1e6
        bounded = source.bounded(record(bound_ns), realtime_ns, 0)
        assert bounded.earliest == epoch + timedelta(microseconds=earliest_us)
        assert bounded.latest == epoch + timedelta(microseconds=latest_us)
    stamp = SegmentSource.stamp(record(1), 1_700_000_000_000_000_500, 0)
    assert stamp[:2] == (1_700_000_000_000_000, 1_700_000_000_000_001)


class ScriptedClocks:
    """Both clocks held at values a test sets."""

    def __init__(self, monotonic_ns: int, realtime_ns: int) -> None:
        self.monotonic = monotonic_ns
        self.realtime = realtime_ns

    def monotonic_ns(self) -> int:
        return self.monotonic

    def realtime_ns(self) -> int:
        return self.realtime


def test_the_hot_path_stamps_exactly_as_stamp_at(emulator, shm, feed):
    """try_admit's hot path computes stamp_at inline: the same stamp at the same readings,
    across ages, bounds, drifts and sub-microsecond instants (the outward rounding)."""
    import random

    from clock_app.segment import stamp_at

    generator = random.Random(11)
    base = Clocks().monotonic_ns()
    clocks = ScriptedClocks(base, Clocks().realtime_ns())
    settings = load_settings({"ECS_CONTAINER_METADATA_URI_V4": emulator.metadata_uri, "CLOCK_CLOCKBOUND_SHM": str(shm)})
    source = segment_source(shm, clocks)  # type: ignore[arg-type]  # any object with the two clocks
    guard = ClockGuard(settings, ReadingHistory(50), segment=source)
    hot_stamps = 0
    for case in range(400):
        age_ns = generator.randrange(0, 4 * NS)
        bound_ns = generator.randrange(0, 600_000)
        drift_ppb = generator.choice([0, 1, 1_000, 50_000, 99_999])
        feed.write(
            SegmentRecord(
                as_of_ns=base - age_ns, void_after_ns=base + 60 * NS, bound_ns=bound_ns,
                max_drift_ppb=drift_ppb, status=SegmentStatus.SYNCHRONIZED,
            )
        )  # fmt: skip
        clocks.realtime += generator.randrange(1, 10**9)
        first = guard.try_admit()  # a new generation: judged, then armed
        if not isinstance(first, tuple):
            continue  # this record's bound is over the threshold: UNSAFE, nothing to compare
        assert source.hot is not None, case
        # Later instants within the hot window (the verdict holding, the next look not due).
        clocks.monotonic += generator.randrange(0, 50_000_000)
        clocks.realtime += generator.randrange(0, 50_000_000)
        if clocks.monotonic >= source.hot[0]:
            continue
        hot = guard.try_admit()
        assert hot == stamp_at(base - age_ns, bound_ns, drift_ppb, "SYNCHRONIZED", clocks.realtime, clocks.monotonic), (
            case
        )
        assert isinstance(hot, tuple) and type(hot[2]) is str  # the plain value the answer serializes
        hot_stamps += 1
    assert hot_stamps > 200  # the comparison ran, on most cases


def test_a_record_whose_as_of_is_ahead_is_not_armed_for_the_hot_path(emulator, shm, feed):
    """The hot path assumes elapsed >= 0. The judgement forgives an as-of up to 1 µs ahead
    (CAUSALITY_BLUR_NS); such a record is stamped through stamp_at until the clock passes it."""
    clocks = ScriptedClocks(Clocks().monotonic_ns(), Clocks().realtime_ns())
    settings = load_settings({"ECS_CONTAINER_METADATA_URI_V4": emulator.metadata_uri, "CLOCK_CLOCKBOUND_SHM": str(shm)})
    source = segment_source(shm, clocks)  # type: ignore[arg-type]
    guard = ClockGuard(settings, ReadingHistory(50), segment=source)
    feed.write(
        SegmentRecord(
            as_of_ns=clocks.monotonic + 500, void_after_ns=clocks.monotonic + 60 * NS, bound_ns=200_000,
            max_drift_ppb=50_000, status=SegmentStatus.SYNCHRONIZED,
        )
    )  # fmt: skip
    stamp = guard.try_admit()
    assert isinstance(stamp, tuple) and source.hot is None
    assert stamp[3] == 0.2  # no growth before as-of
    clocks.monotonic += 1_000  # past as-of now: armed at the next look at this record
    assert isinstance(guard.try_admit(), tuple) and source.hot is not None


def test_the_gates_monotonic_reading_is_never_behind_the_clock_the_segment_is_written_in():
    """The gate reads CLOCK_MONOTONIC where the writer stamps CLOCK_MONOTONIC_COARSE: the
    same clock, the coarse one up to a tick behind. Read in that order, the gate's reading
    is never earlier, so its elapsed times, grown bounds and expiries only err safe."""
    import time

    from clock_app.segment import SegmentSource
    from clockcore.clockbound.reader import CLOCK_MONOTONIC_COARSE

    source = SegmentSource("unused", limits=None)  # type: ignore[arg-type]  # only its clock is read
    tick_ns = round(time.clock_getres(CLOCK_MONOTONIC_COARSE) * 1e9)
    for _ in range(20_000):
        coarse = time.clock_gettime_ns(CLOCK_MONOTONIC_COARSE)
        fine = source.monotonic_ns()
        assert coarse <= fine < coarse + tick_ns + 50_000_000  # ahead by under a tick (plus scheduling)
