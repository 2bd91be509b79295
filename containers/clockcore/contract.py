"""The contract between the CDK app, the worker, the app and CloudWatch.

One source for: the environment variables the construct sets on the containers, the
metric names and units the worker publishes, and the dimension sets alarms and
dashboards name. What each setting may be (type, range, choices, case rule) is in
`clockcore.settings_spec`, built on these names and defaults. `clock_stack` builds its
alarms and the containers' environment from this module; the worker and the app read
their settings through it. Pure Python, no dependencies, so the CDK app and both images
can import it.
"""

from __future__ import annotations

from dataclasses import dataclass

# ---------------------------------------------------------------- namespaces
DEFAULT_NAMESPACE = "FargateClock"
# The seed sample published into Container Insights' namespace; kept as an option
# so existing dashboards keep working.
SEED_NAMESPACE = "ECS/ContainerInsights"


# ---------------------------------------------------------------- metrics
@dataclass(frozen=True)
class MetricSpec:
    name: str
    unit: str  # a CloudWatch StandardUnit value
    description: str


CLOCK_ERROR_BOUND = MetricSpec("ClockErrorBound", "Milliseconds", "bound reported by TMDS at its reference time")
EFFECTIVE_BOUND = MetricSpec(
    "EffectiveClockErrorBound", "Milliseconds", "reported bound grown by reference age x max drift rate"
)
CLOCK_SYNCHRONIZED = MetricSpec(
    "ClockSynchronized", "None", "1 when ClockSynchronizationStatus is SYNCHRONIZED, else 0"
)
REFERENCE_AGE = MetricSpec("ClockReferenceAge", "Seconds", "time since the bound's reference timestamp")
SAMPLE_FAILURES = MetricSpec("ClockSampleFailures", "Count", "samples that could not be read or parsed")
OPERATIONS_ALLOWED = MetricSpec("OperationsAllowed", "Count", "critical operations the app's clock gate let run")
OPERATIONS_REFUSED = MetricSpec("OperationsRefused", "Count", "critical operations the app's clock gate refused")

# What a sample publishes (failures are published even when the reading is not).
CLOCK_METRICS: tuple[MetricSpec, ...] = (CLOCK_ERROR_BOUND, EFFECTIVE_BOUND, CLOCK_SYNCHRONIZED, REFERENCE_AGE)
OPERATION_METRICS: tuple[MetricSpec, ...] = (OPERATIONS_ALLOWED, OPERATIONS_REFUSED)
ALL_METRICS: tuple[MetricSpec, ...] = CLOCK_METRICS + (SAMPLE_FAILURES,) + OPERATION_METRICS
METRICS_BY_NAME = {spec.name: spec for spec in ALL_METRICS}

# ---------------------------------------------------------------- dimensions
# Service level: fixed at deploy time, so alarms can name it.
SERVICE_DIMENSION = "Service"
# Per task: for dashboards (SEARCH) and the Metrics Insights alarm grouped by TaskID.
CLUSTER_DIMENSION = "ClusterName"
# The ECS service name as the task metadata reports it. Fargate may not send it (the
# English v4 reference does not list it; the AWS sample says it is not available), so
# nothing an alarm filters on depends on it: the worker logs it as information only.
SERVICE_NAME_DIMENSION = "ServiceName"
FAMILY_DIMENSION = "Family"
TASK_ID_DIMENSION = "TaskID"

# Each distinct dimension combination is a billed custom metric; by default only the
# effective bound is also published per task.
DEFAULT_PER_TASK_METRICS: tuple[str, ...] = (EFFECTIVE_BOUND.name,)


@dataclass(frozen=True)
class MetricsProfile:
    """Where and how metrics are published: the project's own layout, or the seed's."""

    name: str
    namespace: str
    per_task_dimensions: tuple[str, ...]
    per_task_metrics: tuple[str, ...]


