"""python -m emulator [--port N] [--scenario NAME] [--port-file PATH]"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from emulator.server import SCENARIOS, Emulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulator", description="ECS task metadata v4 emulator (loopback)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--scenario", default="ok", choices=sorted(SCENARIOS))
    parser.add_argument("--port-file", type=Path, help="write the chosen port here once listening")
    args = parser.parse_args(argv)
    try:
        emulator = Emulator(args.host, args.port)
    except OSError as error:
        print(f"emulator: cannot listen on {args.host}:{args.port}: {error.strerror}", file=sys.stderr)
        return 1
    emulator.set_scenario(args.scenario)
    if args.port_file:
        args.port_file.write_text(emulator.base_url.rsplit(":", 1)[1])
    print(f"TMDS emulator: ECS_CONTAINER_METADATA_URI_V4={emulator.metadata_uri}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        emulator.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
