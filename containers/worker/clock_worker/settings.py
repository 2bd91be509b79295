"""Every setting the worker reads, read and validated once at start-up.

The rest of the worker receives a typed `WorkerSettings`; nothing else looks at the
environment. A bad value raises `ConfigError` naming the variable, and the entry point
turns that into one stderr line and exit code 2.

The names shared with the CDK construct live in `clockcore.contract`; the ones only the
worker reads are defined here, all with the `CLOCK_` prefix.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from clockcore import contract
from clockcore.tmds import http_url_problem
from clockcore.contract import MetricsProfile

from clock_worker.cron import CronJob, CrontabError, parse_crontab

# ---------------------------------------------------------------- worker-only names
ENV_BUFFER_SAMPLES = "CLOCK_BUFFER_SAMPLES"
ENV_HEARTBEAT_FILE = "CLOCK_HEARTBEAT_FILE"
ENV_METADATA_CONNECT_TIMEOUT = "CLOCK_METADATA_CONNECT_TIMEOUT_SECONDS"
ENV_METADATA_READ_TIMEOUT = "CLOCK_METADATA_READ_TIMEOUT_SECONDS"
ENV_CLOUDWATCH_CONNECT_TIMEOUT = "CLOCK_CLOUDWATCH_CONNECT_TIMEOUT_SECONDS"
ENV_CLOUDWATCH_READ_TIMEOUT = "CLOCK_CLOUDWATCH_READ_TIMEOUT_SECONDS"
ENV_CLOUDWATCH_MAX_ATTEMPTS = "CLOCK_CLOUDWATCH_MAX_ATTEMPTS"
ENV_PUBLISH_MAX_DELAY = "CLOCK_PUBLISH_MAX_DELAY_SECONDS"
ENV_CRONTAB = "CLOCK_CRONTAB"
ENV_CRONTAB_FILE = "CLOCK_CRONTAB_FILE"
ENV_JOB_TIMEOUT = "CLOCK_JOB_TIMEOUT_SECONDS"
ENV_LOG_LEVEL = "CLOCK_LOG_LEVEL"
# Standard AWS names: boto3 needs a region for the cloudwatch sink (ECS sets AWS_REGION).
ENV_AWS_REGION = "AWS_REGION"
ENV_AWS_DEFAULT_REGION = "AWS_DEFAULT_REGION"
# boto3 reads these itself; checked here so a typo is a named setting, not a traceback.
ENV_AWS_ENDPOINT_URLS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_CLOUDWATCH")

# ---------------------------------------------------------------- worker-only defaults
# 1,440 samples: 4 hours of outage at the default 10 s interval, 24 minutes at 1 s.
# A buffered sample is a few hundred bytes, so the bound keeps memory small too.
DEFAULT_BUFFER_SAMPLES = 1440
MAX_BUFFER_SAMPLES = 100_000
DEFAULT_HEARTBEAT_FILE = "/tmp/clock-worker.heartbeat"
# TMDS is a link-local endpoint answering in milliseconds; together these stay under
# the 1 s minimum interval, so a hung endpoint never delays the next sample.
DEFAULT_METADATA_CONNECT_TIMEOUT_S = 0.2
DEFAULT_METADATA_READ_TIMEOUT_S = 0.5
DEFAULT_CLOUDWATCH_CONNECT_TIMEOUT_S = 1.0
DEFAULT_CLOUDWATCH_READ_TIMEOUT_S = 3.0
# Few attempts per call: the buffer re-sends later anyway, and SIGTERM has 5 s.
DEFAULT_CLOUDWATCH_MAX_ATTEMPTS = 2
# CloudWatch sink: how long a sample may wait so that several share one PutMetricData
# call (each call costs ~2-3 ms of CPU in botocore, whatever it carries). A sample that
# changes what an alarm sees never waits. 0 sends every sample at once.
DEFAULT_PUBLISH_MAX_DELAY_S = 5.0
MAX_PUBLISH_MAX_DELAY_S = 60.0
# The same bounds the app puts on the threshold it shares with the alarms.
MAX_THRESHOLD_MS = 3_600_000.0
DEFAULT_JOB_TIMEOUT_S = 60.0
DEFAULT_LOG_LEVEL = "INFO"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# CloudWatch keeps 1-second resolution only when asked; below a minute we ask.
HIGH_RESOLUTION_BELOW_S = 60.0

# Every CLOCK_* name some container reads; others are probably typos and get a warning.
KNOWN_CLOCK_SETTINGS = frozenset(
    {
        contract.ENV_SINK,
        contract.ENV_NAMESPACE,
        contract.ENV_PROFILE,
        contract.ENV_SERVICE,
        contract.ENV_PER_TASK_METRICS,
        contract.ENV_INTERVAL,
        contract.ENV_MAX_DRIFT_PPM,
        contract.ENV_THRESHOLD_MS,
        contract.ENV_MAX_REFERENCE_AGE,
        contract.ENV_CACHE_TTL,
        contract.ENV_APP_STATS_URL,
        ENV_BUFFER_SAMPLES,
        ENV_HEARTBEAT_FILE,
        ENV_METADATA_CONNECT_TIMEOUT,
        ENV_METADATA_READ_TIMEOUT,
        ENV_CLOUDWATCH_CONNECT_TIMEOUT,
        ENV_CLOUDWATCH_READ_TIMEOUT,
        ENV_CLOUDWATCH_MAX_ATTEMPTS,
        ENV_PUBLISH_MAX_DELAY,
        ENV_CRONTAB,
        ENV_CRONTAB_FILE,
        ENV_JOB_TIMEOUT,
        ENV_LOG_LEVEL,
    }
)

# CloudWatch namespace rule: 1-255 of these characters, and not the reserved AWS/ prefix.
_NAMESPACE_PATTERN = re.compile(r"^[0-9A-Za-z.\-_/#:]{1,255}$")
# botocore's own rule for a region name (it raises InvalidRegionError otherwise).
_REGION_PATTERN = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$")
MAX_DIMENSION_VALUE_LENGTH = 1024


class ConfigError(Exception):
    """A setting has a value the worker cannot run with."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem


