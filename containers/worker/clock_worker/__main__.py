"""Entry point: `python -m clock_worker` (the image's CMD)."""

from __future__ import annotations

import logging
import os
import sys

from clock_worker import logs
from clock_worker.settings import load_settings
from clockcore.errors import SettingError

EXIT_BAD_CONFIGURATION = 2
EXIT_CRASHED = 1


def main() -> int:
    try:
        settings = load_settings(os.environ)
    except SettingError as error:
        logs.print_config_error(error.setting, error.problem)
        return EXIT_BAD_CONFIGURATION
    logs.configure(settings.log_level)
    from clock_worker.worker import Worker

    worker = Worker(settings)
    # Before the sink is made: a SIGTERM while boto3 loads still ends in a clean exit.
    worker.install_signal_handlers()
    try:
        return worker.run()
    except Exception as error:
        logging.getLogger("clock_worker").error(
            "%s",
            f"clock worker stopped by an unexpected error: {error.__class__.__name__}: {error}",
            exc_info=True,
            extra={"event": "crashed", "fields": {}},
        )
        return EXIT_CRASHED


if __name__ == "__main__":
    sys.exit(main())
