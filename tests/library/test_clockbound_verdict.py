"""The verdict on a ClockBound segment: the metadata path's reasons for the same clock
state, and an exact "valid until" instant.

Records come from the worker's own mapping (`SegmentPublisher`) at fixed instants, so
each expectation compares the segment's verdict with `judge` on the very reading the
record was made from.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clockcore import judge
from clockcore.clockbound import Instant, SegmentPublisher, SegmentRecord, SegmentStatus
from clockcore.clockbound.reader import ClockStatus, SegmentSnapshot, Timespec
from clockcore.clockbound.verdict import FOREVER_NS, SegmentLimits, grown_bound_ns, judge_segment
from clockcore.reading import ClockReading, SyncStatus, TaskIdentity
from clockcore.verdict import VerdictReason

NS = 1_000_000_000
TICK = 4_000_000
INTERVAL_S = 1.0
MAX_AGE_S = 120.0
THRESHOLD_MS = 1.0
PATH = "/run/clockbound/shm0"
AT = Instant(real=datetime(2026, 3, 1, 12, 0, 10, 250_000, tzinfo=timezone.utc), monotonic_ns=5_000 * NS)
LIMITS = SegmentLimits.of(threshold_ms=THRESHOLD_MS, max_reference_age_s=MAX_AGE_S, reference_allowance_ns=NS + TICK)
IDENTITY = TaskIdentity("cluster", "task", "family")


def later(instant: Instant, seconds: float) -> Instant:
    return Instant(instant.real + timedelta(seconds=seconds), instant.monotonic_ns + round(seconds * NS))


def reading(status: SyncStatus = SyncStatus.SYNCHRONIZED, *, bound_ms: float = 0.446931, age_s: float = 0.25, ppm: float = 50.0) -> ClockReading:
    return ClockReading(
        sampled_at=AT.real,
        bound_ms=bound_ms,
        status=status,
        reference_time=AT.real - timedelta(seconds=age_s),
        max_drift_ppm=ppm,
        identity=IDENTITY,
    )


def snapshot_of(record: SegmentRecord, *, generation: int = 2, magic_ok: bool = True) -> SegmentSnapshot:
    """What a reader would copy out of the segment after the writer wrote `record`."""
    return SegmentSnapshot(
        magic_ok=magic_ok,
        segment_size=80,
        version=2,
        generation=generation,
        as_of=Timespec(*divmod(record.as_of_ns, NS)),
        void_after=Timespec(*divmod(record.void_after_ns, NS)),
        bound_ns=record.bound_ns,
        disruption_marker=record.disruption_marker,
        max_drift_ppb=record.max_drift_ppb,
        status=ClockStatus(int(record.status)),
        disruption_support=record.disruption_support,
    )


def published(*readings: ClockReading, at: Instant = AT) -> SegmentSnapshot:
    """The segment after a fresh publisher saw `readings` in turn, all at `at`."""
    publisher = SegmentPublisher(interval_s=INTERVAL_S, max_reference_age_s=MAX_AGE_S, tick_ns=TICK)
    record = None
    for each in readings:
        record = publisher.record_for(each, at=at) or record
    assert record is not None
    return snapshot_of(record)


def judged(snapshot: SegmentSnapshot, at: Instant, limits: SegmentLimits = LIMITS):
    return judge_segment(snapshot, monotonic_ns=at.monotonic_ns, limits=limits, path=PATH)


def metadata_verdict(source: ClockReading, at: Instant):
    return judge(source, at=at.real, threshold_ms=THRESHOLD_MS, max_reference_age_s=MAX_AGE_S)


def test_a_fresh_synchronized_segment_is_safe_until_its_first_threshold():
    snapshot = published(reading())
    result = judged(snapshot, AT)
    assert result.verdict.safe and result.trusted and not result.void
    # The reference is 0.25 s old; the mapping put as-of 1 s and a tick before it, and the age takes that back.
    assert result.reference_age_ns == 250_000_000
    assert result.effective_bound_ns == grown_bound_ns(446_932, 50_000, 1_254_000_000)
    # Void-after (three 1 s intervals) comes before the bound reaches 1 ms (about 11 s) or the age limit.
    assert result.valid_until_ns == snapshot.void_after.ns == AT.monotonic_ns + 3 * NS


def test_valid_until_is_the_exact_instant_the_verdict_changes():
    # A long void-after, so the bound crossing comes first: 0.446932 ms + elapsed x 50 ppm > 1 ms.
    snapshot = replace(published(reading()), void_after=Timespec(10**6, 0))
    result = judged(snapshot, AT)
    crossing = result.valid_until_ns
    just_before = judge_segment(snapshot, monotonic_ns=crossing - 1, limits=LIMITS, path=PATH)
    at_crossing = judge_segment(snapshot, monotonic_ns=crossing, limits=LIMITS, path=PATH)
    assert just_before.verdict.safe and just_before.effective_bound_ns <= 1_000_000
    assert at_crossing.verdict.reasons == (VerdictReason.BOUND_OVER_THRESHOLD,)
    assert at_crossing.effective_bound_ns == 1_000_001


def test_valid_until_is_the_age_limit_when_that_comes_first():
    snapshot = replace(published(reading(ppm=0.0)), void_after=Timespec(10**6, 0))
    result = judged(snapshot, AT)
    assert result.verdict.safe
    before = judge_segment(snapshot, monotonic_ns=result.valid_until_ns - 1, limits=LIMITS, path=PATH)
    after = judge_segment(snapshot, monotonic_ns=result.valid_until_ns, limits=LIMITS, path=PATH)
    assert before.verdict.safe and before.reference_age_ns == 120 * NS
    assert after.verdict.reasons == (VerdictReason.REFERENCE_TOO_OLD,)


@pytest.mark.parametrize(
    ("readings", "reasons", "fragment"),
    [
        ((reading(bound_ms=5.0),), [VerdictReason.BOUND_OVER_THRESHOLD], "effective clock error bound 5.06"),
        # NOT_SYNCHRONIZED after a synchronized reading: FreeRunning, growing the last synchronized bound.
        ((reading(), reading(SyncStatus.NOT_SYNCHRONIZED, bound_ms=0.3)), [VerdictReason.NOT_SYNCHRONIZED], "segment status FreeRunning"),
        # ... and never synchronized: Unknown, which the metadata path also calls not_synchronized.
        ((reading(SyncStatus.NOT_SYNCHRONIZED, bound_ms=0.3),), [VerdictReason.NOT_SYNCHRONIZED], "Unknown: not synchronized yet"),
        ((reading(SyncStatus.UNKNOWN, bound_ms=0.3),), [VerdictReason.NOT_SYNCHRONIZED], "status is UNKNOWN"),
        (
            (reading(SyncStatus.NOT_SYNCHRONIZED, bound_ms=12.5),),
            [VerdictReason.NOT_SYNCHRONIZED, VerdictReason.BOUND_OVER_THRESHOLD],
            "exceeds the 1 ms threshold",
        ),
        # A stale reference: the mapping voids the record at once (its age cap); the age speaks.
        ((reading(age_s=600, ppm=0.0),), [VerdictReason.REFERENCE_TOO_OLD], "clock reference is 600 s old (limit 120 s)"),
        (
            (reading(age_s=600),),
            [VerdictReason.BOUND_OVER_THRESHOLD, VerdictReason.REFERENCE_TOO_OLD],
            "clock reference is 600 s old",
        ),
    ],
)
def test_reasons_are_the_metadata_paths_for_the_same_reading(readings, reasons, fragment):
    result = judged(published(*readings), AT)
    assert list(result.verdict.reasons) == reasons
    assert any(fragment in detail for detail in result.verdict.details), result.verdict.details
    assert result.trusted
    last = readings[-1]
    if last.status is not SyncStatus.NOT_SYNCHRONIZED or len(readings) == 1:
        # Same reading, same reasons (FreeRunning keeps the older bound, so only its status reason is compared).
        assert list(metadata_verdict(last, AT).reasons) == reasons


def test_the_same_sentences_as_the_metadata_path():
    source = reading(bound_ms=5.0, age_s=0.0, ppm=0.0)
    segment = judged(published(source), AT)
    assert segment.verdict.details == metadata_verdict(source, AT).details == ("effective clock error bound 5.000 ms exceeds the 1 ms threshold",)


def test_a_void_segment_with_a_young_reference_is_metadata_unavailable_alone():
    snapshot = published(reading())
    void_at = later(AT, 3.5)
    result = judged(snapshot, void_at)
    assert result.verdict.reasons == (VerdictReason.METADATA_UNAVAILABLE,)
    assert result.verdict.details == (f"ClockBound segment {PATH} is void since 0.5 s: its writer stopped updating it (void-after passed)",)
    assert result.void and not result.trusted and result.problem == "void"
    # A void segment says nothing about the bound, however far it grew (as judge(None) says nothing).
    grown = judged(snapshot, later(AT, 60))
    assert grown.verdict.reasons == (VerdictReason.METADATA_UNAVAILABLE,) and grown.effective_bound_ns > 1_000_000
    # Once the last reference is too old, that is the reason (the metadata path's for that reading).
    stale = judged(snapshot, later(AT, 121))
    assert list(stale.verdict.reasons) == [VerdictReason.BOUND_OVER_THRESHOLD, VerdictReason.REFERENCE_TOO_OLD]
    # The void verdict holds until then: the reference (0.25 s old at AT) turns 120 s old.
    assert result.valid_until_ns == AT.monotonic_ns + 119_750_000_000 + 1


def test_the_age_cap_voids_a_record_one_second_early():
    # void-after = as-of + 120 s, and as-of is 1 s + a tick before the reference: the record
    # goes void while the metadata path, counting from the reference, still has 1 s to go.
    snapshot = published(reading(ppm=0.0))
    snapshot = replace(snapshot, void_after=Timespec(*divmod(snapshot.as_of.ns + 120 * NS, NS)))
    at = Instant(AT.real, snapshot.void_after.ns)
    result = judged(snapshot, at)
    assert result.verdict.reasons == (VerdictReason.METADATA_UNAVAILABLE,) and result.problem == "void"
    assert result.reference_age_ns == 120 * NS - NS - TICK


@pytest.mark.parametrize(
    ("changes", "problem", "fragment"),
    [
        ({"status": ClockStatus.DISRUPTED}, "disrupted", "clock status Disrupted"),
        ({"disruption_support": True}, "unsupported", "disruption support on"),
        ({"max_drift_ppb": 1_000_000_000}, "malformed", "max drift of 1000000000 ppb"),
        ({"magic_ok": False}, "malformed", "magic number changed"),
        ({"as_of": Timespec(AT.monotonic_ns // NS + 10, 0)}, "causality", "as-of 10.000 s ahead"),
    ],
)
def test_records_that_must_not_be_trusted_are_metadata_unavailable_alone(changes, problem, fragment):
    # A bound far over the threshold too: an untrusted record's bound is not judged.
    snapshot = replace(published(reading(bound_ms=50.0)), **changes)
    result = judged(snapshot, AT)
    assert result.verdict.reasons == (VerdictReason.METADATA_UNAVAILABLE,)
    assert result.problem == problem and not result.trusted
    assert result.verdict.details[0].startswith(f"ClockBound segment {PATH} ") and fragment in result.verdict.details[0]


def test_an_untrusted_record_holds_forever_when_nothing_can_change_it():
    snapshot = replace(published(reading(bound_ms=50.0)), status=ClockStatus.DISRUPTED)
    assert judged(snapshot, AT).valid_until_ns == FOREVER_NS


def test_limits_are_exact_decimal_values():
    limits = SegmentLimits.of(threshold_ms=0.3, max_reference_age_s=0.1, reference_allowance_ns=0)
    assert (limits.threshold_ns, limits.max_reference_age_ns) == (300_000, 100_000_000)


@settings(max_examples=300, deadline=None)
@given(
    status=st.sampled_from([SyncStatus.SYNCHRONIZED, SyncStatus.NOT_SYNCHRONIZED, SyncStatus.UNKNOWN]),
    bound_ms=st.floats(min_value=0.0, max_value=3.0),
    age_s=st.floats(min_value=0.0, max_value=200.0),
    ppm=st.sampled_from([0.0, 1.0, 15.0, 50.0, 200.0]),
    after_s=st.floats(min_value=0.0, max_value=2.9),
)
def test_a_fresh_segment_agrees_with_the_metadata_path(status, bound_ms, age_s, ppm, after_s):
    """A record from one reading, judged before its writer could have missed a write:
    the reasons `judge` gives that reading, away from the edges the mapping moves by its
    conservative roundings (a nanosecond of bound, the 1 s + tick of as-of)."""
    source = reading(status, bound_ms=bound_ms, age_s=age_s, ppm=ppm)
    snapshot = published(source)
    at = later(AT, after_s)
    effective_ms = source.effective_bound_ms_at(at.real)
    reference_age_s = source.reference_age_s_at(at.real)
    assert reference_age_s is not None
    near_bound_edge = abs(effective_ms - THRESHOLD_MS) < (NS + TICK) / NS * ppm * 0.001 + 2e-6
    near_age_edge = MAX_AGE_S - 1.1 <= reference_age_s <= MAX_AGE_S + 0.01
    if near_bound_edge or near_age_edge:
        return
    assert judged(snapshot, at).verdict.reasons == metadata_verdict(source, at).reasons


def test_the_readers_generation_is_the_word_as_it_is_now(tmp_path):
    from clockcore.clockbound import ClockBoundReader, ClockBoundWriter

    record = SegmentPublisher(interval_s=INTERVAL_S, max_reference_age_s=MAX_AGE_S).record_for(reading(), at=AT)
    assert record is not None
    with ClockBoundWriter(tmp_path / "shm0") as writer:
        writer.write(record)
        with ClockBoundReader(tmp_path / "shm0") as reader:
            assert reader.generation == reader.snapshot().generation == 2
            writer.write(record)
            assert reader.generation == 4  # seen without taking a copy
        with pytest.raises(ValueError, match="the reader is closed"):
            reader.generation  # noqa: B018


def test_the_header_words_show_the_generation_in_place_until_the_reader_closes(tmp_path):
    """The hot path's load (the app's gate): the generation word read through the header
    view follows every write with no call, and the view is gone once the reader closes."""
    from clockcore.clockbound import ClockBoundReader, ClockBoundWriter
    from clockcore.clockbound.reader import GENERATION_WORD

    record = SegmentPublisher(interval_s=INTERVAL_S, max_reference_age_s=MAX_AGE_S).record_for(reading(), at=AT)
    assert record is not None
    with ClockBoundWriter(tmp_path / "shm0") as writer:
        writer.write(record)
        with ClockBoundReader(tmp_path / "shm0") as reader:
            words = reader.header_words()
            assert words[GENERATION_WORD] == reader.generation == 2
            writer.write(record)
            assert words[GENERATION_WORD] == 4
        with pytest.raises(ValueError):
            words[GENERATION_WORD]  # noqa: B018 - released with the reader
