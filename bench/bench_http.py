"""The metadata client: clockcore's hand-written HTTP/1.1 client against urllib3, in one run.

The issue's rule: keep the hand-written client only if urllib3 costs more than 0.15 ms
per sample (worker) or 5 µs per gated request (app) more than it does. urllib3 here is
bench/urllib3_client.py, a twin with the same interface, SampleError kinds, kept-alive
connection, timeouts and body cap (tests/library/test_tmds_urllib3_twin.py runs the
hand-written client's reader tests against it). Five parts, each interleaving the two
clients and repeating:

1. paced, in-process (decides): the worker's path (`Sampler.sample()`: read + parse over
   one kept-alive connection) and the app's (`read_clock`: today a one-shot HTTP/1.0 GET,
   with urllib3 one kept-alive pool) at the cadence they really run, once a second per
   client, the two clients of a pair half a second apart, which goes first alternating
   each second; CPU per call by `time.thread_time()` (this thread only, ns resolution)
   against the TMDS emulator as its own process on 127.0.0.1. Worker and app pairs
   alternate in blocks; each block's mean difference is one repeat. The app's figure per
   gated request is the per-read difference x reads per second (at most 1/TTL) / gated
   requests per second (measured in part 4);
2. hot, in-process (a floor, informational): the same calls back to back, against a
   server that answers in one segment with TCP_NODELAY (as the agent's Go server does),
   so caches stay warm and no read waits; plus urllib3 at its simplest (`pool.request`);
3. the worker as a real process (informational cross-check): `python -m bench.variant
   {hand|urllib3} worker`, both at 1 Hz with the EMF sink at the same time, half a second
   apart, against the emulator; CPU per sample (psutil, schedstat) and peak RSS, as
   bench_worker measures them;
4. the app as a real process (informational cross-check): `python -m bench.variant
   {hand|urllib3} app`, both served at once, a load generator alternating rounds of
   gated requests between them (bench_app's harness), app CPU per request by psutil;
5. imports: what `import urllib3` adds to the app (which does not import it today) and to
   the EMF worker (which does not either; only the CloudWatch sink's boto3 does), in
   fresh interpreters, CPU and max RSS, alternating.
"""

from __future__ import annotations

import gc
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
CONTAINERS = ROOT / "containers"
sys.path[:0] = [str(ROOT), str(CONTAINERS), str(CONTAINERS / "worker"), str(CONTAINERS / "app")]

import psutil  # noqa: E402

from bench.bench_worker import _Lines, _peak_rss_mib, _scheduled_cpu_s  # noqa: E402

WORKER_BUDGET_MS = 0.15  # per sample
APP_BUDGET_US = 5.0  # per gated request
MAX_DRIFT_PPM = 15.0
CACHE_TTL_S = 1.0

PACED_BLOCKS = int(os.environ.get("BENCH_HTTP_PACED_BLOCKS", "4"))  # per pair
PACED_BLOCK_S = int(os.environ.get("BENCH_HTTP_PACED_BLOCK_S", "20"))
HOT_ROUNDS = int(os.environ.get("BENCH_HTTP_HOT_ROUNDS", "10"))
HOT_READS = 300
WORKER_REPEATS = int(os.environ.get("BENCH_HTTP_WORKER_REPEATS", "2"))
WORKER_WINDOW_S = float(os.environ.get("BENCH_HTTP_WORKER_WINDOW_S", "60"))
WORKER_WARM_UP_S = 5.0
APP_ROUNDS = int(os.environ.get("BENCH_HTTP_APP_ROUNDS", "24"))
APP_ROUND_S = 0.5
IMPORT_REPEATS = int(os.environ.get("BENCH_HTTP_IMPORT_REPEATS", "5"))


# ------------------------------------------------------------------ helpers
def _stats(values: list[float], digits: int = 1) -> dict[str, Any]:
    ordered = sorted(values)
    quartiles = statistics.quantiles(ordered, n=4) if len(ordered) > 1 else [ordered[0]] * 3
    return {
        "n": len(ordered),
        "mean": round(statistics.fmean(ordered), digits),
        "median": round(statistics.median(ordered), digits),
        "p25": round(quartiles[0], digits),
        "p75": round(quartiles[2], digits),
        "min": round(ordered[0], digits),
        "max": round(ordered[-1], digits),
    }


