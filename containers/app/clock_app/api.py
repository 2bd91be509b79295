"""The JSON API: clock status, the gated operation, commit wait, history, counters, probes."""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Callable
from time import time_ns
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, BeforeValidator, Field

from clock_app.guard import ClockCheck
from clock_app.isotime import iso_utc, iso_utc_pair
from clock_app.models import (
    BoundedTimeModel,
    ClockSourceModel,
    ClockStatus,
    CommitRequest,
    CommitResult,
    ErrorBody,
    HistoryEntryModel,
    HistoryResponse,
    Liveness,
    OperationBody,
    OperationRequest,
    OperationResult,
    OperationStats,
    ReadingModel,
    Refusal,
    SampleErrorModel,
    SegmentModel,
    UngatedOperationBody,
    UngatedOperationResult,
    answer_json,
)
from clock_app.services import Services, services
from clockcore import commit_wait_for

ServicesDep = Annotated[Services, Depends(services)]

INVALID = {"model": ErrorBody, "description": "The request is malformed; the body says which field and why."}
TOO_LARGE = {"model": ErrorBody, "description": "The request body is larger than CLOCK_APP_MAX_BODY_BYTES."}
REFUSED = {
    "model": Refusal,
    "description": "The clock cannot be trusted: the operation did not run. The body names the reasons.",
    "headers": {
        "Retry-After": {"description": "Seconds until the clock is checked again.", "schema": {"type": "integer"}}
    },
}
BODY_ERRORS: dict[int | str, dict[str, object]] = {400: INVALID, 413: TOO_LARGE, 422: INVALID}

router = APIRouter()
# The benchmark's ungated twin (see run_operation_ungated); routed only on request.
UNGATED_PATH = "/api/bench/operations-ungated"
GATED_PATH = "/api/operations"


