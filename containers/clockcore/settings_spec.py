"""Every setting that crosses the construct → container boundary, described once.

A `SettingSpec` says, for one setting: its environment variable, the construct prop that
sets it, its kind, default, allowed range or choices, case rule, and which containers
read it. Three functions apply a spec, and nothing else decides what a setting may be:

- `parse(spec, raw)`: a container turns its raw environment string into a typed value;
  a bad value raises `SettingError` naming the environment variable.
- `validate(spec, value, name=...)`: the construct checks a typed prop value; a bad
  value raises `SettingError` naming the prop.
- `to_env(spec, value)`: the construct writes a validated value into the environment.

`parse` and `validate` convert differently (a string, a Python value) and then run the
same check (`_problem`) on the same typed value, and `to_env` writes a string `parse`
reads back to that value. So whatever the construct accepts, the containers start with.

Case rules: choices (sink, profile, log level) match in any case and become their
canonical spelling; metric names are case-sensitive (CloudWatch's metric names are);
the namespace keeps its case, and its reserved prefix AWS/ is refused in any case.

Pure Python on top of `clockcore.contract`: the CDK app and both images import it.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

from clockcore import contract
from clockcore.errors import SettingError
from clockcore.tmds import http_url_problem

WORKER = "worker"
APP = "app"
WORKER_ONLY = frozenset({WORKER})
APP_ONLY = frozenset({APP})
BOTH = frozenset({WORKER, APP})

# Yes/no words, in any case. An empty value counts as unset, like everywhere else.
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")

# Raw values are quoted in messages up to this length (a pasted file should not be).
_SHOWN_CHARACTERS = 40
_OUT_OF_RANGE = "is out of range"


class Kind(enum.Enum):
    NUMBER = "number"  # a finite float
    INTEGER = "integer"
    FLAG = "flag"  # yes/no
    CHOICE = "choice"  # one of `choices`
    TEXT = "text"  # a string: length, character set, reserved prefix
    NAMES = "names"  # a comma-separated list of `choices`, each kept once
    URL = "url"  # an http(s) URL with a host


class Blank(enum.Enum):
    """What an empty (or all-space) environment value means; ECS passes empty strings."""

    DEFAULT = "default"  # the same as unset
    REFUSE = "refuse"  # a mistake: unset it to get the default
    EMPTY = "empty"  # an empty value (NAMES: no names)


T = TypeVar("T")


@dataclass(frozen=True)
class SettingSpec(Generic[T]):
    env: str  # the environment variable the containers read
    kind: Kind
    # Unset (or, with Blank.DEFAULT, empty) gives this. None where it depends on another
    # setting: the metrics profile's namespace and per-task metrics.
    default: T
    readers: frozenset[str]  # WORKER, APP
    prop: str | None = None  # the construct prop that sets it; None: the construct does not
    doc: str = ""
    # NUMBER, INTEGER
    minimum: float | None = None
    maximum: float | None = None
    minimum_exclusive: bool = False
    maximum_exclusive: bool = False
    # CHOICE, NAMES: the canonical spellings
    choices: tuple[str, ...] = ()
    case_sensitive: bool = True
    none_word: str | None = None  # NAMES: this word (any case) also means no names
    # TEXT
    max_length: int | None = None
    pattern: re.Pattern[str] | None = None  # the whole value must match
    pattern_text: str = ""  # the pattern in words, for messages
    reserved_prefix: str | None = None  # refused in any case
    reserved_for: str = ""
    blank: Blank = Blank.DEFAULT

    def __post_init__(self) -> None:
        if self.kind in (Kind.NUMBER, Kind.INTEGER) and (self.minimum is None or self.maximum is None):
            raise ValueError(f"{self.env}: a {self.kind.value} setting needs a minimum and a maximum")
        if self.kind in (Kind.CHOICE, Kind.NAMES) and not self.choices:
            raise ValueError(f"{self.env}: a {self.kind.value} setting needs choices")
        if not self.readers or not self.readers <= BOTH:
            raise ValueError(f"{self.env}: readers must be some of {WORKER!r}, {APP!r}")


# ---------------------------------------------------------------- describing
def format_number(value: float) -> str:
    """Environment values are strings: 10 rather than 10.0; fractions exact (repr round-trips)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def allowed(spec: SettingSpec, *, typed: bool = False) -> str:
    """What the setting may be, in words; `typed`: as a construct prop rather than a string."""
    kind = spec.kind
    if kind in (Kind.NUMBER, Kind.INTEGER):
        assert spec.minimum is not None and spec.maximum is not None
        noun = "a number" if kind is Kind.NUMBER else "an integer"
        low, high = format_number(spec.minimum), format_number(spec.maximum)
        if not (spec.minimum_exclusive or spec.maximum_exclusive):
            return f"{noun} from {low} to {high}"
        lower = f"greater than {low}" if spec.minimum_exclusive else f"at least {low}"
        upper = f"less than {high}" if spec.maximum_exclusive else f"at most {high}"
        return f"{noun} {lower} and {upper}"
    if kind is Kind.FLAG:
        if typed:
            return "True or False"
        return "a yes/no value: " + ", ".join(f"{yes}/{no}" for yes, no in zip(TRUE_WORDS, FALSE_WORDS, strict=True))
    any_case = "" if spec.case_sensitive else " (any case)"
    if kind is Kind.CHOICE:
        return f"one of {', '.join(spec.choices)}{any_case}"
    if kind is Kind.NAMES:
        names = f"{', '.join(spec.choices)}{any_case}"
        if typed:
            return f"a list of distinct names from {names} (an empty list for none)"
        none = f" or {spec.none_word}" if spec.none_word else ""
        return f"a comma-separated list of names from {names} (empty{none} for none)"
    if kind is Kind.URL:
        return "an http(s) URL with a host"
    # TEXT
    words = f"1-{spec.max_length} characters" if spec.max_length else "a non-empty string"
    if spec.pattern is not None:
        words += f" of {spec.pattern_text}"
    elif typed:
        words += " without leading or trailing spaces"
    if spec.reserved_prefix:
        words += f", not starting with {spec.reserved_prefix} in any case (reserved for {spec.reserved_for})"
    return words