@dataclass(frozen=True)
class WorkerSettings:
    metadata_uri: str | None  # validated per sample: a bad URI is a failed sample, not a crash
    metadata_connect_timeout_s: float
    metadata_read_timeout_s: float
    sink: str
    profile: MetricsProfile
    namespace: str
    service_name: str
    per_task_metrics: tuple[str, ...]
    interval_s: float
    max_drift_ppm: float
    threshold_ms: float  # the alarms' threshold: crossing it is sent at once (CloudWatch sink)
    app_stats_url: str | None
    buffer_samples: int
    heartbeat_file: Path
    cloudwatch_connect_timeout_s: float
    cloudwatch_read_timeout_s: float
    cloudwatch_max_attempts: int
    publish_max_delay_s: float
    region: str | None
    cron_jobs: tuple[CronJob, ...]
    job_timeout_s: float
    log_level: str
    unknown_settings: tuple[str, ...] = ()

    @property
    def storage_resolution(self) -> int:
        return 1 if self.interval_s < HIGH_RESOLUTION_BELOW_S else 60


def _raw(env: Mapping[str, str], name: str) -> str | None:
    """The variable's value, or None when unset or blank (ECS passes empty strings)."""
    value = env.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def parse_float(
    env: Mapping[str, str],
    name: str,
    default: float,
    *,
    minimum: float,
    maximum: float,
    minimum_inclusive: bool = True,
) -> float:
    raw = _raw(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(name, f"{raw[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise ConfigError(name, f"{raw[:40]!r} is not a finite number")
    too_small = value < minimum if minimum_inclusive else value <= minimum
    if too_small or value > maximum:
        low = "[" if minimum_inclusive else "("
        raise ConfigError(name, f"{value:g} is outside {low}{minimum:g}, {maximum:g}]")
    return value


def parse_int(env: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int) -> int:
    raw = _raw(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"{raw[:40]!r} is not a whole number") from None
    if not minimum <= value <= maximum:
        raise ConfigError(name, f"{value} is outside [{minimum}, {maximum}]")
    return value


def parse_choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...], *, upper: bool = False) -> str:
    raw = _raw(env, name)
    if raw is None:
        return default
    value = raw.upper() if upper else raw.lower()
    if value not in choices:
        raise ConfigError(name, f"{raw[:40]!r} is not one of {', '.join(choices)}")
    return value


def parse_interval(env: Mapping[str, str]) -> float:
    return parse_float(
        env,
        contract.ENV_INTERVAL,
        contract.DEFAULT_INTERVAL_SECONDS,
        minimum=contract.MIN_INTERVAL_SECONDS,
        maximum=contract.MAX_INTERVAL_SECONDS,
    )


