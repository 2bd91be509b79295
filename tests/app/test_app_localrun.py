"""`make local` (python -m localrun): starts emulator, worker and app; Ctrl-C stops all three."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
URL_LINE = re.compile(r"open (http://127\.0\.0\.1:\d+)/")


class LocalRun:
    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "localrun", *args],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)

    def wait_for(self, pattern: re.Pattern[str] | str, timeout_s: float = 30) -> re.Match[str]:
        compiled = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                assert self.process.poll() is None, "localrun exited early:\n" + "".join(self.output)
                continue
            match = compiled.search(line)
            if match:
                return match
        raise AssertionError(f"no line matching {compiled.pattern!r} within {timeout_s} s:\n" + "".join(self.output))

    def children(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)

    def finish(self, timeout_s: float = 20) -> int:
        try:
            return self.process.wait(timeout=timeout_s)
        finally:
            if self.process.poll() is None:
                for child in self.children():
                    child.kill()
                self.process.kill()


def _gone(processes: list[psutil.Process]) -> list[psutil.Process]:
    _, alive = psutil.wait_procs(processes, timeout=5)
    return alive


def wait_for_clock(client: httpx.Client, check, timeout_s: float = 10) -> dict:
    """Poll /api/clock until `check(answer)` holds (the worker writes the segment once per interval)."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = client.get("/api/clock").json()
        if check(answer):
            return answer
        assert time.monotonic() < deadline, f"/api/clock never satisfied the condition; last answer: {answer}"
        time.sleep(0.1)


def test_local_run_serves_the_page_switches_scenarios_and_stops_on_ctrl_c():
    run = LocalRun("--port", "0", "--interval", "1")
    try:
        opened = run.wait_for(URL_LINE)
        url = opened.group(1)
        # localrun waits for the app to read the worker's segment before it prints the URL.
        assert "the gate reads ClockBound segment" in opened.string, opened.string
        children = run.children()
        assert len(children) == 3, children
        with httpx.Client(base_url=url, timeout=10) as client:
            assert "Clock gate" in client.get("/").text
            clock = client.get("/api/clock").json()
            assert clock["verdict"] == "SAFE" and clock["source"]["kind"] == "clockbound"
            assert clock["source"]["segment_path"].endswith("/clockbound/shm0")
            assert client.post("/api/operations", json={"label": "local"}).status_code == 200
            switched = client.post("/api/local/scenario", json={"scenario": "high_bound"})
            assert switched.status_code == 200 and switched.json()["scenario"] == "high_bound"
            # The gate sees the switch once the worker writes its next record (every second here).
            clock = wait_for_clock(client, lambda answer: answer["reasons"] == ["bound_over_threshold"])
            assert clock["source"]["kind"] == "clockbound" and clock["segment"]["bound_ms"] == pytest.approx(5.000001)
            assert client.post("/api/operations", json={"label": "local"}).status_code == 503
        # The worker samples the same emulator and publishes the gate's counts as EMF.
        run.wait_for(r"worker │ EMF .*ClockErrorBound=5\b.*OperationsRefused=1", timeout_s=15)
    finally:
        run.process.send_signal(signal.SIGINT)
        status = run.finish()
    assert status == 0, "".join(run.output)
    assert _gone(children) == []
    assert "stopped" in run.output[-1]


def test_without_the_segment_the_gate_asks_the_emulator():
    run = LocalRun("--port", "0", "--interval", "1", "--no-segment")
    try:
        opened = run.wait_for(URL_LINE)
        assert "the gate reads the metadata endpoint (--no-segment)" in opened.string
        with httpx.Client(base_url=opened.group(1), timeout=10) as client:
            clock = client.get("/api/clock").json()
            assert clock["source"] == {"kind": "metadata", "description": "task metadata endpoint", "segment_path": None, "note": None}
            assert client.post("/api/local/scenario", json={"scenario": "high_bound"}).status_code == 200
            # The switch drops the cached sample: the very next check sees it.
            assert client.get("/api/clock").json()["reasons"] == ["bound_over_threshold"]
    finally:
        run.process.send_signal(signal.SIGINT)
        status = run.finish()
    assert status == 0, "".join(run.output)


def test_a_busy_port_is_one_clear_line():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        run = LocalRun("--port", str(port))
        status = run.finish(timeout_s=20)
    assert status == 2
    assert f"port {port} on 127.0.0.1 is busy" in "".join(run.output)
    assert "Traceback" not in "".join(run.output)


def test_a_dying_child_stops_the_others():
    run = LocalRun("--port", "0")
    try:
        run.wait_for(URL_LINE)
        children = run.children()
        app = next(child for child in children if "clock_app" in child.cmdline())
        app.kill()
        status = run.finish()
    finally:
        if run.process.poll() is None:
            run.process.kill()
    assert status == 1
    assert re.search(r"the app exited with status -9 .*stopping the others", "".join(run.output))
    assert _gone(children) == []


def test_sigterm_stops_everything_too():
    run = LocalRun("--port", "0")
    run.wait_for(URL_LINE)
    children = run.children()
    run.process.send_signal(signal.SIGTERM)
    assert run.finish() == 0
    assert _gone(children) == []


@pytest.mark.parametrize("args", [["--port", "70000"], ["--interval", "0.1"]])
def test_bad_arguments_are_refused(args):
    run = LocalRun(*args)
    assert run.finish() == 2
    assert "Traceback" not in "".join(run.output)