# ---------------------------------------------------------------- checking
def _shown(value: object) -> str:
    shown = repr(value)
    return shown if len(shown) <= 2 * _SHOWN_CHARACTERS else shown[: 2 * _SHOWN_CHARACTERS - 3] + "..."


def _choice(spec: SettingSpec, text: str) -> str | None:
    """The canonical spelling `text` stands for under the spec's case rule, or None."""
    if spec.case_sensitive:
        return text if text in spec.choices else None
    folded = text.casefold()
    return next((choice for choice in spec.choices if choice.casefold() == folded), None)


def _url_problem(text: str) -> str | None:
    sentence = http_url_problem(text)
    if sentence is None:
        return None
    # http_url_problem starts with the quoted value; messages quote it themselves.
    quoted = repr(text[:80])
    return sentence[len(quoted) :].lstrip() if sentence.startswith(quoted) else sentence


def _problem(spec: SettingSpec, value: object) -> str | None:
    """The one check both sides run on a typed value: why it is not allowed, or None."""
    kind = spec.kind
    if kind in (Kind.NUMBER, Kind.INTEGER):
        assert isinstance(value, (int, float)) and spec.minimum is not None and spec.maximum is not None
        too_low = value <= spec.minimum if spec.minimum_exclusive else value < spec.minimum
        too_high = value >= spec.maximum if spec.maximum_exclusive else value > spec.maximum
        return _OUT_OF_RANGE if too_low or too_high else None
    if kind is Kind.TEXT:
        assert isinstance(value, str)
        if spec.max_length is not None and len(value) > spec.max_length:
            return f"is {len(value)} characters long"
        if spec.pattern is not None and not spec.pattern.fullmatch(value):
            return "has characters outside that set"
        prefix = spec.reserved_prefix
        if prefix and value.casefold().startswith(prefix.casefold()):
            return f"starts with {value[: len(prefix)]!r}"
        return None
    if kind is Kind.URL:
        assert isinstance(value, str)
        return _url_problem(value)
    return None  # FLAG, CHOICE, NAMES: their conversion already checked them


