"""The clock gate's cost: POST /api/operations against its ungated twin, same process, same run.

The app runs as real `python -m clock_app` processes (uvicorn, access log off) against the
TMDS emulator, with CLOCK_APP_BENCH_ROUTES on so the twin exists. The twin takes the same
body, makes the same operation id and stamps a time, but never asks the clock: no cache
lookup, no verdict, no counters, no bounded time. It is routed the way the gated route
is, straight on the app right beside it (api.add_routes). FastAPI tries routes in turn
and each one tried costs (about 2 us a request here), so whichever of the two comes
second pays one route check more. Eight app processes therefore run side by side, the
twin routed right before the gated route in half of them and right after it in the
others, and the rounds go round them, so that check weighs on both endpoints alike, no
process gets a calmer stretch of the shared machine, and no one process's luck (two
processes of the same build differ by a few per cent here) decides the figure. (Until this version the
twin sat in an included router after the whole API and paid about 10 us more routing
per request than the gated route: the ratios recorded then were that much in the gate's
favour. The version after that measured the two route orders one after the other, in
two halves of the run, so a change in the machine's load between them weighed on one
order only.) So
the ratio prices everything the gate adds, and only that. A load generator in a
separate process (keep-alive HTTP/1.1 connections in threads) alternates gated and
ungated rounds, flipping the order every other round, on loopback only, bounded by time
and by request count.

Targets: gated/ungated requests per second >= 0.9; metadata requests per second under
that load <= 1/TTL per app process (each has an emulator of its own, which counts every
task document it serves; the check allows the one extra fetch a window's edges can
hold). The rounds are short (0.5 s) and many: the gated rounds then keep the cache under
near-constant load, and the speed of a shared VM, which drifts over seconds, weighs on
both endpoints alike.

`run(source="clockbound")` is the same measurement with the ClockBound segment as the
gate's source (bench_app_segment.py): the real worker (`python -m clock_worker`, 1 s
interval, EMF to /dev/null) writes the segment from an emulator of its own, and the apps
get CLOCK_CLOCKBOUND_SHM; their own emulators must then see no request at all.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONTAINERS = REPO / "containers"
GATED = "/api/operations"
BODY = json.dumps({"label": "bench"}).encode()

# Single rounds swing by +-15 % on a shared 2-vCPU VM (a pair's ratio has a standard
# deviation of about 0.1): many short pairs average that out. 64 pairs leave about 0.013
# on the run's ratio, enough for the metadata source's 0.9 target. The segment's 0.97 is
# a hair from what the gate costs, and on this VM two more things move a run's figure
# more than the pairs' noise does: each app process has a ratio of its own (same build,
# 0.95 to 0.99 over 128 pairs each), and the machine changes over minutes (three 256-pair
# runs over 4 processes read 0.990, 0.953 and 0.962). So the segment takes 1024 pairs
# over 8 processes, about 18 minutes: 0.003 from the pairs, and the processes' spread
# averaged over twice as many.
ROUNDS = 64
SEGMENT_ROUNDS = 1024
ROUND_SECONDS = 0.5
WARMUP_SECONDS = 1.0
CONNECTIONS = 8
# App processes alive together, the twin routed before the gated route in half of them and
# after it in the other half. Two processes of the same build differ by a few per cent in
# this ratio (one process per route order read 0.943 (twin before) and 0.994 (after) in
# one run, 0.992 and 0.952 in the next; eight processes of one build read 0.953 to 0.991
# over 128 pairs each): more processes average that out.
APP_PROCESSES = 8
MAX_REQUESTS_PER_ROUND = 200_000
CACHE_TTL_S = 1.0
RATIO_TARGET = 0.9
SEGMENT_RATIO_TARGET = 0.97
WORKER_INTERVAL_S = 1.0  # the segment's writer: a record a second, void three seconds after the last


def use_checkout() -> None:
    """Import clockcore and clock_app from this checkout (not an installed copy), once."""
    wanted = [str(REPO), str(CONTAINERS), str(CONTAINERS / "app")]
    sys.path[:] = wanted + [path for path in sys.path if path not in wanted]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def load_round(port: int, path: str, seconds: float, connections: int, max_requests: int) -> dict[str, float]:
    """Runs in the load-generator process: hammer one path, return counts and elapsed time."""
    counts = {"ok": 0, "other": 0}
    lock = threading.Lock()
    budget = [max_requests]
    started = time.perf_counter()
    deadline = started + seconds

    def worker() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        ok = other = 0
        headers = {"Content-Type": "application/json", "Content-Length": str(len(BODY))}
        try:
            while time.perf_counter() < deadline:
                with lock:
                    if budget[0] <= 0:
                        break
                    budget[0] -= 1
                connection.request("POST", path, body=BODY, headers=headers)
                response = connection.getresponse()
                response.read()
                if response.status == 200:
                    ok += 1
                else:
                    other += 1
        finally:
            connection.close()
            with lock:
                counts["ok"] += ok
                counts["other"] += other

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"ok": counts["ok"], "other": counts["other"], "elapsed_s": time.perf_counter() - started}


def _cpu_seconds(pid: int) -> float:
    """The app process's CPU time so far: what a request costs, whatever else runs on the machine."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the app did not become healthy within 30 s")


