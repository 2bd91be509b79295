"""ClockBound segment benchmark: what the segment costs the worker, and what reading it costs.

- Worker, CPU added per sample: the worker's segment step (`ClockBoundSegment.update`:
  map the reading to a record, write it in place under the generation protocol) on a
  real `ClockReading` parsed from the emulator's task document, into a segment in a
  temporary folder. Timed with the thread's CPU clock over rounds of 2,000 updates;
  the figure is the median of the rounds' per-update cost. Target (issue 10): at most
  0.05 ms per sample.
- Reader, `now()`: bounded time from the segment as a ClockBound client computes it
  (two consistent copies by the generation rule, the bound grown by the drift since
  as-of). Median of per-call wall times (perf_counter_ns pairs, ~60 ns of their own)
  over 100,000 calls. Target: at most 5 µs median.

In-process on purpose: both steps are a few microseconds, far below what the
whole-process CPU counters of bench_worker can resolve on this noisy 2-core VM.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "containers" / "worker")]

from clock_worker.segment import ClockBoundSegment  # noqa: E402
from clockcore import contract, parse_task_document  # noqa: E402
from clockcore.clockbound import ClockBoundReader  # noqa: E402
from emulator.server import ScenarioState, task_document  # noqa: E402

from bench.timing import per_call_us  # noqa: E402

UPDATE_ROUNDS = 30
UPDATES_PER_ROUND = 2_000
NOW_CALLS = 100_000
TARGETS = {"segment_update_ms_per_sample": 0.05, "reader_now_median_us": 5.0}


def _reading() -> Any:
    document = task_document(ScenarioState(), now=datetime.now(timezone.utc))
    return parse_task_document(document, sampled_at=datetime.now(timezone.utc), max_drift_ppm=contract.DEFAULT_MAX_DRIFT_PPM)


def measure_update(path: Path) -> dict[str, Any]:
    segment = ClockBoundSegment(path, interval_s=1.0, max_reference_age_s=contract.DEFAULT_MAX_REFERENCE_AGE_SECONDS)
    reading = _reading()
    segment.update(reading)  # opens and sizes the file once, as the worker's first sample does
    per_update_ms = []
    for _ in range(UPDATE_ROUNDS):
        started = time.thread_time_ns()
        for _ in range(UPDATES_PER_ROUND):
            segment.update(reading)
        per_update_ms.append((time.thread_time_ns() - started) / UPDATES_PER_ROUND / 1e6)
    segment.close()
    return {
        "median_ms": statistics.median(per_update_ms),
        "min_ms": min(per_update_ms),
        "max_ms": max(per_update_ms),
        "rounds": UPDATE_ROUNDS,
        "updates_per_round": UPDATES_PER_ROUND,
    }


def measure_now(path: Path) -> dict[str, Any]:
    with ClockBoundReader(path) as reader:
        return per_call_us(reader.now, NOW_CALLS)


def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-clockbound-") as folder:
        path = Path(folder) / "clockbound" / "shm0"
        update = measure_update(path)
        now = measure_now(path)
    print(f"segment update (worker, per sample): median {update['median_ms'] * 1000:.1f} µs CPU "
          f"(rounds {update['min_ms'] * 1000:.1f}-{update['max_ms'] * 1000:.1f} µs); "
          f"target <= {TARGETS['segment_update_ms_per_sample'] * 1000:.0f} µs")
    print(f"reader now(): median {now['median_us']:.2f} µs, p99 {now['p99_us']:.2f} µs; "
          f"target <= {TARGETS['reader_now_median_us']:.0f} µs median")
    targets_met = (
        update["median_ms"] <= TARGETS["segment_update_ms_per_sample"]
        and now["median_us"] <= TARGETS["reader_now_median_us"]
    )
    return {"segment_update": update, "reader_now": now, "targets": TARGETS, "targets_met": targets_met}
