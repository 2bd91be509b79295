"""A small HTTP server that answers like the ECS task metadata endpoint v4.

It serves `$URI/task` (and `$URI`, the container document) from a switchable scenario,
counts the task requests it answers (tests prove caching with that count), and takes
control requests under `/_emulator`:

    GET  /_emulator                      state: scenario, values, request count
    POST /_emulator/scenario             {"scenario": "high_bound", "bound_ms": 5}
    POST /_emulator/reset                back to "ok" and a zero count

Loopback only: it binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SCENARIOS: dict[str, str] = {
    "ok": "synchronized, bound about 0.45 ms, fresh reference",
    "high_bound": "synchronized, but the bound is large (bound_ms, default 5 ms)",
    "unsynchronized": "ClockSynchronizationStatus NOT_SYNCHRONIZED",
    "no_clock_drift": "no ClockDrift block at all (EC2 launch type)",
    "bound_omitted": "ClockDrift without ClockErrorBound (omitempty of a 0 bound)",
    "stale_reference": "ReferenceTimestamp stale_s seconds old (default 600)",
    "garbage": "HTTP 200 with a body that is not JSON",
    "slow": "answers ok after delay_s seconds (default 3)",
    "http_500": "HTTP 500 Internal Server Error",
}

CONTAINER_ID = "emulated"
TASK_ID = "0123456789abcdef0123456789abcdef"


@dataclass(frozen=True)
class ScenarioState:
    scenario: str = "ok"
    bound_ms: float | None = None  # None: the scenario's own value
    delay_s: float = 3.0
    stale_s: float = 600.0
    service_name: str | None = "clock-demo-service"
    cluster: str = "clock-demo-cluster"
    family: str = "clock-demo"


@dataclass
class _Shared:
    lock: threading.Lock = field(default_factory=threading.Lock)
    state: ScenarioState = field(default_factory=ScenarioState)
    task_requests: int = 0
    # Open client connections: kept-alive ones outlive shutdown() unless closed.
    connections: set[socket.socket] = field(default_factory=set)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def task_document(state: ScenarioState, now: datetime) -> dict[str, Any]:
    """The task document for a scenario, shaped like Fargate's (TMDS v4 examples)."""
    arn_prefix = "arn:aws:ecs:us-east-1:111122223333"
    document: dict[str, Any] = {
        "Cluster": f"{arn_prefix}:cluster/{state.cluster}",
        "TaskARN": f"{arn_prefix}:task/{state.cluster}/{TASK_ID}",
        "Family": state.family,
        "Revision": "7",
        "DesiredStatus": "RUNNING",
        "KnownStatus": "RUNNING",
        "Limits": {"CPU": 0.25, "Memory": 512},
        "PullStartedAt": _rfc3339(now - timedelta(minutes=5)),
        "PullStoppedAt": _rfc3339(now - timedelta(minutes=5) + timedelta(seconds=4)),
        "AvailabilityZone": "us-east-1a",
        "LaunchType": "FARGATE",
        "Containers": [],
        "ClockDrift": {
            "ClockErrorBound": 0.446931 if state.bound_ms is None else state.bound_ms,
            "ReferenceTimestamp": _rfc3339(now),
            "ClockSynchronizationStatus": "SYNCHRONIZED",
        },
        "EphemeralStorageMetrics": {"Utilized": 261, "Reserved": 20496},
    }
    if state.service_name:
        document["ServiceName"] = state.service_name
    drift = document["ClockDrift"]
    if state.scenario == "high_bound":
        drift["ClockErrorBound"] = 5.0 if state.bound_ms is None else state.bound_ms
    elif state.scenario == "unsynchronized":
        drift["ClockSynchronizationStatus"] = "NOT_SYNCHRONIZED"
        drift["ClockErrorBound"] = 12.5 if state.bound_ms is None else state.bound_ms
    elif state.scenario == "no_clock_drift":
        del document["ClockDrift"]
    elif state.scenario == "bound_omitted":
        del drift["ClockErrorBound"]
    elif state.scenario == "stale_reference":
        drift["ReferenceTimestamp"] = _rfc3339(now - timedelta(seconds=state.stale_s))
    return document


