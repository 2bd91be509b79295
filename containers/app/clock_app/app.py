"""Build the FastAPI app from typed settings: routes, middleware, error answers."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from clock_app import api, local, page
from clock_app.counters import OperationCounters
from clock_app.guard import ClockGuard, ClockReader
from clock_app.history import ReadingHistory
from clock_app.middleware import BodyLimitMiddleware, SecurityHeadersMiddleware
from clock_app.models import ErrorBody, OperationRequest
from clock_app.services import Services
from clock_app.settings import AppSettings

log = logging.getLogger("clock_app")

DESCRIPTION = """\
A clock-aware service for ECS Fargate. It reads the task's `ClockDrift` from the task
metadata endpoint v4 on demand (through a short cache shared by all requests), judges
whether the clock can be trusted, and runs critical operations only when it can.

Verdict reasons: `bound_over_threshold`, `not_synchronized`, `reference_too_old`,
`metadata_unavailable`. `/healthz` is liveness (never the clock); `/readyz` is the verdict.
"""


def _field_path(location: tuple[object, ...]) -> str:
    return ".".join(str(part) for part in location) or "request"


def _validation_message(error: RequestValidationError) -> str:
    problems = []
    for item in error.errors()[:5]:
        if item.get("type") == "json_invalid":
            problems.append("request body is not valid JSON")
        elif tuple(item.get("loc", ())) == ("body",):
            # Missing, or not an object (wrong Content-Type, a list, a string...).
            problems.append("request body must be a JSON object sent as application/json")
        else:
            problems.append(f"{_field_path(tuple(item.get('loc', ())))}: {item.get('msg', 'invalid')}")
    return "; ".join(problems) or "invalid request"


def _json_safe(errors: list[dict[str, object]]) -> list[dict[str, object]]:
    # Drop `input` and `ctx`: they may hold bytes or exceptions, and echo the caller's data.
    return [{key: value for key, value in item.items() if key in ("type", "loc", "msg")} for item in errors[:20]]


async def on_validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    body = ErrorBody(
        error="invalid_request", message=_validation_message(error), detail=_json_safe(list(error.errors()))
    )
    return JSONResponse(status_code=422, content=body.model_dump(mode="json"))


async def on_http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    codes = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}
    message = error.detail if isinstance(error.detail, str) else "request refused"
    if error.status_code == 404 and message == "Not Found":
        message = f"no such path {request.url.path[:200]!r}"
    body = ErrorBody(error=codes.get(error.status_code, "http_error"), message=message)
    return JSONResponse(
        status_code=error.status_code, content=body.model_dump(mode="json"), headers=getattr(error, "headers", None)
    )


async def on_unexpected_error(request: Request, error: Exception) -> JSONResponse:
    # A bug, not a clock condition: log the traceback, answer without it.
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(
        status_code=500,
        content=ErrorBody(error="internal_error", message="internal error; see the app's log").model_dump(),
    )


def create_app(settings: AppSettings, *, reader: ClockReader | None = None) -> FastAPI:
    """The app for these settings. `reader` replaces the metadata read (tests only)."""
    history = ReadingHistory(settings.history_size)
    svc = Services(
        settings=settings,
        guard=ClockGuard(settings, history, reader=reader),
        counters=OperationCounters(),
        history=history,
    )
    app = FastAPI(
        title="Clock-aware app", version="1.0.0", description=DESCRIPTION, docs_url=None, redoc_url=None
    )  # Swagger UI loads from a CDN: no
    app.state.services = svc
    api.add_routes(app, svc, bench_routes=settings.bench_routes, twin_after=settings.bench_twin_after)
    if settings.local_mode:
        app.include_router(local.router)
    app.include_router(page.router)
    app.add_exception_handler(RequestValidationError, on_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, on_http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, on_unexpected_error)
    # Outermost first: the body limit runs before anything reads the body.
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    return app


__all__ = ["create_app", "OperationRequest"]