def json_answer(model: BaseModel, *, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Serialize a response model once, in pydantic's Rust core.

    Returning a Response skips FastAPI's re-validation of the returned model; the
    refusals answer this way. The hot routes (the gated operation and its benchmark twin
    alike) go one step further: a plain dict serialized by pydantic-core, no model built
    (models.answer_json). The return annotation still documents the schema.
    """
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json", headers=headers)


def clock_status(check: ClockCheck, svc: Services) -> ClockStatus:
    reading, segment, source = check.reading, check.segment, check.source
    reading_model: ReadingModel | None = None
    error: SampleErrorModel | None = None
    segment_model: SegmentModel | None = None
    if segment is not None:
        snapshot, judgement = segment.snapshot, segment.judgement
        if snapshot is not None and check.segment_monotonic_ns is not None:
            segment_model = SegmentModel.of(segment.path, snapshot, check.segment_monotonic_ns)
        if segment.trusted and snapshot is not None and judgement is not None:
            reading_model = ReadingModel.of_segment(
                snapshot,
                at=check.at,
                effective_bound_ns=judgement.effective_bound_ns,
                reference_age_ns=judgement.reference_age_ns,
            )
        elif segment.error_kind is not None:
            error = SampleErrorModel(kind=segment.error_kind, message="; ".join(check.verdict.details))
    elif reading is not None:
        reading_model = ReadingModel.of(reading, check.at)
    elif check.sample is not None and check.sample.error is not None:
        error = SampleErrorModel.of(check.sample.error)
    return ClockStatus(
        verdict="SAFE" if check.verdict.safe else "UNSAFE",
        safe=check.verdict.safe,
        reasons=list(check.verdict.reasons),
        details=list(check.verdict.details),
        checked_at=check.at,
        source=ClockSourceModel(
            kind=source.kind.value,
            description=source.description,
            segment_path=source.segment_path,
            note=source.note or None,
        ),
        reading=reading_model,
        error=error,
        segment=segment_model,
        bounded_now=BoundedTimeModel.of(check.bounded) if check.bounded is not None else None,
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
        message="refused: the clock cannot be trusted ("
        + ", ".join(reason.value for reason in check.verdict.reasons)
        + ")",
        reasons=list(check.verdict.reasons),
        details=list(check.verdict.details),
        retry_after_s=seconds,
        source=check.source.kind.value,
    )
    return json_answer(body, status_code=503, headers={"Retry-After": str(seconds)})


@router.get("/api/clock", tags=["clock"], summary="The clock reading, the verdict and its reasons, and bounded now")
async def get_clock(svc: ServicesDep) -> ClockStatus:
    return clock_status(await svc.guard.check(), svc)


# Routed straight on the app, ahead of everything else (see add_routes).
OPERATION_ROUTE: dict[str, Any] = {
    "methods": ["POST"],
    "tags": ["operations"],
    "summary": "Run a sample critical operation, only when the clock is SAFE",
    "description": "Stamps the operation with bounded now. When the verdict is UNSAFE the operation does not run: "
    "503 with Retry-After and the reasons. Counted in /api/operations/stats either way.",
    "responses": {**BODY_ERRORS, 503: REFUSED},
}


def operation_endpoints(svc: Services) -> tuple[Callable[..., Awaitable[Any]], Callable[..., Awaitable[Any]]]:
    """POST /api/operations and its benchmark twin, bound to this app's services.

    The benchmarked hot path: the services are bound here rather than looked up per
    request (request.app.state.services cost about 1 us in the request's flow), and a
    SAFE verdict from the segment needs no await (`ClockGuard.try_admit`).
    """
    guard, counts = svc.guard, svc.counters.counts
    try_admit = guard.try_admit

    async def run_operation(operation: OperationRequest) -> OperationResult:
        admitted = try_admit()
        if type(admitted) is not tuple:  # the metadata endpoint answers, or the verdict is UNSAFE
            if admitted is None:
                admitted = await guard.admit()  # the metadata endpoint's cached sample, or its fetch
            if not isinstance(admitted, tuple):
                return refusal(admitted, svc)  # type: ignore[return-value]  # documented 503
        counts["allowed"] += 1
        earliest_us, latest_us, status, bound_ms = admitted
        earliest, latest = iso_utc_pair(earliest_us, latest_us)
        body: OperationBody = {
            "operation_id": uuid.uuid4().hex,
            "label": operation.label,
            "timestamp": latest,
            "stamped": {"earliest": earliest, "latest": latest, "status": status, "bound_ms": bound_ms},
        }
        return Response(answer_json(body), media_type="application/json")  # type: ignore[return-value]

    async def run_operation_ungated(operation: OperationRequest) -> UngatedOperationResult:
        """The benchmark's twin of POST /api/operations: the same work with no clock check.

        Routed only when CLOCK_APP_BENCH_ROUTES is on, and left out of the schema: it
        exists so the gate's cost can be measured, not to be called. It takes the same
        parameters as the gated route so FastAPI does the same work resolving them, and it
        stamps and serializes its answer the way the gated route does (the instant in
        microseconds spelled by isotime.iso_utc, a plain dict through models.answer_json).
        Where it is routed matters as much: see `add_routes`.
        """
        body: UngatedOperationBody = {
            "operation_id": uuid.uuid4().hex,
            "label": operation.label,
            "timestamp": iso_utc(time_ns() // 1000),  # what datetime.now(UTC) would say, spelled as the gate does
        }
        return Response(answer_json(body), media_type="application/json")  # type: ignore[return-value]

    return run_operation, run_operation_ungated


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
    now = check.now
    if not check.verdict.safe or now is None:
        return refusal(check, svc)  # type: ignore[return-value]  # documented 503
    start = now()  # stamped just before the wait, so waited_ms is the whole commit wait
    try:
        # commit wait sleeps: keep it off the event loop. `now` grows the bound of the
        # reading (or segment record) the verdict was made on.
        waited_s = await anyio.to_thread.run_sync(
            lambda: commit_wait_for(now, start.latest, max_wait_s=svc.settings.commit_max_wait_s)
        )
    except TimeoutError as error:
        svc.counters.refused()
        seconds = retry_after_s(svc)
        body = Refusal(
            error="commit_wait_timeout",
            message=str(error),
            reasons=[],
            details=[str(error)],
            retry_after_s=seconds,
            source=check.source.kind.value,
        )
        return json_answer(body, status_code=503, headers={"Retry-After": str(seconds)})  # type: ignore[return-value]
    svc.counters.allowed()
    return CommitResult(
        label=request.label,
        timestamp=start.latest,
        waited_ms=waited_s * 1000.0,
        bound_ms=start.bound_ms,
        visible_at=BoundedTimeModel.of(now()),
    )


def no_surrounding_space(value: object) -> object:
    """A query integer without spaces around it: pydantic's lax parsing strips them (it
    took "3\r"), where the schema's integer allows none (schemathesis found it)."""
    if isinstance(value, str) and value != value.strip():
        raise ValueError("must be a number without spaces around it")
    return value


# The bounds inside the integer (not on Query): beside a validator, FastAPI would write
# them outside the schema's anyOf, where they bind nothing.
HistoryLimit = Annotated[int, Field(ge=1, le=100_000), BeforeValidator(no_surrounding_space)]


@router.get(
    "/api/history",
    tags=["clock"],
    summary="Recent clock samples from the in-process ring buffer",
    responses={422: INVALID},
)
async def history(
    svc: ServicesDep,
    limit: Annotated[HistoryLimit | None, Query(description="At most this many of the newest entries.")] = None,
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
                status=entry.status,  # pydantic parses the enum value
                reference_age_s=entry.reference_age_s,
                safe=entry.safe,
                reasons=list(entry.reasons),
                error_kind=entry.error_kind,
                source=entry.source,  # type: ignore[arg-type]  # "clockbound" or "metadata"
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
    responses={
        200: {"description": "The clock is SAFE."},
        503: {"model": ClockStatus, "description": "The clock is UNSAFE."},
    },
)
async def readyz(svc: ServicesDep) -> ClockStatus:
    status = clock_status(await svc.guard.check(), svc)
    if not status.safe:
        return JSONResponse(
            status_code=503, content=status.model_dump(mode="json"), headers={"Retry-After": str(retry_after_s(svc))}
        )  # type: ignore[return-value]
    return status


def add_routes(app: FastAPI, svc: Services, *, bench_routes: bool = False, twin_after: bool = False) -> None:
    """Route the API on `app`: the gated operation first, straight on the app, then the rest.

    FastAPI 0.163 finds a route by trying them in turn, and every route it tries costs:
    a route inside an included router is tried twice (once to pick the router, once inside
    it) through several scope bookkeeping calls. The hot route therefore comes first and
    is added to the app itself: two routes tried (the schema's, then it) instead of four
    inside the API's router.

    With `bench_routes`, the ungated twin is added the same way, right before the gated
    route (or right after it, `twin_after`): whichever comes second tries one plain
    route more, about 2 us a request in the benchmark's server, so the benchmark runs
    half its rounds each way. The twin used to sit in a router of its own included after
    the API's, so each twin request first failed every API route: about 10 us more
    routing than the gated route paid (in process: 67.7 against 57.3 us a request), which
    made the old gated/ungated ratios look better than the gate was.
    """
    run_operation, run_operation_ungated = operation_endpoints(svc)
    if bench_routes and not twin_after:
        app.add_api_route(UNGATED_PATH, run_operation_ungated, methods=["POST"], include_in_schema=False)
    app.add_api_route(GATED_PATH, run_operation, **OPERATION_ROUTE)
    if bench_routes and twin_after:
        app.add_api_route(UNGATED_PATH, run_operation_ungated, methods=["POST"], include_in_schema=False)
    app.include_router(router)