def _from_text(spec: SettingSpec, text: str) -> tuple[object, str | None]:
    """(typed value, problem) for a stripped, non-empty environment string."""
    kind = spec.kind
    if kind is Kind.NUMBER:
        try:
            number = float(text)
        except ValueError:
            return None, "is not a number"
        return (number, None) if math.isfinite(number) else (None, "is not a finite number")
    if kind is Kind.INTEGER:
        try:
            return int(text), None
        except ValueError:
            return None, "is not an integer"
    if kind is Kind.FLAG:
        folded = text.casefold()
        if folded in TRUE_WORDS or folded in FALSE_WORDS:
            return folded in TRUE_WORDS, None
        return None, "is not a yes/no value"
    if kind is Kind.CHOICE:
        choice = _choice(spec, text)
        return (choice, None) if choice is not None else (None, "is not allowed")
    if kind is Kind.NAMES:
        if spec.none_word is not None and text.casefold() == spec.none_word.casefold():
            return (), None
        names: list[str] = []
        for item in text.split(","):
            item = item.strip()
            if not item:
                continue
            name = _choice(spec, item)
            if name is None:
                return None, f"lists unknown name {item[:60]!r}"
            if name not in names:
                names.append(name)
        return tuple(names), None
    return text, None  # TEXT, URL


def _from_typed(spec: SettingSpec, value: object) -> tuple[object, str | None]:
    """(typed value, problem) for a construct prop."""
    kind = spec.kind
    if kind is Kind.NUMBER:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None, "is not a number"
        try:
            number = float(value)
        except OverflowError:  # an int beyond any float
            return None, "is not a finite number"
        return (number, None) if math.isfinite(number) else (None, "is not a finite number")
    if kind is Kind.INTEGER:
        if isinstance(value, bool) or not isinstance(value, int):
            return None, "is not an integer"
        return value, None
    if kind is Kind.FLAG:
        return (value, None) if isinstance(value, bool) else (None, "is not True or False")
    if kind is Kind.NAMES:
        if isinstance(value, str) or not isinstance(value, Sequence):
            return None, "is not a list of names"
        names: list[str] = []
        for item in value:
            name = _choice(spec, item) if isinstance(item, str) else None
            if name is None:
                return None, f"lists unknown name {_shown(item)}"
            if name in names:
                return None, f"lists {name!r} twice"
            names.append(name)
        return tuple(names), None
    if not isinstance(value, str):
        return None, "is not a string"
    if kind is Kind.CHOICE:
        choice = _choice(spec, value)
        return (choice, None) if choice is not None else (None, "is not allowed")
    # TEXT, URL: the environment reader strips spaces, so a padded value would not arrive as given.
    if not value:
        return None, "is empty"
    if value != value.strip():
        return None, "has leading or trailing spaces"
    return value, None


# ---------------------------------------------------------------- the three functions
def parse(spec: SettingSpec[T], raw: str | None) -> T:
    """A container's typed value for the raw environment string (None: unset).

    Raises `SettingError` naming `spec.env`, with the value and what is allowed.
    """
    if raw is None:
        return spec.default
    text = raw.strip()
    if not text:
        if spec.blank is Blank.DEFAULT:
            return spec.default
        if spec.blank is Blank.EMPTY:
            return cast(T, () if spec.kind is Kind.NAMES else "")
        raise SettingError(spec.env, f"is empty; unset it for the default, or give {allowed(spec)}")
    value, problem = _from_text(spec, text)
    if problem is None:
        problem = _problem(spec, value)
    if problem is not None:
        raise SettingError(spec.env, f"{text[:_SHOWN_CHARACTERS]!r} {problem}; expected {allowed(spec)}")
    return cast(T, value)


