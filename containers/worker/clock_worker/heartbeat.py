"""The heartbeat file: touched after every loop iteration, read by the health check.

The root filesystem is read-only in ECS; the file lives on the writable /tmp volume.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from clock_worker.logs import log_event

log = logging.getLogger("clock_worker.heartbeat")


class Heartbeat:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._broken = False

    def beat(self) -> None:
        try:
            # The health check reads the modification time. Touching an existing file
            # is one syscall; rewriting it cost a third of a millisecond per sample.
            try:
                os.utime(self._path)
            except FileNotFoundError:
                self._path.write_text(f"clock worker heartbeat, started {time.time():.3f}\n", encoding="ascii")
            if self._broken:
                self._broken = False
                log_event(log, logging.INFO, "heartbeat_recovered", f"heartbeat file {self._path} writable again")
        except OSError as error:
            if not self._broken:
                self._broken = True
                log_event(log, logging.ERROR, "heartbeat_failed",
                          f"cannot write heartbeat file {self._path}: {error}; the health check will fail",
                          path=str(self._path))

    def remove(self) -> None:
        try:
            os.unlink(self._path)
        except OSError:
            pass
