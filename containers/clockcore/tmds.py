"""Read the task document from the ECS task metadata endpoint v4.

Standard library only: one short HTTP GET with separate connect and read timeouts
and a size cap, so a slow or broken endpoint costs at most a bounded wait.
"""

from __future__ import annotations

import http.client
import json
import socket
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import urlsplit

from clockcore.errors import SampleError
from clockcore.reading import ClockReading, parse_task_document

METADATA_URI_ENV = "ECS_CONTAINER_METADATA_URI_V4"
# A Fargate task document is a few KiB; anything near this is not one.
MAX_DOCUMENT_BYTES = 1 << 20


def task_url(metadata_uri: str | None) -> tuple[str, str, int, str]:
    """Validate the metadata URI and return (scheme, host, port, path of /task)."""
    if metadata_uri is None or not metadata_uri.strip():
        raise SampleError("uri_unset", f"{METADATA_URI_ENV} is not set: not running in an ECS task (or the agent is older than 1.39.0)")
    try:
        parts = urlsplit(metadata_uri.strip())
        port = parts.port
    except ValueError as error:
        raise SampleError("uri_invalid", f"{METADATA_URI_ENV} {metadata_uri[:80]!r} is not a URL: {error}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SampleError("uri_invalid", f"{METADATA_URI_ENV} {metadata_uri[:80]!r} is not an http(s) URL")
    default_port = 443 if parts.scheme == "https" else 80
    return parts.scheme, parts.hostname, port or default_port, parts.path.rstrip("/") + "/task"


def fetch_task_document(
    metadata_uri: str | None,
    *,
    connect_timeout_s: float = 0.5,
    read_timeout_s: float = 1.0,
) -> Any:
    """GET $URI/task and decode the JSON body, or raise `SampleError`."""
    scheme, host, port, path = task_url(metadata_uri)
    connection_type = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    connection = connection_type(host, port, timeout=connect_timeout_s)
    try:
        try:
            connection.connect()
            assert connection.sock is not None
            connection.sock.settimeout(read_timeout_s)
            connection.request("GET", path, headers={"Accept": "application/json"})
            response = connection.getresponse()
            body = response.read(MAX_DOCUMENT_BYTES + 1)
        except (socket.timeout, TimeoutError):
            raise SampleError("timeout", f"task metadata endpoint {host}:{port} did not answer within the timeout") from None
        except (OSError, http.client.HTTPException) as error:
            raise SampleError("connection", f"task metadata endpoint {host}:{port} unreachable: {error.__class__.__name__}: {error}"[:300]) from None
        if response.status != 200:
            raise SampleError("http_status", f"task metadata endpoint answered HTTP {response.status} for {path}")
        if len(body) > MAX_DOCUMENT_BYTES:
            raise SampleError("too_large", f"task metadata answer is larger than {MAX_DOCUMENT_BYTES} bytes")
        try:
            # parse_constant turns NaN/Infinity into errors instead of floats.
            return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise SampleError("not_json", f"task metadata answer is not JSON (starts {body[:40]!r})") from None
    finally:
        connection.close()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def read_clock(
    metadata_uri: str | None,
    *,
    max_drift_ppm: float,
    connect_timeout_s: float = 0.5,
    read_timeout_s: float = 1.0,
    clock: Callable[[], datetime] = utc_now,
) -> ClockReading:
    """Fetch and parse in one step: a `ClockReading` or a `SampleError`."""
    document = fetch_task_document(metadata_uri, connect_timeout_s=connect_timeout_s, read_timeout_s=read_timeout_s)
    return parse_task_document(document, sampled_at=clock(), max_drift_ppm=max_drift_ppm)
