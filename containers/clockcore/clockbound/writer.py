"""Write ClockBound's shared memory segment (protocol version 2), in place.

ClockBound clients (C, Rust, Python, Elixir; YugabyteDB's `time_source=clockbound`)
mmap `/var/run/clockbound/shm0` once and keep the mapping. So this writer creates the
file once, reopens it on restart and updates it in place under the generation protocol;
it never replaces or renames it, which would leave every mapped client reading a dead
inode. A file that is not a ClockBound v2 segment is refused rather than overwritten.

Layout, from aws/clock-bound `docs/PROTOCOL.md` and the `#[repr(C)]` structs it
describes (`clock-bound-shm`: `ShmHeader`, then `ClockErrorBound`), native byte order:

    offset  size  field
         0     8  magic: two native u32 words 0x414D5A4E, 0x43420200
         8     4  segment size (u32)                = 80
        12     2  layout version (u16)              = 2
        14     2  generation (u16)
        16    16  as-of (timespec: i64 s, i64 ns)    CLOCK_MONOTONIC_COARSE
        32    16  void-after (timespec)              CLOCK_MONOTONIC_COARSE
        48     8  bound (i64 ns)                     valid for CLOCK_REALTIME at as-of
        56     8  disruption marker (u64)
        64     4  max drift (u32 ppb)
        68     4  clock status (i32)
        72     1  clock disruption support (u8, a Rust bool)
        73     7  padding: the struct is 8-byte aligned, 57 bytes of fields make 64

The magic is written as the daemon writes it (`SHM_MAGIC: [u32; 2]`, native endian): on
x86-64 and Graviton the bytes are 4E 5A 4D 41 00 02 42 43, not the byte listing the
protocol page shows; clients compare the two words, so only this form is readable.
"""

from __future__ import annotations

import enum
import errno
import fcntl
import mmap
import os
import stat
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from clockcore.clockbound.errors import ClockBoundError, from_os_error

DEFAULT_PATH = "/var/run/clockbound/shm0"

MAGIC = struct.pack("=II", 0x414D5A4E, 0x43420200)
LAYOUT_VERSION = 2
# ShmWriter::segment_size(): 16-byte header + 64-byte ClockErrorBound, already a multiple of 8.
SEGMENT_SIZE = 80

_HEADER = struct.Struct("=8sIHH")  # magic, segment size, version, generation
_GENERATION_WORD = 7  # offset 14 as an index into the segment's u16 words
_RECORD = struct.Struct("=qqqqqQIiB7x")  # as-of s/ns, void-after s/ns, bound, marker, drift, status, support
_RECORD_OFFSET = 16
assert _HEADER.size + _RECORD.size == SEGMENT_SIZE

# Python's time module has no name for it; 6 is its value in <linux/time.h>.
CLOCK_MONOTONIC_COARSE: int = getattr(time, "CLOCK_MONOTONIC_COARSE", 6)

# The client reports a segment with a max drift at or above one second per second as
# malformed (`max_drift_ppb >= 1_000_000_000` in clock-bound-shm's `now()`).
MAX_DRIFT_PPB_LIMIT = 1_000_000_000

_NS_PER_S = 1_000_000_000
_I64 = (-(2**63), 2**63 - 1)

_FILE_MODE = 0o644  # clients run under other uids and only need to read
_DIR_MODE = 0o755


class SegmentStatus(enum.IntEnum):
    """The clock status word the writer stores (the protocol's four values)."""

    UNKNOWN = 0
    SYNCHRONIZED = 1
    FREE_RUNNING = 2
    DISRUPTED = 3


