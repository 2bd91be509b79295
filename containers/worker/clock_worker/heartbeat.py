"""The heartbeat file: touched after every loop iteration, read by the health check.

Its first word says whether the worker has taken a synchronized sample yet ("waiting"
until then, "synchronized" from then on): the worker is healthy only from that sample
on, so a task that waits for it starts on a trusted clock. The root filesystem is
read-only in ECS; the file lives on the writable /tmp volume.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from clock_worker.logs import log_event

log = logging.getLogger("clock_worker.heartbeat")


WAITING = "waiting"
SYNCHRONIZED = "synchronized"


class Heartbeat:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._broken = False
        self._written: bool | None = None  # the state the file says, once this process wrote it

    def beat(self, *, synchronized: bool) -> None:
        try:
            # The health check reads the modification time. Touching an existing file
            # is one syscall; rewriting it cost a third of a millisecond per sample, so
            # it is rewritten only when the state changes (or a file of an earlier run is there).
            if self._written is synchronized:
                try:
                    os.utime(self._path)
                except FileNotFoundError:
                    self._write(synchronized)
            else:
                self._write(synchronized)
            if self._broken:
                self._broken = False
                log_event(log, logging.INFO, "heartbeat_recovered", f"heartbeat file {self._path} writable again")
        except OSError as error:
            if not self._broken:
                self._broken = True
                log_event(
                    log,
                    logging.ERROR,
                    "heartbeat_failed",
                    f"cannot write heartbeat file {self._path}: {error}; the health check will fail",
                    path=str(self._path),
                )

    def _write(self, synchronized: bool) -> None:
        state = SYNCHRONIZED if synchronized else f"{WAITING} for a synchronized clock sample"
        self._path.write_text(
            f"{state}\nclock worker heartbeat, pid {os.getpid()}, {time.time():.3f}\n", encoding="ascii"
        )
        self._written = synchronized
