"""Read the task document from the ECS task metadata endpoint v4.

Standard library only: one short HTTP/1.0 GET over a plain socket, with a connect
timeout, a deadline for the whole answer and a size cap, so a slow, trickling or
broken endpoint costs at most a bounded wait. HTTP/1.0 keeps the answer simple: no
chunked encoding, the server closes the connection at the end of the body. The worker
calls this every second, and `http.client` (which parses headers with the `email`
package) cost about twice the CPU of this whole function. urllib3, measured against the
kept-alive client below by `python -m bench http`, costs the worker 0.5-0.76 ms more per
sample at 1 Hz, over its 0.15 ms budget: see the README's "The metadata client stays
hand-written".
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from clockcore.errors import SampleError
from clockcore.reading import ClockReading, parse_task_document

METADATA_URI_ENV = "ECS_CONTAINER_METADATA_URI_V4"
# A Fargate task document is a few KiB; anything near this is not one.
MAX_DOCUMENT_BYTES = 1 << 20
# Status line and headers of any sane answer fit in this.
MAX_HEAD_BYTES = 64 * 1024


def http_url_problem(raw: str) -> str | None:
    """Why `raw` is not an http(s) URL with a host (a sentence), or None when it is one.

    The one definition the reader and both images' settings use for every URL setting.
    """
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as error:
        return f"{raw[:80]!r} is not a URL: {error}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{raw[:80]!r} is not an http(s) URL"
    return None


def task_url(metadata_uri: str | None) -> tuple[str, str, int, str]:
    """Validate the metadata URI and return (scheme, host, port, path of /task)."""
    if metadata_uri is None or not metadata_uri.strip():
        raise SampleError(
            "uri_unset",
            f"{METADATA_URI_ENV} is not set: not running in an ECS task (or the agent is older than 1.39.0)",
        )
    problem = http_url_problem(metadata_uri.strip())
    if problem is not None:
        raise SampleError("uri_invalid", f"{METADATA_URI_ENV} {problem}")
    parts = urlsplit(metadata_uri.strip())
    assert parts.hostname is not None  # checked by http_url_problem
    default_port = 443 if parts.scheme == "https" else 80
    return parts.scheme, parts.hostname, parts.port or default_port, parts.path.rstrip("/") + "/task"


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
    except TimeoutError:
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
        except TimeoutError:
            raise SampleError("timeout", f"{where} did not answer within {read_timeout_s:g} s") from None
        except UnicodeEncodeError:
            raise SampleError("uri_invalid", f"{what} path {path[:80]!r} is not ASCII") from None
        except OSError as error:
            raise SampleError("connection", f"{where} failed: {error.__class__.__name__}: {error}"[:300]) from None
    finally:
        sock.close()
    status, _, body = _split_answer(bytes(received), where)
    return status, body


def _decode_task_answer(status: int, body: bytes, path: str) -> Any:
    if status != 200:
        raise SampleError("http_status", f"task metadata endpoint answered HTTP {status} for {path}")
    if len(body) > MAX_DOCUMENT_BYTES:
        raise SampleError("too_large", f"task metadata answer is larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        # parse_constant turns NaN/Infinity into errors instead of floats.
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise SampleError("not_json", f"task metadata answer is not JSON (starts {bytes(body[:40])!r})") from None


class _StaleConnection(Exception):
    """A kept-alive connection the server had already closed: nothing was answered."""


class KeptAliveGet:
    """GET one URL again and again over one kept-alive HTTP/1.1 connection.

    For callers that ask every second (the worker's sampler, and its read of the app's
    counters): reusing the connection saves the TCP set-up and tear-down, about 0.4 ms
    of CPU per read. Go's net/http (the ECS agent) sends a multi-KiB body chunked, so
    chunked answers are decoded. A connection idle for longer than `MAX_IDLE_REUSE_S`
    is not reused (servers close idle ones), and a reused connection that turns out
    closed before any answer byte is replaced once, transparently (GET is idempotent).
    Any other problem closes the connection and raises `SampleError` (`timeout`,
    `connection`, `too_large`, `uri_invalid`). https takes the one-shot `http_get`.
    Not thread-safe: one instance per loop.
    """

    MAX_IDLE_REUSE_S = 4.0

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int,
        path: str,
        *,
        connect_timeout_s: float,
        read_timeout_s: float,
        max_body_bytes: int = MAX_DOCUMENT_BYTES,
        what: str = "task metadata endpoint",
    ) -> None:
        self._scheme, self._host, self._port, self._path = scheme, host, port, path
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._max_body_bytes = max_body_bytes
        self._what = what
        self._where = f"{what} {host}:{port}"
        self._sock: socket.socket | None = None
        self._last_used = 0.0
        self.connections_opened = 0

    @property
    def path(self) -> str:
        return self._path

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def get(self) -> tuple[int, bytes]:
        """(status, body) of one GET."""
        if self._scheme != "http":
            return http_get(
                self._scheme,
                self._host,
                self._port,
                self._path,
                connect_timeout_s=self._connect_timeout_s,
                read_timeout_s=self._read_timeout_s,
                max_body_bytes=self._max_body_bytes,
                what=self._what,
            )
        deadline = time.monotonic() + self._read_timeout_s
        if self._sock is not None and time.monotonic() - self._last_used > self.MAX_IDLE_REUSE_S:
            self.close()
        reused = self._sock is not None
        try:
            try:
                status, body, keep = self._exchange(deadline)
            except _StaleConnection:
                if not reused:
                    raise
                self.close()
                status, body, keep = self._exchange(deadline)
        except _StaleConnection:
            self.close()
            raise SampleError("connection", f"{self._where} closed the connection without answering") from None
        except BaseException:
            self.close()  # the connection's state is unknown now
            raise
        if keep:
            self._last_used = time.monotonic()
        else:
            self.close()
        return status, body

    def _connect(self) -> socket.socket:
        try:
            sock = socket.create_connection((self._host, self._port), timeout=self._connect_timeout_s)
        except TimeoutError:
            raise SampleError(
                "timeout", f"{self._where} did not accept a connection within {self._connect_timeout_s:g} s"
            ) from None
        except OSError as error:
            raise SampleError(
                "connection", f"{self._where} unreachable: {error.__class__.__name__}: {error}"[:300]
            ) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connections_opened += 1
        return sock

    def _exchange(self, deadline: float) -> tuple[int, bytes, bool]:
        """Send one GET and read one answer: (status, body, connection reusable)."""
        host_header = f"[{self._host}]" if ":" in self._host else self._host
        try:
            request = (
                f"GET {self._path} HTTP/1.1\r\nHost: {host_header}:{self._port}\r\nAccept: application/json\r\n\r\n"
            ).encode("ascii")
        except UnicodeEncodeError:
            raise SampleError("uri_invalid", f"{self._what} path {self._path[:80]!r} is not ASCII") from None
        if self._sock is None:
            self._sock = self._connect()
        sock = self._sock
        reader = _AnswerReader(sock, deadline, self._where, self._max_body_bytes)
        try:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            sock.sendall(request)
            return reader.read_answer()
        except TimeoutError:
            raise SampleError("timeout", f"{self._where} did not answer within {self._read_timeout_s:g} s") from None
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as error:
            if not reader.received_any:
                raise _StaleConnection() from None
            raise SampleError(
                "connection", f"{self._where} failed: {error.__class__.__name__}: {error}"[:300]
            ) from None
        except OSError as error:
            raise SampleError(
                "connection", f"{self._where} failed: {error.__class__.__name__}: {error}"[:300]
            ) from None


class TaskMetadataReader:
    """Reads `$URI/task` again and again through a `KeptAliveGet` (the worker's loop).

    Same answers and `SampleError` kinds as `fetch_task_document`; an unusable URI
    fails every read the same way.
    """

    def __init__(
        self, metadata_uri: str | None, *, connect_timeout_s: float = 0.5, read_timeout_s: float = 1.0
    ) -> None:
        self._metadata_uri = metadata_uri
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._client: KeptAliveGet | None = None

    @property
    def connections_opened(self) -> int:
        return self._client.connections_opened if self._client is not None else 0

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def fetch(self) -> Any:
        if self._client is None:
            scheme, host, port, path = task_url(self._metadata_uri)
            self._client = KeptAliveGet(
                scheme, host, port, path, connect_timeout_s=self._connect_timeout_s, read_timeout_s=self._read_timeout_s
            )
        status, body = self._client.get()
        return _decode_task_answer(status, body, self._client.path)


class _AnswerReader:
    """Reads one HTTP/1.x answer from a socket under a deadline."""

    def __init__(self, sock: socket.socket, deadline: float, where: str, max_body_bytes: int) -> None:
        self._sock = sock
        self._deadline = deadline
        self._where = where
        self._max_body_bytes = max_body_bytes
        self._buffer = bytearray()
        self.received_any = False

    def _fill(self) -> bool:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self._sock.settimeout(remaining)
        chunk = self._sock.recv(65536)
        if not chunk:
            return False
        self.received_any = True
        self._buffer += chunk
        if len(self._buffer) > MAX_HEAD_BYTES + self._max_body_bytes + 64 * 1024:
            raise SampleError("too_large", f"{self._where} answered more than {self._max_body_bytes} bytes")
        return True

    def _take_line(self) -> bytes:
        while True:
            end = self._buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 2]
                return line
            if not self._fill():
                raise SampleError("connection", f"{self._where} closed the connection in the middle of an answer")

    def _take(self, count: int) -> bytes:
        while len(self._buffer) < count:
            if not self._fill():
                raise SampleError("connection", f"{self._where} closed the connection in the middle of an answer")
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def read_answer(self) -> tuple[int, bytes, bool]:
        while b"\r\n\r\n" not in self._buffer:
            if not self._fill():
                if not self.received_any:
                    raise _StaleConnection()
                raise SampleError("connection", f"{self._where} closed the connection before a complete answer")
        head_end = self._buffer.index(b"\r\n\r\n") + 4
        status, headers, _ = _split_answer(bytes(self._buffer[:head_end]), self._where)
        http_10 = self._buffer.startswith(b"HTTP/1.0")
        del self._buffer[:head_end]
        connection = headers.get("connection", "").lower()
        encoding = headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length", "")
        if encoding and encoding != "identity":
            if encoding != "chunked":
                raise SampleError("connection", f"{self._where} answered with transfer encoding {encoding[:20]!r}")
            body = self._read_chunked()
        elif length.isdigit():
            if int(length) > self._max_body_bytes:
                raise SampleError("too_large", f"{self._where} answered more than {self._max_body_bytes} bytes")
            body = self._take(int(length))
        else:
            # No length: the body runs to the close, and the connection cannot be reused.
            while self._fill():
                pass
            body, self._buffer = bytes(self._buffer), bytearray()
            return status, body, False
        # HTTP/1.0 closes unless told otherwise; leftover bytes would mean lost framing.
        reusable = connection == "keep-alive" if http_10 else connection != "close"
        keep = reusable and not self._buffer
        return status, body, keep

    def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            size_line = self._take_line().split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise SampleError(
                    "connection", f"{self._where} sent a malformed chunk size {size_line[:20]!r}"
                ) from None
            if size == 0:
                while self._take_line():
                    pass  # trailers, up to the empty line
                return bytes(body)
            if len(body) + size > self._max_body_bytes:
                raise SampleError("too_large", f"{self._where} answered more than {self._max_body_bytes} bytes")
            body += self._take(size)
            if self._take(2) != b"\r\n":
                raise SampleError("connection", f"{self._where} sent a chunk without its line end")


def fetch_task_document(
    metadata_uri: str | None,
    *,
    connect_timeout_s: float = 0.5,
    read_timeout_s: float = 1.0,
) -> Any:
    """GET $URI/task and decode the JSON body, or raise `SampleError`."""
    scheme, host, port, path = task_url(metadata_uri)
    status, body = http_get(
        scheme, host, port, path, connect_timeout_s=connect_timeout_s, read_timeout_s=read_timeout_s
    )
    return _decode_task_answer(status, body, path)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def utc_now() -> datetime:
    return datetime.now(UTC)


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
