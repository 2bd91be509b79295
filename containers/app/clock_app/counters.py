"""Counts of critical operations the gate allowed and refused, cumulative since start.

The worker sidecar polls these through `GET /api/operations/stats` and publishes the
deltas as OperationsAllowed / OperationsRefused, so the app needs no CloudWatch access.

Only the event loop's thread touches them (every route that counts or reads them is
`async`), so a plain integer increment is enough: no lock on the gate's hot path. The
gated route increments `counts["allowed"]` itself (no method call per request).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OperationCounts:
    allowed: int
    refused: int


class OperationCounters:
    def __init__(self) -> None:
        self.counts = {"allowed": 0, "refused": 0}

    def allowed(self) -> None:
        self.counts["allowed"] += 1

    def refused(self) -> None:
        self.counts["refused"] += 1

    def snapshot(self) -> OperationCounts:
        return OperationCounts(allowed=self.counts["allowed"], refused=self.counts["refused"])
