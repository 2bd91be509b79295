"""bench.gate_driver, the subject bench_gate_instructions counts under callgrind, still
drives the app: both routes answer 200 on its segment, and anything else is an error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def drive(*args: str, twin_after: bool = False) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "CLOCK_APP_BENCH_TWIN_AFTER": "1" if twin_after else "0"}
    command = [sys.executable, "-m", "bench.gate_driver", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_both_routes_answer_200_in_either_route_order():
    for twin_after in (False, True):
        for path in ("/api/operations", "/api/bench/operations-ungated"):
            result = drive(path, "50", twin_after=twin_after)
            assert result.returncode == 0, (path, twin_after, result.stderr[-2000:])


def test_a_path_that_does_not_answer_200_fails_the_run():
    result = drive("/api/nowhere", "5")
    assert result.returncode == 1
    assert result.stderr.strip() == "gate_driver: /api/nowhere answered [404], not only 200"


def test_bad_arguments_get_the_usage_line():
    for args in ((), ("/api/operations",), ("/api/operations", "many")):
        result = drive(*args)
        assert result.returncode == 2 and result.stderr.startswith("usage: python -m bench.gate_driver")
        assert "Traceback" not in result.stderr
