"""Local mode only (`make local` sets CLOCK_EMULATOR_URL): switch the emulator's scenario.

The page cannot call the emulator itself (another origin, and the Content-Security-
Policy allows only this app), so these routes forward. They are not registered at all
outside local mode, so in ECS they answer 404 like any unknown path.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import anyio.to_thread
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from clock_app.api import BODY_ERRORS, ServicesDep
from clock_app.models import EmulatorState, ErrorBody, ScenarioRequest

EMULATOR_TIMEOUT_S = 2.0
BAD_GATEWAY = {"model": ErrorBody, "description": "The emulator did not answer (is `make local` still running?)."}

router = APIRouter(tags=["local mode"])


class EmulatorUnavailable(Exception):
    pass


def _call(url: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(
        url, data=data, method="GET" if data is None else "POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=EMULATOR_TIMEOUT_S) as response:
            answer = json.loads(response.read(1 << 20))
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise EmulatorUnavailable(f"emulator at {url} did not answer: {error}") from None
    if not isinstance(answer, dict):
        raise EmulatorUnavailable(f"emulator at {url} answered something that is not a JSON object")
    return answer


def _state(answer: dict[str, Any]) -> EmulatorState:
    return EmulatorState(
        scenario=str(answer.get("scenario", "")),
        scenarios=dict(answer.get("scenarios") or {}),
        task_requests=int(answer.get("task_requests", 0)),
    )


def _bad_gateway(error: EmulatorUnavailable) -> JSONResponse:
    return JSONResponse(
        status_code=502, content=ErrorBody(error="emulator_unavailable", message=str(error)).model_dump(mode="json")
    )


@router.get(
    "/api/local/emulator", summary="The emulator's scenario and the scenarios it offers", responses={502: BAD_GATEWAY}
)
async def emulator_state(svc: ServicesDep) -> EmulatorState:
    base = svc.settings.emulator_url
    try:
        return _state(await anyio.to_thread.run_sync(_call, f"{base}/_emulator"))
    except EmulatorUnavailable as error:
        return _bad_gateway(error)  # type: ignore[return-value]


@router.post(
    "/api/local/scenario",
    summary="Switch the emulator's scenario; the next clock check sees it",
    responses={**BODY_ERRORS, 502: BAD_GATEWAY},
)
async def switch_scenario(request: ScenarioRequest, svc: ServicesDep) -> EmulatorState:
    base = svc.settings.emulator_url
    try:
        offered = _state(await anyio.to_thread.run_sync(_call, f"{base}/_emulator")).scenarios
        if request.scenario not in offered:
            message = f"unknown scenario {request.scenario!r}; one of: {', '.join(offered)}"
            return JSONResponse(
                status_code=422, content=ErrorBody(error="unknown_scenario", message=message).model_dump(mode="json")
            )  # type: ignore[return-value]
        state = _state(
            await anyio.to_thread.run_sync(_call, f"{base}/_emulator/scenario", {"scenario": request.scenario})
        )
    except EmulatorUnavailable as error:
        return _bad_gateway(error)  # type: ignore[return-value]
    # Show the new scenario at once instead of after the cache's TTL.
    svc.guard.invalidate()
    return state