@dataclass(frozen=True)
class SegmentRecord:
    """One update of the segment: everything after the header.

    Instants are nanoseconds on CLOCK_MONOTONIC_COARSE (the clock clients compare them
    with); the writer splits them into timespecs.
    """

    as_of_ns: int
    void_after_ns: int
    bound_ns: int
    max_drift_ppb: int
    status: SegmentStatus
    disruption_marker: int = 0
    disruption_support: bool = False

    def __post_init__(self) -> None:
        for name in ("as_of_ns", "void_after_ns", "bound_ns", "max_drift_ppb", "disruption_marker"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an int, got {type(value).__name__}")
        for name in ("as_of_ns", "void_after_ns"):
            if not _I64[0] <= getattr(self, name) <= _I64[1]:
                raise ValueError(f"{name} {getattr(self, name)} does not fit a timespec")
        # A bound is an absolute value: a negative one would shrink the client's interval.
        if not 0 <= self.bound_ns <= _I64[1]:
            raise ValueError(f"bound_ns must be within 0..2**63-1, got {self.bound_ns}")
        if not 0 <= self.max_drift_ppb < MAX_DRIFT_PPB_LIMIT:
            raise ValueError(
                f"max_drift_ppb must be within 0..{MAX_DRIFT_PPB_LIMIT - 1} (clients refuse more), "
                f"got {self.max_drift_ppb}"
            )
        if not 0 <= self.disruption_marker < 2**64:
            raise ValueError(f"disruption_marker must fit a u64, got {self.disruption_marker}")
        try:
            object.__setattr__(self, "status", SegmentStatus(self.status))
        except ValueError:
            raise ValueError(f"status {self.status!r} is not a ClockBound clock status (0 to 3)") from None
        object.__setattr__(self, "disruption_support", bool(self.disruption_support))


def next_generation(generation: int) -> tuple[int, int]:
    """(odd value held during the update, even value published after it).

    As clock-bound-shm's writer: an odd generation left by a writer that died
    mid-update is kept as the "updating" value; the published value skips 0, which
    readers take as "never written", so 65534 -> 65535 -> 2.
    """
    updating = generation if generation & 1 else (generation + 1) & 0xFFFF
    published = (updating + 1) & 0xFFFF or 2
    return updating, published


def _split_timespec(ns: int) -> tuple[int, int]:
    seconds, nanoseconds = divmod(ns, _NS_PER_S)  # floor: tv_nsec stays in 0..999_999_999
    return seconds, nanoseconds


class ClockBoundWriter:
    """The single writer of one segment file.

    Holds an exclusive `flock` on the file for its lifetime, so a second writer on the
    same path is refused instead of interleaving generations. Not thread-safe: one
    thread writes.
    """

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_PATH) -> None:
        self.path = os.fspath(path)
        fd, created = _open_or_create(self.path)
        try:
            _lock(fd, self.path)
            _prepare(fd, self.path, created)
            self._map: mmap.mmap | None = mmap.mmap(fd, SEGMENT_SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as error:
            os.close(fd)
            raise from_os_error(self.path, error, "map the segment") from error
        except BaseException:
            os.close(fd)
            raise
        self._fd: int | None = fd  # kept open: the flock lives with it
        # The generation is stored through a u16 view: one 2-byte store. struct.pack_into
        # writes a u16 a byte at a time (measured here: a reader caught 255 -> 256 as 0
        # and as 511), and a torn 0 reads as "never written".
        self._words: memoryview | None = memoryview(self._map)[: _HEADER.size].cast("H")
        # CPython has no memory fence; see _fence().
        self._fence_lock = threading.Lock()
        self._fence_lock.acquire()

    @property
    def generation(self) -> int:
        return self._require_open()[1][_GENERATION_WORD]

    def write(self, record: SegmentRecord) -> int:
        """Publish `record`; returns the (even) generation it is published under."""
        segment, words = self._require_open()
        updating, published = next_generation(words[_GENERATION_WORD])
        as_of_s, as_of_nsec = _split_timespec(record.as_of_ns)
        void_s, void_nsec = _split_timespec(record.void_after_ns)
        # (Going from even to odd never carries into the high byte anyway, so not even a
        # torn store could show readers an even value while the fields change.)
        words[_GENERATION_WORD] = updating
        self._fence()
        _RECORD.pack_into(
            segment,
            _RECORD_OFFSET,
            as_of_s,
            as_of_nsec,
            void_s,
            void_nsec,
            record.bound_ns,
            record.disruption_marker,
            record.max_drift_ppb,
            int(record.status),
            1 if record.disruption_support else 0,
        )
        self._fence()
        words[_GENERATION_WORD] = published
        return published

    def close(self) -> None:
        """Unmap and close (releasing the lock). The file stays: readers keep using it."""
        if self._words is not None:
            self._words.release()  # an exported view would keep the map from closing
            self._words = None
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ClockBoundWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _require_open(self) -> tuple[mmap.mmap, memoryview]:
        if self._map is None or self._words is None:
            raise ClockBoundError("closed", self.path, "the writer is closed")
        return self._map, self._words

    def _fence(self) -> None:
        # Orders the stores before it ahead of the stores after it, for readers on other
        # CPUs. x86-64 keeps stores in program order anyway (TSO). arm64 does not; there
        # a store-release followed by a load-acquire is ordered (ARMv8 release/acquire
        # are RCsc), which is what releasing and re-taking a lock does (sem_post then
        # sem_trywait in CPython 3.11). About 0.1 µs. Only x86-64 is tested here.
        self._fence_lock.release()
        self._fence_lock.acquire()


def _open_or_create(path: str) -> tuple[int, bool]:
    _make_parents(path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _FILE_MODE)
    except FileExistsError:
        pass
    except OSError as error:
        raise from_os_error(path, error, "create the segment file") from error
    else:
        try:
            os.fchmod(fd, _FILE_MODE)  # the umask must not hide the segment from clients
        except OSError as error:
            os.close(fd)
            raise from_os_error(path, error, "make the segment file readable by others") from error
        return fd, True
    try:
        return os.open(path, os.O_RDWR | os.O_CLOEXEC), False
    except OSError as error:
        raise from_os_error(path, error, "open the segment file for writing") from error


def _make_parents(path: str) -> None:
    missing: list[Path] = []
    parent = Path(path).absolute().parent
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, _DIR_MODE)
            os.chmod(folder, _DIR_MODE)  # not narrowed by the umask: clients must traverse it
        except FileExistsError:
            continue
        except OSError as error:
            raise from_os_error(path, error, f"create the folder {folder}") from error


