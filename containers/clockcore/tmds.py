"""Read the task document from the ECS task metadata endpoint v4.

Standard library only: one short HTTP/1.0 GET over a plain socket, with a connect
timeout, a deadline for the whole answer and a size cap, so a slow, trickling or
broken endpoint costs at most a bounded wait. HTTP/1.0 keeps the answer simple: no
chunked encoding, the server closes the connection at the end of the body. The worker
calls this every second, and `http.client` (which parses headers with the `email`
package) cost about twice the CPU of this whole function.
"""

from __future__ import annotations

import json
import socket
import time
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import urlsplit

from clockcore.errors import SampleError
from clockcore.reading import ClockReading, parse_task_document

METADATA_URI_ENV = "ECS_CONTAINER_METADATA_URI_V4"
# A Fargate task document is a few KiB; anything near this is not one.
MAX_DOCUMENT_BYTES = 1 << 20
# Status line and headers of any sane answer fit in this.
MAX_HEAD_BYTES = 64 * 1024


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


def _split_answer(received: bytes, where: str) -> tuple[int, dict[str, str], bytes]:
    head, separator, body = received.partition(b"\r\n\r\n")
    if not separator:
        raise SampleError("connection", f"{where} closed the connection before a complete answer")
    lines = head.decode("iso-8859-1").split("\r\n")
    status_parts = lines[0].split(None, 2)
    if len(status_parts) < 2 or not status_parts[0].startswith("HTTP/") or not status_parts[1].isdigit():
        raise SampleError("connection", f"{where} did not answer HTTP (starts {lines[0][:40]!r})")
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return int(status_parts[1]), headers, body


def http_get(
    scheme: str,
    host: str,
    port: int,
    path: str,
    *,
    connect_timeout_s: float,
    read_timeout_s: float,
    max_body_bytes: int = MAX_DOCUMENT_BYTES,
    what: str = "task metadata endpoint",
) -> tuple[int, bytes]:
    """One HTTP/1.0 GET: (status, body), the body cut just past `max_body_bytes`.

    Raises `SampleError` of kind `timeout` (connect, or the whole answer not within
    `read_timeout_s`), `connection` (refused, reset, not HTTP) or `uri_invalid`. The
    worker also reads the app's counters with it.
    """
    where = f"{what} {host}:{port}"
    try:
        sock = socket.create_connection((host, port), timeout=connect_timeout_s)
    except (socket.timeout, TimeoutError):
        raise SampleError("timeout", f"{where} did not accept a connection within {connect_timeout_s:g} s") from None
    except OSError as error:
        raise SampleError("connection", f"{where} unreachable: {error.__class__.__name__}: {error}"[:300]) from None
    deadline = time.monotonic() + read_timeout_s
    received = bytearray()
    try:
        try:
            sock.settimeout(read_timeout_s)
            if scheme == "https":
                import ssl  # only for https: TMDS itself is plain http on a link-local address

                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
            host_header = f"[{host}]" if ":" in host else host
            sock.sendall(
                f"GET {path} HTTP/1.0\r\nHost: {host_header}:{port}\r\nAccept: application/json\r\n\r\n".encode("ascii")
            )
            expected_total: int | None = None
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                sock.settimeout(remaining)
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
                if len(received) > MAX_HEAD_BYTES + max_body_bytes:
                    break  # judged below as too large
                if expected_total is None and b"\r\n\r\n" in received:
                    head_length = received.index(b"\r\n\r\n") + 4
                    _, headers, _ = _split_answer(bytes(received), where)
                    length = headers.get("content-length", "")
                    expected_total = head_length + int(length) if length.isdigit() else -1
                if expected_total is not None and expected_total >= 0 and len(received) >= expected_total:
                    break  # the whole body is here: no need to wait for the close
        except (socket.timeout, TimeoutError):
            raise SampleError("timeout", f"{where} did not answer within {read_timeout_s:g} s") from None
        except UnicodeEncodeError:
            raise SampleError("uri_invalid", f"{what} path {path[:80]!r} is not ASCII") from None
        except OSError as error:
            raise SampleError("connection", f"{where} failed: {error.__class__.__name__}: {error}"[:300]) from None
    finally:
        sock.close()
    status, _, body = _split_answer(bytes(received), where)
    return status, body


def fetch_task_document(
    metadata_uri: str | None,
    *,
    connect_timeout_s: float = 0.5,
    read_timeout_s: float = 1.0,
) -> Any:
    """GET $URI/task and decode the JSON body, or raise `SampleError`."""
    scheme, host, port, path = task_url(metadata_uri)
    status, body = http_get(scheme, host, port, path, connect_timeout_s=connect_timeout_s, read_timeout_s=read_timeout_s)
    if status != 200:
        raise SampleError("http_status", f"task metadata endpoint answered HTTP {status} for {path}")
    if len(body) > MAX_DOCUMENT_BYTES:
        raise SampleError("too_large", f"task metadata answer is larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        # parse_constant turns NaN/Infinity into errors instead of floats.
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise SampleError("not_json", f"task metadata answer is not JSON (starts {bytes(body[:40])!r})") from None


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
