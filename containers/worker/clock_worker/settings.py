"""Every setting the worker reads, read and validated once at start-up.

The rest of the worker receives a typed `WorkerSettings`; nothing else looks at the
environment. A bad value raises `SettingError` (also known here as `ConfigError`)
naming the variable, and the entry point turns that into one stderr line and exit code 2.

The settings the CDK construct sets are described in `clockcore.settings_spec`, which
the construct validates its props with; the ones only the worker reads are described
here with the same `SettingSpec`, all with the `CLOCK_` prefix, and parsed by the same
`settings_spec.read`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from clock_worker.cron import CronJob, CrontabError, parse_crontab
from clockcore import contract, settings_spec
from clockcore.contract import MetricsProfile
from clockcore.errors import SettingError
from clockcore.settings_spec import WORKER_ONLY, Kind, SettingSpec, read

# The worker's name for the one settings error type (its entry point and health check catch it).
ConfigError = SettingError

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
# 1,440 samples: 2 hours of outage at the default 5 s interval, 24 minutes at 1 s.
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
DEFAULT_JOB_TIMEOUT_S = 60.0
DEFAULT_LOG_LEVEL = "INFO"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# CloudWatch keeps 1-second resolution only when asked; below a minute we ask.
HIGH_RESOLUTION_BELOW_S = 60.0


def _timeout(env: str, default: float) -> SettingSpec:
    return SettingSpec(env, Kind.NUMBER, default, WORKER_ONLY, minimum=0.0, minimum_exclusive=True, maximum=60.0)


# ---------------------------------------------------------------- worker-only settings
BUFFER_SAMPLES = SettingSpec(
    ENV_BUFFER_SAMPLES, Kind.INTEGER, DEFAULT_BUFFER_SAMPLES, WORKER_ONLY, minimum=1, maximum=MAX_BUFFER_SAMPLES
)
HEARTBEAT_FILE = SettingSpec(ENV_HEARTBEAT_FILE, Kind.TEXT, DEFAULT_HEARTBEAT_FILE, WORKER_ONLY)
METADATA_CONNECT_TIMEOUT = _timeout(ENV_METADATA_CONNECT_TIMEOUT, DEFAULT_METADATA_CONNECT_TIMEOUT_S)
METADATA_READ_TIMEOUT = _timeout(ENV_METADATA_READ_TIMEOUT, DEFAULT_METADATA_READ_TIMEOUT_S)
CLOUDWATCH_CONNECT_TIMEOUT = _timeout(ENV_CLOUDWATCH_CONNECT_TIMEOUT, DEFAULT_CLOUDWATCH_CONNECT_TIMEOUT_S)
CLOUDWATCH_READ_TIMEOUT = _timeout(ENV_CLOUDWATCH_READ_TIMEOUT, DEFAULT_CLOUDWATCH_READ_TIMEOUT_S)
CLOUDWATCH_MAX_ATTEMPTS = SettingSpec(
    ENV_CLOUDWATCH_MAX_ATTEMPTS, Kind.INTEGER, DEFAULT_CLOUDWATCH_MAX_ATTEMPTS, WORKER_ONLY, minimum=1, maximum=10
)
PUBLISH_MAX_DELAY = SettingSpec(
    ENV_PUBLISH_MAX_DELAY,
    Kind.NUMBER,
    DEFAULT_PUBLISH_MAX_DELAY_S,
    WORKER_ONLY,
    minimum=0.0,
    maximum=MAX_PUBLISH_MAX_DELAY_S,
)
JOB_TIMEOUT = SettingSpec(
    ENV_JOB_TIMEOUT,
    Kind.NUMBER,
    DEFAULT_JOB_TIMEOUT_S,
    WORKER_ONLY,
    minimum=0.0,
    minimum_exclusive=True,
    maximum=86_400.0,
)
LOG_LEVEL = SettingSpec(
    ENV_LOG_LEVEL, Kind.CHOICE, DEFAULT_LOG_LEVEL, WORKER_ONLY, choices=LOG_LEVELS, case_sensitive=False
)
AWS_ENDPOINT_URLS: tuple[SettingSpec[str | None], ...] = tuple(
    SettingSpec(name, Kind.URL, None, WORKER_ONLY) for name in ENV_AWS_ENDPOINT_URLS
)

WORKER_SETTINGS: tuple[SettingSpec, ...] = (
    BUFFER_SAMPLES,
    HEARTBEAT_FILE,
    METADATA_CONNECT_TIMEOUT,
    METADATA_READ_TIMEOUT,
    CLOUDWATCH_CONNECT_TIMEOUT,
    CLOUDWATCH_READ_TIMEOUT,
    CLOUDWATCH_MAX_ATTEMPTS,
    PUBLISH_MAX_DELAY,
    JOB_TIMEOUT,
    LOG_LEVEL,
)

# Every CLOCK_* name some container reads; others are probably typos and get a warning.
KNOWN_CLOCK_SETTINGS = frozenset(
    {spec.env for spec in settings_spec.SETTINGS + WORKER_SETTINGS} | {ENV_CRONTAB, ENV_CRONTAB_FILE}
)

# botocore's own rule for a region name (it raises InvalidRegionError otherwise).
_REGION_PATTERN = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$")


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
    # The ClockBound segment to keep (None: none), voided once the reference is this old.
    clockbound_shm: Path | None
    max_reference_age_s: float
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


def parse_interval(env: Mapping[str, str]) -> float:
    return read(settings_spec.INTERVAL, env)


def parse_heartbeat_file(env: Mapping[str, str]) -> Path:
    return Path(read(HEARTBEAT_FILE, env))


def _read_crontab(env: Mapping[str, str]) -> tuple[CronJob, ...]:
    jobs: list[CronJob] = []
    inline = env.get(ENV_CRONTAB)
    if inline and inline.strip():
        try:
            jobs.extend(parse_crontab(inline, source=ENV_CRONTAB))
        except CrontabError as error:
            raise SettingError(ENV_CRONTAB, str(error)) from None
    path = _raw(env, ENV_CRONTAB_FILE)
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise SettingError(ENV_CRONTAB_FILE, f"cannot read {path!r}: {error.__class__.__name__}: {error}") from None
        try:
            jobs.extend(parse_crontab(text, source=path))
        except CrontabError as error:
            raise SettingError(ENV_CRONTAB_FILE, str(error)) from None
    return tuple(jobs)


def _optional_path(value: object) -> Path | None:
    return None if value is None else Path(str(value))


def load_settings(env: Mapping[str, str]) -> WorkerSettings:
    """Read and check every setting, or raise `SettingError` for the first bad one."""
    profile = contract.PROFILES[read(settings_spec.PROFILE, env)]
    sink = read(settings_spec.SINK, env)
    interval_s = parse_interval(env)
    connect_timeout_s = read(METADATA_CONNECT_TIMEOUT, env)
    read_timeout_s = read(METADATA_READ_TIMEOUT, env)
    # A metadata read that can outlast the interval would delay the next sample.
    if connect_timeout_s + read_timeout_s >= interval_s:
        raise SettingError(
            ENV_METADATA_READ_TIMEOUT,
            f"connect ({connect_timeout_s:g} s) + read ({read_timeout_s:g} s) timeouts must be shorter than the "
            f"{interval_s:g} s interval",
        )
    region = _raw(env, ENV_AWS_REGION) or _raw(env, ENV_AWS_DEFAULT_REGION)
    if sink == contract.SINK_CLOUDWATCH:
        if region is None:
            raise SettingError(
                ENV_AWS_REGION, "is not set (nor AWS_DEFAULT_REGION); the cloudwatch sink needs a region"
            )
        if not _REGION_PATTERN.match(region):
            name = ENV_AWS_REGION if _raw(env, ENV_AWS_REGION) else ENV_AWS_DEFAULT_REGION
            raise SettingError(name, f"{region[:40]!r} is not a region name")
        for spec in AWS_ENDPOINT_URLS:
            read(spec, env)
    per_task_metrics = read(settings_spec.PER_TASK_METRICS, env)
    unknown = tuple(sorted(name for name in env if name.startswith("CLOCK_") and name not in KNOWN_CLOCK_SETTINGS))
    return WorkerSettings(
        metadata_uri=env.get(contract.ENV_METADATA_URI),
        metadata_connect_timeout_s=connect_timeout_s,
        metadata_read_timeout_s=read_timeout_s,
        sink=sink,
        profile=profile,
        namespace=read(settings_spec.NAMESPACE, env) or profile.namespace,
        service_name=read(settings_spec.SERVICE_NAME, env),
        per_task_metrics=profile.per_task_metrics if per_task_metrics is None else per_task_metrics,
        interval_s=interval_s,
        max_drift_ppm=read(settings_spec.MAX_DRIFT_PPM, env),
        threshold_ms=read(settings_spec.THRESHOLD_MS, env),
        clockbound_shm=_optional_path(read(settings_spec.CLOCKBOUND_SHM, env)),
        max_reference_age_s=read(settings_spec.MAX_REFERENCE_AGE, env),
        app_stats_url=read(settings_spec.APP_STATS_URL, env),
        buffer_samples=read(BUFFER_SAMPLES, env),
        heartbeat_file=parse_heartbeat_file(env),
        cloudwatch_connect_timeout_s=read(CLOUDWATCH_CONNECT_TIMEOUT, env),
        cloudwatch_read_timeout_s=read(CLOUDWATCH_READ_TIMEOUT, env),
        cloudwatch_max_attempts=read(CLOUDWATCH_MAX_ATTEMPTS, env),
        publish_max_delay_s=read(PUBLISH_MAX_DELAY, env),
        region=region,
        cron_jobs=_read_crontab(env),
        job_timeout_s=read(JOB_TIMEOUT, env),
        log_level=read(LOG_LEVEL, env),
        unknown_settings=unknown,
    )
