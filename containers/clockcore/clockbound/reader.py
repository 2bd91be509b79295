"""Read a ClockBound shared memory segment (protocol version 2) the way its clients do.

Written from aws/clock-bound `docs/PROTOCOL.md` and the client code, not from this
package's writer: its layout constants are its own, so a round trip through both checks
the writer against the protocol rather than against itself.

What it follows in clock-bound (crates `clock-bound-shm` and `clock-bound-client`):
- opening (`ShmHeader::is_valid`, `ShmReader::new`): magic, then version > 0 and
  generation > 0 ("not initialized"), then version == 2, then a segment size that holds
  the 16-byte header and the 64-byte `ClockErrorBound`;
- reading (`ShmReader::snapshot`): generation read, fields copied, generation read
  again; a copy counts only if both reads agree and are even. An unchanged generation
  reuses the last copy, and an odd one (an update in progress) or a zero one (the writer
  is re-initializing) keeps the last good copy, as the client does;
- `now()` (`ClockErrorBound::compute_bound_at`): CLOCK_REALTIME then
  CLOCK_MONOTONIC_COARSE; bound + (monotonic - as_of) x max drift; Unknown and Disrupted
  statuses are passed through; Synchronized and FreeRunning stay as stored for 5 s after
  as-of (the daemon-restart grace period), then read FreeRunning until void-after, then
  Unknown. A max drift of 10^9 ppb or more is malformed; an as-of more than 1 µs ahead of
  the monotonic clock is a causality breach. earliest/latest are returned in every status:
  the status says whether to trust them (Unknown and Disrupted: do not).
The client also reads the VMClock when the segment says clock disruption support is on;
this reader does not, and refuses such a segment in `now()` rather than vouch for it.
"""

from __future__ import annotations

import enum
import mmap
import os
import stat
import struct
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from clockcore.clockbound.errors import ClockBoundError, from_os_error

DEFAULT_PATH = "/var/run/clockbound/shm0"

# The daemon writes the magic as two native-endian u32 words (`SHM_MAGIC: [u32; 2]`).
EXPECTED_MAGIC = struct.pack("=II", 0x414D5A4E, 0x43420200)
# PROTOCOL.md lists the bytes in this order; on a little-endian host no ClockBound writer produces it.
_PROTOCOL_PAGE_MAGIC = bytes([0x41, 0x4D, 0x5A, 0x4E, 0x43, 0x42, 0x02, 0x00])
SUPPORTED_VERSION = 2
HEADER_SIZE = 16
# Header plus the repr(C) ClockErrorBound v2: 57 bytes of fields padded to 64 (8-byte alignment).
MIN_SEGMENT_SIZE = HEADER_SIZE + 64

_HEADER = struct.Struct("=8sIHH")  # magic, segment size, version, generation
# Version and generation are read as u16 words (offsets 12 and 14) through a memoryview:
# one 2-byte load each, like the client's AtomicU16 loads.
_VERSION_WORD = 6
GENERATION_WORD = 7  # the generation's index in header_words()
_FIELDS = struct.Struct("=qqqqqQIiB")  # at offset 16; the 7 padding bytes are not read

CLOCK_MONOTONIC_COARSE: int = getattr(time, "CLOCK_MONOTONIC_COARSE", 6)  # <linux/time.h>
RESTART_GRACE_NS = 5_000_000_000  # CLOCKBOUND_RESTART_GRACE_PERIOD
CAUSALITY_BLUR_NS = 1_000  # `as_of - TimeSpec::new(0, 1000)`
MAX_DRIFT_PPB_LIMIT = 1_000_000_000
DEFAULT_MAX_ATTEMPTS = 10_000

_NS_PER_S = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ClockStatus(enum.IntEnum):
    UNKNOWN = 0  # do not trust the interval
    SYNCHRONIZED = 1
    FREE_RUNNING = 2  # the bound is stale but still grows to cover the drift: trust it
    DISRUPTED = 3  # do not trust the interval

    @property
    def trusted(self) -> bool:
        # The client crate's documentation: timestamps "can be trusted" when Synchronized
        # or FreeRunning, "should not be trusted" when Unknown or Disrupted.
        return self is ClockStatus.SYNCHRONIZED or self is ClockStatus.FREE_RUNNING


