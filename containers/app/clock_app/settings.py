"""The app's settings: read from the environment and validated once, at start-up.

Everything else receives a typed `AppSettings`; nothing reads `os.environ` later.
The clock settings the CDK construct sets are described in `clockcore.settings_spec`,
which the construct validates its props with, so the app and the worker judge the clock
alike and whatever synthesizes starts. The app's own settings are `SettingSpec`s here,
parsed by the same `settings_spec.read`; a bad value raises `SettingError` naming it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from clockcore import contract, settings_spec
from clockcore.errors import SettingError
from clockcore.settings_spec import APP_ONLY, Kind, SettingSpec, read

# The app's name for the one settings error type (its entry point catches it).
SettingsError = SettingError

# The app's own settings (the construct only needs to set the clock ones).
ENV_HOST = "CLOCK_APP_HOST"
ENV_PORT = contract.ENV_APP_PORT
ENV_HISTORY_SIZE = "CLOCK_APP_HISTORY_SIZE"
ENV_MAX_BODY_BYTES = "CLOCK_APP_MAX_BODY_BYTES"
ENV_COMMIT_MAX_WAIT = "CLOCK_APP_COMMIT_MAX_WAIT_SECONDS"
ENV_ACCESS_LOG = "CLOCK_APP_ACCESS_LOG"
ENV_BENCH_ROUTES = "CLOCK_APP_BENCH_ROUTES"
# Where the benchmark's twin is routed: right before the gated route (default) or right
# after it. The benchmark runs half its rounds each way (see api.add_routes).
ENV_BENCH_TWIN_AFTER = "CLOCK_APP_BENCH_TWIN_AFTER"
# Set by `make local` only: the page then offers to switch the emulator's scenario.
ENV_EMULATOR_URL = "CLOCK_EMULATOR_URL"

# Loopback unless told otherwise; the image sets 0.0.0.0 so the load balancer reaches it.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = contract.DEFAULT_APP_PORT
# 300 readings at one per TTL (1 s) is the last five minutes.
DEFAULT_HISTORY_SIZE = 300
# The largest request body the API accepts; every documented body is far below it.
DEFAULT_MAX_BODY_BYTES = 16 * 1024
# Commit wait lasts about 2 x bound; at the 1 ms threshold that is ~2 ms, so a second
# is generous and still keeps a request from hanging.
DEFAULT_COMMIT_MAX_WAIT_SECONDS = 1.0

# ---------------------------------------------------------------- app-only settings
# Set by the ECS agent; a malformed one is a deployment mistake, not a clock condition.
METADATA_URI = SettingSpec(contract.ENV_METADATA_URI, Kind.URL, None, APP_ONLY)
HISTORY_SIZE = SettingSpec(ENV_HISTORY_SIZE, Kind.INTEGER, DEFAULT_HISTORY_SIZE, APP_ONLY, minimum=1, maximum=100_000)
MAX_BODY_BYTES = SettingSpec(
    ENV_MAX_BODY_BYTES, Kind.INTEGER, DEFAULT_MAX_BODY_BYTES, APP_ONLY, minimum=256, maximum=1 << 20
)
COMMIT_MAX_WAIT = SettingSpec(
    ENV_COMMIT_MAX_WAIT,
    Kind.NUMBER,
    DEFAULT_COMMIT_MAX_WAIT_SECONDS,
    APP_ONLY,
    minimum=0.0,
    minimum_exclusive=True,
    maximum=30.0,
)
ACCESS_LOG = SettingSpec(ENV_ACCESS_LOG, Kind.FLAG, False, APP_ONLY)
BENCH_ROUTES = SettingSpec(ENV_BENCH_ROUTES, Kind.FLAG, False, APP_ONLY)
BENCH_TWIN_AFTER = SettingSpec(ENV_BENCH_TWIN_AFTER, Kind.FLAG, False, APP_ONLY)
EMULATOR_URL = SettingSpec(ENV_EMULATOR_URL, Kind.URL, None, APP_ONLY)


@dataclass(frozen=True)
class AppSettings:
    metadata_uri: str | None  # None: not in an ECS task; every verdict is UNSAFE
    threshold_ms: float = contract.DEFAULT_THRESHOLD_MS
    max_reference_age_s: float = contract.DEFAULT_MAX_REFERENCE_AGE_SECONDS
    max_drift_ppm: float = contract.DEFAULT_MAX_DRIFT_PPM
    cache_ttl_s: float = contract.DEFAULT_CACHE_TTL_SECONDS
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    history_size: int = DEFAULT_HISTORY_SIZE
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    commit_max_wait_s: float = DEFAULT_COMMIT_MAX_WAIT_SECONDS
    access_log: bool = False
    bench_routes: bool = False
    bench_twin_after: bool = False
    emulator_url: str | None = None
    # The ClockBound segment the worker writes (CLOCK_CLOCKBOUND_SHM); None: no segment,
    # the gate asks the metadata endpoint. The gate reads the segment once it exists.
    clockbound_shm: str | None = None

    @property
    def local_mode(self) -> bool:
        return self.emulator_url is not None


def load_settings(env: Mapping[str, str] | None = None) -> AppSettings:
    """Read and validate every setting; raise `SettingError` for the first bad one."""
    source = os.environ if env is None else env
    metadata_uri = read(METADATA_URI, source)
    host = source.get(ENV_HOST, "").strip() or DEFAULT_HOST
    if any(character.isspace() for character in host) or "/" in host:
        raise SettingError(ENV_HOST, f"{host[:40]!r} is not a host name or address")
    emulator_url = read(EMULATOR_URL, source)
    return AppSettings(
        metadata_uri=metadata_uri,
        threshold_ms=read(settings_spec.THRESHOLD_MS, source),
        max_reference_age_s=read(settings_spec.MAX_REFERENCE_AGE, source),
        max_drift_ppm=read(settings_spec.MAX_DRIFT_PPM, source),
        cache_ttl_s=read(settings_spec.CACHE_TTL, source),
        host=host,
        port=read(settings_spec.APP_PORT, source),
        history_size=read(HISTORY_SIZE, source),
        max_body_bytes=read(MAX_BODY_BYTES, source),
        commit_max_wait_s=read(COMMIT_MAX_WAIT, source),
        access_log=read(ACCESS_LOG, source),
        bench_routes=read(BENCH_ROUTES, source),
        bench_twin_after=read(BENCH_TWIN_AFTER, source),
        emulator_url=emulator_url.rstrip("/") if emulator_url else None,
        clockbound_shm=read(settings_spec.CLOCKBOUND_SHM, source),
    )
