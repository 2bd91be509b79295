"""CDK constructs for clock-accurate workloads on ECS Fargate, and the demo stack.

`ClockAccurateFargateService` is the reusable construct; `ClockTaskMonitoring` adds the
worker sidecar and its monitoring to a Fargate task definition you already have.
"""

from __future__ import annotations

from clock_stack.images import CONTAINERS_DIR, IMAGE_CONTEXT_DIR, TaskArchitecture
from clock_stack.log_encryption import create_log_encryption_key
from clock_stack.metrics import ClockMetrics
from clock_stack.monitoring import ClockAlarms, ClockMonitoring
from clock_stack.scanners import checkov_skip, skip_cdk_vpc_provider_checks
from clock_stack.service import ClockAccurateFargateService
from clock_stack.settings import ClockProps, ClockPropsError, ClockSettings
from clock_stack.sidecar import ClockWorkerSidecar
from clock_stack.task_monitoring import ClockTaskMonitoring

__version__ = "0.2.0"

__all__ = [
    "CONTAINERS_DIR",
    "IMAGE_CONTEXT_DIR",
    "ClockAccurateFargateService",
    "ClockAlarms",
    "ClockMetrics",
    "ClockMonitoring",
    "ClockProps",
    "ClockPropsError",
    "ClockSettings",
    "ClockTaskMonitoring",
    "ClockWorkerSidecar",
    "TaskArchitecture",
    "checkov_skip",
    "create_log_encryption_key",
    "skip_cdk_vpc_provider_checks",
]
