"""python -m clock_app.healthcheck: the image's HEALTHCHECK (slim images have no curl).

Exit 0 when GET /healthz on the local port answers 200, 1 otherwise. Liveness only:
a bad clock makes /readyz fail, never this.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

from clock_app.settings import DEFAULT_PORT, ENV_PORT

TIMEOUT_S = 2.0


def main() -> int:
    port = os.environ.get(ENV_PORT, "").strip() or str(DEFAULT_PORT)
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            if response.status == 200:
                return 0
            print(f"healthcheck: {url} answered {response.status}", file=sys.stderr)
    except (urllib.error.URLError, OSError, ValueError) as error:
        print(f"healthcheck: {url} failed: {error}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
