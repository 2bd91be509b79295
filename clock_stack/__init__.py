"""CDK constructs for clock-accurate workloads on ECS Fargate, and the demo stack.

`ClockAccurateFargateService` is the reusable construct; `ClockTaskMonitoring` adds the
worker sidecar and its monitoring to a Fargate task definition you already have.
"""

from __future__ import annotations

import sys

from clock_stack.images import CONTAINERS_DIR, TaskArchitecture

# The metric contract (names, units, dimensions, environment variables) lives in
# `containers/clockcore/contract.py` because both container images are built with it.
# `cdk synth` runs app.py and consumers import this package directly, neither with
# `containers/` on the path, so put it there once: one contract, not a copy.
if str(CONTAINERS_DIR) not in sys.path:
    sys.path.append(str(CONTAINERS_DIR))

from clock_stack.settings import ClockPropsError, ClockSettings  # noqa: E402
from clock_stack.metrics import ClockMetrics  # noqa: E402
from clock_stack.sidecar import ClockWorkerSidecar  # noqa: E402
from clock_stack.monitoring import ClockAlarms, ClockMonitoring  # noqa: E402
from clock_stack.task_monitoring import ClockTaskMonitoring  # noqa: E402
from clock_stack.service import ClockAccurateFargateService  # noqa: E402

__all__ = [
    "CONTAINERS_DIR",
    "ClockAccurateFargateService",
    "ClockAlarms",
    "ClockMetrics",
    "ClockMonitoring",
    "ClockPropsError",
    "ClockSettings",
    "ClockTaskMonitoring",
    "ClockWorkerSidecar",
    "TaskArchitecture",
]
