"""The clock settings that cross the CDK ↔ container boundary, validated once.

What each setting may be (environment name, type, default, range, choices, case rule)
is described once in `clockcore.settings_spec`; the worker and the app parse their
environment with the same specs. The construct validates its props into a
`ClockSettings` at construction time and writes both containers' environment from it
with `settings_spec.to_env`, so whatever synthesizes, starts, and what the worker is told
and what the alarms watch cannot drift apart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Token

from clockcore import contract, settings_spec
from clockcore.errors import SettingError
from clockcore.settings_spec import SettingSpec, T, format_number, to_env

__all__ = ["ClockProps", "ClockPropsError", "ClockSettings", "format_number", "validate_prop"]


class ClockPropsError(ValueError):
    """A construct prop is invalid; the message names the prop and what is allowed."""


def validate_prop(spec: SettingSpec[T], value: object, *, name: str | None = None) -> T:
    """`value` as the containers will get it, or `ClockPropsError` naming the prop."""
    name = name or spec.prop or spec.env
    # Tokens are strings or floats standing for a deploy-time value (jsii cannot carry NaN or inf).
    maybe_token = isinstance(value, str) or (isinstance(value, float) and math.isfinite(value))
    if maybe_token and Token.is_unresolved(value):
        raise ClockPropsError(
            f"{name} must be known at synth time (the containers and the alarms are told it), not a token"
        )
    try:
        return settings_spec.validate(spec, value, name=name)
    except SettingError as error:
        raise ClockPropsError(str(error)) from None


@dataclass(frozen=True, kw_only=True)
class ClockProps:
    """The clock settings of one monitored service: `clock=ClockProps(...)` on
    `ClockAccurateFargateService` and on `ClockTaskMonitoring`.

    Every field has the default and the range the containers have (clockcore's
    settings_spec); a bad one raises `ClockPropsError` naming it when a construct is built.
    """

    # Value of the `Service` dimension every alarm, widget and per-task query filters on.
    # Unique per account and region. None: the construct's stack name + construct path.
    service_name: str | None = None
    # Largest effective bound (ms) the app's gate lets through; the alarms' threshold.
    threshold_ms: float = contract.DEFAULT_THRESHOLD_MS
    # How often the worker samples the task metadata (s, 1-3600).
    interval_seconds: float = contract.DEFAULT_INTERVAL_SECONDS
    # "emf" (metric lines through the awslogs driver, no IAM) or "cloudwatch" (PutMetricData).
    sink: str = contract.DEFAULT_SINK
    # CloudWatch namespace; None: the metrics profile's (FargateClock, or the seed's).
    namespace: str | None = None
    # "standard", or "seed": the AWS sample's namespace and per-task dimensions.
    metrics_profile: str = contract.STANDARD_PROFILE.name
    # Metrics also published per task; None: the profile's.
    per_task_metrics: Sequence[str] | None = None
    # Drift rate (ppm) that grows the bound with the reference age.
    max_drift_ppm: float = contract.DEFAULT_MAX_DRIFT_PPM
    # Oldest reference (s) the app's gate still trusts.
    max_reference_age_seconds: float = contract.DEFAULT_MAX_REFERENCE_AGE_SECONDS
    # How long (s) the app reuses a metadata reading.
    cache_ttl_seconds: float = contract.DEFAULT_CACHE_TTL_SECONDS

    def resolve(self, *, default_service_name: str) -> ClockSettings:
        """Validated settings, with `default_service_name` when `service_name` is None."""
        return ClockSettings.create(
            service_name=default_service_name if self.service_name is None else self.service_name,
            namespace=self.namespace,
            sink=self.sink,
            metrics_profile=self.metrics_profile,
            per_task_metrics=self.per_task_metrics,
            interval_seconds=self.interval_seconds,
            threshold_ms=self.threshold_ms,
            max_drift_ppm=self.max_drift_ppm,
            max_reference_age_seconds=self.max_reference_age_seconds,
            cache_ttl_seconds=self.cache_ttl_seconds,
        )


def clock_props(value: object) -> ClockProps:
    """The `clock` prop, checked: None gives the defaults."""
    if value is None:
        return ClockProps()
    if not isinstance(value, ClockProps):
        raise ClockPropsError(f"clock must be a ClockProps(...), got {type(value).__name__}: {value!r}")
    return value


@dataclass(frozen=True)
class ClockSettings:
    """What the worker and the app are told, and what dashboard and alarms are built on."""

    service_name: str  # value of the fixed service-level dimension `Service`
    namespace: str
    sink: str
    profile: contract.MetricsProfile
    per_task_metrics: tuple[str, ...]
    interval_seconds: float
    threshold_ms: float
    max_drift_ppm: float
    max_reference_age_seconds: float
    cache_ttl_seconds: float

    @classmethod
    def create(
        cls,
        *,
        service_name: str,
        namespace: str | None = None,
        sink: str = contract.DEFAULT_SINK,
        metrics_profile: str = contract.STANDARD_PROFILE.name,
        per_task_metrics: Sequence[str] | None = None,
        interval_seconds: float = contract.DEFAULT_INTERVAL_SECONDS,
        threshold_ms: float = contract.DEFAULT_THRESHOLD_MS,
        max_drift_ppm: float = contract.DEFAULT_MAX_DRIFT_PPM,
        max_reference_age_seconds: float = contract.DEFAULT_MAX_REFERENCE_AGE_SECONDS,
        cache_ttl_seconds: float = contract.DEFAULT_CACHE_TTL_SECONDS,
    ) -> ClockSettings:
        """Validate the props; raise `ClockPropsError` with a message a user can act on."""
        service_name = validate_prop(settings_spec.SERVICE_NAME, service_name)
        profile = contract.PROFILES[validate_prop(settings_spec.PROFILE, metrics_profile)]
        namespace = validate_prop(settings_spec.NAMESPACE, profile.namespace if namespace is None else namespace)
        assert namespace is not None  # a given value is validated; the profile's is never None
        sink = validate_prop(settings_spec.SINK, sink)
        metrics = (
            validate_prop(settings_spec.PER_TASK_METRICS, per_task_metrics) if per_task_metrics is not None else None
        )
        metrics = profile.per_task_metrics if metrics is None else metrics
        return cls(
            service_name=service_name,
            namespace=namespace,
            sink=sink,
            profile=profile,
            per_task_metrics=metrics,
            interval_seconds=validate_prop(settings_spec.INTERVAL, interval_seconds),
            threshold_ms=validate_prop(settings_spec.THRESHOLD_MS, threshold_ms),
            max_drift_ppm=validate_prop(settings_spec.MAX_DRIFT_PPM, max_drift_ppm),
            max_reference_age_seconds=validate_prop(settings_spec.MAX_REFERENCE_AGE, max_reference_age_seconds),
            cache_ttl_seconds=validate_prop(settings_spec.CACHE_TTL, cache_ttl_seconds),
        )

    @property
    def publishes_with_api(self) -> bool:
        """PutMetricData needs an IAM permission; EMF lines on stdout need none."""
        return self.sink == contract.SINK_CLOUDWATCH

    def worker_environment(self, *, app_port: int | None, clockbound_shm: str | None = None) -> dict[str, str]:
        """The worker's environment. `app_port`: where the app's gate counters are, if any;
        `clockbound_shm`: the ClockBound segment it keeps, if any."""
        specs = settings_spec
        environment = {
            specs.SINK.env: to_env(specs.SINK, self.sink),
            specs.NAMESPACE.env: to_env(specs.NAMESPACE, self.namespace),
            specs.PROFILE.env: to_env(specs.PROFILE, self.profile.name),
            specs.SERVICE_NAME.env: to_env(specs.SERVICE_NAME, self.service_name),
            specs.PER_TASK_METRICS.env: to_env(specs.PER_TASK_METRICS, self.per_task_metrics),
            specs.INTERVAL.env: to_env(specs.INTERVAL, self.interval_seconds),
            specs.MAX_DRIFT_PPM.env: to_env(specs.MAX_DRIFT_PPM, self.max_drift_ppm),
            # The alarms' threshold: the CloudWatch sink sends a sample that crosses it at
            # once instead of batching it.
            specs.THRESHOLD_MS.env: to_env(specs.THRESHOLD_MS, self.threshold_ms),
            # The segment's void-after never lies beyond the reference's trusted age.
            specs.MAX_REFERENCE_AGE.env: to_env(specs.MAX_REFERENCE_AGE, self.max_reference_age_seconds),
        }
        if clockbound_shm is not None:
            environment[specs.CLOCKBOUND_SHM.env] = to_env(specs.CLOCKBOUND_SHM, clockbound_shm)
        if app_port is not None:
            port = validate_prop(specs.APP_PORT, app_port)
            # Containers of one awsvpc task share a network namespace: loopback reaches the app.
            url = f"http://127.0.0.1:{port}{contract.APP_STATS_PATH}"
            environment[specs.APP_STATS_URL.env] = to_env(specs.APP_STATS_URL, validate_prop(specs.APP_STATS_URL, url))
        return environment

    def app_environment(self, *, clockbound_shm: str | None = None) -> dict[str, str]:
        """The clock-aware app's environment: its gate uses the same threshold the alarms use,
        and reads the ClockBound segment `clockbound_shm` when there is one."""
        specs = settings_spec
        environment = {
            specs.THRESHOLD_MS.env: to_env(specs.THRESHOLD_MS, self.threshold_ms),
            specs.CACHE_TTL.env: to_env(specs.CACHE_TTL, self.cache_ttl_seconds),
            specs.MAX_REFERENCE_AGE.env: to_env(specs.MAX_REFERENCE_AGE, self.max_reference_age_seconds),
            specs.MAX_DRIFT_PPM.env: to_env(specs.MAX_DRIFT_PPM, self.max_drift_ppm),
        }
        if clockbound_shm is not None:
            environment[specs.CLOCKBOUND_SHM.env] = to_env(specs.CLOCKBOUND_SHM, clockbound_shm)
        return environment
