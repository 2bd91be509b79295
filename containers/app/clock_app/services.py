"""What the routes share: settings, the clock guard, counters and history, made once per app."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from clock_app.counters import OperationCounters
from clock_app.guard import ClockGuard
from clock_app.history import ReadingHistory
from clock_app.settings import AppSettings


@dataclass(frozen=True)
class Services:
    settings: AppSettings
    guard: ClockGuard
    counters: OperationCounters
    history: ReadingHistory


async def services(request: Request) -> Services:
    """FastAPI dependency: the app's services (set by `create_app`).

    async on purpose: FastAPI runs a plain `def` dependency in a worker thread, a thread
    hop per request that doubled the gated route's cost in the benchmark.
    """
    return request.app.state.services
