"""The one error type the ClockBound segment code raises.

Writer, reader and CLI share it so a caller catches one thing; `kind` says what went
wrong in a word a program can branch on, the message says it in words naming the path.
"""

from __future__ import annotations

import os


class ClockBoundError(ValueError):
    """A segment could not be created, opened, read or written.

    A ValueError because nearly every case is "this file is not what it should be";
    `kind` separates them for callers and tests.
    """

    KINDS = frozenset(
        {
            "missing",  # no file at the path
            "not_a_file",  # a directory, a FIFO, ...
            "permission",  # the file or its folder cannot be opened as asked
            "os_error",  # any other failed system call (read-only file system, ...)
            "not_initialized",  # too short for a header, or version/generation still 0
            "bad_magic",  # not a ClockBound segment
            "bad_version",  # a ClockBound segment of another layout version
            "bad_size",  # segment size too small, or not what the file holds
            "malformed",  # a field value the protocol does not allow
            "unsupported",  # a segment that asks for what this code cannot do (VMClock checks)
            "busy",  # no consistent copy within the retry budget (writer died mid-update?)
            "causality",  # as-of lies in the future of this host's monotonic clock
            "in_use",  # another writer holds the segment
            "foreign",  # the writer refuses to overwrite a file that is not its segment
            "closed",  # used after close()
        }
    )

    def __init__(self, kind: str, path: str | os.PathLike[str], problem: str) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown ClockBound error kind {kind!r}")
        self.kind = kind
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __repr__(self) -> str:
        return f"ClockBoundError({self.kind!r}, {self.path!r}, {self.problem!r})"


def from_os_error(path: str | os.PathLike[str], error: OSError, doing: str) -> ClockBoundError:
    """Name a failed system call in the segment's terms ("cannot open ...: permission denied")."""
    reason = error.strerror or str(error)
    if isinstance(error, FileNotFoundError):
        return ClockBoundError("missing", path, f"cannot {doing}: no such file (is the writer running?)")
    if isinstance(error, IsADirectoryError):
        return ClockBoundError("not_a_file", path, f"cannot {doing}: it is a directory, not a segment file")
    if isinstance(error, NotADirectoryError):
        return ClockBoundError("not_a_file", path, f"cannot {doing}: a parent of the path is not a directory")
    if isinstance(error, PermissionError):
        return ClockBoundError("permission", path, f"cannot {doing}: {reason.lower()}")
    return ClockBoundError("os_error", path, f"cannot {doing}: {reason}")
