"""`python -m clockcore.clockbound [PATH]`: show a ClockBound segment's state.

For people at a shell in the task (ECS Exec) or on a test host: what a ClockBound client
would be told right now, and why. Exit status 0 when the segment could be read (even a
void one: that is a state worth seeing), 1 with one line on stderr when it could not.
"""

from __future__ import annotations

import argparse
import sys
import time

from clockcore.clockbound.errors import ClockBoundError
from clockcore.clockbound.reader import CLOCK_MONOTONIC_COARSE, DEFAULT_PATH, ClockBoundReader, SegmentSnapshot

_NS_PER_S = 1_000_000_000


def _seconds(ns: int) -> str:
    return f"{ns / _NS_PER_S:.3f} s"


def _since(ns: int) -> str:
    return f"{_seconds(ns)} ago" if ns >= 0 else f"in {_seconds(-ns)}"


def describe(snapshot: SegmentSnapshot, path: str, *, realtime_ns: int, monotonic_ns: int) -> list[str]:
    """The status lines for `snapshot` seen at these clock readings."""
    now = snapshot.bounded_at(realtime_ns, monotonic_ns, path=path)
    as_of_age = monotonic_ns - snapshot.as_of.ns
    void_in = snapshot.void_after.ns - monotonic_ns
    if void_in > 0:
        void_line = f"in {_seconds(void_in)}"
    else:
        void_line = f"{_seconds(-void_in)} ago: VOID, clients report UNKNOWN"
    trust = "trusted" if now.trusted else "NOT trusted"
    support = "on (this tool cannot check the VMClock)" if snapshot.disruption_support else "off"
    return [
        f"segment      {path} (version {snapshot.version}, {snapshot.segment_size} bytes, "
        f"generation {snapshot.generation})",
        f"status       {now.status.name} ({trust}; stored {snapshot.status.name})",
        f"bound        {now.bound_ns / 1e6:.6f} ms now ({snapshot.bound_ns / 1e6:.6f} ms at as-of)",
        f"as-of        {_since(as_of_age)}",
        f"void-after   {void_line}",
        f"max drift    {snapshot.max_drift_ppb} ppb ({snapshot.max_drift_ppb / 1000:g} ppm; "
        f"{snapshot.max_drift_ppb / 1000:g} µs per second of growth)",
        f"disruption   support {support}, marker {snapshot.disruption_marker}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clockcore.clockbound", description="Show the state of a ClockBound shared memory segment."
    )
    parser.add_argument("path", nargs="?", default=DEFAULT_PATH, help=f"segment file (default {DEFAULT_PATH})")
    args = parser.parse_args(argv)
    try:
        with ClockBoundReader(args.path) as reader:
            snapshot = reader.snapshot()
        realtime_ns = time.clock_gettime_ns(time.CLOCK_REALTIME)
        monotonic_ns = time.clock_gettime_ns(CLOCK_MONOTONIC_COARSE)
        lines = describe(snapshot, args.path, realtime_ns=realtime_ns, monotonic_ns=monotonic_ns)
    except ClockBoundError as error:
        print(f"clockbound: {error}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
