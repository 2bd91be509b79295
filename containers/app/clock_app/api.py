"""The JSON API: clock status, the gated operation, commit wait, history, counters, probes."""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timezone
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from clockcore import bounded_now, commit_wait
from clock_app.guard import ClockCheck
from clock_app.models import (
    BoundedTimeModel,
    ClockStatus,
    CommitRequest,
    CommitResult,
    ErrorBody,
    HistoryEntryModel,
    HistoryResponse,
    Liveness,
    OperationRequest,
    OperationResult,
    OperationStats,
    ReadingModel,
    Refusal,
    SampleErrorModel,
    UngatedOperationResult,
)
from clock_app.services import Services, services

ServicesDep = Annotated[Services, Depends(services)]

INVALID = {"model": ErrorBody, "description": "The request is malformed; the body says which field and why."}
TOO_LARGE = {"model": ErrorBody, "description": "The request body is larger than CLOCK_APP_MAX_BODY_BYTES."}
REFUSED = {
    "model": Refusal,
    "description": "The clock cannot be trusted: the operation did not run. The body names the reasons.",
    "headers": {"Retry-After": {"description": "Seconds until the clock is checked again.", "schema": {"type": "integer"}}},
}
BODY_ERRORS: dict[int | str, dict[str, object]] = {400: INVALID, 413: TOO_LARGE, 422: INVALID}

router = APIRouter()
# The benchmark's ungated twin (see run_operation_ungated); included only on request.
bench_router = APIRouter()
UNGATED_PATH = "/api/bench/operations-ungated"


