"""A urllib3 twin of clockcore.tmds's hand-written keep-alive client, for `python -m bench http`.

Same interface as `KeptAliveGet` / `TaskMetadataReader` (`get()` -> (status, body),
`fetch()` -> the decoded document, `close()`, `path`, `connections_opened`) and the same
`SampleError` kinds, so the benchmark can put one in the other's place in the worker's
sampler and the app's guard and price only the HTTP client:

- a pool of one kept-alive connection (`HTTPConnectionPool`, `maxsize=1`, TCP_NODELAY as
  urllib3 sets by default), not reused after `MAX_IDLE_REUSE_S` idle, and replaced once,
  transparently, when a reused one turns out closed before answering (urllib3 itself
  already drops one the server closed in the meantime; retries are otherwise off, so a
  timeout is never retried);
- connect timeout, per-read timeout, and the whole-answer deadline checked between
  body reads (`read1`, one `recv` each);
- the body cap: a Content-Length over it, or a body growing past it, is `too_large`;
- a path that is not ASCII is `uri_invalid` (urllib3 would percent-encode it).

Two differences stay, both off the happy path the benchmark measures: http.client reads
the status line and headers, so a trickle *inside the headers* is bounded per read, not
by the deadline, and a connection closed in the middle of the headers reads as an
empty answer (`not_json` after decoding, where the hand-written client says
`connection`). The deadline is checked between reads, so a trickling body can overrun
it by up to one read timeout.

This module is the benchmark's; nothing in the images imports it.
"""

from __future__ import annotations

import http.client
import time
from typing import Any

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError

from clockcore.errors import SampleError
from clockcore.tmds import MAX_DOCUMENT_BYTES, _decode_task_answer, task_url

_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)
_HEADERS = {"Accept": "application/json"}


class Urllib3Get:
    """`KeptAliveGet` on urllib3: GET one URL again and again over one kept-alive connection."""

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
        self._timeout = urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s)
        self._max_body_bytes = max_body_bytes
        self._what = what
        self._where = f"{what} {host}:{port}"
        self._last_used = 0.0
        self.connections_opened = 0
        owner = self

        class _Counted(HTTPSConnection if scheme == "https" else HTTPConnection):  # type: ignore[misc]
            def _new_conn(self) -> Any:
                sock = super()._new_conn()
                owner.connections_opened += 1
                return sock

        self._connection_class = _Counted
        self._pool = self._new_pool()

    def _new_pool(self) -> urllib3.HTTPConnectionPool:
        pool_class = urllib3.HTTPSConnectionPool if self._scheme == "https" else urllib3.HTTPConnectionPool
        pool = pool_class(self._host, self._port, maxsize=1, block=False, retries=False, timeout=self._timeout)
        pool.ConnectionCls = self._connection_class
        return pool

    @property
    def path(self) -> str:
        return self._path

    def close(self) -> None:
        self._pool.close()
        self._pool = self._new_pool()

    def get(self) -> tuple[int, bytes]:
        """(status, body) of one GET."""
        if not self._path.isascii():
            raise SampleError("uri_invalid", f"{self._what} path {self._path[:80]!r} is not ASCII")
        started = time.monotonic()
        if self._last_used and started - self._last_used > self.MAX_IDLE_REUSE_S:
            self.close()
        deadline = started + self._read_timeout_s
        opened_before = self.connections_opened
        try:
            response = self._request()
        except urllib3.exceptions.ProtocolError as error:
            reused = self.connections_opened == opened_before
            cause = error.args[1] if len(error.args) > 1 else None
            if not (reused and isinstance(cause, _STALE)):
                raise self._sample_error(error) from None
            try:
                response = self._request()  # GET is idempotent: once more on a fresh connection
            except urllib3.exceptions.HTTPError as again:
                raise self._sample_error(again) from None
        except urllib3.exceptions.HTTPError as error:
            raise self._sample_error(error) from None
        try:
            body = self._read_body(response, deadline)
        except BaseException:
            response.close()  # the connection's state is unknown now
            response.release_conn()
            raise
        response.release_conn()
        self._last_used = time.monotonic()
        return response.status, body

    def _request(self) -> urllib3.BaseHTTPResponse:
        return self._pool.urlopen(
            "GET", self._path, headers=_HEADERS, retries=False, redirect=False, assert_same_host=False,
            preload_content=False, decode_content=False, release_conn=False,
        )

    def _read_body(self, response: urllib3.BaseHTTPResponse, deadline: float) -> bytes:
        length = response.length_remaining  # type: ignore[attr-defined]
        if length is not None and length > self._max_body_bytes:
            raise SampleError("too_large", f"{self._where} answered more than {self._max_body_bytes} bytes")
        body = bytearray()
        try:
            while True:
                if time.monotonic() >= deadline:
                    raise SampleError("timeout", f"{self._where} did not answer within {self._read_timeout_s:g} s")
                chunk = response.read1(65536, decode_content=False)
                if not chunk:
                    return bytes(body)
                body += chunk
                if len(body) > self._max_body_bytes:
                    raise SampleError("too_large", f"{self._where} answered more than {self._max_body_bytes} bytes")
        except urllib3.exceptions.HTTPError as error:
            raise self._sample_error(error) from None

    def _sample_error(self, error: Exception) -> SampleError:
        if isinstance(error, NewConnectionError):
            return SampleError("connection", f"{self._where} unreachable: {error.__class__.__name__}: {error}"[:300])
        if isinstance(error, ConnectTimeoutError):
            return SampleError("timeout", f"{self._where} did not accept a connection within {self._connect_timeout_s:g} s")
        if isinstance(error, ReadTimeoutError):
            return SampleError("timeout", f"{self._where} did not answer within {self._read_timeout_s:g} s")
        return SampleError("connection", f"{self._where} failed: {error.__class__.__name__}: {error}"[:300])


class Urllib3TaskMetadataReader:
    """`TaskMetadataReader` on urllib3: reads `$URI/task` again and again through a `Urllib3Get`."""

    def __init__(self, metadata_uri: str | None, *, connect_timeout_s: float = 0.5, read_timeout_s: float = 1.0) -> None:
        self._metadata_uri = metadata_uri
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._client: Urllib3Get | None = None

    @property
    def connections_opened(self) -> int:
        return self._client.connections_opened if self._client is not None else 0

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def fetch(self) -> Any:
        if self._client is None:
            scheme, host, port, path = task_url(self._metadata_uri)
            self._client = Urllib3Get(scheme, host, port, path, connect_timeout_s=self._connect_timeout_s,
                                      read_timeout_s=self._read_timeout_s)
        status, body = self._client.get()
        return _decode_task_answer(status, body, self._client.path)


class PlainUrllib3Reader:
    """urllib3 at its simplest (`pool.request`, preloaded body, no deadline or cap): a floor
    for what any urllib3-based reader costs, to show the twin's extras are not the cost."""

    def __init__(self, metadata_uri: str, *, connect_timeout_s: float = 0.5, read_timeout_s: float = 1.0) -> None:
        _, host, port, self._path = task_url(metadata_uri)
        self._pool = urllib3.HTTPConnectionPool(
            host, port, maxsize=1, retries=False, timeout=urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s)
        )

    def close(self) -> None:
        self._pool.close()

    def fetch(self) -> Any:
        response = self._pool.request("GET", self._path, headers=_HEADERS)
        return _decode_task_answer(response.status, response.data, self._path)
