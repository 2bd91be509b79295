"""Run every benchmark module (bench/bench_*.py) in turn.

Each module has `main() -> dict`: it measures, prints its figures, and returns them;
this runner saves each result as bench/results/<name>.json with the machine it ran on.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str]) -> int:
    names = sorted(path.stem for path in Path(__file__).resolve().parent.glob("bench_*.py"))
    wanted = [name for name in names if not argv or any(arg in name for arg in argv)]
    if not wanted:
        print(f"no benchmark matches {argv}; have {names}", file=sys.stderr)
        return 2
    RESULTS.mkdir(exist_ok=True)
    failed = False
    for name in wanted:
        print(f"== {name}", flush=True)
        module = importlib.import_module(f"bench.{name}")
        result = module.main()
        record = {
            "benchmark": name,
            "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
            **result,
        }
        (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
        failed |= not result.get("targets_met", True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