def _env(**extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(CONTAINERS), str(CONTAINERS / "worker"), str(CONTAINERS / "app")]),
        "PYTHONDONTWRITEBYTECODE": "1",
        **extra,
    }


class _EmulatorProcess:
    """`python -m emulator` on a free port: its serving threads stay out of this process."""

    def __enter__(self) -> "_EmulatorProcess":
        self._dir = tempfile.TemporaryDirectory()
        port_file = Path(self._dir.name) / "port"
        self._process = subprocess.Popen(
            [sys.executable, "-m", "emulator", "--port-file", str(port_file)], env=_env(), stdout=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 20
        while not (port_file.exists() and port_file.read_text()):
            if time.monotonic() > deadline or self._process.poll() is not None:
                raise RuntimeError("the emulator did not start")
            time.sleep(0.05)
        from emulator.server import CONTAINER_ID

        self.metadata_uri = f"http://127.0.0.1:{port_file.read_text()}/v4/{CONTAINER_ID}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)
        self._dir.cleanup()


# ------------------------------------------------------------------ the callers, as worker and app call
def _callers(metadata_uri: str) -> dict[str, tuple[Callable[[], Any], Callable[[], None]]]:
    """name -> (one call as the worker's loop or the app's guard makes it, close)."""
    from clock_worker.sampler import Sampler
    from clockcore import ClockReading, parse_task_document, read_clock
    from clockcore.tmds import utc_now

    from bench.urllib3_client import PlainUrllib3Reader, Urllib3TaskMetadataReader

    timeouts = {"connect_timeout_s": 0.5, "read_timeout_s": 1.0}  # the worker's and read_clock's defaults
    worker_hand = Sampler(metadata_uri, max_drift_ppm=MAX_DRIFT_PPM, **timeouts)
    twin = Urllib3TaskMetadataReader(metadata_uri, **timeouts)
    worker_urllib3 = Sampler(metadata_uri, max_drift_ppm=MAX_DRIFT_PPM, fetch_document=twin.fetch, **timeouts)
    app_twin = Urllib3TaskMetadataReader(metadata_uri, **timeouts)
    plain = PlainUrllib3Reader(metadata_uri, **timeouts)

    def app_hand() -> ClockReading:
        return read_clock(metadata_uri, max_drift_ppm=MAX_DRIFT_PPM)  # the guard's call, as it is

    def app_urllib3() -> ClockReading:
        return parse_task_document(app_twin.fetch(), sampled_at=utc_now(), max_drift_ppm=MAX_DRIFT_PPM)

    def worker_plain() -> ClockReading:
        return parse_task_document(plain.fetch(), sampled_at=utc_now(), max_drift_ppm=MAX_DRIFT_PPM)

    def checked(sampler: Sampler) -> Callable[[], Any]:
        def call() -> Any:
            outcome = sampler.sample()
            if not isinstance(outcome, ClockReading):
                raise RuntimeError(f"a benchmark sample failed: {outcome}")
            return outcome

        return call

    return {
        "worker_hand": (checked(worker_hand), worker_hand.close),
        "worker_urllib3": (checked(worker_urllib3), twin.close),
        "app_hand": (app_hand, lambda: None),
        "app_urllib3": (app_urllib3, app_twin.close),
        "urllib3_plain": (worker_plain, plain.close),
    }


def _cpu_us(call: Callable[[], Any]) -> tuple[float, float]:
    started_cpu, started_wall = time.thread_time(), time.perf_counter()
    call()
    return (time.thread_time() - started_cpu) * 1e6, (time.perf_counter() - started_wall) * 1e6


# ------------------------------------------------------------------ 1. paced
def paced(metadata_uri: str) -> dict[str, Any]:
    callers = _callers(metadata_uri)
    pairs = {"worker": ("worker_hand", "worker_urllib3"), "app": ("app_hand", "app_urllib3")}
    for name in ("worker_hand", "worker_urllib3", "app_hand", "app_urllib3"):
        callers[name][0]()  # connect, import, first parse: paid once, not per sample
    gc.collect()
    gc.freeze()  # as worker and app do after start-up
    cpu: dict[str, list[float]] = {name: [] for pair in pairs.values() for name in pair}
    wall: dict[str, list[float]] = {name: [] for name in cpu}
    block_differences: dict[str, list[float]] = {pair: [] for pair in pairs}
    tick = 0
    next_at = time.monotonic() + 0.5
    for _ in range(PACED_BLOCKS):
        for pair, (hand, other) in pairs.items():
            block: dict[str, list[float]] = {hand: [], other: []}
            for _ in range(PACED_BLOCK_S):
                order = (hand, other) if tick % 2 == 0 else (other, hand)
                tick += 1
                for name in order:
                    time.sleep(max(0.0, next_at - time.monotonic()))
                    next_at += 0.5
                    cpu_us, wall_us = _cpu_us(callers[name][0])
                    block[name].append(cpu_us)
                    cpu[name].append(cpu_us)
                    wall[name].append(wall_us)
            block_differences[pair].append(statistics.fmean(block[other]) - statistics.fmean(block[hand]))
    for _, close in callers.values():
        close()
    result: dict[str, Any] = {}
    for pair, (hand, other) in pairs.items():
        differences = [b - a for a, b in zip(cpu[hand], cpu[other])]  # each second's pair
        result[pair] = {
            f"{hand}_cpu_us": _stats(cpu[hand]),
            f"{other}_cpu_us": _stats(cpu[other]),
            "urllib3_minus_hand_cpu_us": {
                "mean": round(statistics.fmean(cpu[other]) - statistics.fmean(cpu[hand]), 1),
                "median_of_pairs": round(statistics.median(differences), 1),
                "per_block_means": [round(value, 1) for value in block_differences[pair]],
            },
            f"{hand}_wall_ms_median": round(statistics.median(wall[hand]) / 1000, 2),
            f"{other}_wall_ms_median": round(statistics.median(wall[other]) / 1000, 2),
        }
    result["method"] = (
        f"{PACED_BLOCKS} blocks of {PACED_BLOCK_S} s per pair, worker and app pairs alternating; each second one "
        "call per client, 0.5 s apart, order alternating; thread CPU per call"
    )
    return result


# ------------------------------------------------------------------ 2. hot
def _canned_server(answer: bytes, ready: Any) -> None:
    """Runs in its own process: answers every request with `answer` in one send (TCP_NODELAY);
    closes after an HTTP/1.0 request, as the emulator does."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    ready.put(listener.getsockname()[1])

    def talk(connection: socket.socket) -> None:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pending = b""
        with connection:
            while True:
                try:
                    data = connection.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                pending += data
                while b"\r\n\r\n" in pending:
                    head, pending = pending.split(b"\r\n\r\n", 1)
                    connection.sendall(answer)
                    if head.split(b"\r\n", 1)[0].endswith(b"HTTP/1.0"):
                        return

    while True:
        connection, _ = listener.accept()
        threading.Thread(target=talk, args=(connection,), daemon=True).start()


def _emulator_answer(metadata_uri: str) -> bytes:
    """The emulator's own answer to GET /task (status line, headers, body), as one byte string."""
    from urllib.parse import urlsplit

    parts = urlsplit(metadata_uri)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(f"GET {parts.path}/task HTTP/1.0\r\nHost: {parts.netloc}\r\n\r\n".encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith((b"connection:", b"content-length:"))]
    lines[0] = lines[0].replace(b"HTTP/1.0", b"HTTP/1.1")
    return b"\r\n".join(lines + [b"Content-Length: %d" % len(body)]) + b"\r\n\r\n" + body


def hot(metadata_uri: str) -> dict[str, Any]:
    context = get_context("spawn")
    ready = context.Queue()
    server = context.Process(target=_canned_server, args=(_emulator_answer(metadata_uri), ready), daemon=True)
    server.start()
    try:
        port = ready.get(timeout=20)
        uri = f"http://127.0.0.1:{port}/v4/hot"
        callers = _callers(uri)
        names = list(callers)
        for name in names:
            for _ in range(20):
                callers[name][0]()
        per_round: dict[str, list[float]] = {name: [] for name in names}
        for index in range(HOT_ROUNDS):
            order = names[index % len(names):] + names[: index % len(names)]
            for name in order:
                call = callers[name][0]
                started = time.thread_time()
                for _ in range(HOT_READS):
                    call()
                per_round[name].append((time.thread_time() - started) / HOT_READS * 1e6)
        for _, close in callers.values():
            close()
    finally:
        server.terminate()
        server.join(timeout=5)
    result: dict[str, Any] = {f"{name}_cpu_us": _stats(values) for name, values in per_round.items()}
    for pair, hand in (("worker", "worker_hand"), ("app", "app_hand")):
        other = f"{pair}_urllib3"
        differences = [b - a for a, b in zip(per_round[hand], per_round[other])]
        result[f"{pair}_urllib3_minus_hand_cpu_us"] = {
            "median_of_rounds": round(statistics.median(differences), 1),
            "min": round(min(differences), 1),
            "max": round(max(differences), 1),
        }
    result["method"] = (
        f"{HOT_ROUNDS} rounds of {HOT_READS} back-to-back calls per client, order rotated each round, against a "
        "one-segment TCP_NODELAY server in its own process; thread CPU per call"
    )
    return result


# ------------------------------------------------------------------ 3. worker processes
def worker_processes(metadata_uri: str) -> dict[str, Any]:
    repeats = []
    with tempfile.TemporaryDirectory() as workdir:
        for repeat in range(WORKER_REPEATS):
            order = ("hand", "urllib3") if repeat % 2 == 0 else ("urllib3", "hand")
            running = {}
            for client in order:
                env = _env(
                    ECS_CONTAINER_METADATA_URI_V4=metadata_uri, CLOCK_SINK="emf", CLOCK_INTERVAL_SECONDS="1",
                    CLOCK_HEARTBEAT_FILE=str(Path(workdir) / f"{client}.heartbeat"), AWS_REGION="us-east-1",
                )
                process = subprocess.Popen(
                    [sys.executable, "-m", "bench.variant", client, "worker"], env=env, cwd=workdir,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                )
                running[client] = (process, _Lines(process.stdout), _Lines(process.stderr), psutil.Process(process.pid))
                time.sleep(0.5)  # half a grid step apart: the two never sample at the same instant
            try:
                time.sleep(WORKER_WARM_UP_S)
                start = {}
                for client, (process, lines, _, watched) in running.items():
                    times = watched.cpu_times()
                    start[client] = (times.user + times.system, _scheduled_cpu_s(process.pid), lines.count)
                time.sleep(WORKER_WINDOW_S)
                record = {}
                for client, (process, lines, errors, watched) in running.items():
                    times = watched.cpu_times()
                    cpu, sched, count = times.user + times.system, _scheduled_cpu_s(process.pid), lines.count
                    samples = max(count - start[client][2], 1)
                    record[client] = {
                        "samples": count - start[client][2],
                        "cpu_ms_per_sample": round((cpu - start[client][0]) * 1000 / samples, 3),
                        "schedstat_cpu_ms_per_sample": round((sched[0] - start[client][1][0]) * 1000 / samples, 3),
                        "peak_rss_mib": round(_peak_rss_mib(process.pid), 1),
                        "startup_cpu_ms": round(start[client][0] * 1000, 1),
                        "failed_samples_logged": sum("sample_failed" in line for line in errors.tail),
                    }
            finally:
                for process, *_ in running.values():
                    process.terminate()
                for process, *_ in running.values():
                    process.wait(timeout=10)
            record["urllib3_minus_hand_schedstat_ms"] = round(
                record["urllib3"]["schedstat_cpu_ms_per_sample"] - record["hand"]["schedstat_cpu_ms_per_sample"], 3
            )
            repeats.append(record)
            print(f"    worker processes, repeat {repeat + 1}: {record}", flush=True)
    return {
        "repeats": repeats,
        "method": (
            f"{WORKER_REPEATS} repeats: both workers (EMF sink, 1 Hz) at once, started 0.5 s apart, start order "
            f"alternating; {WORKER_WINDOW_S:g} s window after a {WORKER_WARM_UP_S:g} s warm-up; schedstat and psutil CPU"
        ),
    }


# ------------------------------------------------------------------ 4. app processes
def app_processes() -> dict[str, Any]:
    from bench.bench_app import CONNECTIONS, GATED, MAX_REQUESTS_PER_ROUND, _free_port, _wait_healthy, load_round
    from emulator import Emulator

    apps: dict[str, Any] = {}
    emulators = {client: Emulator().start() for client in ("hand", "urllib3")}
    try:
        for client, emulator in emulators.items():
            port = _free_port()
            env = _env(
                ECS_CONTAINER_METADATA_URI_V4=emulator.metadata_uri, CLOCK_APP_HOST="127.0.0.1", CLOCK_APP_PORT=str(port),
                CLOCK_CACHE_TTL_SECONDS=str(CACHE_TTL_S),
            )
            process = subprocess.Popen(
                [sys.executable, "-m", "bench.variant", client, "app"], env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            apps[client] = (process, port)
        startup = {}
        for client, (process, port) in apps.items():
            _wait_healthy(f"http://127.0.0.1:{port}", process)
            times = psutil.Process(process.pid).cpu_times()
            startup[client] = round((times.user + times.system) * 1000, 1)
        rounds = []
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as generator:
            for client in apps:
                generator.submit(load_round, apps[client][1], GATED, 1.0, CONNECTIONS, MAX_REQUESTS_PER_ROUND).result()
            fetches_before = {client: emulator.task_requests for client, emulator in emulators.items()}
            for index in range(APP_ROUNDS):
                record = {}
                for client in (("hand", "urllib3") if index % 2 == 0 else ("urllib3", "hand")):
                    process, port = apps[client]
                    watched = psutil.Process(process.pid)
                    before = watched.cpu_times()
                    outcome = generator.submit(load_round, port, GATED, APP_ROUND_S, CONNECTIONS, MAX_REQUESTS_PER_ROUND).result()
                    after = watched.cpu_times()
                    outcome["app_cpu_s"] = (after.user + after.system) - (before.user + before.system)
                    record[client] = outcome
                rounds.append(record)
            fetches = {client: emulator.task_requests - fetches_before[client] for client, emulator in emulators.items()}
        peak = {client: round(_peak_rss_mib(process.pid), 1) for client, (process, _) in apps.items()}
    finally:
        for process, _ in apps.values():
            process.terminate()
        for process, _ in apps.values():
            process.wait(timeout=15)
        for emulator in emulators.values():
            emulator.stop()

    def per_request_us(record: dict[str, Any]) -> float:
        return record["app_cpu_s"] / max(record["ok"] + record["other"], 1) * 1e6

    result: dict[str, Any] = {}
    for client in apps:
        ok = sum(r[client]["ok"] for r in rounds)
        elapsed = sum(r[client]["elapsed_s"] for r in rounds)
        result[client] = {
            "gated_requests_per_s": round(ok / elapsed, 1),
            "app_cpu_us_per_gated_request": round(sum(r[client]["app_cpu_s"] for r in rounds) / max(ok, 1) * 1e6, 1),
            "requests_not_200": sum(r[client]["other"] for r in rounds),
            "metadata_reads": fetches[client],
            "metadata_reads_per_loaded_s": round(fetches[client] / elapsed, 3),
            "startup_cpu_ms_until_healthy": startup[client],
            "peak_rss_mib": peak[client],
        }
    differences = [per_request_us(r["urllib3"]) - per_request_us(r["hand"]) for r in rounds]
    result["urllib3_minus_hand_cpu_us_per_gated_request"] = {
        "overall": round(result["urllib3"]["app_cpu_us_per_gated_request"] - result["hand"]["app_cpu_us_per_gated_request"], 1),
        "per_round": _stats(differences),
    }
    result["method"] = (
        f"both apps served at once (TTL {CACHE_TTL_S:g} s, own emulator each); {APP_ROUNDS} rounds of {APP_ROUND_S} s of "
        f"gated requests per app, {CONNECTIONS} keep-alive connections from a load-generator process, order flipped each "
        "round; app CPU by psutil"
    )
    return result


# ------------------------------------------------------------------ 5. imports
_IMPORT_PROBE = """
import json, resource, sys, time
{baseline}

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

before_modules, before_rss, before_cpu = set(sys.modules), status("VmRSS"), time.process_time()
import urllib3
print(json.dumps({{"cpu_ms": (time.process_time() - before_cpu) * 1000, "rss_kib": status("VmRSS") - before_rss,
                  "modules": len(set(sys.modules) - before_modules)}}))
"""
_BASELINES = {
    # What each process has imported once it serves / samples, before any metadata read.
    "app": "import uvicorn, clock_app.app, clock_app.guard",
    "worker_emf": "import clock_worker.worker, clock_worker.sink_emf, clock_worker.sampler",
}


def imports() -> dict[str, Any]:
    found: dict[str, list[dict[str, float]]] = {name: [] for name in _BASELINES}
    for _ in range(IMPORT_REPEATS):
        for name, baseline in _BASELINES.items():
            answer = subprocess.run(
                [sys.executable, "-c", _IMPORT_PROBE.format(baseline=baseline)], env=_env(), capture_output=True,
                text=True, check=True,
            )
            found[name].append(json.loads(answer.stdout))
    result: dict[str, Any] = {}
    for name, runs in found.items():
        result[f"{name}_plus_urllib3"] = {
            "cpu_ms": _stats([run["cpu_ms"] for run in runs]),
            "rss_mib": round(statistics.median(run["rss_kib"] for run in runs) / 1024, 2),
            "modules": int(statistics.median(run["modules"] for run in runs)),
        }
    result["method"] = f"{IMPORT_REPEATS} fresh interpreters per process kind, alternating; VmRSS and process_time around `import urllib3`"
    return result


# ------------------------------------------------------------------ decision
def decide(result: dict[str, Any]) -> dict[str, Any]:
    worker_extra_ms = result["paced"]["worker"]["urllib3_minus_hand_cpu_us"]["mean"] / 1000
    per_read_us = result["paced"]["app"]["urllib3_minus_hand_cpu_us"]["mean"]
    gated_rps = result["app_processes"]["hand"]["gated_requests_per_s"]
    app_extra_us = per_read_us * (1 / CACHE_TTL_S) / gated_rps
    keep = worker_extra_ms > WORKER_BUDGET_MS or app_extra_us > APP_BUDGET_US
    reasons = []
    if worker_extra_ms > WORKER_BUDGET_MS:
        reasons.append(f"worker: urllib3 costs {worker_extra_ms:.3f} ms more per sample (> {WORKER_BUDGET_MS} ms)")
    if app_extra_us > APP_BUDGET_US:
        reasons.append(f"app: urllib3 costs {app_extra_us:.2f} µs more per gated request (> {APP_BUDGET_US} µs)")
    return {
        "worker_extra_ms_per_sample": round(worker_extra_ms, 3),
        "worker_budget_ms": WORKER_BUDGET_MS,
        "app_extra_us_per_read": round(per_read_us, 1),
        "app_extra_us_per_gated_request": round(app_extra_us, 3),
        "app_budget_us": APP_BUDGET_US,
        "app_figure": f"per-read difference x {1 / CACHE_TTL_S:g} read/s (1/TTL, the most) / {gated_rps} gated requests/s",
        "keep_hand_written": keep,
        "why": "; ".join(reasons) if reasons else "urllib3 is within both budgets",
    }


def main() -> dict[str, Any]:
    result: dict[str, Any] = {"method": __doc__.split("\n\n")[1].strip()}
    with _EmulatorProcess() as emulator:
        print("  1. paced, in-process ...", flush=True)
        result["paced"] = paced(emulator.metadata_uri)
        print(f"    {json.dumps(result['paced'])}", flush=True)
        print("  2. hot, in-process ...", flush=True)
        result["hot"] = hot(emulator.metadata_uri)
        print(f"    {json.dumps(result['hot'])}", flush=True)
        print("  3. worker processes ...", flush=True)
        result["worker_processes"] = worker_processes(emulator.metadata_uri)
    print("  4. app processes ...", flush=True)
    result["app_processes"] = app_processes()
    print(f"    {json.dumps(result['app_processes'])}", flush=True)
    print("  5. imports ...", flush=True)
    result["imports"] = imports()
    print(f"    {json.dumps(result['imports'])}", flush=True)
    result["decision"] = decide(result)
    print(f"  decision: {json.dumps(result['decision'])}", flush=True)
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
