"""Both sources through every emulator scenario: the same verdicts and reasons for the
same clock state, and the one documented difference, failures.

For each scenario two apps run against the same emulator: one reads the ClockBound
segment (CLOCK_CLOCKBOUND_SHM), one only the metadata endpoint. The segment is written
the way the worker writes it (`SegmentFeed`: the worker's sampler, `SegmentPublisher`,
`ClockBoundWriter`), first from an "ok" reading (the worker ran before the scenario
began), then from the scenario's own reading.

- A scenario that gives a reading: both apps answer with the same verdict, the same
  reasons and the same sentences (numbers aside: the segment's bound grows from an as-of
  one second before the reference, so it reads slightly higher; and the segment may add
  its own status in brackets).
- A scenario whose sample fails (http_500, garbage, no_clock_drift, slow): the worker
  writes nothing, so the segment keeps its last good record: the segment app stays SAFE
  with the bound growing until void-after, while the metadata app is UNSAFE
  (metadata_unavailable) at once. After void-after both are UNSAFE metadata_unavailable.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from emulator.server import SCENARIOS
from segment_feed import SegmentFeed

INTERVAL_S = 1.0  # the feed's interval: its records are void three intervals after each write


@dataclass(frozen=True)
class Case:
    values: dict[str, object]
    reasons: list[str]  # both apps' reasons; empty: SAFE
    error_kind: str | None = None  # failures: the metadata app's SampleError kind


CASES: dict[str, Case] = {
    "ok": Case({}, []),
    "high_bound": Case({}, ["bound_over_threshold"]),
    # Just under the threshold, so the clock state is the same on both sides (the segment
    # keeps the last synchronized bound while free-running: see the test further down).
    "unsynchronized": Case({"bound_ms": 0.3}, ["not_synchronized"]),
    "bound_omitted": Case({}, []),
    "stale_reference": Case({"stale_s": 600}, ["bound_over_threshold", "reference_too_old"]),
    "no_clock_drift": Case({}, ["metadata_unavailable"], "no_clock_drift"),
    "garbage": Case({}, ["metadata_unavailable"], "not_json"),
    "http_500": Case({}, ["metadata_unavailable"], "http_status"),
    "slow": Case({}, ["metadata_unavailable"], "timeout"),  # 3 s: past both readers' timeouts
}


def test_every_emulator_scenario_is_compared():
    assert set(CASES) == set(SCENARIOS)


@dataclass
class Pair:
    segment: httpx.Client  # the app reading the segment
    metadata: httpx.Client  # the app reading the metadata endpoint only
    feed: SegmentFeed

    def clock(self) -> tuple[dict, dict]:
        return self.segment.get("/api/clock").json(), self.metadata.get("/api/clock").json()


@pytest.fixture
def pair(serve_app, emulator, tmp_path) -> Iterator[Pair]:
    shm = tmp_path / "clockbound" / "shm0"
    # The worker's own timeouts (0.2 s connect, 0.5 s read), and its drift and age settings.
    feed = SegmentFeed(shm, emulator.metadata_uri, interval_s=INTERVAL_S)
    feed.sampler = type(feed.sampler)(emulator.metadata_uri, max_drift_ppm=50.0, connect_timeout_s=0.2, read_timeout_s=0.5)
    feed.sample()  # the worker ran before the scenario: one good record
    assert feed.last_record is not None
    # A near-zero TTL: the metadata app reads the endpoint again at every check.
    segment_app = serve_app(clockbound_shm=str(shm), cache_ttl_s=0.001)
    metadata_app = serve_app(cache_ttl_s=0.001)
    with segment_app.client() as segment, metadata_app.client() as metadata:
        yield Pair(segment, metadata, feed)
    feed.close()


def set_scenario(emulator, scenario: str, values: dict[str, object]) -> None:
    answer = httpx.post(f"{emulator.base_url}/_emulator/scenario", json={"scenario": scenario, **values})
    assert answer.status_code == 200, answer.text


def without_numbers(details: list[str]) -> list[str]:
    return [re.sub(r"\d+(\.\d+)?", "#", detail) for detail in details]


@pytest.mark.parametrize("scenario", [name for name, case in CASES.items() if case.error_kind is None])
def test_a_reading_gives_both_sources_the_same_verdict(pair, emulator, scenario):
    case = CASES[scenario]
    set_scenario(emulator, scenario, case.values)
    assert pair.feed.sample() is not None  # the worker's next sample: a record
    from_segment, from_metadata = pair.clock()
    assert from_segment["source"]["kind"] == "clockbound" and from_metadata["source"]["kind"] == "metadata"
    assert from_segment["reasons"] == from_metadata["reasons"] == case.reasons
    assert from_segment["safe"] is from_metadata["safe"] is (not case.reasons)
    # The same sentences; the segment may add what it knows (e.g. "(ClockBound segment status FreeRunning: ...)").
    pairs = list(zip(without_numbers(from_segment["details"]), without_numbers(from_metadata["details"]), strict=True))
    assert all(mine.startswith(theirs) for mine, theirs in pairs), pairs
    # The same reading, seen from both sides.
    segment_reading, metadata_reading = from_segment["reading"], from_metadata["reading"]
    assert segment_reading["status"] == metadata_reading["status"]
    if from_segment["segment"]["stored_status"] == "FreeRunning":
        # Free-running keeps the last synchronized bound and as-of (the "ok" record's), like ClockBound's daemon.
        assert segment_reading["bound_ms"] == pytest.approx(0.446932)
    else:
        assert segment_reading["bound_ms"] == pytest.approx(metadata_reading["bound_ms"], abs=2e-6)
        # Against the very reading the worker wrote (the metadata app's may be a second newer):
        # the reference time as TMDS stated it, and the bound grown from one second (and a
        # coarse-clock tick) before it, 1 s x 50 ppm = 0.05 ms more than the reading's own.
        written = pair.feed.last_reading
        assert written is not None and written.reference_time is not None
        checked_at = datetime.fromisoformat(from_segment["checked_at"].replace("Z", "+00:00"))
        reference_time = datetime.fromisoformat(segment_reading["reference_time"].replace("Z", "+00:00"))
        assert abs((reference_time - written.reference_time).total_seconds()) < 0.02
        extra_ms = segment_reading["effective_bound_ms"] - written.effective_bound_ms_at(checked_at)
        assert 0.049 <= extra_ms <= 0.0505, extra_ms
    # The gate agrees too.
    operations = [client.post("/api/operations", json={"label": scenario}) for client in (pair.segment, pair.metadata)]
    assert operations[0].status_code == operations[1].status_code == (200 if not case.reasons else 503)
    if case.reasons:
        assert [answer.json()["reasons"] for answer in operations] == [case.reasons, case.reasons]
        assert [answer.json()["source"] for answer in operations] == ["clockbound", "metadata"]


@pytest.mark.parametrize("scenario", [name for name, case in CASES.items() if case.error_kind is not None])
def test_a_failed_sample_leaves_the_segment_safe_until_void_after(pair, emulator, scenario):
    case = CASES[scenario]
    record = pair.feed.last_record
    assert record is not None
    set_scenario(emulator, scenario, case.values)
    assert pair.feed.sample() is None  # the worker's sample failed: nothing written

    # At once: the metadata app refuses; the segment app still trusts the last record.
    from_segment, from_metadata = pair.clock()
    assert from_metadata["reasons"] == ["metadata_unavailable"] and from_metadata["error"]["kind"] == case.error_kind
    assert from_segment["verdict"] == "SAFE", from_segment
    assert from_segment["segment"]["void"] is False and from_segment["segment"]["generation"] == 2
    grown = from_segment["reading"]["effective_bound_ms"]
    assert grown > from_segment["reading"]["bound_ms"]  # growing since as-of, at 50 ppm
    assert pair.segment.post("/api/operations", json={"label": "still-safe"}).status_code == 200
    assert pair.metadata.post("/api/operations", json={"label": "refused"}).status_code == 503

    # Until void-after, SAFE with the bound growing; from void-after on, UNSAFE for being void.
    deadline = time.monotonic() + 3 * INTERVAL_S + 5
    while True:
        answer = pair.segment.get("/api/clock").json()
        segment = answer["segment"]
        if not answer["safe"]:
            break
        assert segment["void"] is False and answer["reading"]["effective_bound_ms"] >= grown
        grown = answer["reading"]["effective_bound_ms"]
        assert time.monotonic() < deadline, "the segment never went void"
        time.sleep(0.05)  # polling a condition (void-after), not waiting a fixed time
    assert segment["void"] is True and segment["void_after_in_s"] <= 0
    assert answer["reasons"] == ["metadata_unavailable"] and answer["error"]["kind"] == "clockbound_void"
    assert "is void since" in answer["details"][0] and answer["reading"] is None and answer["bounded_now"] is None

    # After void-after: both UNSAFE, metadata_unavailable, and both gates refuse.
    from_segment, from_metadata = pair.clock()
    assert from_segment["reasons"] == from_metadata["reasons"] == ["metadata_unavailable"]
    assert from_metadata["error"]["kind"] == case.error_kind
    refusals = [client.post("/api/operations", json={"label": "void"}) for client in (pair.segment, pair.metadata)]
    assert [answer.status_code for answer in refusals] == [503, 503]
    assert [answer.json()["reasons"] for answer in refusals] == [["metadata_unavailable"]] * 2


def test_free_running_keeps_the_last_synchronized_bound(pair, emulator):
    """The documented difference for a reading: NOT_SYNCHRONIZED after a synchronized one.

    The metadata path judges the reported 12.5 ms; the segment, like ClockBound's daemon
    when chrony loses sync, keeps growing the last synchronized bound (0.45 ms), so it
    says not_synchronized alone."""
    set_scenario(emulator, "unsynchronized", {})
    pair.feed.sample()
    from_segment, from_metadata = pair.clock()
    assert from_metadata["reasons"] == ["not_synchronized", "bound_over_threshold"]
    assert from_segment["reasons"] == ["not_synchronized"]
    assert from_segment["segment"]["stored_status"] == "FreeRunning" and from_segment["reading"]["bound_ms"] < 0.5


def test_never_synchronized_is_not_synchronized_on_both_sides(serve_app, emulator, tmp_path):
    """A worker whose first reading is NOT_SYNCHRONIZED writes Unknown with that reading's
    bound: the metadata path's reasons for the same reading."""
    shm = tmp_path / "shm0"
    set_scenario(emulator, "unsynchronized", {})
    feed = SegmentFeed(shm, emulator.metadata_uri, interval_s=INTERVAL_S)
    try:
        feed.sample()
        segment_app, metadata_app = serve_app(clockbound_shm=str(shm)), serve_app()
        with segment_app.client() as segment, metadata_app.client() as metadata:
            from_segment, from_metadata = segment.get("/api/clock").json(), metadata.get("/api/clock").json()
    finally:
        feed.close()
    assert from_segment["segment"]["stored_status"] == "Unknown"
    assert from_segment["reasons"] == from_metadata["reasons"] == ["not_synchronized", "bound_over_threshold"]
    assert from_segment["reading"]["status"] == "UNKNOWN" and from_metadata["reading"]["status"] == "NOT_SYNCHRONIZED"