def parse_heartbeat_file(env: Mapping[str, str]) -> Path:
    return Path(_raw(env, ENV_HEARTBEAT_FILE) or DEFAULT_HEARTBEAT_FILE)


def _parse_namespace(env: Mapping[str, str], profile: MetricsProfile) -> str:
    if contract.ENV_NAMESPACE in env and not env[contract.ENV_NAMESPACE].strip():
        raise ConfigError(contract.ENV_NAMESPACE, "is empty; unset it to use the profile's namespace")
    namespace = _raw(env, contract.ENV_NAMESPACE) or profile.namespace
    if not _NAMESPACE_PATTERN.match(namespace):
        raise ConfigError(
            contract.ENV_NAMESPACE, f"{namespace[:60]!r} is not a CloudWatch namespace (1-255 of 0-9 A-Z a-z . - _ / # :)"
        )
    if namespace.upper().startswith("AWS/"):
        raise ConfigError(contract.ENV_NAMESPACE, f"{namespace!r}: namespaces starting with AWS/ are reserved")
    return namespace


def _parse_service_name(env: Mapping[str, str]) -> str:
    if contract.ENV_SERVICE in env and not env[contract.ENV_SERVICE].strip():
        raise ConfigError(contract.ENV_SERVICE, "is empty; alarms need a service-level dimension value")
    name = _raw(env, contract.ENV_SERVICE) or contract.DEFAULT_SERVICE_NAME
    if len(name) > MAX_DIMENSION_VALUE_LENGTH:
        raise ConfigError(contract.ENV_SERVICE, f"is {len(name)} characters; a dimension value has at most 1024")
    return name


def _parse_per_task_metrics(env: Mapping[str, str], profile: MetricsProfile) -> tuple[str, ...]:
    raw = env.get(contract.ENV_PER_TASK_METRICS)
    if raw is None:
        return profile.per_task_metrics
    # An explicit empty value (or "none") turns per-task metrics off: no per-task cost.
    if not raw.strip() or raw.strip().lower() == "none":
        return ()
    names: list[str] = []
    for item in raw.split(","):
        name = item.strip()
        if not name:
            continue
        if name not in contract.METRICS_BY_NAME:
            raise ConfigError(
                contract.ENV_PER_TASK_METRICS, f"{name[:60]!r} is not a metric; one of {', '.join(contract.METRICS_BY_NAME)}"
            )
        if name not in names:
            names.append(name)
    return tuple(names)


def _check_http_url(env: Mapping[str, str], name: str) -> str | None:
    raw = _raw(env, name)
    if raw is None:
        return None
    problem = http_url_problem(raw)
    if problem is not None:
        raise ConfigError(name, problem)
    return raw


def _parse_app_stats_url(env: Mapping[str, str]) -> str | None:
    return _check_http_url(env, contract.ENV_APP_STATS_URL)


def _read_crontab(env: Mapping[str, str]) -> tuple[CronJob, ...]:
    jobs: list[CronJob] = []
    inline = env.get(ENV_CRONTAB)
    if inline and inline.strip():
        try:
            jobs.extend(parse_crontab(inline, source=ENV_CRONTAB))
        except CrontabError as error:
            raise ConfigError(ENV_CRONTAB, str(error)) from None
    path = _raw(env, ENV_CRONTAB_FILE)
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(ENV_CRONTAB_FILE, f"cannot read {path!r}: {error.__class__.__name__}: {error}") from None
        try:
            jobs.extend(parse_crontab(text, source=path))
        except CrontabError as error:
            raise ConfigError(ENV_CRONTAB_FILE, str(error)) from None
    return tuple(jobs)


