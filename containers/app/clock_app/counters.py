"""Counts of critical operations the gate allowed and refused, cumulative since start.

The worker sidecar polls these through `GET /api/operations/stats` and publishes the
deltas as OperationsAllowed / OperationsRefused, so the app needs no CloudWatch access.

Only the event loop's thread touches them (every route that counts or reads them is
`async`), so a plain integer increment is enough: no lock on the gate's hot path.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OperationCounts:
    allowed: int
    refused: int


class OperationCounters:
    def __init__(self) -> None:
        self._allowed = 0
        self._refused = 0

    def allowed(self) -> None:
        self._allowed += 1

    def refused(self) -> None:
        self._refused += 1

    def snapshot(self) -> OperationCounts:
        return OperationCounts(allowed=self._allowed, refused=self._refused)