def _lock(fd: int, path: str) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise ClockBoundError("in_use", path, "another writer holds this segment") from None
        raise from_os_error(path, error, "lock the segment file") from error


def _prepare(fd: int, path: str, created: bool) -> None:
    """Initialize a new or empty file; check that an existing one is a v2 segment."""
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ClockBoundError("not_a_file", path, "not a regular file")
        content = os.pread(fd, SEGMENT_SIZE, 0)
        if created or (info.st_size <= SEGMENT_SIZE and not content.strip(b"\0")):
            # New, empty, or all zero bytes (a writer that died before its first header
            # write): lay out the header. Generation 0 tells readers nothing is written yet.
            os.ftruncate(fd, SEGMENT_SIZE)
            os.pwrite(fd, _HEADER.pack(MAGIC, SEGMENT_SIZE, LAYOUT_VERSION, 0), 0)
            return
    except OSError as error:
        raise from_os_error(path, error, "initialize the segment") from error
    _check_existing(content, info.st_size, path)


def _check_existing(content: bytes, file_size: int, path: str) -> None:
    refusal = "refusing to overwrite it; remove the file if it is stale"
    if content[:8] != MAGIC:
        raise ClockBoundError("foreign", path, f"does not start with ClockBound's magic number: {refusal}")
    if file_size != SEGMENT_SIZE:
        raise ClockBoundError(
            "foreign", path, f"is {file_size} bytes, a version 2 segment is {SEGMENT_SIZE}: {refusal}"
        )
    _, segment_size, version, _ = _HEADER.unpack_from(content)
    if version != LAYOUT_VERSION:
        raise ClockBoundError(
            "bad_version", path, f"is a ClockBound segment of layout version {version}, not {LAYOUT_VERSION}: {refusal}"
        )
    if segment_size != SEGMENT_SIZE:
        raise ClockBoundError(
            "bad_size", path, f"declares a segment size of {segment_size}, not {SEGMENT_SIZE}: {refusal}"
        )
