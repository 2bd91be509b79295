"""Counts of critical operations the gate allowed and refused, cumulative since start.

The worker sidecar polls these through `GET /api/operations/stats` and publishes the
deltas as OperationsAllowed / OperationsRefused, so the app needs no CloudWatch access.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class OperationCounts:
    allowed: int
    refused: int


class OperationCounters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._allowed = 0
        self._refused = 0

    def allowed(self) -> None:
        with self._lock:
            self._allowed += 1

    def refused(self) -> None:
        with self._lock:
            self._refused += 1

    def snapshot(self) -> OperationCounts:
        with self._lock:
            return OperationCounts(allowed=self._allowed, refused=self._refused)
