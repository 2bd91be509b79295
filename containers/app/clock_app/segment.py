"""The ClockBound segment as the gate's clock source (CLOCK_CLOCKBOUND_SHM).

Which source answers:
- The path is looked at lazily, on the request path, at most once per `probe_interval_ns`
  (1 s): one stat(2). No file there (the worker has not started, or writes no segment),
  or a file the writer has created but not written yet (generation 0): the segment does
  not answer and the metadata endpoint does, exactly as without the setting.
- Once it holds a record, the reader is opened and kept (an mmap; nothing is re-opened
  per request) and the segment answers every check from then on. Each probe also checks
  that the path still names the mapped file: a file replaced under the same name (a new
  inode) is re-opened, one that shrank below the mapping is dropped before it is read
  (reading past the end of a mapped file would kill the process), and a path that no
  longer exists hands the checks back to the metadata endpoint.
- A file at the path that is not a readable segment (another file, a wrong version, no
  permission), or a segment that later cannot be read (a writer stuck mid-update, a
  field out of range), is a verdict, not a crash and not a silent switch: UNSAFE with
  `metadata_unavailable` and a sentence naming the path and the problem, until a probe
  or a new record finds it readable again. Falling back to the endpoint there would hide
  a broken deployment behind a working page.

Reading: each request compares the segment's generation word with the copy's (a 2-byte
load). A new generation is copied (`snapshot()`, the protocol's consistent read) and
judged (`judge_segment`); while the writer is mid-update (odd or zero generation) the
last copy stays in use, as ClockBound's client does. A SAFE judgement is reused until
the monotonic instant it stops holding (`SegmentJudgement.valid_until_ns`: the grown
bound could cross the threshold, the reference could turn too old, or void-after comes)
or a new generation appears, so a request on a SAFE clock costs two clock reads, a
generation load and the stamp's arithmetic. An UNSAFE judgement is made again at every
check: its sentences carry numbers that keep changing.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from clock_app.isotime import utc_from_us
from clockcore import BoundedTime, SyncStatus, Verdict, VerdictReason
from clockcore.clockbound import ClockBoundError, ClockBoundReader, ClockStatus, SegmentSnapshot
from clockcore.clockbound.reader import MIN_SEGMENT_SIZE
from clockcore.clockbound.verdict import SegmentJudgement, SegmentLimits, judge_segment

NS_PER_S = 1_000_000_000
PROBE_INTERVAL_NS = NS_PER_S
# Copy attempts before a segment whose generation stays odd counts as unreadable (a
# writer that died mid-update): about a millisecond of retries on the event loop, once
# per generation, instead of the reader's default ten thousand.
MAX_COPY_ATTEMPTS = 1000

# The stored status as the metadata path names it. Disrupted records are never shown as
# a reading (judge_segment does not trust them), so they need no name here.
SYNC_STATUS = {
    ClockStatus.SYNCHRONIZED: SyncStatus.SYNCHRONIZED,
    ClockStatus.FREE_RUNNING: SyncStatus.NOT_SYNCHRONIZED,
    ClockStatus.UNKNOWN: SyncStatus.UNKNOWN,
    ClockStatus.DISRUPTED: SyncStatus.UNKNOWN,
}
# ClockBound's status names, for people (the API's segment block, logs).
STATUS_NAMES = {
    ClockStatus.UNKNOWN: "Unknown",
    ClockStatus.SYNCHRONIZED: "Synchronized",
    ClockStatus.FREE_RUNNING: "FreeRunning",
    ClockStatus.DISRUPTED: "Disrupted",
}


# Bounded now as the gate stamps an operation with it: (earliest_us, latest_us, status,
# bound_ms), BoundedTime's fields in a plain tuple, the instants as whole microseconds
# since the epoch. The hot path builds one per request, in C (a frozen dataclass takes
# 0.6-0.9 µs, a slotted class's __init__ is a Python frame), and the answer spells the
# instants itself (clock_app.isotime.iso_utc): an aware datetime per instant, and
# pydantic writing it, cost more than the text does. The status is the SyncStatus's
# value, a plain str: the answer's serializer writes an enum through a Python-level
# lookup of its value (about 11,000 instructions a request more, counted with callgrind).
Stamp = tuple[int, int, str, float]

# What the hot path holds for a SAFE record: (until_ns, header words, generation,
# as_of_ns, bound_ns, max_drift_ppb, status value); see SegmentSource.hot.
HotRecord = tuple[int, memoryview, int, int, int, int, str]

# The gate reads CLOCK_MONOTONIC itself (time.monotonic_ns), not CLOCK_MONOTONIC_COARSE,
# the clock the segment's instants are written in: the coarse clock is CLOCK_MONOTONIC as
# of the last timer tick (behind by less than a tick, 1-4 ms), so the finer reading only
# ever makes the elapsed time since as-of longer: the grown bound larger (by under 0.2 µs
# at 50 ppm), the reference older and void-after sooner. Every judgement stays on the
# safe side, and the reading is cheaper: time.monotonic_ns takes no argument, where
# clock_gettime_ns parses its clock id through PyArg_ParseTuple, code that (callgrind's
# cache simulation, through the server) missed the instruction cache some 40 times a
# request.


def stamp_at(
    as_of_ns: int, bound_ns: int, max_drift_ppb: int, status: str, realtime_ns: int, monotonic_ns: int
) -> Stamp:
    """Bounded time from a record at these clock readings: [now - grown bound, now + grown bound].

    The growth `judge_segment` uses (rounded up), so a stamp taken at the instant a SAFE
    verdict was checked never carries a bound over the threshold. Rounded outwards to
    whole microseconds (the answers' resolution), in integers: exact at any instant.
    """
    elapsed_ns = monotonic_ns - as_of_ns
    grown = bound_ns + (-(-elapsed_ns * max_drift_ppb // 1_000_000_000) if elapsed_ns > 0 else 0)
    return ((realtime_ns - grown) // 1000, -(-(realtime_ns + grown) // 1000), status, grown / 1e6)


def utc_from_ns(ns: int) -> datetime:
    """A CLOCK_REALTIME instant in ns as an aware datetime (microseconds, rounded down)."""
    return utc_from_us(ns // 1000)


@dataclass(frozen=True, eq=False)
class SegmentRead:
    """What the segment said at one check: a judged record, or why it could not be read."""

    path: str
    snapshot: SegmentSnapshot | None  # None: nothing readable
    judgement: SegmentJudgement | None  # None: not judged (unreadable)
    verdict: Verdict
    problem: str | None  # None, or a word: void, disrupted, busy, bad_magic, permission, ...
    # What a stamp needs, unpacked once per record (the hot path reads nothing else).
    as_of_ns: int = 0
    bound_ns: int = 0
    max_drift_ppb: int = 0
    sync_status: SyncStatus = SyncStatus.UNKNOWN

    @property
    def trusted(self) -> bool:
        return self.judgement is not None and self.judgement.trusted

    @property
    def key(self) -> tuple[object, ...]:
        """What makes two reads the same event for the history and the log."""
        generation = self.snapshot.generation if self.snapshot is not None else None
        return (generation, self.problem, self.verdict.safe, self.verdict.reasons)

    @property
    def error_kind(self) -> str | None:
        return None if self.problem is None else f"clockbound_{self.problem}"


def _unreadable(path: str, error: ClockBoundError, doing: str) -> SegmentRead:
    detail = f"ClockBound segment {path} {doing}: {error.problem}"
    verdict = Verdict(False, (VerdictReason.METADATA_UNAVAILABLE,), (detail,))
    return SegmentRead(path=path, snapshot=None, judgement=None, verdict=verdict, problem=error.kind)


class SegmentSource:
    """One configured segment path: whether it answers, and what it says. One event loop
    thread uses it (the reader caches its last copy and is not thread-safe)."""

    def __init__(
        self,
        path: str,
        limits: SegmentLimits,
        *,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
        realtime_ns: Callable[[], int] = time.time_ns,
        probe_interval_ns: int = PROBE_INTERVAL_NS,
        open_reader: Callable[[str], ClockBoundReader] | None = None,
        stat_path: Callable[[str], os.stat_result] = os.stat,
    ) -> None:
        self.path = path
        self.limits = limits
        self.monotonic_ns = monotonic_ns
        self.realtime_ns = realtime_ns
        self._probe_interval_ns = probe_interval_ns
        self._open_reader = open_reader or (lambda path: ClockBoundReader(path, max_attempts=MAX_COPY_ATTEMPTS))
        self._stat = stat_path
        self._reader: ClockBoundReader | None = None
        self._file: tuple[int, int] | None = None  # (st_dev, st_ino) of the mapped file
        self._next_probe_ns: int | None = None  # None: never looked
        # Why the segment does not answer (the metadata endpoint does), for the API.
        self.absent_note: str = "not looked for yet"
        # A file that is there but cannot be used: UNSAFE until a probe finds it usable.
        self._broken: SegmentRead | None = None
        self._read: SegmentRead | None = None  # the last read of the open reader
        self._failed_generation: int | None = None  # snapshot() failed at this generation
        # The hot path (ClockGuard.try_admit): while `hot` is set, a record judged SAFE holds
        # until the instant hot[0] (the verdict's end or the next look at the path,
        # whichever comes first) as long as the generation word (hot[1], the reader's
        # header words, at GENERATION_WORD) stays hot[2]; hot[3:] is what stamp_at needs.
        # A plain tuple and a memoryview: the check and the stamp (stamp_at, inline) run in
        # try_admit's own frame with no call but the two clock reads.
        self.hot: HotRecord | None = None

    # ------------------------------------------------------------ which source answers
    def current(self, monotonic_ns: int, *, fresh: bool = False) -> SegmentRead | None:
        """What the segment says at `monotonic_ns`; None when it does not answer (use the endpoint).

        A SAFE judgement made earlier is returned as it is while it holds; `fresh` judges
        again anyway, for answers that show the grown bound and the age at this instant.
        """
        next_probe = self._next_probe_ns
        if next_probe is None or monotonic_ns >= next_probe:
            self._probe(monotonic_ns)
        reader = self._reader
        if reader is None:
            return self._broken
        read = self._read
        generation = reader.generation
        if read is not None:
            snapshot = read.snapshot
            if snapshot is None:
                if generation == self._failed_generation:
                    return read  # copying failed at this generation: not again until it changes
            # Unchanged, or the writer is mid-update (odd) or re-initializing (0): keep the copy.
            elif generation == snapshot.generation or not generation or generation & 1:
                judgement = read.judgement
                if (
                    not fresh
                    and judgement is not None
                    and judgement.verdict.safe
                    and monotonic_ns < judgement.valid_until_ns
                ):
                    if generation == snapshot.generation:
                        self._arm(read, monotonic_ns)  # after a look at the path: the hot path again
                    return read  # nothing changed, the SAFE verdict still holds
                return self._judge(snapshot, monotonic_ns)
        try:
            snapshot = reader.snapshot()
        except ClockBoundError as error:
            self._failed_generation = generation
            self.hot = None
            self._read = _unreadable(self.path, error, "cannot be read")
            return self._read
        self._failed_generation = None
        return self._judge(snapshot, monotonic_ns)

    def _judge(self, snapshot: SegmentSnapshot, monotonic_ns: int) -> SegmentRead:
        judgement = judge_segment(snapshot, monotonic_ns=monotonic_ns, limits=self.limits, path=self.path)
        read = SegmentRead(
            path=self.path,
            snapshot=snapshot,
            judgement=judgement,
            verdict=judgement.verdict,
            problem=judgement.problem,
            as_of_ns=snapshot.as_of.ns,
            bound_ns=snapshot.bound_ns,
            max_drift_ppb=snapshot.max_drift_ppb,
            sync_status=SYNC_STATUS[snapshot.status],
        )
        self._read = read
        if judgement.verdict.safe:
            self._arm(read, monotonic_ns)
        else:
            self.hot = None
        return read

    def _arm(self, read: SegmentRead, monotonic_ns: int) -> None:
        """Let the hot path answer from this SAFE read until its verdict ends or the next look at the path.

        The hot path (ClockGuard.try_admit) computes `stamp_at` inline without its guard
        on the elapsed time, so the read is armed only where that guard cannot trigger:
        the record's as-of is not after now (the monotonic clock only moves on, so the
        elapsed time stays >= 0 until the next look).
        """
        assert read.judgement is not None and read.snapshot is not None
        if read.as_of_ns > monotonic_ns:
            self.hot = None
            return
        until_ns = min(read.judgement.valid_until_ns, self._next_probe_ns or 0)
        assert self._reader is not None
        self.hot = (
            until_ns,
            self._reader.header_words(),
            read.snapshot.generation,
            read.as_of_ns,
            read.bound_ns,
            read.max_drift_ppb,
            read.sync_status.value,
        )

    def _probe(self, monotonic_ns: int) -> None:
        """Look at the path (at most once per probe interval): open, keep, re-open or drop the reader."""
        self._next_probe_ns = monotonic_ns + self._probe_interval_ns
        self.hot = None  # judged again (cheaply) once the look is done
        try:
            info = self._stat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            self._drop(f"no file at {self.path} yet (the worker writes it); looked for every second")
            return
        except OSError as error:
            kind = "permission" if isinstance(error, PermissionError) else "os_error"
            reason = (error.strerror or str(error)).lower()
            self._fail(ClockBoundError(kind, self.path, f"cannot look at it: {reason}"), "cannot be opened")
            return
        if not stat.S_ISREG(info.st_mode):
            self._fail(ClockBoundError("not_a_file", self.path, "is not a regular file"), "cannot be opened")
            return
        if self._reader is not None and self._file == (info.st_dev, info.st_ino):
            if info.st_size < MIN_SEGMENT_SIZE:
                # Touching the mapping past the file's end would be SIGBUS: let go of it first.
                self._fail(ClockBoundError("bad_size", self.path, f"shrank to {info.st_size} bytes"), "cannot be read")
            return  # the same file, still mapped: nothing to do
        self._open(info)

    def _open(self, info: os.stat_result) -> None:
        self._close()
        try:
            reader = self._open_reader(self.path)
        except ClockBoundError as error:
            if error.kind == "missing":
                self._drop(f"no file at {self.path} yet (the worker writes it); looked for every second")
            elif error.kind == "not_initialized":
                # Created, nothing written yet: the worker's first write is a sample away.
                self._drop(f"the segment at {self.path} holds no record yet ({error.problem}); looked at every second")
            else:
                self._fail(error, "cannot be opened")
            return
        self._reader = reader
        self._file = (info.st_dev, info.st_ino)
        self._broken = None
        self.absent_note = ""

    def _drop(self, note: str) -> None:
        """The segment does not answer: the metadata endpoint does."""
        self._close()
        self._broken = None
        self.absent_note = note

    def _fail(self, error: ClockBoundError, doing: str) -> None:
        """A file is there but cannot be used: the segment answers UNSAFE, saying why."""
        self._close()
        self._broken = _unreadable(self.path, error, doing)
        self.absent_note = ""

    def _close(self) -> None:
        self.hot = None
        if self._reader is not None:
            self._reader.close()
        self._reader = None
        self._file = None
        self._read = None
        self._failed_generation = None

    def close(self) -> None:
        self._close()

    # ------------------------------------------------------------ bounded time
    @staticmethod
    def stamp(read: SegmentRead, realtime_ns: int, monotonic_ns: int) -> Stamp:
        """`stamp_at` for a read."""
        return stamp_at(
            read.as_of_ns, read.bound_ns, read.max_drift_ppb, read.sync_status.value, realtime_ns, monotonic_ns
        )

    def bounded(self, read: SegmentRead, realtime_ns: int, monotonic_ns: int) -> BoundedTime:
        """`stamp` as clockcore's BoundedTime."""
        earliest_us, latest_us, status, bound_ms = self.stamp(read, realtime_ns, monotonic_ns)
        earliest, latest = utc_from_us(earliest_us), utc_from_us(latest_us)
        return BoundedTime(earliest=earliest, latest=latest, status=SyncStatus(status), bound_ms=bound_ms)

    def bounded_now(self, read: SegmentRead) -> BoundedTime:
        """`bounded` at this moment (CLOCK_REALTIME read first, as ClockBound's client does)."""
        realtime_ns = self.realtime_ns()
        return self.bounded(read, realtime_ns, self.monotonic_ns())
