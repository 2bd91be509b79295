"""Container health check: `python -m clock_worker.healthcheck`.

Exit 0 when the worker's heartbeat file was touched within 3 sampling intervals and
the worker has taken a synchronized sample (written to its ClockBound segment, when it
keeps one), else exit 1 with one line saying why. It reads the same CLOCK_INTERVAL_SECONDS and
CLOCK_HEARTBEAT_FILE as the worker (a health check runs in the worker's container).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Mapping

from clockcore.errors import SettingError

from clock_worker.heartbeat import SYNCHRONIZED
from clock_worker.settings import parse_heartbeat_file, parse_interval

FRESH_WITHIN_INTERVALS = 3


def check(env: Mapping[str, str], *, now: float | None = None) -> tuple[bool, str]:
    try:
        interval_s = parse_interval(env)
    except SettingError as error:
        return False, f"unhealthy: bad configuration: {error}"
    path = parse_heartbeat_file(env)
    try:
        modified = os.stat(path).st_mtime
        with open(path, encoding="ascii", errors="replace") as heartbeat:
            state = heartbeat.readline().strip()
    except FileNotFoundError:
        return False, f"unhealthy: no heartbeat file {path} (worker not started, or not looping)"
    except OSError as error:
        return False, f"unhealthy: cannot read heartbeat file {path}: {error}"
    age_s = (time.time() if now is None else now) - modified
    limit_s = FRESH_WITHIN_INTERVALS * interval_s
    if age_s > limit_s:
        return False, f"unhealthy: last heartbeat {age_s:.1f} s ago, limit {limit_s:g} s ({FRESH_WITHIN_INTERVALS} intervals)"
    if state != SYNCHRONIZED:
        return False, (
            f"unhealthy: no synchronized clock sample yet (the worker loops, last {max(age_s, 0.0):.1f} s ago; "
            "the task metadata reports no synchronized clock, or the ClockBound segment cannot be written)"
        )
    return True, f"healthy: last heartbeat {max(age_s, 0.0):.1f} s ago, clock synchronized"


def main() -> int:
    healthy, message = check(os.environ)
    print(message, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
