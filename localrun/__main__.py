"""python -m localrun [--port N] [--interval S] [--raw] [--no-segment]: what `make local` runs.

The worker keeps a ClockBound segment in the run's temporary folder and the app's gate
reads it (CLOCK_CLOCKBOUND_SHM set for both, as the construct sets it in a task);
`--no-segment` leaves it out, and the gate asks the emulator instead.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path

from localrun.supervisor import Child, Console, start_child, stop_children, wait_until

REPO = Path(__file__).resolve().parents[1]
CONTAINERS = REPO / "containers"
PREFERRED_PORT = 8080
STATS_PATH = "/api/operations/stats"  # clockcore.contract.APP_STATS_PATH; localrun imports no image code
CLOCKBOUND_SHM_ENV = "CLOCK_CLOCKBOUND_SHM"  # clockcore.contract.ENV_CLOCKBOUND_SHM
# How long to wait for the app to read the worker's first segment record before saying so.
SEGMENT_WAIT_S = 15.0

EXIT_OK = 0
EXIT_CHILD_DIED = 1
EXIT_SETUP = 2


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def any_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PortBusy(Exception):
    pass


def choose_app_port(requested: int | None) -> int:
    """8080 if free, else any free port; a port asked for by name must be free."""
    if requested is None:
        return PREFERRED_PORT if port_is_free(PREFERRED_PORT) else any_free_port()
    if requested == 0:
        return any_free_port()
    if not port_is_free(requested):
        raise PortBusy(f"port {requested} on 127.0.0.1 is busy: stop what uses it, or run with --port 0 for any free port")
    return requested


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def clock_source(app_url: str) -> str | None:
    """Which source answered the app's /api/clock ("clockbound" or "metadata"), or None."""
    try:
        with urllib.request.urlopen(f"{app_url}/api/clock", timeout=2) as response:  # noqa: S310 - loopback
            return str(json.loads(response.read(1 << 20))["source"]["kind"])
    except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError):
        return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m localrun", description="TMDS emulator + worker + app on 127.0.0.1 (no AWS)")
    parser.add_argument("--port", type=int, default=None, help="the app's port (default 8080, or any free port if 8080 is busy; 0: any)")
    parser.add_argument("--interval", type=float, default=2.0, help="the worker's sampling interval in seconds (default 2)")
    parser.add_argument("--raw", action="store_true", help="relay the worker's JSON and EMF lines as they are")
    parser.add_argument(
        "--no-segment",
        action="store_true",
        help="no ClockBound segment: the app's gate asks the emulator (the metadata endpoint) instead",
    )
    args = parser.parse_args(argv)
    if args.port is not None and not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port} is not a port number")
    if args.interval < 1:
        parser.error("--interval must be at least 1 second (the worker's minimum)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(raw=args.raw)
    try:
        app_port = choose_app_port(args.port)
    except PortBusy as error:
        console.say(str(error))
        return EXIT_SETUP

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    workdir = Path(tempfile.mkdtemp(prefix="localrun-"))
    children: list[Child] = []
    base_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        # 1. The task metadata emulator; it writes the port it bound once it listens.
        port_file = workdir / "emulator.port"
        children.append(
            start_child(
                "emulator",
                [sys.executable, "-m", "emulator", "--port", "0", "--port-file", str(port_file)],
                env={**base_env, "PYTHONPATH": str(REPO)},
                cwd=REPO,
                console=console,
            )
        )
        if not wait_until(lambda: port_file.exists() and port_file.read_text().strip().isdigit(), timeout_s=15, children=children):
            return _failed(console, children, "the emulator did not start")
        emulator_url = f"http://127.0.0.1:{port_file.read_text().strip()}"
        metadata_uri = f"{emulator_url}/v4/emulated"
        # The ClockBound segment both read: the worker writes it, the app's gate reads it.
        segment = {} if args.no_segment else {CLOCKBOUND_SHM_ENV: str(workdir / "clockbound" / "shm0")}

        # 2. The app, in local mode (the page can switch the emulator's scenario).
        app_url = f"http://127.0.0.1:{app_port}"
        children.append(
            start_child(
                "app",
                [sys.executable, "-m", "clock_app"],
                env={
                    **base_env,
                    "PYTHONPATH": f"{CONTAINERS}{os.pathsep}{CONTAINERS / 'app'}",
                    "CLOCK_APP_HOST": "127.0.0.1",
                    "CLOCK_APP_PORT": str(app_port),
                    "ECS_CONTAINER_METADATA_URI_V4": metadata_uri,
                    "CLOCK_EMULATOR_URL": emulator_url,
                    **segment,
                },
                cwd=REPO,
                console=console,
            )
        )
        if not wait_until(lambda: answers(f"{app_url}/healthz"), timeout_s=30, children=children):
            return _failed(console, children, f"the app did not start on port {app_port}")

        # 3. The worker: EMF lines on stdout, the app's counters from its stats endpoint.
        children.append(
            start_child(
                "worker",
                [sys.executable, "-m", "clock_worker"],
                env={
                    **base_env,
                    "PYTHONPATH": f"{CONTAINERS}{os.pathsep}{CONTAINERS / 'worker'}",
                    "ECS_CONTAINER_METADATA_URI_V4": metadata_uri,
                    "CLOCK_SINK": "emf",
                    "CLOCK_INTERVAL_SECONDS": f"{args.interval:g}",
                    "CLOCK_APP_STATS_URL": f"{app_url}{STATS_PATH}",
                    "CLOCK_HEARTBEAT_FILE": str(workdir / "worker.heartbeat"),
                    **segment,
                },
                cwd=REPO,
                console=console,
            )
        )
        if segment:
            # The app looks for the segment at most once a second; wait for it to answer
            # from it, so the page opens on the segment (the emulator answers meanwhile).
            if wait_until(lambda: clock_source(app_url) == "clockbound", timeout_s=SEGMENT_WAIT_S, children=children):
                where = f"ClockBound segment {segment[CLOCKBOUND_SHM_ENV]}"
            elif any(child.process.poll() is not None for child in children):
                return _failed(console, children, "a process exited while the worker wrote its first segment record")
            else:
                where = f"the metadata endpoint: the worker wrote no segment at {segment[CLOCKBOUND_SHM_ENV]} within {SEGMENT_WAIT_S:g} s"
        else:
            where = "the metadata endpoint (--no-segment)"

        console.say(
            f"open {app_url}/   (emulator {emulator_url}, worker every {args.interval:g} s, the gate reads {where}; "
            "Ctrl-C stops all three)"
        )
        while not stop.wait(0.2):
            for child in children:
                if child.process.poll() is not None:
                    return _failed(console, children, f"the {child.name} exited with status {child.process.returncode} (its output is above)")
        console.say("stopping worker, app and emulator")
        stop_children(children)
        console.say("stopped")
        return EXIT_OK
    finally:
        stop_children(children)  # no-op when already stopped; covers every early return
        shutil.rmtree(workdir, ignore_errors=True)


def _failed(console: Console, children: list[Child], message: str) -> int:
    console.say(f"{message}; stopping the others")
    stop_children(children)
    return EXIT_CHILD_DIED


if __name__ == "__main__":
    sys.exit(main())
