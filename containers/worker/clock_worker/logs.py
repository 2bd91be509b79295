"""Structured logs: one JSON object per line on stderr.

stdout belongs to EMF lines (the awslogs driver turns those into metrics), so every
log line, including those of libraries such as botocore, goes to stderr as JSON.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import UTC, datetime
from typing import Any, TextIO

# Attributes every LogRecord has; anything else came in through `extra`.
_EVENT_ATTR = "event"
_FIELDS_ATTR = "fields"


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, _EVENT_ATTR, "log"),
            "message": record.getMessage(),
        }
        fields = getattr(record, _FIELDS_ATTR, None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                entry.setdefault(key, value)
        if record.exc_info:
            # Still one line: the traceback is a field, not extra lines.
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


def configure(level: str, *, stream: TextIO = sys.stderr) -> None:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)  # libraries: warnings and errors only
    # Python warnings (deprecations in a library, say) become JSON lines too.
    logging.captureWarnings(True)
    logging.getLogger("clock_worker").setLevel(level)
    # An exception escaping a thread (the sender, a cron runner) would otherwise print a
    # bare traceback over several lines; keep it one JSON line like everything else.
    threading.excepthook = _log_thread_exception


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    thread = args.thread.name if args.thread is not None else "unknown"
    logging.getLogger("clock_worker").error(
        "%s",
        f"unexpected error in thread {thread}: {args.exc_type.__name__}: {args.exc_value}",
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),  # type: ignore[arg-type]
        extra={_EVENT_ATTR: "thread_crashed", _FIELDS_ATTR: {"thread": thread}},
    )


def log_event(logger: logging.Logger, level: int, event: str, message: str, **fields: Any) -> None:
    """Log one event: a stable `event` name for machines, a sentence for people."""
    logger.log(level, "%s", message, extra={_EVENT_ATTR: event, _FIELDS_ATTR: fields})


def print_config_error(setting: str, problem: str, *, stream: TextIO = sys.stderr) -> None:
    """The one line a bad configuration produces (before logging is configured)."""
    entry = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": "error",
        "logger": "clock_worker",
        "event": "bad_configuration",
        "setting": setting,
        "message": f"bad configuration: {setting}: {problem}",
    }
    stream.write(json.dumps(entry, separators=(",", ":")) + "\n")
    stream.flush()
