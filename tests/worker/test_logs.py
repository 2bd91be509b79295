"""Every line the worker writes to stderr is one JSON object, even for an exception
that escapes a thread (the sender thread or a cron runner)."""

from __future__ import annotations

import io
import json
import logging
import threading

from clock_worker import logs


def test_an_exception_in_a_thread_is_one_json_line():
    stream = io.StringIO()
    saved_hook, saved_handlers = threading.excepthook, logging.getLogger().handlers[:]
    try:
        logs.configure("INFO", stream=stream)

        def explode() -> None:
            raise RuntimeError("sender blew up")

        thread = threading.Thread(target=explode, name="cloudwatch-sender")
        thread.start()
        thread.join()
    finally:
        threading.excepthook = saved_hook
        logging.getLogger().handlers[:] = saved_handlers
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1, lines
    entry = json.loads(lines[0])
    assert entry["event"] == "thread_crashed"
    assert entry["thread"] == "cloudwatch-sender"
    assert entry["level"] == "error"
    assert "RuntimeError: sender blew up" in entry["message"]
    assert "Traceback" in entry["exception"]