def _clock_source(url: str) -> str:
    with urllib.request.urlopen(f"{url}/api/clock", timeout=5) as response:  # noqa: S310 - loopback
        return json.loads(response.read())["source"]["kind"]


@contextlib.contextmanager
def segment_writer(folder: Path) -> Iterator[Path]:
    """The real worker writing a ClockBound segment from an emulator of its own; yields its path
    once it holds a record."""
    use_checkout()
    from clockcore.clockbound import ClockBoundError, ClockBoundReader
    from emulator import Emulator

    shm = folder / "clockbound" / "shm0"
    with Emulator() as worker_emulator:
        env = {
            **os.environ,
            "PYTHONPATH": f"{CONTAINERS}{os.pathsep}{CONTAINERS / 'worker'}",
            "ECS_CONTAINER_METADATA_URI_V4": worker_emulator.metadata_uri,
            "CLOCK_SINK": "emf",
            "CLOCK_INTERVAL_SECONDS": f"{WORKER_INTERVAL_S:g}",
            "CLOCK_CLOCKBOUND_SHM": str(shm),
            "CLOCK_HEARTBEAT_FILE": str(folder / "worker.heartbeat"),
        }
        worker = subprocess.Popen(
            [sys.executable, "-m", "clock_worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                if worker.poll() is not None:
                    raise RuntimeError(f"the worker exited with status {worker.returncode}")
                try:
                    with ClockBoundReader(shm) as reader:
                        if reader.snapshot().status == 1:  # Synchronized
                            break
                except ClockBoundError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the worker wrote no synchronized record within 30 s")
                time.sleep(0.05)
            yield shm
        finally:
            worker.terminate()
            worker.wait(timeout=15)


def main() -> dict:
    return run(source="metadata")


@contextlib.contextmanager
def _app_process(env: dict[str, str], *, twin_after: bool) -> Iterator[dict]:
    """One app process with an emulator of its own (so its metadata requests are its own),
    the twin routed right before the gated route or right after it; yields its handles."""
    from emulator import Emulator

    with Emulator() as emulator:
        port = _free_port()
        env = {
            **env,
            "ECS_CONTAINER_METADATA_URI_V4": emulator.metadata_uri,
            "CLOCK_APP_PORT": str(port),
            "CLOCK_APP_BENCH_TWIN_AFTER": "1" if twin_after else "0",
        }
        app = subprocess.Popen(
            [sys.executable, "-m", "clock_app"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_healthy(url, app)
            yield {"twin_after": twin_after, "port": port, "url": url, "pid": app.pid, "emulator": emulator}
        finally:
            app.terminate()
            app.wait(timeout=15)


def _rate(rounds: list[dict], kind: str) -> float:
    """Requests per second that answered 200 on one endpoint over these rounds."""
    return sum(r[kind]["ok"] for r in rounds) / sum(r[kind]["elapsed_s"] for r in rounds)


def _ratio(rounds: list[dict]) -> float:
    return _rate(rounds, "gated") / _rate(rounds, "ungated")


def run(*, source: str) -> dict:
    use_checkout()
    from clock_app.api import UNGATED_PATH as UNGATED  # the twin's one definition

    segment = source == "clockbound"
    rounds_total = SEGMENT_ROUNDS if segment else ROUNDS
    with contextlib.ExitStack() as stack:
        env = {
            **os.environ,
            "PYTHONPATH": f"{CONTAINERS}{os.pathsep}{CONTAINERS / 'app'}",
            "CLOCK_APP_HOST": "127.0.0.1",
            "CLOCK_APP_BENCH_ROUTES": "1",
            "CLOCK_CACHE_TTL_SECONDS": str(CACHE_TTL_S),
        }
        if segment:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-app-segment-")))
            env["CLOCK_CLOCKBOUND_SHM"] = str(stack.enter_context(segment_writer(folder)))
        # App processes alive together: the twin routed right before the gated route in half
        # of them, right after it in the others (whichever comes second tries one route
        # more, api.add_routes). Rounds go round them, so the route order weighs on both
        # endpoints alike and no process gets a calmer stretch of the machine.
        apps = [stack.enter_context(_app_process(env, twin_after=bool(index % 2))) for index in range(APP_PROCESSES)]
        sources = [_clock_source(app["url"]) for app in apps]
        rounds: list[dict] = []
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as generator:
            for app in apps:
                for path in (GATED, UNGATED):  # warm both paths (imports, pydantic, keep-alive)
                    generator.submit(
                        load_round, app["port"], path, WARMUP_SECONDS, CONNECTIONS, MAX_REQUESTS_PER_ROUND
                    ).result()
            fetches_before = [app["emulator"].task_requests for app in apps]
            measured_from = time.monotonic()
            for index in range(rounds_total):
                app = apps[index % len(apps)]
                # Each app gets its pairs in both orders: gated first, then ungated first.
                order = (GATED, UNGATED) if (index // len(apps)) % 2 == 0 else (UNGATED, GATED)
                record: dict = {"twin_after": app["twin_after"]}
                for path in order:
                    cpu_before = _cpu_seconds(app["pid"])
                    outcome = generator.submit(
                        load_round, app["port"], path, ROUND_SECONDS, CONNECTIONS, MAX_REQUESTS_PER_ROUND
                    ).result()
                    outcome["app_cpu_s"] = _cpu_seconds(app["pid"]) - cpu_before
                    record["gated" if path == GATED else "ungated"] = outcome
                rounds.append(record)
            measured_s = time.monotonic() - measured_from
            fetches_each = [
                app["emulator"].task_requests - before for app, before in zip(apps, fetches_before, strict=True)
            ]
        sources += [_clock_source(app["url"]) for app in apps]
    fetches = sum(fetches_each)

    gated_rps, ungated_rps = _rate(rounds, "gated"), _rate(rounds, "ungated")
    ratio = gated_rps / ungated_rps
    round_ratios = [
        (r["gated"]["ok"] / r["gated"]["elapsed_s"]) / (r["ungated"]["ok"] / r["ungated"]["elapsed_s"]) for r in rounds
    ]

    def cpu_us_per_request(kind: str) -> float:
        return sum(r[kind]["app_cpu_s"] for r in rounds) / sum(r[kind]["ok"] + r[kind]["other"] for r in rounds) * 1e6

    def busy(kind: str) -> float:
        return sum(r[kind]["app_cpu_s"] for r in rounds) / sum(r[kind]["elapsed_s"] for r in rounds)

    errors = sum(r[kind]["other"] for r in rounds for kind in ("gated", "ungated"))
    tmds_rps = fetches / measured_s
    # The guard's promise is "fetches at least one TTL apart", per app process. n such
    # fetches fit in a window of (n - 1) x TTL, so a plain rate over a window can read a
    # hair above 1/TTL from the window's edges alone; the check allows exactly that one
    # fetch per process. Only one process is under load at a time, so the two together
    # stay near 1/TTL. With the segment as the source the app makes none.
    fetches_allowed_each = 0 if segment else math.floor(measured_s / CACHE_TTL_S) + 1
    fetches_allowed = fetches_allowed_each * len(apps)
    ratio_target = SEGMENT_RATIO_TARGET if segment else RATIO_TARGET
    result = {
        "source": source,
        "gated_requests_per_s": round(gated_rps, 1),
        "ungated_requests_per_s": round(ungated_rps, 1),
        "ratio_gated_to_ungated": round(ratio, 3),
        "ratio_per_round": [round(value, 3) for value in round_ratios],
        "ratio_median_of_rounds": round(statistics.median(round_ratios), 3),
        "ratio_twin_routed_before": round(_ratio([r for r in rounds if not r["twin_after"]]), 3),
        "ratio_twin_routed_after": round(_ratio([r for r in rounds if r["twin_after"]]), 3),
        "ratio_each_app": [round(_ratio(rounds[index :: len(apps)]), 3) for index in range(len(apps))],
        "ratio_target": ratio_target,
        # Load-independent view: the app's CPU time per request, and how busy the app was
        # (1.0 = one core saturated, so the app, not the load generator, set the pace).
        "app_cpu_us_per_request_gated": round(cpu_us_per_request("gated"), 1),
        "app_cpu_us_per_request_ungated": round(cpu_us_per_request("ungated"), 1),
        "app_cores_busy_gated": round(busy("gated"), 2),
        "app_cores_busy_ungated": round(busy("ungated"), 2),
        "requests_not_200": errors,
        "clock_source_before_and_after": sources,
        "metadata_requests": fetches,
        "metadata_requests_each_app": fetches_each,
        "measured_seconds": round(measured_s, 2),
        "metadata_requests_per_s": round(tmds_rps, 3),
        "metadata_requests_per_s_target": 0.0 if segment else round(1 / CACHE_TTL_S, 3),
        "metadata_requests_allowed": fetches_allowed,
        "cache_ttl_s": CACHE_TTL_S,
        "method": (
            f"{rounds_total} interleaved rounds of {ROUND_SECONDS} s per endpoint, order flipped every other round, "
            f"{CONNECTIONS} keep-alive connections from a separate load-generator process, loopback, "
            f"{APP_PROCESSES} app processes (python -m clock_app, uvicorn, access log off, each with its own TMDS "
            "emulator) alive together, rounds going round them: in half of them the twin is routed right before "
            "the gated route, in the others right after it"
            + (
                "; gate source: the ClockBound segment written by python -m clock_worker every "
                f"{WORKER_INTERVAL_S:g} s from an emulator of its own"
                if segment
                else ""
            )
        ),
    }
    result["targets_met"] = (
        ratio >= ratio_target
        and all(count <= fetches_allowed_each for count in fetches_each)
        and errors == 0
        and sources == [source] * len(sources)
    )
    for key, value in result.items():
        print(f"  {key}: {value}")
    return result


if __name__ == "__main__":
    main()