def read(spec: SettingSpec[T], env: Mapping[str, str]) -> T:
    """`parse` the spec's variable in `env`."""
    return parse(spec, env.get(spec.env))


def validate(spec: SettingSpec[T], value: object, *, name: str | None = None) -> T:
    """The typed value a construct prop stands for (floats for numbers, canonical choices,
    tuples for lists), or `SettingError` naming `name` (default: the spec's prop)."""
    name = name or spec.prop or spec.env
    typed, problem = _from_typed(spec, value)
    if problem is None:
        problem = _problem(spec, typed)
    if problem is not None:
        which = "" if problem == _OUT_OF_RANGE else f", which {problem}"
        message = f"{name} must be {allowed(spec, typed=True)}, got {_shown(value)}{which}"
        raise SettingError(name, problem, message=message)
    return cast(T, typed)


def to_env(spec: SettingSpec, value: object) -> str:
    """The environment string for a value `validate` returned; `parse` reads it back to it."""
    if spec.kind in (Kind.NUMBER, Kind.INTEGER):
        assert isinstance(value, (int, float))
        return format_number(value)
    if spec.kind is Kind.FLAG:
        return "true" if value else "false"
    if spec.kind is Kind.NAMES:
        assert isinstance(value, tuple)
        return ",".join(value)
    return str(value)


