"""Drive the app in process, straight through ASGI: the subject of bench_gate_instructions.

`python -m bench.gate_driver PATH COUNT` builds the app (bench routes on, the twin routed
before or after the gated route by CLOCK_APP_BENCH_TWIN_AFTER) on a ClockBound segment it
writes itself, sends 200 warm-up requests to each route, then COUNT requests to PATH,
each a whole ASGI request (body limit and security headers middleware, routing, the
body's validation, the endpoint, the answer). No server and no sockets: what is counted
is the app's own work per request, the same for both routes but for the gate.

The record it writes (`write_segment`) stays SAFE for the whole run even under
valgrind, which runs this about 50 times slower than usual.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BODY = b'{"label":"bench"}'
WARM_UP = 200


def _scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"), (b"content-length", b"17")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8080),
    }


async def _request(app: Any, path: str) -> int:
    """One request through the app; its status."""
    received = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": BODY, "more_body": False}
        await asyncio.Event().wait()  # the client never goes away
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(_scope(path), receive, send)
    return status


def write_segment(shm: Path) -> None:
    """A record SAFE for a whole run, even under valgrind: 0.3 ms growing at 1 ppm, void an hour on.

    Needs `containers/` and `containers/app` on sys.path (main() and bench_gate_instructions put them there).
    """
    from clockcore.clockbound import ClockBoundWriter, SegmentRecord, SegmentStatus
    from clockcore.clockbound.reader import CLOCK_MONOTONIC_COARSE

    with ClockBoundWriter(shm) as writer:
        now = time.clock_gettime_ns(CLOCK_MONOTONIC_COARSE)  # the clock a segment is written in
        writer.write(
            SegmentRecord(
                as_of_ns=now,
                void_after_ns=now + 3600 * 10**9,
                bound_ns=300_000,
                max_drift_ppb=1_000,
                status=SegmentStatus.SYNCHRONIZED,
            )
        )


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: python -m bench.gate_driver PATH COUNT (COUNT a whole number of requests)", file=sys.stderr)
        return 2
    path, count = argv[0], int(argv[1])
    sys.path[:0] = [str(ROOT / "containers"), str(ROOT / "containers" / "app")]
    from clock_app.api import GATED_PATH, UNGATED_PATH
    from clock_app.app import create_app
    from clock_app.settings import load_settings

    with tempfile.TemporaryDirectory(prefix="gate-driver-") as folder:
        shm = Path(folder) / "shm0"
        write_segment(shm)
        settings = load_settings(
            {
                "CLOCK_CLOCKBOUND_SHM": str(shm),
                "CLOCK_APP_BENCH_ROUTES": "1",
                "CLOCK_APP_BENCH_TWIN_AFTER": os.environ.get("CLOCK_APP_BENCH_TWIN_AFTER", "0"),
                "CLOCK_MAX_REFERENCE_AGE_SECONDS": "3600",
            }
        )
        app = create_app(settings)

        async def run() -> tuple[set[int], set[int]]:
            warm_up = {await _request(app, route) for route in (GATED_PATH, UNGATED_PATH) for _ in range(WARM_UP)}
            measured = {await _request(app, path) for _ in range(count)}
            return warm_up, measured

        warm_up, measured = asyncio.run(run())
    for what, statuses in (("the warm-up", warm_up), (path, measured)):
        if statuses - {200}:
            print(f"gate_driver: {what} answered {sorted(statuses)}, not only 200", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
