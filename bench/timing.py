"""Per-call wall time of a callable of a few microseconds: the benchmarks' one way to time one."""

from __future__ import annotations

import time
from collections.abc import Callable


def per_call_us(call: Callable[[], object], calls: int) -> dict[str, float]:
    """Median and p99 of `calls` calls, each timed by a perf_counter_ns pair (about 60 ns of its own)."""
    timer = time.perf_counter_ns
    durations = []
    for _ in range(calls):
        started = timer()
        call()
        durations.append(timer() - started)
    durations.sort()
    return {
        "median_us": round(durations[len(durations) // 2] / 1000, 3),
        "p99_us": round(durations[int(len(durations) * 0.99)] / 1000, 3),
        "calls": calls,
    }