class _Handler(BaseHTTPRequestHandler):
    server_version = "tmds-emulator/1"
    # Keep-alive like the agent's Go server, so clients that reuse a connection are
    # exercised (every answer carries a Content-Length). HTTP/1.0 requests still close.
    protocol_version = "HTTP/1.1"
    shared: _Shared  # set on the subclass made per server

    def setup(self) -> None:
        super().setup()
        with self.shared.lock:
            self.shared.connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.shared.lock:
                self.shared.connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
        pass  # quiet: tests and `make local` print what matters themselves

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a read timeout); nothing to do

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode())

    def _state_payload(self) -> dict[str, Any]:
        with self.shared.lock:
            state, count = self.shared.state, self.shared.task_requests
        return {
            "scenario": state.scenario,
            "bound_ms": state.bound_ms,
            "delay_s": state.delay_s,
            "stale_s": state.stale_s,
            "service_name": state.service_name,
            "task_requests": count,
            "scenarios": SCENARIOS,
        }

    def do_GET(self) -> None:  # noqa: N802 - stdlib's name
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/_emulator":
            self._json(200, self._state_payload())
            return
        if path.endswith("/task"):
            self._answer_task()
            return
        if path.endswith(f"/{CONTAINER_ID}"):
            self._json(200, {"DockerId": CONTAINER_ID, "Name": "emulated", "KnownStatus": "RUNNING"})
            return
        self._json(404, {"error": f"no such path {path!r}"})

    def _answer_task(self) -> None:
        with self.shared.lock:
            self.shared.task_requests += 1
            state = self.shared.state
        if state.scenario == "slow":
            time.sleep(state.delay_s)
        if state.scenario == "http_500":
            self._send(500, b"Internal Server Error", "text/plain")
        elif state.scenario == "garbage":
            self._send(200, b"<html>\x00 this is not json", "text/html")
        else:
            self._json(200, task_document(state, datetime.now(timezone.utc)))

    def do_POST(self) -> None:  # noqa: N802 - stdlib's name
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/_emulator/reset":
            with self.shared.lock:
                self.shared.state = ScenarioState()
                self.shared.task_requests = 0
            self._json(200, self._state_payload())
            return
        if path != "/_emulator/scenario":
            self._json(404, {"error": f"no such path {path!r}"})
            return
        try:
            length = min(int(self.headers.get("Content-Length") or 0), 65536)
            body = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
            self._apply(body)
        except (ValueError, TypeError) as error:
            self._json(400, {"error": str(error)})
            return
        self._json(200, self._state_payload())

    def _apply(self, body: dict[str, Any]) -> None:
        changes: dict[str, Any] = {}
        scenario = body.get("scenario")
        if scenario is not None:
            if scenario not in SCENARIOS:
                raise ValueError(f"unknown scenario {scenario!r}; one of {', '.join(SCENARIOS)}")
            changes["scenario"] = scenario
            changes["bound_ms"] = None  # a new scenario starts from its own values
        for key in ("bound_ms", "delay_s", "stale_s"):
            if key in body:
                value = body[key]
                if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                    raise ValueError(f"{key} must be a number")
                changes[key] = None if value is None else float(value)
        if "service_name" in body:
            value = body["service_name"]
            if value is not None and not isinstance(value, str):
                raise ValueError("service_name must be a string or null")
            changes["service_name"] = value
        with self.shared.lock:
            self.shared.state = replace(self.shared.state, **changes)


class Emulator:
    """Run the emulator in a background thread: `with Emulator() as emu: emu.metadata_uri`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._shared = _Shared()
        handler = type("EmulatorHandler", (_Handler,), {"shared": self._shared})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def metadata_uri(self) -> str:
        """What ECS_CONTAINER_METADATA_URI_V4 would be."""
        return f"{self.base_url}/v4/{CONTAINER_ID}"

    @property
    def task_requests(self) -> int:
        with self._shared.lock:
            return self._shared.task_requests

    def set_scenario(self, scenario: str, **values: Any) -> None:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}")
        with self._shared.lock:
            # A new scenario starts from its own bound unless the caller gives one.
            self._shared.state = replace(self._shared.state, **{"scenario": scenario, "bound_ms": None, **values})

    def reset(self) -> None:
        with self._shared.lock:
            self._shared.state = ScenarioState()
            self._shared.task_requests = 0

    def start(self) -> "Emulator":
        self._thread = threading.Thread(target=self._server.serve_forever, name="tmds-emulator", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        # A stopped emulator must not keep answering on kept-alive connections.
        with self._shared.lock:
            connections = list(self._shared.connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> "Emulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
