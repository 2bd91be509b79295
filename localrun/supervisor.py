"""Start, watch and stop the local run's child processes, relaying their output readably."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Mapping

COLOURS = {"emulator": "35", "worker": "36", "app": "32", "localrun": "1"}
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if localrun itself is killed (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: Ctrl-C still stops everything through localrun


class Console:
    """One writer for every process's lines, so lines never interleave mid-way."""

    def __init__(self, stream: IO[str] = sys.stdout, *, raw: bool = False) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._colour = stream.isatty() and os.environ.get("NO_COLOR") is None
        self.raw = raw

    def line(self, source: str, text: str) -> None:
        label = f"{source:>8} │ "
        if self._colour:
            label = f"\033[{COLOURS.get(source, '0')}m{label}\033[0m"
        with self._lock:
            self._stream.write(label + text + "\n")
            self._stream.flush()

    def say(self, text: str) -> None:
        self.line("localrun", text)

    def readable(self, text: str) -> str:
        """JSON log lines (the worker's logs, EMF) shortened to what a person reads."""
        if self.raw or not text.startswith("{"):
            return text
        try:
            entry = json.loads(text)
        except ValueError:
            return text
        if not isinstance(entry, dict):
            return text
        if "_aws" in entry:
            return "EMF " + _emf_summary(entry)
        if "message" in entry:
            level = str(entry.get("level", "")).upper()
            return f"{level} {entry['message']}".strip()
        return text


def _emf_summary(entry: dict[str, object]) -> str:
    try:
        directives = entry["_aws"]["CloudWatchMetrics"]  # type: ignore[index]
        # The same metric may sit in several directives (service and per-task dimensions).
        names = list(dict.fromkeys(metric["Name"] for directive in directives for metric in directive["Metrics"]))
        namespace = directives[0]["Namespace"]
    except (KeyError, TypeError, IndexError):
        return json.dumps(entry)[:300]
    values = ", ".join(f"{name}={_short(entry.get(name))}" for name in names)
    return f"{namespace}: {values}"


def _short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@dataclass
class Child:
    name: str
    process: subprocess.Popen[str]
    relay: threading.Thread
    expected_exit: bool = field(default=False)

    @property
    def pid(self) -> int:
        return self.process.pid


def start_child(name: str, argv: list[str], *, env: Mapping[str, str], cwd: Path, console: Console) -> Child:
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        # Own session: Ctrl-C reaches localrun only, which stops the children in order.
        start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,  # noqa: PLW1509 - no threads touch the child before exec
    )

    def relay() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            console.line(name, console.readable(line.rstrip("\n")))

    thread = threading.Thread(target=relay, name=f"relay-{name}", daemon=True)
    thread.start()
    return Child(name=name, process=process, relay=thread)


def stop_children(children: list[Child], *, grace_s: float = 6.0) -> None:
    """SIGTERM to each (newest first), wait together, SIGKILL whatever is left."""
    for child in reversed(children):
        child.expected_exit = True
        if child.process.poll() is None:
            try:
                child.process.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace_s
    for child in children:
        try:
            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait(timeout=5)
    for child in children:
        child.relay.join(timeout=2)


def wait_until(check: Callable[[], bool], *, timeout_s: float, children: list[Child], interval_s: float = 0.1) -> bool:
    """Poll `check` until true; False on timeout or as soon as any child has exited."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(child.process.poll() is not None for child in children):
            return False
        if check():
            return True
        time.sleep(interval_s)
    return False
