"""Extra periodic jobs: crontab-style lines run next to the clock sampling.

A line is a cron schedule followed by a command, run without a shell:

    */5 * * * *  /opt/clock/bin/rotate --keep 3        (5 fields: minute hour dom month dow)
    @hourly      python -m my_tool.report
    */10 * * * * * echo every ten seconds              (6 fields: seconds first)

Blank lines and lines starting with `#` are ignored. A 6-field schedule is recognised
when the sixth token is itself a valid cron field and the line has a command after it
(no real command is called `*` or `5`). Schedules are parsed by `croniter`; commands by
`shlex.split`. Each run is a subprocess in its own thread with a timeout: a failing or
hanging job is logged and killed, never waited for by the sampler.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from clock_worker.logs import log_event

if TYPE_CHECKING:
    from croniter import croniter as Croniter

_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
# What a job's output may add to its log line.
OUTPUT_TAIL_CHARS = 400
# The cron thread re-reads the wall clock at least this often, so a clock step moves
# the next run instead of leaving the thread asleep on a stale deadline.
MAX_SLEEP_S = 5.0

log = logging.getLogger("clock_worker.cron")


def _croniter() -> type[Croniter]:
    # Imported on first use: croniter (with dateutil) costs ~4.5 MiB and ~40 ms, which a
    # worker without cron jobs never needs.
    from croniter import croniter

    return croniter


class CrontabError(ValueError):
    """A crontab line that cannot be run; the message names the line."""


@dataclass(frozen=True)
class CronJob:
    source: str  # CLOCK_CRONTAB or the file's path
    line_number: int
    schedule: str
    command: tuple[str, ...]
    with_seconds: bool

    @property
    def name(self) -> str:
        return f"{self.source}:{self.line_number}"

    def next_run_after(self, moment: datetime) -> datetime:
        iterator = _croniter()(self.schedule, moment, ret_type=datetime, second_at_beginning=self.with_seconds)
        return iterator.get_next(datetime)


def _is_valid(expression: str, *, with_seconds: bool) -> bool:
    try:
        return bool(_croniter().is_valid(expression, second_at_beginning=with_seconds))
    except Exception:
        return False


def parse_line(line: str, *, source: str, line_number: int) -> CronJob:
    text = line.strip()
    where = f"line {line_number} {text[:80]!r}"
    tokens = text.split()
    if tokens[0].startswith("@"):
        if tokens[0].lower() not in _MACROS:
            raise CrontabError(f"{where}: unknown schedule {tokens[0]!r} (one of {', '.join(_MACROS)})")
        schedule, with_seconds, rest_at = tokens[0].lower(), False, 1
    else:
        if len(tokens) >= 7 and _is_valid(" ".join(tokens[:6]), with_seconds=True):
            schedule, with_seconds, rest_at = " ".join(tokens[:6]), True, 6
        elif len(tokens) >= 6 and _is_valid(" ".join(tokens[:5]), with_seconds=False):
            schedule, with_seconds, rest_at = " ".join(tokens[:5]), False, 5
        else:
            raise CrontabError(f"{where}: expected 5 cron fields (or 6 with seconds first) followed by a command")
    # Split the command from the original text, so quoting survives.
    parts = text.split(None, rest_at)
    command_text = parts[rest_at] if len(parts) > rest_at else ""
    try:
        command = tuple(shlex.split(command_text))
    except ValueError as error:
        raise CrontabError(f"{where}: command cannot be split: {error}") from None
    if not command:
        raise CrontabError(f"{where}: no command after the schedule")
    return CronJob(
        source=source, line_number=line_number, schedule=schedule, command=command, with_seconds=with_seconds
    )


def parse_crontab(text: str, *, source: str) -> list[CronJob]:
    jobs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        jobs.append(parse_line(line, source=source, line_number=number))
    return jobs


def _tail(output: bytes | None) -> str:
    if not output:
        return ""
    return output.decode("utf-8", errors="replace")[-OUTPUT_TAIL_CHARS:].strip()


class CronRunner:
    """One thread that starts due jobs; each run gets its own thread and process group."""

    def __init__(
        self,
        jobs: tuple[CronJob, ...],
        *,
        timeout_s: float,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_sleep_s: float = MAX_SLEEP_S,
    ) -> None:
        self._jobs = jobs
        self._max_sleep_s = max_sleep_s
        self._timeout_s = timeout_s
        self._now = now
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._running: dict[str, subprocess.Popen[bytes]] = {}
        self._runners: list[threading.Thread] = []
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not self._jobs:
            return
        self._thread = threading.Thread(target=self._loop, name="cron", daemon=True)
        self._thread.start()
        log_event(
            log,
            logging.INFO,
            "cron_started",
            f"{len(self._jobs)} cron job(s) scheduled",
            jobs=[{"job": job.name, "schedule": job.schedule, "command": list(job.command)} for job in self._jobs],
        )

    def _loop(self) -> None:
        due = {job.name: job.next_run_after(self._now()) for job in self._jobs}
        while not self._stop.is_set():
            now = self._now()
            for job in self._jobs:
                if due[job.name] <= now:
                    self._launch(job)
                    due[job.name] = job.next_run_after(now)
                else:
                    # Cron times are wall-clock times: after the clock stepped back, the
                    # next run is the one due from the new "now", not the stale one.
                    due[job.name] = min(due[job.name], job.next_run_after(now))
            wait_s = min((moment - self._now()).total_seconds() for moment in due.values())
            self._stop.wait(min(max(wait_s, 0.01), self._max_sleep_s))

    def _launch(self, job: CronJob) -> None:
        with self._lock:
            if job.name in self._running:
                log_event(
                    log,
                    logging.WARNING,
                    "cron_job_skipped",
                    f"{job.name} is still running; this run is skipped",
                    job=job.name,
                )
                return
            self._runners = [thread for thread in self._runners if thread.is_alive()]
            runner = threading.Thread(target=self._run, args=(job,), name=f"cron-{job.name}", daemon=True)
            self._runners.append(runner)
        runner.start()

    def _run(self, job: CronJob) -> None:
        started = time.monotonic()
        try:
            process = subprocess.Popen(
                job.command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,  # stdout belongs to EMF lines: never let a job write there
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group, so a timeout kills its children too
            )
        except OSError as error:
            log_event(
                log,
                logging.ERROR,
                "cron_job_failed",
                f"{job.name} could not start: {error}",
                job=job.name,
                command=list(job.command),
            )
            return
        with self._lock:
            self._running[job.name] = process
        try:
            try:
                stdout, stderr = process.communicate(timeout=self._timeout_s)
            except subprocess.TimeoutExpired:
                self._kill(process)
                stdout, stderr = process.communicate()
                log_event(
                    log,
                    logging.ERROR,
                    "cron_job_timeout",
                    f"{job.name} ran longer than {self._timeout_s:g} s and was killed",
                    job=job.name,
                    command=list(job.command),
                    duration_s=round(time.monotonic() - started, 3),
                )
                return
            fields = {
                "job": job.name,
                "command": list(job.command),
                "exit_code": process.returncode,
                "duration_s": round(time.monotonic() - started, 3),
                "stdout": _tail(stdout),
                "stderr": _tail(stderr),
            }
            if process.returncode == 0:
                log_event(log, logging.INFO, "cron_job_succeeded", f"{job.name} succeeded", **fields)
            elif self._stop.is_set():
                log_event(log, logging.INFO, "cron_job_stopped", f"{job.name} was stopped at shutdown", **fields)
            else:
                log_event(
                    log, logging.ERROR, "cron_job_failed", f"{job.name} exited with {process.returncode}", **fields
                )
        finally:
            with self._lock:
                self._running.pop(job.name, None)

    @staticmethod
    def _kill(process: subprocess.Popen[bytes]) -> None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            process.kill()

    def stop(self) -> None:
        """Stop scheduling and kill running jobs: shutdown must finish within seconds."""
        self._stop.set()
        with self._lock:
            running = list(self._running.values())
            runners = list(self._runners)
        for process in running:
            self._kill(process)
        if self._thread is not None:
            self._thread.join(timeout=0.5)
        for runner in runners:
            runner.join(timeout=0.5)
