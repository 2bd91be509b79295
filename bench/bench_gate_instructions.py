"""The gate's cost in instructions and cache misses: deterministic, whatever else the machine is doing.

The throughput ratio (bench_app_segment) is what a user sees, but on a shared 2-core VM
one run of it swings by a couple of per cent, as much as the gate's whole cost. This
counts instead, with valgrind's callgrind and its cache simulation (instructions, and
level-1 instruction and data read misses), in two settings:

- in process: `bench.gate_driver` drives the app through whole ASGI requests
  (middleware, routing, validation, endpoint, answer; no server, no sockets): the
  gate's own code, change by change;
- through the server: `python -m clock_app` itself (uvicorn, h11, asyncio, the
  sockets) under callgrind, a client in this process sending its requests on one
  keep-alive connection: the whole request as the throughput benchmark serves it.

Each route is run with 0 and with COUNT requests after the same warm-up (200 to each
route); the difference over COUNT is its instructions per request, start-up and
warm-up cancelling out. Both route orders are counted (the twin routed before the gated
route, and after it: whichever comes second tries one route more), and the gate is the
mean over the two of gated minus ungated. Both apps read a ClockBound segment this
module writes (0.3 ms bound, growing at 1 ppm, void an hour on: SAFE under valgrind's
slowdown). Back-to-back processes agree to a few instructions a request, but runs made
at other times differ by a few thousand (the gate in process read 20,271, 20,298 and
24,990 on an idle machine): process-level randomness, presumably address layout and
hash seeds that PYTHONHASHSEED does not reach (pydantic-core's own). So this is far
steadier than the throughput ratio, not exact: compare several runs, not one.

Instructions are not time: a cache miss costs more than an add, and the throughput
benchmark's figures put the gate's share of a request above its share of instructions.

Needs valgrind (Debian package `valgrind`); without it this says so and measures nothing.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.gate_driver import write_segment

ROOT = Path(__file__).resolve().parents[1]
COUNT_IN_PROCESS = 2_000
COUNT_SERVER = 3_000
WARM_UP = 200
GATED = "/api/operations"
UNGATED = "/api/bench/operations-ungated"
BODY = b'{"label":"bench"}'


# What is counted: instructions (Ir), and from callgrind's cache simulation the level-1
# instruction and data read misses (I1mr, D1mr). The throughput ratio follows the misses
# more than the instructions: the gate's code runs cold, once per request among a
# million other instructions (see bench/README.md).
EVENTS = ("Ir", "I1mr", "D1mr")


def _callgrind(out: Path) -> list[str]:
    return ["valgrind", "--tool=callgrind", "--cache-sim=yes", f"--callgrind-out-file={out}"]


def _total(out: Path) -> dict[str, int]:
    """The run's totals of EVENTS, from callgrind's output file."""
    text = out.read_text()
    names = re.search(r"^events: (.+)$", text, re.MULTILINE)
    totals = re.search(r"^(?:summary|totals): ([\d ]+)$", text, re.MULTILINE)
    if names is None or totals is None:
        raise RuntimeError(f"no event totals in {out}")
    counted = dict(zip(names.group(1).split(), (int(value) for value in totals.group(1).split()), strict=False))
    missing = [event for event in EVENTS if event not in counted]
    if missing:
        raise RuntimeError(f"{out} counts no {', '.join(missing)}")
    return {event: counted[event] for event in EVENTS}


def _env(twin_after: bool) -> dict[str, str]:
    return {**os.environ, "PYTHONHASHSEED": "0", "CLOCK_APP_BENCH_TWIN_AFTER": "1" if twin_after else "0"}


def _in_process(path: str, count: int, *, twin_after: bool, folder: Path) -> dict[str, int]:
    """Instructions of the in-process driver: start-up, warm-up and `count` requests."""
    out = folder / "in-process.out"
    command = [*_callgrind(out), sys.executable, "-m", "bench.gate_driver", path, str(count)]
    result = subprocess.run(command, cwd=ROOT, env=_env(twin_after), capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"gate_driver under callgrind failed ({result.returncode}): {result.stderr[-2000:]}")
    return _total(out)


def _post(connection: http.client.HTTPConnection, path: str) -> None:
    connection.request("POST", path, body=BODY, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"{path} answered {response.status} under callgrind")


def _server(path: str, count: int, *, twin_after: bool, folder: Path) -> dict[str, int]:
    """Instructions of `python -m clock_app`: start-up, warm-up and `count` requests, to its exit."""
    out = folder / "server.out"
    shm = folder / "shm0"
    # A fresh record for every server: under callgrind's cache simulation on a loaded
    # machine the four servers of a setting took long enough for one record's bound to
    # grow past the threshold (0.3 ms at 1 ppm: about 12 minutes), and the gated route
    # answered 503.
    write_segment(shm)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **_env(twin_after),
        "PYTHONPATH": f"{ROOT / 'containers'}{os.pathsep}{ROOT / 'containers' / 'app'}",
        "CLOCK_CLOCKBOUND_SHM": str(shm),
        "CLOCK_APP_BENCH_ROUTES": "1",
        "CLOCK_MAX_REFERENCE_AGE_SECONDS": "3600",
        "CLOCK_APP_HOST": "127.0.0.1",
        "CLOCK_APP_PORT": str(port),
    }
    server = subprocess.Popen(
        [*_callgrind(out), sys.executable, "-m", "clock_app"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while True:  # refused connections never reach the app: they cost it nothing
            if server.poll() is not None:
                raise RuntimeError(f"the app exited with status {server.returncode} under callgrind")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                connection.connect()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the app did not listen within 300 s under callgrind") from None
                time.sleep(0.5)
        try:
            for route in (GATED, UNGATED):
                for _ in range(WARM_UP):
                    _post(connection, route)
            for _ in range(count):
                _post(connection, path)
        finally:
            connection.close()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=300)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    return _total(out)


def _measure(count_requests: Callable[..., dict[str, int]], count: int) -> dict[str, Any]:
    per_request: dict[str, dict[str, dict[str, int]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-gate-instructions-") as name:
        folder = Path(name)
        for twin_after in (False, True):
            order = "twin_after" if twin_after else "twin_before"
            base = count_requests(GATED, 0, twin_after=twin_after, folder=folder)
            per_request[order] = {}
            for kind, path in (("gated", GATED), ("ungated", UNGATED)):
                counted = count_requests(path, count, twin_after=twin_after, folder=folder)
                per_request[order][kind] = {event: round((counted[event] - base[event]) / count) for event in EVENTS}

    def mean(kind: str, event: str) -> float:
        return sum(figures[kind][event] for figures in per_request.values()) / len(per_request)

    return {
        "per_request": per_request,
        "gate_per_request": {event: round(mean("gated", event) - mean("ungated", event)) for event in EVENTS},
        "ratio_ungated_to_gated_instructions": round(mean("ungated", "Ir") / mean("gated", "Ir"), 4),
        "requests_counted": count,
    }


def main() -> dict[str, Any]:
    if shutil.which("valgrind") is None:
        print("  valgrind is not installed (apt-get install valgrind): nothing measured")
        return {"skipped": "valgrind not installed"}
    sys.path[:0] = [str(ROOT / "containers"), str(ROOT / "containers" / "app")]
    result: dict[str, Any] = {
        "in_process": _measure(_in_process, COUNT_IN_PROCESS),
        "server": _measure(_server, COUNT_SERVER),
    }
    for setting, figures in result.items():
        for order, kinds in figures["per_request"].items():
            for kind, counts in kinds.items():
                spelled = ", ".join(f"{event} {counts[event]:,}" for event in EVENTS)
                print(f"  {setting}, {order}, {kind}: {spelled} a request")
        gate = figures["gate_per_request"]
        print(
            f"  {setting}: the gate {gate['Ir']:,} instructions, {gate['I1mr']:,} I1 and {gate['D1mr']:,} D1 read "
            f"misses a request; ungated/gated instructions {figures['ratio_ungated_to_gated_instructions']}"
        )
    result["method"] = (
        "valgrind --tool=callgrind --cache-sim=yes (events Ir, I1mr, D1mr), PYTHONHASHSEED=0, ClockBound "
        f"segment source: in process, python -m bench.gate_driver (whole ASGI requests, {COUNT_IN_PROCESS} "
        f"counted); through the server, python -m clock_app with one keep-alive connection ({COUNT_SERVER} "
        "counted); (count with N requests - count with 0) / N per route, route order and event, after 200 "
        "warm-up requests to each route; the gate = mean over both orders of gated - ungated"
    )
    return result


if __name__ == "__main__":
    main()
