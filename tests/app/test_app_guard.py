"""The clock guard alone, with a counted fake reader and a hand-driven monotonic clock."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from clock_app.guard import ClockGuard
from clock_app.history import ReadingHistory
from clock_app.settings import load_settings
from clockcore import ClockReading, SampleError, SyncStatus, TaskIdentity, VerdictReason

NOW = datetime(2026, 11, 28, 6, 0, 0, tzinfo=timezone.utc)
TASK = TaskIdentity(cluster_name="c", task_id="t", family="f")


def reading(bound_ms: float = 0.4, status: SyncStatus = SyncStatus.SYNCHRONIZED, age_s: float = 0.0) -> ClockReading:
    return ClockReading(
        sampled_at=NOW, bound_ms=bound_ms, status=status, reference_time=NOW - timedelta(seconds=age_s), max_drift_ppm=15.0, identity=TASK
    )


class FakeReader:
    def __init__(self, *answers: ClockReading | SampleError, delay_s: float = 0.0) -> None:
        self.answers = list(answers)
        self.calls = 0
        self.delay_s = delay_s
        self.threads: set[str] = set()

    def __call__(self) -> ClockReading:
        self.calls += 1
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay_s)
        answer = self.answers[min(self.calls, len(self.answers)) - 1]
        if isinstance(answer, SampleError):
            raise answer
        return answer


class Ticker:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make_guard(reader: FakeReader, ticker: Ticker, history: ReadingHistory | None = None, **env: str) -> ClockGuard:
    return ClockGuard(load_settings(env), history or ReadingHistory(10), reader=reader, monotonic=ticker, wall_clock=lambda: NOW)


def test_sample_is_cached_for_the_ttl_from_completion():
    reader, ticker = FakeReader(reading(), reading(0.5)), Ticker()
    guard = make_guard(reader, ticker)

    async def scenario() -> None:
        first = await guard.sample()
        ticker.now += 0.99
        assert await guard.sample() is first
        ticker.now += 0.02
        assert (await guard.sample()).reading.bound_ms == 0.5

    asyncio.run(scenario())
    assert reader.calls == 2


def test_concurrent_callers_share_one_fetch_off_the_event_loop():
    reader, ticker = FakeReader(reading(), delay_s=0.2), Ticker()
    guard = make_guard(reader, ticker)

    async def scenario() -> list[object]:
        return await asyncio.gather(*(guard.check() for _ in range(50)))

    checks = asyncio.run(scenario())
    assert reader.calls == 1
    assert {id(check.sample) for check in checks} == {id(checks[0].sample)}
    assert threading.main_thread().name not in reader.threads


def test_a_cancelled_caller_does_not_cancel_the_shared_fetch():
    reader, ticker = FakeReader(reading(), delay_s=0.2), Ticker()
    guard = make_guard(reader, ticker)

    async def scenario() -> object:
        impatient = asyncio.ensure_future(guard.sample())
        patient = asyncio.ensure_future(guard.sample())
        await asyncio.sleep(0.05)
        impatient.cancel()
        return await patient

    assert asyncio.run(scenario()).reading is not None
    assert reader.calls == 1


def test_errors_are_cached_and_become_metadata_unavailable():
    reader, ticker = FakeReader(SampleError("timeout", "no answer within 1 s")), Ticker()
    history = ReadingHistory(10)
    guard = make_guard(reader, ticker, history)

    async def scenario() -> None:
        for _ in range(5):
            check = await guard.check()
            assert check.verdict.reasons == (VerdictReason.METADATA_UNAVAILABLE,)
            assert check.verdict.details == ("timeout: no answer within 1 s",)

    asyncio.run(scenario())
    assert reader.calls == 1
    assert [entry.error_kind for entry in history.recent()] == ["timeout"]


def test_verdict_is_judged_at_each_check_not_at_the_fetch():
    reader, ticker = FakeReader(reading(bound_ms=0.99)), Ticker()
    moments = iter([NOW, NOW, NOW + timedelta(seconds=1)])
    guard = ClockGuard(load_settings({}), ReadingHistory(5), reader=reader, monotonic=ticker, wall_clock=lambda: next(moments))

    async def scenario() -> tuple[bool, bool]:
        first = await guard.check()
        later = await guard.check()  # same cached reading, one second older: grown by 0.015 ms
        return first.verdict.safe, later.verdict.safe

    assert asyncio.run(scenario()) == (True, False)
    assert reader.calls == 1


@pytest.mark.parametrize(
    ("sample", "reasons"),
    [
        (reading(bound_ms=1.5), [VerdictReason.BOUND_OVER_THRESHOLD]),
        (reading(status=SyncStatus.NOT_SYNCHRONIZED), [VerdictReason.NOT_SYNCHRONIZED]),
        (reading(age_s=200, bound_ms=0.1), [VerdictReason.BOUND_OVER_THRESHOLD, VerdictReason.REFERENCE_TOO_OLD]),
    ],
)
def test_reasons_come_from_clockcore(sample, reasons):
    guard = make_guard(FakeReader(sample), Ticker())
    assert list(asyncio.run(guard.check()).verdict.reasons) == reasons


def test_invalidate_forces_the_next_fetch():
    reader, ticker = FakeReader(reading(), reading(2.0)), Ticker()
    guard = make_guard(reader, ticker)

    async def scenario() -> bool:
        await guard.check()
        guard.invalidate()
        return (await guard.check()).verdict.safe

    assert asyncio.run(scenario()) is False
    assert reader.calls == 2


def test_history_ring_keeps_the_newest():
    reader, ticker = FakeReader(*(reading(bound_ms=0.1 * n) for n in range(1, 6))), Ticker()
    history = ReadingHistory(3)
    guard = make_guard(reader, ticker, history)

    async def scenario() -> None:
        for _ in range(5):
            await guard.sample()
            ticker.now += 2

    asyncio.run(scenario())
    assert [round(entry.bound_ms, 1) for entry in history.recent()] == [0.3, 0.4, 0.5]
    assert [round(entry.bound_ms, 1) for entry in history.recent(2)] == [0.4, 0.5]