def json_answer(model: BaseModel, *, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Serialize a response model once, in pydantic's Rust core.

    Returning a Response skips FastAPI's re-validation of the returned model; the hot
    routes (the gated operation and its benchmark twin alike) answer this way. The
    return annotation still documents the schema.
    """
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json", headers=headers)


def clock_status(check: ClockCheck, svc: Services) -> ClockStatus:
    reading = check.reading
    return ClockStatus(
        verdict="SAFE" if check.verdict.safe else "UNSAFE",
        safe=check.verdict.safe,
        reasons=list(check.verdict.reasons),
        details=list(check.verdict.details),
        checked_at=check.at,
        reading=ReadingModel.of(reading, check.at) if reading else None,
        error=SampleErrorModel.of(check.sample.error) if check.sample.error else None,
        bounded_now=BoundedTimeModel.of(bounded_now(reading)) if reading else None,
        threshold_ms=svc.settings.threshold_ms,
        max_reference_age_s=svc.settings.max_reference_age_s,
        cache_ttl_s=svc.settings.cache_ttl_s,
        cache_age_s=check.cache_age_s,
    )


def retry_after_s(svc: Services) -> int:
    # The verdict cannot change before the cached sample expires.
    return max(1, math.ceil(svc.settings.cache_ttl_s))


def refusal(check: ClockCheck, svc: Services) -> Response:
    svc.counters.refused()
    seconds = retry_after_s(svc)
    body = Refusal(
        error="clock_unsafe",
        message="refused: the clock cannot be trusted (" + ", ".join(reason.value for reason in check.verdict.reasons) + ")",
        reasons=list(check.verdict.reasons),
        details=list(check.verdict.details),
        retry_after_s=seconds,
    )
    return json_answer(body, status_code=503, headers={"Retry-After": str(seconds)})


@router.get("/api/clock", tags=["clock"], summary="The clock reading, the verdict and its reasons, and bounded now")
async def get_clock(svc: ServicesDep) -> ClockStatus:
    return clock_status(await svc.guard.check(), svc)


@router.post(
    "/api/operations",
    tags=["operations"],
    summary="Run a sample critical operation, only when the clock is SAFE",
    description="Stamps the operation with bounded now. When the verdict is UNSAFE the operation does not run: "
    "503 with Retry-After and the reasons. Counted in /api/operations/stats either way.",
    responses={**BODY_ERRORS, 503: REFUSED},
)
async def run_operation(operation: OperationRequest, request: Request) -> OperationResult:
    # The services come straight off the app (no Depends): this is the benchmarked hot path.
    svc: Services = request.app.state.services
    check = await svc.guard.check()
    if not check.verdict.safe or check.reading is None:
        return refusal(check, svc)  # type: ignore[return-value]  # documented 503
    svc.counters.allowed()
    stamped = bounded_now(check.reading)
    result = OperationResult(operation_id=uuid.uuid4().hex, label=operation.label, timestamp=stamped.latest, stamped=BoundedTimeModel.of(stamped))
    return json_answer(result)  # type: ignore[return-value]


@bench_router.post(UNGATED_PATH, include_in_schema=False)
async def run_operation_ungated(operation: OperationRequest, request: Request) -> UngatedOperationResult:
    """The benchmark's twin of POST /api/operations: the same work with no clock check.

    Its router is included only when CLOCK_APP_BENCH_ROUTES is on, and it is left out of
    the schema: it exists so the gate's cost can be measured, not to be called. It takes
    the same parameters as the gated route so FastAPI does the same work resolving them,
    and it sits in an included router like the gated route: FastAPI dispatches a route
    added straight to the app through fewer layers, which a twin must not be given.
    """
    result = UngatedOperationResult(operation_id=uuid.uuid4().hex, label=operation.label, timestamp=datetime.now(timezone.utc))
    return json_answer(result)  # type: ignore[return-value]


@router.post(
    "/api/commit",
    tags=["operations"],
    summary="Commit-wait demonstration: stamp, then wait until the stamp is certainly past",
    description="Spanner's rule: timestamp = bounded now's latest, then wait until bounded now's earliest is after it "
    "(about twice the bound). Gated like /api/operations.",
    responses={**BODY_ERRORS, 503: REFUSED},
)
async def commit(request: CommitRequest, svc: ServicesDep) -> CommitResult:
    check = await svc.guard.check()
    reading = check.reading
    if not check.verdict.safe or reading is None:
        return refusal(check, svc)  # type: ignore[return-value]  # documented 503
    start = bounded_now(reading)
    try:
        # commit_wait sleeps: keep it off the event loop.
        waited_s = await anyio.to_thread.run_sync(lambda: commit_wait(reading, start.latest, max_wait_s=svc.settings.commit_max_wait_s))
    except TimeoutError as error:
        svc.counters.refused()
        seconds = retry_after_s(svc)
        body = Refusal(error="commit_wait_timeout", message=str(error), reasons=[], details=[str(error)], retry_after_s=seconds)
        return json_answer(body, status_code=503, headers={"Retry-After": str(seconds)})  # type: ignore[return-value]
    svc.counters.allowed()
    return CommitResult(
        label=request.label,
        timestamp=start.latest,
        waited_ms=waited_s * 1000.0,
        bound_ms=start.bound_ms,
        visible_at=BoundedTimeModel.of(bounded_now(reading)),
    )


@router.get("/api/history", tags=["clock"], summary="Recent clock samples from the in-process ring buffer", responses={422: INVALID})
async def history(
    svc: ServicesDep,
    limit: Annotated[int | None, Query(ge=1, le=100_000, description="At most this many of the newest entries.")] = None,
) -> HistoryResponse:
    entries = svc.history.recent(limit)
    return HistoryResponse(
        capacity=svc.history.capacity,
        threshold_ms=svc.settings.threshold_ms,
        readings=[
            HistoryEntryModel(
                at=entry.at,
                bound_ms=entry.bound_ms,
                effective_bound_ms=entry.effective_bound_ms,
                status=entry.status,  # type: ignore[arg-type]  # pydantic parses the enum value
                reference_age_s=entry.reference_age_s,
                safe=entry.safe,
                reasons=list(entry.reasons),  # type: ignore[arg-type]
                error_kind=entry.error_kind,
            )
            for entry in entries
        ],
    )


@router.get(
    "/api/operations/stats",
    tags=["operations"],
    summary="Operations the gate allowed and refused, cumulative since start (polled by the worker)",
)
async def operation_stats(svc: ServicesDep) -> OperationStats:
    counts = svc.counters.snapshot()
    return OperationStats(allowed=counts.allowed, refused=counts.refused)


@router.get(
    "/healthz",
    tags=["probes"],
    summary="Liveness: the process serves. Never looks at the clock; the load balancer's health check",
)
async def healthz() -> Liveness:
    return Liveness()


@router.get(
    "/readyz",
    tags=["probes"],
    summary="Readiness by the clock: 200 when SAFE, 503 when UNSAFE (for people and monitors, not the load balancer)",
    responses={200: {"description": "The clock is SAFE."}, 503: {"model": ClockStatus, "description": "The clock is UNSAFE."}},
)
async def readyz(svc: ServicesDep) -> ClockStatus:
    status = clock_status(await svc.guard.check(), svc)
    if not status.safe:
        return JSONResponse(status_code=503, content=status.model_dump(mode="json"), headers={"Retry-After": str(retry_after_s(svc))})  # type: ignore[return-value]
    return status
