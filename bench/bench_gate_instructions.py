"""The gate's cost in instructions: deterministic, whatever else the machine is doing.

The throughput ratio (bench_app_segment) is what a user sees, but on a shared 2-core VM
one run of it swings by a couple of per cent, as much as the gate's whole cost. This
counts instead: valgrind's callgrind runs `bench.gate_driver` (the app in process, each
request a whole ASGI request through its middleware, routing, validation, endpoint and
answer; no server, no sockets) and reports the instructions executed. Each route is run
with 0 and with COUNT requests after the same warm-up; the difference over COUNT is its
instructions per request, start-up and warm-up cancelling out. Repeated runs give the
same count to a few instructions per request.

Both route orders are counted (the twin routed before the gated route, and after it:
whichever comes second tries one route more), and the gate's cost is the mean over the
two of gated minus ungated. Instructions are not time (a cache miss costs more than an
add, and the server around the app costs about four times the app's own work per
request), so this tracks the gate's own code, change by change; the throughput ratio
stays the user's figure.

Needs valgrind (Debian package `valgrind`); without it this says so and measures nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
COUNT = 2_000
GATED = "/api/operations"
UNGATED = "/api/bench/operations-ungated"


def _instructions(path: str, count: int, *, twin_after: bool) -> int:
    """Instructions callgrind counts for the driver: start-up, warm-up and `count` requests."""
    with tempfile.TemporaryDirectory(prefix="bench-gate-instructions-") as folder:
        out = Path(folder) / "callgrind.out"
        env = {**os.environ, "PYTHONHASHSEED": "0", "CLOCK_APP_BENCH_TWIN_AFTER": "1" if twin_after else "0"}
        result = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-m",
                "bench.gate_driver",
                path,
                str(count),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if result.returncode != 0:
            raise RuntimeError(f"gate_driver under callgrind failed ({result.returncode}): {result.stderr[-2000:]}")
        match = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
        if match is None:
            raise RuntimeError(f"no instruction total in {out}")
        return int(match.group(1))


def main() -> dict[str, Any]:
    if shutil.which("valgrind") is None:
        print("  valgrind is not installed (apt-get install valgrind): nothing measured")
        return {"skipped": "valgrind not installed"}
    per_request: dict[str, dict[str, float]] = {}
    for twin_after in (False, True):
        order = "twin_after" if twin_after else "twin_before"
        per_request[order] = {}
        for name, path in (("gated", GATED), ("ungated", UNGATED)):
            base = _instructions(path, 0, twin_after=twin_after)
            loaded = _instructions(path, COUNT, twin_after=twin_after)
            per_request[order][name] = round((loaded - base) / COUNT)
        figures = per_request[order]
        print(f"  {order}: gated {figures['gated']:,} ungated {figures['ungated']:,} instructions/request")
    gate = sum(per_request[o]["gated"] - per_request[o]["ungated"] for o in per_request) / len(per_request)
    gated = sum(per_request[o]["gated"] for o in per_request) / len(per_request)
    ungated = sum(per_request[o]["ungated"] for o in per_request) / len(per_request)
    result = {
        "instructions_per_request": per_request,
        "gate_instructions_per_request": round(gate),
        "in_process_ratio_ungated_to_gated": round(ungated / gated, 4),
        "requests_counted": COUNT,
        "method": (
            "valgrind --tool=callgrind over python -m bench.gate_driver (the app in process, whole ASGI requests, "
            f"ClockBound segment source, PYTHONHASHSEED=0): (instructions with {COUNT} requests - with 0) / {COUNT}, "
            "per route and route order; the gate = mean over both orders of gated - ungated"
        ),
    }
    print(
        f"  the gate: {result['gate_instructions_per_request']:,} instructions/request "
        f"(in process, ungated/gated {result['in_process_ratio_ungated_to_gated']})"
    )
    return result


if __name__ == "__main__":
    main()
