"""Test helpers: segment bytes built field by field from the protocol's offsets.

A third spelling of the layout (besides the writer's and the reader's), so tests can
hand either side a segment the other did not produce.
"""

from __future__ import annotations

import struct
import sys
import time
from pathlib import Path

# Two native-endian u32 words, as clock-bound's SHM_MAGIC is written.
MAGIC = struct.pack("=I", 0x414D5A4E) + struct.pack("=I", 0x43420200)
SEGMENT_SIZE = 80
CLOCK_MONOTONIC_COARSE = 6
NS = 1_000_000_000


def monotonic_ns() -> int:
    return time.clock_gettime_ns(CLOCK_MONOTONIC_COARSE)


def segment_bytes(
    *,
    magic: bytes = MAGIC,
    segment_size: int = SEGMENT_SIZE,
    version: int = 2,
    generation: int = 2,
    as_of: tuple[int, int] = (100, 0),
    void_after: tuple[int, int] = (200, 0),
    bound_ns: int = 1_000,
    disruption_marker: int = 0,
    max_drift_ppb: int = 15_000,
    status: int = 1,
    disruption_support: int = 0,
    length: int = SEGMENT_SIZE,
) -> bytes:
    buffer = bytearray(max(length, 80))
    buffer[0:8] = magic
    buffer[8:12] = struct.pack("=I", segment_size)
    buffer[12:14] = struct.pack("=H", version)
    buffer[14:16] = struct.pack("=H", generation)
    buffer[16:32] = struct.pack("=qq", *as_of)
    buffer[32:48] = struct.pack("=qq", *void_after)
    buffer[48:56] = struct.pack("=q", bound_ns)
    buffer[56:64] = struct.pack("=Q", disruption_marker)
    buffer[64:68] = struct.pack("=I", max_drift_ppb)
    buffer[68:72] = struct.pack("=i", status)
    buffer[72:73] = struct.pack("=B", disruption_support)
    return bytes(buffer[:length])


def write_segment(path: Path, **fields: object) -> Path:
    path.write_bytes(segment_bytes(**fields))  # type: ignore[arg-type]
    return path


def live_segment(path: Path, *, status: int = 1, bound_ns: int = 500_000, max_drift_ppb: int = 15_000) -> Path:
    """A segment written just now, valid for a minute."""
    now = monotonic_ns()
    return write_segment(
        path,
        as_of=divmod(now, NS),
        void_after=divmod(now + 60 * NS, NS),
        bound_ns=bound_ns,
        status=status,
        max_drift_ppb=max_drift_ppb,
    )


def containers_env() -> dict[str, str]:
    """Environment for a subprocess that imports clockcore from this checkout."""
    import os

    containers = str(Path(__file__).resolve().parents[2] / "containers")
    env = dict(os.environ)
    env["PYTHONPATH"] = containers + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


PYTHON = sys.executable