# Per task: the deploy-time `Service` value (what alarms and dashboards filter on) and
# the task's id, which the agent always reports.
STANDARD_PROFILE = MetricsProfile(
    name="standard",
    namespace=DEFAULT_NAMESPACE,
    per_task_dimensions=(SERVICE_DIMENSION, TASK_ID_DIMENSION),
    per_task_metrics=DEFAULT_PER_TASK_METRICS,
)
# The seed's dimension set (ClusterName, Family, TaskID) in its namespace, with its
# one metric per task.
SEED_PROFILE = MetricsProfile(
    name="seed",
    namespace=SEED_NAMESPACE,
    per_task_dimensions=(CLUSTER_DIMENSION, FAMILY_DIMENSION, TASK_ID_DIMENSION),
    per_task_metrics=(CLOCK_ERROR_BOUND.name,),
)
PROFILES = {profile.name: profile for profile in (STANDARD_PROFILE, SEED_PROFILE)}

# ---------------------------------------------------------------- sinks
SINK_CLOUDWATCH = "cloudwatch"  # PutMetricData through boto3
SINK_EMF = "emf"  # Embedded Metric Format lines on stdout, for the awslogs driver
SINKS = (SINK_CLOUDWATCH, SINK_EMF)
DEFAULT_SINK = SINK_EMF

# ---------------------------------------------------------------- environment
# Names of the environment variables the construct sets and the containers read.
ENV_METADATA_URI = "ECS_CONTAINER_METADATA_URI_V4"  # set by the ECS agent
ENV_SINK = "CLOCK_SINK"
ENV_NAMESPACE = "CLOCK_NAMESPACE"
ENV_PROFILE = "CLOCK_METRICS_PROFILE"
ENV_SERVICE = "CLOCK_SERVICE_NAME"  # value of the service-level dimension
ENV_PER_TASK_METRICS = "CLOCK_PER_TASK_METRICS"
ENV_INTERVAL = "CLOCK_INTERVAL_SECONDS"
ENV_MAX_DRIFT_PPM = "CLOCK_MAX_DRIFT_PPM"
ENV_THRESHOLD_MS = "CLOCK_THRESHOLD_MS"
ENV_MAX_REFERENCE_AGE = "CLOCK_MAX_REFERENCE_AGE_SECONDS"
ENV_CACHE_TTL = "CLOCK_CACHE_TTL_SECONDS"
ENV_APP_STATS_URL = "CLOCK_APP_STATS_URL"  # where the worker reads the gate's counters
# The ClockBound segment the worker writes and every other container may read.
ENV_CLOCKBOUND_SHM = "CLOCK_CLOCKBOUND_SHM"
# ClockBound's own default path; the construct mounts a task volume at its folder.
CLOCKBOUND_SHM_PATH = "/var/run/clockbound/shm0"
ENV_APP_PORT = "CLOCK_APP_PORT"  # where the app listens; the construct's app_port says the same

# ---------------------------------------------------------------- defaults
# 5 s: the app's gate reads the ClockBound segment, whose bound grows from the worker's
# last write; at 10 s a healthy 0.45 ms bound grew past a 1 ms threshold before each
# write (9 % of checks UNSAFE, measured), at 5 s it stays near 0.8 ms.
DEFAULT_INTERVAL_SECONDS = 5.0
MIN_INTERVAL_SECONDS = 1.0
# Beyond an hour between samples every alarm period would be meaningless.
MAX_INTERVAL_SECONDS = 3600.0
# Maximum drift rate of a free-running clock, for a *bound*: ClockBound's daemon README
# recommends 50 PPM (`--max-drift-rate 50` with chrony's `maxclockerror 50`); its built-in
# 1 PPM is chrony's optimistic value, right for an estimate, not a bound
# (aws/clock-bound, clock-bound-d/README.md, "configuring the maxclockerror directive").
DEFAULT_MAX_DRIFT_PPM = 50.0
# The seed blog's example alarm threshold.
DEFAULT_THRESHOLD_MS = 1.0
DEFAULT_MAX_REFERENCE_AGE_SECONDS = 120.0
DEFAULT_CACHE_TTL_SECONDS = 1.0
DEFAULT_SERVICE_NAME = "clock-demo"

# The app's counters endpoint the worker polls (cumulative; the worker publishes deltas).
APP_STATS_PATH = "/api/operations/stats"
DEFAULT_APP_PORT = 8080


def service_dimensions(service_name: str) -> dict[str, str]:
    """The fixed service-level dimension set, as alarms name it."""
    return {SERVICE_DIMENSION: service_name}
