"""python -m clock_app: validate the settings, then serve with uvicorn.

A bad setting is one line naming it and exit status 2; no traceback.
"""

from __future__ import annotations

import logging
import sys

from clock_app.settings import load_settings
from clockcore.errors import SettingError
from clockcore.heap import freeze_start_up_heap

EXIT_BAD_SETTINGS = 2


def main() -> int:
    try:
        settings = load_settings()
    except SettingError as error:
        print(f"clock_app: invalid setting {error}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    # Imported after the settings check so a bad setting fails fast and plainly.
    import uvicorn

    from clock_app.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    log = logging.getLogger("clock_app")
    log.info(
        "serving on http://%s:%d (threshold %g ms, cache %g s, metadata %s%s%s)",
        settings.host,
        settings.port,
        settings.threshold_ms,
        settings.cache_ttl_s,
        settings.metadata_uri or "unset: every verdict is UNSAFE",
        f", ClockBound segment {settings.clockbound_shm} once it exists" if settings.clockbound_shm else "",
        ", local mode" if settings.local_mode else "",
    )
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=settings.access_log,
        server_header=False,
        log_config=None,  # keep the basicConfig above: one format for every line
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    frozen = freeze_start_up_heap()
    log.info("start-up heap frozen: %d objects taken out of garbage collection", frozen)
    server.run()
    # uvicorn returns normally when it could not bind; say so with a non-zero status.
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