# ---------------------------------------------------------------- the settings
SINK = SettingSpec(
    contract.ENV_SINK,
    Kind.CHOICE,
    contract.DEFAULT_SINK,
    WORKER_ONLY,
    prop="sink",
    choices=contract.SINKS,
    case_sensitive=False,
    doc="where the worker publishes: EMF lines on stdout, or PutMetricData",
)
PROFILE = SettingSpec(
    contract.ENV_PROFILE,
    Kind.CHOICE,
    contract.STANDARD_PROFILE.name,
    WORKER_ONLY,
    prop="metrics_profile",
    choices=tuple(sorted(contract.PROFILES)),
    case_sensitive=False,
    doc="the namespace and per-task dimension layout: the project's, or the seed sample's",
)
NAMESPACE: SettingSpec[str | None] = SettingSpec(
    contract.ENV_NAMESPACE,
    Kind.TEXT,
    None,  # the profile's namespace
    WORKER_ONLY,
    prop="namespace",
    max_length=255,
    pattern=re.compile(r"[0-9A-Za-z.\-_/#:]+"),
    pattern_text="letters, digits and . - _ / # : (CloudWatch's rule)",
    # CloudWatch refuses AWS/ in any case; so does the construct, at synth.
    reserved_prefix="AWS/",
    reserved_for="AWS services",
    blank=Blank.REFUSE,
    doc="CloudWatch namespace of every metric",
)
SERVICE_NAME = SettingSpec(
    contract.ENV_SERVICE,
    Kind.TEXT,
    contract.DEFAULT_SERVICE_NAME,
    WORKER_ONLY,
    prop="service_name",
    # A dimension value may be 1024 characters, but alarm descriptions (at most 1024)
    # quote it: 255 keeps every description valid.
    max_length=255,
    blank=Blank.REFUSE,
    doc="value of the service-level dimension alarms name",
)
PER_TASK_METRICS: SettingSpec[tuple[str, ...] | None] = SettingSpec(
    contract.ENV_PER_TASK_METRICS,
    Kind.NAMES,
    None,  # the profile's per-task metrics
    WORKER_ONLY,
    prop="per_task_metrics",
    choices=tuple(contract.METRICS_BY_NAME),
    none_word="none",
    blank=Blank.EMPTY,
    doc="metrics also published per task (each a billed custom metric per task)",
)
INTERVAL = SettingSpec(
    contract.ENV_INTERVAL,
    Kind.NUMBER,
    contract.DEFAULT_INTERVAL_SECONDS,
    WORKER_ONLY,
    prop="interval_seconds",
    minimum=contract.MIN_INTERVAL_SECONDS,
    maximum=contract.MAX_INTERVAL_SECONDS,
    doc="seconds between samples",
)
MAX_DRIFT_PPM = SettingSpec(
    contract.ENV_MAX_DRIFT_PPM,
    Kind.NUMBER,
    contract.DEFAULT_MAX_DRIFT_PPM,
    BOTH,
    prop="max_drift_ppm",
    minimum=0.0,
    # 1000 ppm is 86 s a day: a clock drifting faster is broken, not slow to sync.
    maximum=1000.0,
    doc="maximum drift rate of a free-running clock, growing the reported bound with its age",
)
THRESHOLD_MS = SettingSpec(
    contract.ENV_THRESHOLD_MS,
    Kind.NUMBER,
    contract.DEFAULT_THRESHOLD_MS,
    BOTH,
    prop="threshold_ms",
    minimum=0.0,
    minimum_exclusive=True,
    # An hour: a bound beyond it says nothing about time.
    maximum=3_600_000.0,
    doc="largest effective bound that is SAFE; the alarms' threshold",
)
MAX_REFERENCE_AGE = SettingSpec(
    contract.ENV_MAX_REFERENCE_AGE,
    Kind.NUMBER,
    contract.DEFAULT_MAX_REFERENCE_AGE_SECONDS,
    # The worker voids its ClockBound segment once the reference is this old.
    BOTH,
    prop="max_reference_age_seconds",
    minimum=0.0,
    minimum_exclusive=True,
    maximum=86_400.0,
    doc="older bound references make the app's verdict reference_too_old",
)
CACHE_TTL = SettingSpec(
    contract.ENV_CACHE_TTL,
    Kind.NUMBER,
    contract.DEFAULT_CACHE_TTL_SECONDS,
    APP_ONLY,
    prop="cache_ttl_seconds",
    # 0 would read the metadata endpoint on every request.
    minimum=0.0,
    minimum_exclusive=True,
    maximum=60.0,
    doc="how long the app reuses a reading",
)
APP_PORT = SettingSpec(
    contract.ENV_APP_PORT,
    Kind.INTEGER,
    contract.DEFAULT_APP_PORT,
    APP_ONLY,
    prop="app_port",  # the construct builds the worker's APP_STATS_URL from it
    minimum=1,
    maximum=65535,
    doc="the app's TCP port",
)
APP_STATS_URL: SettingSpec[str | None] = SettingSpec(
    contract.ENV_APP_STATS_URL,
    Kind.URL,
    None,  # no app counters to publish
    WORKER_ONLY,
    doc="the app's gate counters, polled by the worker (set by the construct from app_port)",
)

CLOCKBOUND_SHM: SettingSpec[str | None] = SettingSpec(
    contract.ENV_CLOCKBOUND_SHM,
    Kind.TEXT,
    None,  # no segment: the worker writes none, the app reads the metadata endpoint
    BOTH,
    max_length=4096,
    pattern=re.compile(r"/[^\x00]*"),
    pattern_text="an absolute path",
    blank=Blank.DEFAULT,
    doc="the ClockBound shared-memory segment: the worker writes it, the app's gate reads it when it exists",
)

SETTINGS: tuple[SettingSpec, ...] = (
    SINK,
    PROFILE,
    NAMESPACE,
    SERVICE_NAME,
    PER_TASK_METRICS,
    INTERVAL,
    MAX_DRIFT_PPM,
    THRESHOLD_MS,
    MAX_REFERENCE_AGE,
    CACHE_TTL,
    APP_PORT,
    APP_STATS_URL,
    CLOCKBOUND_SHM,
)
BY_ENV = {spec.env: spec for spec in SETTINGS}
BY_PROP = {spec.prop: spec for spec in SETTINGS if spec.prop is not None}
