"""A child process's stdout and stderr, collected line by line as they come (one thread each)."""

from __future__ import annotations

import subprocess
import threading
from typing import IO


class CollectedOutput:
    """Reads `process`'s text stdout and stderr until they close; `lock` guards both lists."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.lock = threading.Lock()
        self._readers = [
            threading.Thread(target=self._pump, args=(stream, into), daemon=True)
            for stream, into in ((process.stdout, self.stdout), (process.stderr, self.stderr))
        ]
        for reader in self._readers:
            reader.start()

    def _pump(self, stream: IO[str] | None, into: list[str]) -> None:
        if stream is None:
            return
        for line in stream:
            with self.lock:
                into.append(line.rstrip("\n"))

    def join(self, timeout_s: float) -> None:
        """Wait (each reader at most `timeout_s`) for both streams to close."""
        for reader in self._readers:
            reader.join(timeout=timeout_s)