def load_settings(env: Mapping[str, str]) -> WorkerSettings:
    """Read and check every setting, or raise `ConfigError` for the first bad one."""
    profile_name = parse_choice(env, contract.ENV_PROFILE, contract.STANDARD_PROFILE.name, tuple(contract.PROFILES))
    profile = contract.PROFILES[profile_name]
    sink = parse_choice(env, contract.ENV_SINK, contract.DEFAULT_SINK, contract.SINKS)
    interval_s = parse_interval(env)
    connect_timeout_s = parse_float(
        env, ENV_METADATA_CONNECT_TIMEOUT, DEFAULT_METADATA_CONNECT_TIMEOUT_S, minimum=0.0, maximum=60.0, minimum_inclusive=False
    )
    read_timeout_s = parse_float(
        env, ENV_METADATA_READ_TIMEOUT, DEFAULT_METADATA_READ_TIMEOUT_S, minimum=0.0, maximum=60.0, minimum_inclusive=False
    )
    # A metadata read that can outlast the interval would delay the next sample.
    if connect_timeout_s + read_timeout_s >= interval_s:
        raise ConfigError(
            ENV_METADATA_READ_TIMEOUT,
            f"connect ({connect_timeout_s:g} s) + read ({read_timeout_s:g} s) timeouts must be shorter than the "
            f"{interval_s:g} s interval",
        )
    region = _raw(env, ENV_AWS_REGION) or _raw(env, ENV_AWS_DEFAULT_REGION)
    if sink == contract.SINK_CLOUDWATCH:
        if region is None:
            raise ConfigError(ENV_AWS_REGION, "is not set (nor AWS_DEFAULT_REGION); the cloudwatch sink needs a region")
        if not _REGION_PATTERN.match(region):
            name = ENV_AWS_REGION if _raw(env, ENV_AWS_REGION) else ENV_AWS_DEFAULT_REGION
            raise ConfigError(name, f"{region[:40]!r} is not a region name")
        for name in ENV_AWS_ENDPOINT_URLS:
            _check_http_url(env, name)
    unknown = tuple(sorted(name for name in env if name.startswith("CLOCK_") and name not in KNOWN_CLOCK_SETTINGS))
    return WorkerSettings(
        metadata_uri=env.get(contract.ENV_METADATA_URI),
        metadata_connect_timeout_s=connect_timeout_s,
        metadata_read_timeout_s=read_timeout_s,
        sink=sink,
        profile=profile,
        namespace=_parse_namespace(env, profile),
        service_name=_parse_service_name(env),
        per_task_metrics=_parse_per_task_metrics(env, profile),
        interval_s=interval_s,
        max_drift_ppm=parse_float(
            env, contract.ENV_MAX_DRIFT_PPM, contract.DEFAULT_MAX_DRIFT_PPM, minimum=0.0, maximum=1_000_000.0
        ),
        threshold_ms=parse_float(
            env, contract.ENV_THRESHOLD_MS, contract.DEFAULT_THRESHOLD_MS, minimum=0.0, maximum=MAX_THRESHOLD_MS,
            minimum_inclusive=False,
        ),
        app_stats_url=_parse_app_stats_url(env),
        buffer_samples=parse_int(env, ENV_BUFFER_SAMPLES, DEFAULT_BUFFER_SAMPLES, minimum=1, maximum=MAX_BUFFER_SAMPLES),
        heartbeat_file=parse_heartbeat_file(env),
        cloudwatch_connect_timeout_s=parse_float(
            env, ENV_CLOUDWATCH_CONNECT_TIMEOUT, DEFAULT_CLOUDWATCH_CONNECT_TIMEOUT_S, minimum=0.0, maximum=60.0,
            minimum_inclusive=False,
        ),
        cloudwatch_read_timeout_s=parse_float(
            env, ENV_CLOUDWATCH_READ_TIMEOUT, DEFAULT_CLOUDWATCH_READ_TIMEOUT_S, minimum=0.0, maximum=60.0,
            minimum_inclusive=False,
        ),
        cloudwatch_max_attempts=parse_int(
            env, ENV_CLOUDWATCH_MAX_ATTEMPTS, DEFAULT_CLOUDWATCH_MAX_ATTEMPTS, minimum=1, maximum=10
        ),
        publish_max_delay_s=parse_float(
            env, ENV_PUBLISH_MAX_DELAY, DEFAULT_PUBLISH_MAX_DELAY_S, minimum=0.0, maximum=MAX_PUBLISH_MAX_DELAY_S
        ),
        region=region,
        cron_jobs=_read_crontab(env),
        job_timeout_s=parse_float(
            env, ENV_JOB_TIMEOUT, DEFAULT_JOB_TIMEOUT_S, minimum=0.0, maximum=86_400.0, minimum_inclusive=False
        ),
        log_level=parse_choice(env, ENV_LOG_LEVEL, DEFAULT_LOG_LEVEL, LOG_LEVELS, upper=True),
        unknown_settings=unknown,
    )
