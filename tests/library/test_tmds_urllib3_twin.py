"""The benchmark's urllib3 twin (bench/urllib3_client.py) keeps the hand-written client's
promises: the kept-alive reader tests of test_clockcore_tmds.py, run again with the twin
in the hand-written classes' place. `python -m bench http` prices one against the other,
so they must do the same work."""

from __future__ import annotations

import pytest

import clockcore.tmds
import test_clockcore_tmds as hand_written
from bench.urllib3_client import Urllib3Get, Urllib3TaskMetadataReader


@pytest.fixture(autouse=True)
def _twin(monkeypatch):
    monkeypatch.setattr(clockcore.tmds, "TaskMetadataReader", Urllib3TaskMetadataReader)
    monkeypatch.setattr(clockcore.tmds, "KeptAliveGet", Urllib3Get)


def test_reader_reuses_one_connection(emulator):
    hand_written.test_reader_reuses_one_connection(emulator)


def test_reader_survives_bad_answers_and_stops_with_the_emulator(emulator):
    hand_written.test_reader_survives_bad_answers_and_stops_with_the_emulator(emulator)


def test_reader_decodes_chunked_answers_like_go_sends_them():
    hand_written.test_reader_decodes_chunked_answers_like_go_sends_them()


def test_reader_replaces_a_connection_the_server_closed():
    hand_written.test_reader_replaces_a_connection_the_server_closed()


def test_kept_alive_get_does_not_reuse_an_idle_connection_or_an_http_10_one():
    hand_written.test_kept_alive_get_does_not_reuse_an_idle_connection_or_an_http_10_one()


def test_kept_alive_get_caps_the_body_for_its_caller():
    hand_written.test_kept_alive_get_caps_the_body_for_its_caller()


@pytest.mark.parametrize(("uri", "kind"), [(None, "uri_unset"), ("ftp://x/v4", "uri_invalid")])
def test_reader_with_an_unusable_uri(uri, kind):
    hand_written.test_reader_with_an_unusable_uri(uri, kind)


def test_the_twin_bounds_a_trickling_body():
    """The whole-answer deadline, checked between reads: over by at most one read timeout."""
    import socket
    import time

    from clockcore import SampleError

    def answer(connection: socket.socket) -> None:
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        for _ in range(20):
            connection.sendall(b" ")
            time.sleep(0.1)

    server = hand_written.RawServer(answer)
    client = Urllib3Get("http", "127.0.0.1", server.port, "/v4/x/task", connect_timeout_s=0.5, read_timeout_s=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(SampleError) as raised:
            client.get()
        assert raised.value.kind == "timeout" and time.monotonic() - started < 0.8
    finally:
        client.close()
        server.close()