@dataclass(frozen=True)
class Timespec:
    seconds: int
    nanoseconds: int

    @property
    def ns(self) -> int:
        return self.seconds * _NS_PER_S + self.nanoseconds


@dataclass(frozen=True, slots=True)
class BoundedNow:
    """True time lies in [earliest, latest] unless `status` is Unknown or Disrupted.

    Nanoseconds since the Unix epoch on CLOCK_REALTIME, as the client returns them;
    the datetime properties are for display (microsecond resolution, rounded outwards).
    """

    earliest_ns: int
    latest_ns: int
    bound_ns: int  # half the interval's width: the grown bound
    status: ClockStatus

    @property
    def trusted(self) -> bool:
        return self.status.trusted

    @property
    def bound_ms(self) -> float:
        return self.bound_ns / 1_000_000

    @property
    def earliest(self) -> datetime:
        return _EPOCH + timedelta(microseconds=self.earliest_ns // 1000)

    @property
    def latest(self) -> datetime:
        return _EPOCH + timedelta(microseconds=-(-self.latest_ns // 1000))


@dataclass(frozen=True)
class SegmentSnapshot:
    """A consistent copy of the segment: header and fields from one generation."""

    magic_ok: bool
    segment_size: int
    version: int
    generation: int
    as_of: Timespec
    void_after: Timespec
    bound_ns: int
    disruption_marker: int
    max_drift_ppb: int
    status: ClockStatus
    disruption_support: bool

    def is_void_at(self, monotonic_ns: int) -> bool:
        return monotonic_ns >= self.void_after.ns

    def bounded_at(self, realtime_ns: int, monotonic_ns: int, *, path: str = "<segment>") -> BoundedNow:
        """What the client's `now()` answers at these clock readings (see module doc)."""
        return _bounded(
            self.as_of.ns,
            self.void_after.ns,
            self.bound_ns,
            self.max_drift_ppb,
            self.status,
            realtime_ns,
            monotonic_ns,
            path,
        )


def _bounded(
    as_of_ns: int,
    void_after_ns: int,
    bound_ns: int,
    max_drift_ppb: int,
    status: ClockStatus,
    realtime_ns: int,
    monotonic_ns: int,
    path: str,
) -> BoundedNow:
    if max_drift_ppb >= MAX_DRIFT_PPB_LIMIT:
        raise ClockBoundError("malformed", path, f"max drift of {max_drift_ppb} ppb is not a clock's drift")
    if status is ClockStatus.SYNCHRONIZED or status is ClockStatus.FREE_RUNNING:
        if monotonic_ns >= as_of_ns + RESTART_GRACE_NS:
            status = ClockStatus.FREE_RUNNING if monotonic_ns < void_after_ns else ClockStatus.UNKNOWN
    elapsed_ns = monotonic_ns - as_of_ns
    if elapsed_ns < 0:
        if elapsed_ns > -CAUSALITY_BLUR_NS:
            elapsed_ns = 0  # coarse-clock imprecision, as the client allows
        else:
            raise ClockBoundError(
                "causality",
                path,
                f"as-of is {-elapsed_ns / _NS_PER_S:.6f} s ahead of this host's monotonic clock "
                "(a segment from another boot or host?)",
            )
    # Same arithmetic as the client: f64 seconds times f64 ppb, truncated to i64.
    grown = bound_ns + int(elapsed_ns / 1e9 * max_drift_ppb)
    return BoundedNow(realtime_ns - grown, realtime_ns + grown, grown, status)


class ClockBoundReader:
    """A read-only mapping of one segment. Not thread-safe (it caches the last copy)."""

    def __init__(
        self, path: str | os.PathLike[str] = DEFAULT_PATH, *, max_attempts: int = DEFAULT_MAX_ATTEMPTS
    ) -> None:
        self.path = os.fspath(path)
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._max_attempts = max_attempts
        self._map: mmap.mmap | None = _map_segment(self.path)
        self._words: memoryview | None = memoryview(self._map)[:HEADER_SIZE].cast("H")
        # The last consistent copy, and the generation it came from (-1: none yet).
        self._cached: SegmentSnapshot | None = None
        self._cached_generation = -1
        # For now(): the fields it needs, unpacked once per generation.
        self._cached_fields: tuple[int, int, int, int, ClockStatus] = (0, 0, 0, 0, ClockStatus.UNKNOWN)
        self._fence_lock = threading.Lock()
        self._fence_lock.acquire()

    def snapshot(self) -> SegmentSnapshot:
        """A consistent copy taken now, by the generation rule; raises after max_attempts."""
        segment, words = self._require_open()
        generation = 0
        for _ in range(self._max_attempts):
            version, generation = words[_VERSION_WORD], words[GENERATION_WORD]
            if version != SUPPORTED_VERSION:
                raise self._version_error(version)
            # 0 is retried like an odd value: a writer that stores the word a byte at a time
            # shows 0 for an instant between 255 and 256.
            if generation and not generation & 1:
                self._fence()
                magic, segment_size, _, _ = _HEADER.unpack_from(segment)
                fields = _FIELDS.unpack_from(segment, HEADER_SIZE)
                self._fence()
                if words[GENERATION_WORD] == generation:
                    snapshot = self._decode(magic, segment_size, version, generation, fields)
                    self._cached = snapshot
                    self._cached_generation = generation
                    self._cached_fields = (
                        snapshot.as_of.ns,
                        snapshot.void_after.ns,
                        snapshot.bound_ns,
                        snapshot.max_drift_ppb,
                        snapshot.status,
                    )
                    return snapshot
            os.sched_yield()  # let a writer caught mid-update finish
        if generation == 0:
            raise ClockBoundError("not_initialized", self.path, "generation is 0: the writer is re-initializing it")
        raise ClockBoundError(
            "busy",
            self.path,
            f"no consistent copy in {self._max_attempts} attempts: the generation stays odd or keeps changing "
            "(did the writer die mid-update?)",
        )

    @property
    def generation(self) -> int:
        """The generation word as it is right now: one 2-byte load, for a cheap "has it changed?".

        Odd (or 0) while the writer updates: compare it with a snapshot's generation and
        take a new `snapshot()` when they differ; the copy itself only comes from there.
        """
        words = self._words
        if words is None:
            raise ClockBoundError("closed", self.path, "the reader is closed")
        return words[GENERATION_WORD]

    def header_words(self) -> memoryview:
        """The header as native u16 words, read in place: `words[GENERATION_WORD]` is the
        generation word as it is right now, one 2-byte load with no call at all.

        For hot paths that compare the generation on every call. The view is released when
        the reader closes; indexing it then raises ValueError.
        """
        return self._require_open()[1]

    def now(self) -> BoundedNow:
        """Bounded current time, as ClockBound's client computes it (see module doc)."""
        words = self._words
        if words is None:
            raise ClockBoundError("closed", self.path, "the reader is closed")
        version, generation = words[_VERSION_WORD], words[GENERATION_WORD]
        if generation != self._cached_generation or version != SUPPORTED_VERSION:
            self._refresh(version, generation)
        as_of_ns, void_after_ns, bound_ns, max_drift_ppb, status = self._cached_fields
        realtime_ns = time.clock_gettime_ns(time.CLOCK_REALTIME)
        monotonic_ns = time.clock_gettime_ns(CLOCK_MONOTONIC_COARSE)
        return _bounded(as_of_ns, void_after_ns, bound_ns, max_drift_ppb, status, realtime_ns, monotonic_ns, self.path)

    def close(self) -> None:
        if self._words is not None:
            self._words.release()  # an exported view would keep the map from closing
            self._words = None
        if self._map is not None:
            self._map.close()
            self._map = None

    def __enter__(self) -> ClockBoundReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _refresh(self, version: int, generation: int) -> None:
        if version not in (0, SUPPORTED_VERSION):
            raise self._version_error(version)
        stale = version == 0 or generation == 0 or generation & 1
        if not (stale and self._cached is not None):
            # Keeping the last copy while the writer updates or re-initializes is the
            # client's choice: that bound is older, hence larger, and void-after still
            # ends it if the writer never comes back.
            self.snapshot()
        if self._cached is not None and self._cached.disruption_support:
            self._cached_generation = -1  # so the next call checks again instead of using the copy
            raise ClockBoundError(
                "unsupported",
                self.path,
                "clock disruption support is on: a ClockBound client would check the VMClock's "
                "disruption marker, which this reader cannot do",
            )

    def _decode(
        self, magic: bytes, segment_size: int, version: int, generation: int, fields: tuple[int, ...]
    ) -> SegmentSnapshot:
        as_of_s, as_of_nsec, void_s, void_nsec, bound_ns, marker, max_drift_ppb, status, support = fields
        try:
            clock_status = ClockStatus(status)
        except ValueError:
            raise ClockBoundError("malformed", self.path, f"clock status {status} is not one of 0 to 3") from None
        if support not in (0, 1):
            raise ClockBoundError("malformed", self.path, f"clock disruption support byte is {support}, not 0 or 1")
        return SegmentSnapshot(
            magic_ok=magic == EXPECTED_MAGIC,
            segment_size=segment_size,
            version=version,
            generation=generation,
            as_of=Timespec(as_of_s, as_of_nsec),
            void_after=Timespec(void_s, void_nsec),
            bound_ns=bound_ns,
            disruption_marker=marker,
            max_drift_ppb=max_drift_ppb,
            status=clock_status,
            disruption_support=bool(support),
        )

    def _version_error(self, version: int) -> ClockBoundError:
        if version == 0:
            return ClockBoundError(
                "not_initialized", self.path, "layout version is 0: the writer is re-initializing it"
            )
        return ClockBoundError(
            "bad_version",
            self.path,
            f"layout version {version} is not supported (this reader speaks {SUPPORTED_VERSION})",
        )

    def _require_open(self) -> tuple[mmap.mmap, memoryview]:
        if self._map is None or self._words is None:
            raise ClockBoundError("closed", self.path, "the reader is closed")
        return self._map, self._words

    def _fence(self) -> None:
        # Keeps the field loads between the two generation loads. x86-64 does not reorder
        # loads with loads (TSO); on arm64 a store-release followed by a load-acquire is
        # ordered (RCsc), which is what releasing and re-taking a lock does. CPython has
        # no fence of its own. Only x86-64 is tested here.
        self._fence_lock.release()
        self._fence_lock.acquire()


def _map_segment(path: str) -> mmap.mmap:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as error:
        raise from_os_error(path, error, "open the segment") from error
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ClockBoundError("not_a_file", path, "is a directory, not a segment file")
        if not stat.S_ISREG(info.st_mode):
            raise ClockBoundError("not_a_file", path, "not a regular file")
        header = os.pread(fd, HEADER_SIZE, 0)
        for _ in range(3):  # a generation of 0 may be a torn read (see snapshot); look again
            if len(header) < HEADER_SIZE or header[14:16] != b"\0\0":
                break
            os.sched_yield()
            header = os.pread(fd, HEADER_SIZE, 0)
        segment_size = _check_header(header, info.st_size, path)
        return mmap.mmap(fd, segment_size, mmap.MAP_SHARED, mmap.PROT_READ)
    except OSError as error:
        raise from_os_error(path, error, "read the segment") from error
    finally:
        os.close(fd)  # the mapping keeps the file


def _check_header(header: bytes, file_size: int, path: str) -> int:
    if len(header) < HEADER_SIZE:
        raise ClockBoundError(
            "not_initialized", path, f"is {len(header)} bytes, shorter than the {HEADER_SIZE}-byte segment header"
        )
    magic, segment_size, version, generation = _HEADER.unpack(header)
    if magic != EXPECTED_MAGIC:
        hint = ""
        if magic == _PROTOCOL_PAGE_MAGIC:
            hint = " (it holds PROTOCOL.md's byte listing; ClockBound writes the magic as two native-endian u32 words)"
        raise ClockBoundError("bad_magic", path, f"not a ClockBound segment: magic is {magic.hex(' ')}{hint}")
    if version == 0:
        raise ClockBoundError(
            "not_initialized", path, "layout version is 0: the writer has not finished initializing it"
        )
    if generation == 0:
        raise ClockBoundError("not_initialized", path, "generation is 0: nothing has been written to it yet")
    if version != SUPPORTED_VERSION:
        raise ClockBoundError(
            "bad_version", path, f"layout version {version} is not supported (this reader speaks {SUPPORTED_VERSION})"
        )
    if segment_size < MIN_SEGMENT_SIZE:
        raise ClockBoundError(
            "bad_size",
            path,
            f"segment size {segment_size} is too small for a version 2 segment ({MIN_SEGMENT_SIZE} bytes)",
        )
    if segment_size > file_size:
        raise ClockBoundError(
            "bad_size", path, f"segment size {segment_size} is larger than the file ({file_size} bytes)"
        )
    return segment_size
