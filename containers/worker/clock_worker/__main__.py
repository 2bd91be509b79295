"""Entry point: `python -m clock_worker` (the image's CMD)."""

from __future__ import annotations

import os
import sys

from clock_worker import logs
from clock_worker.settings import ConfigError, load_settings

EXIT_BAD_CONFIGURATION = 2


def main() -> int:
    try:
        settings = load_settings(os.environ)
    except ConfigError as error:
        logs.print_config_error(error.setting, error.problem)
        return EXIT_BAD_CONFIGURATION
    logs.configure(settings.log_level)
    from clock_worker.worker import Worker

    worker = Worker(settings)
    # Before the sink is made: a SIGTERM while boto3 loads still ends in a clean exit.
    worker.install_signal_handlers()
    return worker.run()


if __name__ == "__main__":
    sys.exit(main())
