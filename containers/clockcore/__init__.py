"""The clock library both container images are built with.

It reads the ECS task metadata endpoint v4 (TMDS), turns the task document into a
typed `ClockReading`, grows the reported bound into an effective bound, offers bounded
time (earliest/latest, commit wait) and judges whether critical work may run.
The metric and environment contract shared with the CDK app lives in `contract`; what
each setting crossing that boundary may be, and its one parser, in `settings_spec`.
"""

from clockcore.bounds import BoundedTime, bounded_now, commit_wait, commit_wait_for
from clockcore.errors import SampleError, SettingError
from clockcore.reading import ClockReading, SyncStatus, TaskIdentity, parse_task_document
from clockcore.tmds import fetch_task_document, read_clock
from clockcore.verdict import Verdict, VerdictReason, judge

__all__ = [
    "BoundedTime",
    "ClockReading",
    "SampleError",
    "SettingError",
    "SyncStatus",
    "TaskIdentity",
    "Verdict",
    "VerdictReason",
    "bounded_now",
    "commit_wait",
    "commit_wait_for",
    "fetch_task_document",
    "judge",
    "parse_task_document",
    "read_clock",
]
