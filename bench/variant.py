"""python -m bench.variant {hand|urllib3} {worker|app}: the worker or the app as the image runs
it (`python -m clock_worker` / `python -m clock_app`), with its metadata client chosen.

`hand` changes nothing: the hand-written client of clockcore.tmds. `urllib3` puts the
benchmark's twin (bench/urllib3_client.py) in its place before the process starts: the
worker's sampler (and its app-counters poll) read through `Urllib3TaskMetadataReader` /
`Urllib3Get`, and the app's guard reads through one kept-alive `Urllib3TaskMetadataReader`
(the guard's single flight keeps its reads one at a time). Both variants go through this
same launcher, so they differ only by the client and what importing urllib3 costs.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any, Callable


def _use_urllib3_in_worker() -> None:
    import clock_worker.app_stats
    import clock_worker.sampler

    from bench.urllib3_client import Urllib3Get, Urllib3TaskMetadataReader

    clock_worker.sampler.TaskMetadataReader = Urllib3TaskMetadataReader  # type: ignore[misc]
    clock_worker.app_stats.KeptAliveGet = Urllib3Get  # type: ignore[misc]


def _use_urllib3_in_app() -> None:
    import clock_app.guard
    from clockcore import ClockReading, parse_task_document
    from clockcore.tmds import utc_now

    from bench.urllib3_client import Urllib3TaskMetadataReader

    readers: dict[tuple[Any, ...], Urllib3TaskMetadataReader] = {}

    def read_clock(
        metadata_uri: str | None,
        *,
        max_drift_ppm: float,
        connect_timeout_s: float = 0.5,
        read_timeout_s: float = 1.0,
        clock: Callable[[], datetime] = utc_now,
    ) -> ClockReading:
        key = (metadata_uri, connect_timeout_s, read_timeout_s)
        reader = readers.get(key)
        if reader is None:
            reader = readers[key] = Urllib3TaskMetadataReader(
                metadata_uri, connect_timeout_s=connect_timeout_s, read_timeout_s=read_timeout_s
            )
        document = reader.fetch()
        return parse_task_document(document, sampled_at=clock(), max_drift_ppm=max_drift_ppm)

    clock_app.guard.read_clock = read_clock  # type: ignore[assignment]


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("hand", "urllib3") or argv[1] not in ("worker", "app"):
        print("usage: python -m bench.variant {hand|urllib3} {worker|app}", file=sys.stderr)
        return 2
    client, process = argv
    if process == "worker":
        import clock_worker.sampler  # noqa: F401 - the same imports for both variants

        if client == "urllib3":
            _use_urllib3_in_worker()
        from clock_worker.__main__ import main as run
    else:
        import clock_app.guard  # noqa: F401 - the same imports for both variants

        if client == "urllib3":
            _use_urllib3_in_app()
        from clock_app.__main__ import main as run
    return run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
