"""Reading the task document over HTTP, against the emulator and broken endpoints;
the emulator's control API; bounded time and the verdict."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest

from clockcore import SampleError, SyncStatus, bounded_now, commit_wait, judge, read_clock
from clockcore.tmds import task_url
from clockcore.verdict import VerdictReason


def kind_of(call) -> str:
    with pytest.raises(SampleError) as raised:
        call()
    return raised.value.kind


def test_ok_reading_through_the_emulator(emulator):
    reading = read_clock(emulator.metadata_uri, max_drift_ppm=15)
    assert reading.bound_ms == 0.446931 and reading.status is SyncStatus.SYNCHRONIZED
    assert reading.identity.task_id == "0123456789abcdef0123456789abcdef"
    assert reading.identity.service_name == "clock-demo-service"


@pytest.mark.parametrize(
    ("scenario", "values", "kind"),
    [
        ("garbage", {}, "not_json"),
        ("http_500", {}, "http_status"),
        ("no_clock_drift", {}, "no_clock_drift"),
        ("slow", {"delay_s": 1.0}, "timeout"),
    ],
)
def test_bad_emulator_answers_are_sample_errors(emulator, scenario, values, kind):
    emulator.set_scenario(scenario, **values)
    started = time.monotonic()
    assert kind_of(lambda: read_clock(emulator.metadata_uri, max_drift_ppm=15, read_timeout_s=0.3)) == kind
    assert time.monotonic() - started < 1.0  # the timeout bounds the wait


def test_scenarios_with_values(emulator):
    emulator.set_scenario("high_bound", bound_ms=42.0)
    assert read_clock(emulator.metadata_uri, max_drift_ppm=15).bound_ms == 42.0
    emulator.set_scenario("stale_reference", stale_s=300)
    assert read_clock(emulator.metadata_uri, max_drift_ppm=15).reference_age_s >= 300
    emulator.set_scenario("ok", service_name=None)
    assert read_clock(emulator.metadata_uri, max_drift_ppm=15).identity.service_name is None


def test_emulator_control_api_switches_scenarios(emulator):
    request = urllib.request.Request(
        f"{emulator.base_url}/_emulator/scenario", data=json.dumps({"scenario": "high_bound", "bound_ms": 6}).encode(),
        method="POST", headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert json.load(answer)["scenario"] == "high_bound"
    assert read_clock(emulator.metadata_uri, max_drift_ppm=15).bound_ms == 6.0
    bad = urllib.request.Request(f"{emulator.base_url}/_emulator/scenario", data=b'{"scenario": "nope"}', method="POST")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(bad, timeout=5)
    assert raised.value.code == 400


@pytest.mark.parametrize(
    ("uri", "kind"),
    [(None, "uri_unset"), ("  ", "uri_unset"), ("file:///etc/passwd", "uri_invalid"), ("http://", "uri_invalid"),
     ("http://127.0.0.1:99999/v4", "uri_invalid")],
)
def test_unusable_uris(uri, kind):
    assert kind_of(lambda: task_url(uri)) == kind


def test_connection_refused():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert kind_of(lambda: read_clock(f"http://127.0.0.1:{port}/v4/x", max_drift_ppm=15)) == "connection"


def test_task_path_is_appended_to_the_uri():
    assert task_url("http://169.254.170.2/v4/abc/") == ("http", "169.254.170.2", 80, "/v4/abc/task")


# ------------------------------------------------------------------ bounded time and verdict
def reading_with(bound_ms: float, *, status: str = "SYNCHRONIZED", reference_age_s: float = 0.0):
    from clockcore import parse_task_document

    sampled = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    task = {
        "Cluster": "c", "TaskARN": "arn:aws:ecs:r:1:task/c/t", "Family": "f",
        "ClockDrift": {"ClockErrorBound": bound_ms, "ClockSynchronizationStatus": status,
                       "ReferenceTimestamp": (sampled - timedelta(seconds=reference_age_s)).strftime("%Y-%m-%dT%H:%M:%SZ")},
    }
    return parse_task_document(task, sampled_at=sampled, max_drift_ppm=15), sampled


def test_bounded_now_is_symmetric_around_now():
    reading, sampled = reading_with(2.0)
    interval = bounded_now(reading, clock=lambda: sampled)
    assert interval.latest - interval.earliest == timedelta(milliseconds=4)
    assert interval.bound_ms == 2.0


def test_commit_wait_waits_until_the_timestamp_is_certainly_past():
    reading, sampled = reading_with(2.0)
    now = [sampled]
    stamp = bounded_now(reading, clock=lambda: now[0]).latest

    def sleep(seconds: float) -> None:
        now[0] += timedelta(seconds=seconds)

    commit_wait(reading, stamp, clock=lambda: now[0], sleep=sleep)
    assert bounded_now(reading, clock=lambda: now[0]).earliest > stamp
    assert now[0] - sampled >= timedelta(milliseconds=4)  # about two bounds


def test_judge_reasons():
    reading, sampled = reading_with(0.4)
    assert judge(reading, at=sampled, threshold_ms=1, max_reference_age_s=120).safe
    high, _ = reading_with(5.0, status="NOT_SYNCHRONIZED", reference_age_s=600)
    verdict = judge(high, at=sampled, threshold_ms=1, max_reference_age_s=120)
    assert not verdict.safe and set(verdict.reasons) == {
        VerdictReason.BOUND_OVER_THRESHOLD, VerdictReason.NOT_SYNCHRONIZED, VerdictReason.REFERENCE_TOO_OLD
    }
    assert judge(None, at=sampled, threshold_ms=1, max_reference_age_s=120).reasons == (VerdictReason.METADATA_UNAVAILABLE,)


# ------------------------------------------------------------------ the HTTP GET itself
class RawServer:
    """Answers every connection with `answer(connection)`: for answers no real server sends."""

    def __init__(self, answer) -> None:
        import threading

        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self.port = self._listener.getsockname()[1]
        self._answer = answer
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with connection:
                connection.recv(65536)
                try:
                    self._answer(connection)
                except OSError:
                    pass

    def close(self) -> None:
        self._listener.close()


def _get(port: int, **kwargs):
    from clockcore.tmds import http_get

    return http_get("http", "127.0.0.1", port, "/v4/x/task", connect_timeout_s=0.5, read_timeout_s=0.5, **kwargs)


def test_http_get_stops_at_content_length_without_waiting_for_close():
    def answer(connection: socket.socket) -> None:
        connection.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}')
        time.sleep(2)  # keeps the connection open: the reader must not wait for the close

    server = RawServer(answer)
    try:
        started = time.monotonic()
        assert _get(server.port) == (200, b"{}")
        assert time.monotonic() - started < 0.4
    finally:
        server.close()


def test_http_get_reads_to_the_close_without_content_length():
    server = RawServer(lambda connection: connection.sendall(b"HTTP/1.0 503 Busy\r\n\r\n" + b"x" * 100_000))
    try:
        status, body = _get(server.port)
        assert status == 503 and len(body) == 100_000
    finally:
        server.close()


def test_http_get_caps_the_body():
    server = RawServer(lambda connection: connection.sendall(b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 300_000))
    try:
        status, body = _get(server.port, max_body_bytes=1000)
        assert status == 200 and 1000 < len(body) < 300_000  # cut just past the cap: the caller sees "too large"
    finally:
        server.close()


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "connection"),  # not HTTP
        (b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n", "connection"),  # closed before the body
    ],
)
def test_http_get_odd_answers(answer, kind):
    server = RawServer(lambda connection: connection.sendall(answer))
    try:
        with pytest.raises(SampleError) as raised:
            _get(server.port)
        assert raised.value.kind == kind and "task metadata endpoint" in raised.value.message
    finally:
        server.close()


def test_a_trickling_endpoint_hits_the_deadline_for_the_whole_answer():
    def answer(connection: socket.socket) -> None:
        connection.sendall(b"HTTP/1.0 200 OK\r\n\r\n")
        for _ in range(20):  # a byte every 0.1 s: each read is quick, the answer never ends
            connection.sendall(b" ")
            time.sleep(0.1)

    server = RawServer(answer)
    try:
        started = time.monotonic()
        with pytest.raises(SampleError) as raised:
            _get(server.port)
        assert raised.value.kind == "timeout"
        assert time.monotonic() - started < 0.8
    finally:
        server.close()


# ------------------------------------------------------------------ the kept-alive reader
def test_reader_reuses_one_connection(emulator):
    from clockcore.tmds import TaskMetadataReader

    reader = TaskMetadataReader(emulator.metadata_uri)
    try:
        for _ in range(4):
            assert reader.fetch()["ClockDrift"]["ClockErrorBound"] == 0.446931
        emulator.set_scenario("high_bound", bound_ms=3.0)
        assert reader.fetch()["ClockDrift"]["ClockErrorBound"] == 3.0
        assert reader.connections_opened == 1
        assert emulator.task_requests == 5
    finally:
        reader.close()


def test_reader_survives_bad_answers_and_stops_with_the_emulator(emulator):
    from clockcore.tmds import TaskMetadataReader

    reader = TaskMetadataReader(emulator.metadata_uri, read_timeout_s=0.3)
    try:
        for scenario, kind in (("http_500", "http_status"), ("garbage", "not_json"), ("slow", "timeout")):
            emulator.set_scenario(scenario, **({"delay_s": 1.0} if scenario == "slow" else {}))
            assert kind_of(reader.fetch) == kind
        emulator.set_scenario("ok")
        assert reader.fetch()["Family"] == "clock-demo"
        assert reader.connections_opened == 2  # a new one only after the timeout
        emulator.stop()
        assert kind_of(reader.fetch) == "connection"  # no answers from a stopped emulator
    finally:
        reader.close()


class KeepAliveServer:
    """Serves several requests per connection with a canned answer, for framings the
    emulator does not send (chunked), or closes after each answer when `close_after`."""

    def __init__(self, answer: bytes, *, close_after: bool = False) -> None:
        import threading

        self.answer = answer
        self.close_after = close_after
        self.connections = 0
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self.uri = f"http://127.0.0.1:{self._listener.getsockname()[1]}/v4/x"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import threading

        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._talk, args=(connection,), daemon=True).start()

    def _talk(self, connection: socket.socket) -> None:
        with connection:
            pending = b""
            while True:
                try:
                    data = connection.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                pending += data
                while b"\r\n\r\n" in pending:
                    _, pending = pending.split(b"\r\n\r\n", 1)
                    connection.sendall(self.answer)
                    if self.close_after:
                        return

    def close(self) -> None:
        self._listener.close()


def test_reader_decodes_chunked_answers_like_go_sends_them():
    from clockcore.tmds import TaskMetadataReader

    document = json.dumps({"Cluster": "c", "TaskARN": "arn:aws:ecs:r:1:task/c/t", "Family": "f", "pad": "x" * 5000}).encode()
    chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(part), part) for part in (document[:2048], document[2048:]))
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\nX-Trailer: 1\r\n\r\n"
    server = KeepAliveServer(answer)
    reader = TaskMetadataReader(server.uri)
    try:
        assert reader.fetch()["pad"] == "x" * 5000
        assert reader.fetch()["Family"] == "f"
        assert server.connections == 1 and reader.connections_opened == 1
    finally:
        reader.close()
        server.close()


def test_reader_replaces_a_connection_the_server_closed():
    from clockcore.tmds import TaskMetadataReader

    # Closes after each answer without saying so: the next read finds the connection dead.
    server = KeepAliveServer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", close_after=True)
    reader = TaskMetadataReader(server.uri)
    try:
        assert reader.fetch() == {}
        time.sleep(0.1)
        assert reader.fetch() == {}  # retried once on a fresh connection, transparently
        assert reader.connections_opened == 2
    finally:
        reader.close()
        server.close()


def _kept_alive(server: "KeepAliveServer", **kwargs):
    from urllib.parse import urlsplit

    from clockcore.tmds import KeptAliveGet

    parts = urlsplit(server.uri)
    return KeptAliveGet("http", "127.0.0.1", parts.port, "/v4/x/task", connect_timeout_s=0.5, read_timeout_s=0.5, **kwargs)


def test_kept_alive_get_does_not_reuse_an_idle_connection_or_an_http_10_one():
    server = KeepAliveServer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    client = _kept_alive(server)
    client.MAX_IDLE_REUSE_S = 0.05
    try:
        assert client.get() == (200, b"{}")
        time.sleep(0.1)
        assert client.get() == (200, b"{}")
        assert client.connections_opened == 2
    finally:
        client.close()
        server.close()
    old = KeepAliveServer(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    client = _kept_alive(old)
    try:
        client.get()
        client.get()
        assert client.connections_opened == 2  # HTTP/1.0 without keep-alive closes
    finally:
        client.close()
        old.close()


def test_kept_alive_get_caps_the_body_for_its_caller():
    server = KeepAliveServer(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000)
    client = _kept_alive(server, max_body_bytes=1000, what="app counters endpoint")
    try:
        with pytest.raises(SampleError) as raised:
            client.get()
        assert raised.value.kind == "too_large" and "app counters endpoint" in raised.value.message
    finally:
        client.close()
        server.close()


@pytest.mark.parametrize(("uri", "kind"), [(None, "uri_unset"), ("ftp://x/v4", "uri_invalid")])
def test_reader_with_an_unusable_uri(uri, kind):
    from clockcore.tmds import TaskMetadataReader

    assert kind_of(TaskMetadataReader(uri).fetch) == kind


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("http://169.254.170.2/v4/abc", None),
        ("https://example.internal:8443/x", None),
        ("ftp://169.254.170.2/v4", "is not an http(s) URL"),
        ("169.254.170.2/v4", "is not an http(s) URL"),
        ("http:///v4", "is not an http(s) URL"),
        ("http://127.0.0.1:notaport/v4", "is not a URL"),
    ],
)
def test_one_definition_of_an_http_url(raw, problem):
    """The reader and both images' URL settings judge URLs by this one function."""
    from clockcore.tmds import http_url_problem

    found = http_url_problem(raw)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found and raw[:20] in found
