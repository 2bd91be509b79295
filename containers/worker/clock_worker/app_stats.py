"""Read the app container's gate counters and turn them into per-interval deltas.

The app serves `GET /api/operations/stats` -> `{"allowed": <int>, "refused": <int>}`,
cumulative since its process started. The worker publishes what changed since the
previous poll. A counter that went down means the app restarted: its new value is the
delta. The first poll publishes the whole count, since nothing of it was published
before. An unreachable or odd answer is logged (once per outage), never a failed clock
sample.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from clock_worker.logs import log_event
from clockcore import SampleError
from clockcore.tmds import KeptAliveGet

log = logging.getLogger("clock_worker.app_stats")

MAX_STATS_BYTES = 64 * 1024


@dataclass(frozen=True)
class OperationCounts:
    allowed: int
    refused: int


@dataclass(frozen=True)
class OperationDeltas:
    allowed: int
    refused: int


class AppStatsError(Exception):
    pass


def counts_client(url: str, *, connect_timeout_s: float, read_timeout_s: float) -> KeptAliveGet:
    """A kept-alive GET of the counters URL (validated by the settings): read every sample."""
    parts = urlsplit(url)
    default_port = 443 if parts.scheme == "https" else 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return KeptAliveGet(
        parts.scheme,
        parts.hostname or "",
        parts.port or default_port,
        path,
        connect_timeout_s=connect_timeout_s,
        read_timeout_s=read_timeout_s,
        max_body_bytes=MAX_STATS_BYTES,
        what="app counters endpoint",
    )


def fetch_counts(client: KeptAliveGet) -> OperationCounts:
    try:
        status, body = client.get()
    except SampleError as error:
        raise AppStatsError(error.message) from None
    if status != 200:
        raise AppStatsError(f"answered HTTP {status}")
    if len(body) > MAX_STATS_BYTES:
        raise AppStatsError(f"answer is larger than {MAX_STATS_BYTES} bytes")
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise AppStatsError(f"answer is not JSON (starts {bytes(body[:40])!r})") from None
    if not isinstance(payload, dict):
        raise AppStatsError("answer is not a JSON object")
    counts = {}
    for key in ("allowed", "refused"):
        value = payload.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise AppStatsError(f"{key!r} is {value!r}, expected a non-negative integer")
        counts[key] = value
    return OperationCounts(allowed=counts["allowed"], refused=counts["refused"])


def _delta(previous: int | None, current: int) -> int:
    if previous is None or current < previous:
        return current  # first poll, or the app restarted and counts from zero again
    return current - previous


class AppStatsPoller:
    def __init__(self, url: str, *, connect_timeout_s: float, read_timeout_s: float) -> None:
        self._url = url
        self._client = counts_client(url, connect_timeout_s=connect_timeout_s, read_timeout_s=read_timeout_s)
        self._previous: OperationCounts | None = None
        self._failing = False

    def close(self) -> None:
        self._client.close()

    def poll(self) -> OperationDeltas | None:
        """Deltas since the last successful poll, or None when the app cannot tell."""
        try:
            counts = fetch_counts(self._client)
        except AppStatsError as error:
            if not self._failing:
                self._failing = True
                log_event(
                    log,
                    logging.WARNING,
                    "app_stats_unavailable",
                    f"app counters at {self._url} unavailable: {error}",
                    url=self._url,
                )
            return None
        if self._failing:
            self._failing = False
            log_event(
                log, logging.INFO, "app_stats_recovered", f"app counters at {self._url} readable again", url=self._url
            )
        previous = self._previous
        self._previous = counts
        if previous is not None and (counts.allowed < previous.allowed or counts.refused < previous.refused):
            log_event(
                log,
                logging.INFO,
                "app_restarted",
                "app counters went down: the app restarted; publishing its new counts",
                allowed=counts.allowed,
                refused=counts.refused,
            )
        return OperationDeltas(
            allowed=_delta(previous.allowed if previous else None, counts.allowed),
            refused=_delta(previous.refused if previous else None, counts.refused),
        )
