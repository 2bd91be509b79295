"""The error types of the clock library: a failed clock sample, and a setting that is not allowed."""

from __future__ import annotations


class SampleError(Exception):
    """A sample could not be taken or made sense of.

    `kind` is a short machine-readable code (logged, counted, returned by the app);
    the message says what was wrong in words a person can act on.
    """

    # Every kind a sample can fail with; tests and log readers rely on this set.
    KINDS = frozenset(
        {
            "uri_unset",  # ECS_CONTAINER_METADATA_URI_V4 missing
            "uri_invalid",  # not an http(s) URL
            "connection",  # refused, reset, DNS
            "timeout",  # connect or read took too long
            "http_status",  # 4xx/5xx from the endpoint
            "too_large",  # the answer is larger than any task document
            "not_json",  # the body is not JSON (or not UTF-8)
            "not_object",  # JSON, but not an object
            "no_clock_drift",  # the task has no ClockDrift block (EC2 launch type)
            "invalid_field",  # a field has the wrong type or an impossible value
            "missing_field",  # a field the reading needs is absent
        }
    )

    def __init__(self, kind: str, message: str) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown sample error kind {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.message = message

    def __repr__(self) -> str:
        return f"SampleError({self.kind!r}, {self.message!r})"


class SettingError(ValueError):
    """A setting has a value a container cannot start with, or the construct cannot pass on.

    `setting` names it the way its reader knows it: the environment variable when a
    container parses its environment, the construct prop when the construct validates
    its props. `problem` says what is wrong and what is allowed.
    """

    def __init__(self, setting: str, problem: str, *, message: str | None = None) -> None:
        super().__init__(f"{setting}: {problem}" if message is None else message)
        self.setting = setting
        self.problem = problem
