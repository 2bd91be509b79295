"""The app's settings: read from the environment and validated once, at start-up.

Everything else receives a typed `AppSettings`; nothing reads `os.environ` later.
Clock settings use the names and defaults of `clockcore.contract`, which the CDK
construct sets on the container, so the app and the worker judge the clock alike.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable, Mapping, TypeVar

from clockcore import contract
from clockcore.tmds import http_url_problem

# The app's own settings (the construct only needs to set the clock ones).
ENV_HOST = "CLOCK_APP_HOST"
ENV_PORT = "CLOCK_APP_PORT"
ENV_HISTORY_SIZE = "CLOCK_APP_HISTORY_SIZE"
ENV_MAX_BODY_BYTES = "CLOCK_APP_MAX_BODY_BYTES"
ENV_COMMIT_MAX_WAIT = "CLOCK_APP_COMMIT_MAX_WAIT_SECONDS"
ENV_ACCESS_LOG = "CLOCK_APP_ACCESS_LOG"
ENV_BENCH_ROUTES = "CLOCK_APP_BENCH_ROUTES"
# Set by `make local` only: the page then offers to switch the emulator's scenario.
ENV_EMULATOR_URL = "CLOCK_EMULATOR_URL"

# Loopback unless told otherwise; the image sets 0.0.0.0 so the load balancer reaches it.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
# 300 readings at one per TTL (1 s) is the last five minutes.
DEFAULT_HISTORY_SIZE = 300
# The largest request body the API accepts; every documented body is far below it.
DEFAULT_MAX_BODY_BYTES = 16 * 1024
# Commit wait lasts about 2 x bound; at the 1 ms threshold that is ~2 ms, so a second
# is generous and still keeps a request from hanging.
DEFAULT_COMMIT_MAX_WAIT_SECONDS = 1.0
MAX_CACHE_TTL_SECONDS = 60.0

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})


class SettingsError(ValueError):
    """One setting is wrong; the message names it and says what is expected."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


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
    emulator_url: str | None = None

    @property
    def local_mode(self) -> bool:
        return self.emulator_url is not None


T = TypeVar("T", int, float)


def _number(env: Mapping[str, str], name: str, default: T, parse: Callable[[str], T], *, low: T, high: T, low_open: bool = False) -> T:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    kind = "an integer" if parse is int else "a number"
    try:
        value = parse(raw.strip())
    except ValueError:
        raise SettingsError(name, f"{raw.strip()[:40]!r} is not {kind}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise SettingsError(name, f"{raw.strip()[:40]!r} is not a finite number")
    if value < low or (low_open and value == low) or value > high:
        lower = f"greater than {low}" if low_open else f"at least {low}"
        raise SettingsError(name, f"{value} is out of range: expected {kind} {lower} and at most {high}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in TRUE_WORDS:
        return True
    if raw in FALSE_WORDS:
        return False
    raise SettingsError(name, f"{raw[:40]!r} is not a yes/no value (use 1/0, true/false, yes/no, on/off)")


def _http_url(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    problem = http_url_problem(raw)
    if problem is not None:
        raise SettingsError(name, problem)
    return raw.rstrip("/")


def load_settings(env: Mapping[str, str] | None = None) -> AppSettings:
    """Read and validate every setting; raise `SettingsError` for the first bad one."""
    source = os.environ if env is None else env
    metadata_uri = source.get(contract.ENV_METADATA_URI, "").strip() or None
    # A malformed metadata URI is a deployment mistake, not a clock condition: refuse to start.
    if metadata_uri is not None:
        _http_url({contract.ENV_METADATA_URI: metadata_uri}, contract.ENV_METADATA_URI)
    host = source.get(ENV_HOST, "").strip() or DEFAULT_HOST
    if any(character.isspace() for character in host) or "/" in host:
        raise SettingsError(ENV_HOST, f"{host[:40]!r} is not a host name or address")
    return AppSettings(
        metadata_uri=metadata_uri,
        threshold_ms=_number(source, contract.ENV_THRESHOLD_MS, contract.DEFAULT_THRESHOLD_MS, float, low=0.0, high=3_600_000.0, low_open=True),
        max_reference_age_s=_number(
            source, contract.ENV_MAX_REFERENCE_AGE, contract.DEFAULT_MAX_REFERENCE_AGE_SECONDS, float, low=0.0, high=86_400.0, low_open=True
        ),
        max_drift_ppm=_number(source, contract.ENV_MAX_DRIFT_PPM, contract.DEFAULT_MAX_DRIFT_PPM, float, low=0.0, high=1_000_000.0),
        cache_ttl_s=_number(
            source, contract.ENV_CACHE_TTL, contract.DEFAULT_CACHE_TTL_SECONDS, float, low=0.0, high=MAX_CACHE_TTL_SECONDS, low_open=True
        ),
        host=host,
        port=_number(source, ENV_PORT, DEFAULT_PORT, int, low=1, high=65535),
        history_size=_number(source, ENV_HISTORY_SIZE, DEFAULT_HISTORY_SIZE, int, low=1, high=100_000),
        max_body_bytes=_number(source, ENV_MAX_BODY_BYTES, DEFAULT_MAX_BODY_BYTES, int, low=256, high=1 << 20),
        commit_max_wait_s=_number(source, ENV_COMMIT_MAX_WAIT, DEFAULT_COMMIT_MAX_WAIT_SECONDS, float, low=0.0, high=30.0, low_open=True),
        access_log=_flag(source, ENV_ACCESS_LOG),
        bench_routes=_flag(source, ENV_BENCH_ROUTES),
        emulator_url=_http_url(source, ENV_EMULATOR_URL),
    )
