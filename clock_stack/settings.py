"""The clock settings that cross the CDK ↔ container boundary, validated once.

Everything here comes from `clockcore.contract`: the environment variable names, the
defaults, the sinks and the metric profiles. The construct validates its props into a
`ClockSettings` at construction time and builds both containers' environment from it,
so what the worker is told and what the alarms watch cannot drift apart.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Token

from clockcore import contract


class ClockPropsError(ValueError):
    """A construct prop is invalid; the message names the prop and what is allowed."""


# CloudWatch: dimension values and namespaces are at most 255 characters here (the
# namespace limit; dimension values may be longer, but a service name that long is a bug).
_MAX_NAME_LENGTH = 255
# Namespaces: letters, digits and . - _ / # : (CloudWatch's set; the worker checks the same).
_NAMESPACE_PATTERN = re.compile(r"^[A-Za-z0-9.\-_/#:]+$")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ClockPropsError(message)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def format_number(value: float) -> str:
    """Environment values are strings; write 10 rather than 10.0, keep fractions exact."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


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
    ) -> "ClockSettings":
        """Validate the props; raise `ClockPropsError` with a message a user can act on."""
        _require(
            isinstance(service_name, str) and not Token.is_unresolved(service_name),
            "clock_service_name must be a plain string known at synth time (alarms name it), not a token",
        )
        _require(
            0 < len(service_name.strip()) <= _MAX_NAME_LENGTH and service_name == service_name.strip(),
            f"clock_service_name must be 1-{_MAX_NAME_LENGTH} characters without leading or trailing spaces, "
            f"got {service_name!r}",
        )
        _require(
            metrics_profile in contract.PROFILES,
            f"metrics_profile must be one of {', '.join(sorted(contract.PROFILES))}, got {metrics_profile!r}",
        )
        profile = contract.PROFILES[metrics_profile]
        namespace = profile.namespace if namespace is None else namespace
        _require(
            isinstance(namespace, str) and not Token.is_unresolved(namespace) and bool(namespace),
            "namespace must be a non-empty plain string",
        )
        _require(
            len(namespace) <= _MAX_NAME_LENGTH and bool(_NAMESPACE_PATTERN.match(namespace)),
            f"namespace {namespace!r} must be at most {_MAX_NAME_LENGTH} characters of letters, digits "
            "and . - _ / # : (CloudWatch's rule)",
        )
        _require(
            not namespace.startswith("AWS/"),
            f"namespace {namespace!r} starts with AWS/, which CloudWatch reserves for AWS services",
        )
        _require(sink in contract.SINKS, f"sink must be one of {', '.join(contract.SINKS)}, got {sink!r}")
        metrics = tuple(profile.per_task_metrics if per_task_metrics is None else per_task_metrics)
        unknown = [name for name in metrics if name not in contract.METRICS_BY_NAME]
        _require(
            not unknown,
            f"per_task_metrics has unknown metric names {unknown}; known: {', '.join(contract.METRICS_BY_NAME)}",
        )
        _require(len(set(metrics)) == len(metrics), f"per_task_metrics lists a metric twice: {list(metrics)}")
        _require(
            _is_number(interval_seconds) and contract.MIN_INTERVAL_SECONDS <= interval_seconds <= contract.MAX_INTERVAL_SECONDS,
            f"interval_seconds must be a number from {format_number(contract.MIN_INTERVAL_SECONDS)} to "
            f"{format_number(contract.MAX_INTERVAL_SECONDS)}, got {interval_seconds!r}",
        )
        _require(
            _is_number(threshold_ms) and threshold_ms > 0,
            f"threshold_ms must be a positive number of milliseconds, got {threshold_ms!r}",
        )
        _require(
            _is_number(max_drift_ppm) and 0 <= max_drift_ppm <= 1000,
            f"max_drift_ppm must be a number from 0 to 1000, got {max_drift_ppm!r}",
        )
        _require(
            _is_number(max_reference_age_seconds) and max_reference_age_seconds > 0,
            f"max_reference_age_seconds must be a positive number, got {max_reference_age_seconds!r}",
        )
        _require(
            _is_number(cache_ttl_seconds) and 0 <= cache_ttl_seconds <= 60,
            f"cache_ttl_seconds must be a number from 0 to 60, got {cache_ttl_seconds!r}",
        )
        return cls(
            service_name=service_name,
            namespace=namespace,
            sink=sink,
            profile=profile,
            per_task_metrics=metrics,
            interval_seconds=float(interval_seconds),
            threshold_ms=float(threshold_ms),
            max_drift_ppm=float(max_drift_ppm),
            max_reference_age_seconds=float(max_reference_age_seconds),
            cache_ttl_seconds=float(cache_ttl_seconds),
        )

    @property
    def publishes_with_api(self) -> bool:
        """PutMetricData needs an IAM permission; EMF lines on stdout need none."""
        return self.sink == contract.SINK_CLOUDWATCH

    def worker_environment(self, *, app_port: int | None) -> dict[str, str]:
        """The worker's environment. `app_port`: where the app's gate counters are, if any."""
        environment = {
            contract.ENV_SINK: self.sink,
            contract.ENV_NAMESPACE: self.namespace,
            contract.ENV_PROFILE: self.profile.name,
            contract.ENV_SERVICE: self.service_name,
            contract.ENV_PER_TASK_METRICS: ",".join(self.per_task_metrics),
            contract.ENV_INTERVAL: format_number(self.interval_seconds),
            contract.ENV_MAX_DRIFT_PPM: format_number(self.max_drift_ppm),
            # The alarms' threshold: the CloudWatch sink sends a sample that crosses it at
            # once instead of batching it.
            contract.ENV_THRESHOLD_MS: format_number(self.threshold_ms),
        }
        if app_port is not None:
            # Containers of one awsvpc task share a network namespace: loopback reaches the app.
            environment[contract.ENV_APP_STATS_URL] = f"http://127.0.0.1:{app_port}{contract.APP_STATS_PATH}"
        return environment

    def app_environment(self) -> dict[str, str]:
        """The clock-aware app's environment: its gate uses the same threshold the alarms use."""
        return {
            contract.ENV_THRESHOLD_MS: format_number(self.threshold_ms),
            contract.ENV_CACHE_TTL: format_number(self.cache_ttl_seconds),
            contract.ENV_MAX_REFERENCE_AGE: format_number(self.max_reference_age_seconds),
            contract.ENV_MAX_DRIFT_PPM: format_number(self.max_drift_ppm),
        }
