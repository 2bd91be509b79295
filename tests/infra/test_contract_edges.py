"""What synthesizes, starts: every setting the construct passes to a container, walked at
its edges from the construct's props to both containers' real settings parsers.

For each setting in `clockcore.settings_spec` the construct sets, the cases below are
its minimum and maximum, the values just outside (the next float), wrong types and case
variants. A case the construct accepts is written into the environment by the settings
layer (`ClockSettings.create` → `worker_environment()` / `app_environment()`) and parsed
the way the entry points parse theirs (`load_settings` of the worker and of the app):
both must start and read back what the construct validated. A case the construct refuses
must fail at synth with `ClockPropsError` naming the prop, and the same value written as
an environment string must be refused by every container that reads it, naming the
variable. One synthesis (module fixture) proves the synthesized environment is exactly
what the settings layer returns, and a few cases run the real entry points.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from clock_app.settings import AppSettings
from clock_app.settings import load_settings as load_app_settings
from clock_stack import ClockPropsError, ClockSettings
from clock_worker.settings import WorkerSettings
from clock_worker.settings import load_settings as load_worker_settings
from clockcore import contract
from clockcore import settings_spec as specs
from clockcore.errors import SettingError
from clockcore.settings_spec import APP, WORKER, Kind, SettingSpec, format_number
from infra.synth import REGION, ROOT, Synthesized, synth_stack

CONTAINERS = ROOT / "containers"
# What ECS adds to the worker's environment (the cloudwatch sink needs a region).
ECS_ADDS = {"AWS_REGION": REGION}

STARTS = "starts"  # the construct accepts it; both containers start and read it back
REFUSED = "refused"  # the construct refuses it; so does every container reading it as a string
# The construct refuses it, and no environment string stands for it: a wrong Python type,
# spaces the environment reader strips, a name listed twice that the reader keeps once.
PROP_ONLY = "refused at synth only"

# ClockSettings.create's keyword where the construct's prop has another name.
CREATE_KEYWORD = {specs.SERVICE_NAME.prop: "service_name"}

# Where each side keeps a setting's value.
CONSTRUCT_VALUE: dict[SettingSpec, Callable[[ClockSettings], object]] = {
    specs.SINK: lambda s: s.sink,
    specs.PROFILE: lambda s: s.profile.name,
    specs.NAMESPACE: lambda s: s.namespace,
    specs.SERVICE_NAME: lambda s: s.service_name,
    specs.PER_TASK_METRICS: lambda s: s.per_task_metrics,
    specs.INTERVAL: lambda s: s.interval_seconds,
    specs.MAX_DRIFT_PPM: lambda s: s.max_drift_ppm,
    specs.THRESHOLD_MS: lambda s: s.threshold_ms,
    specs.MAX_REFERENCE_AGE: lambda s: s.max_reference_age_seconds,
    specs.CACHE_TTL: lambda s: s.cache_ttl_seconds,
}
WORKER_VALUE: dict[SettingSpec, Callable[[WorkerSettings], object]] = {
    specs.SINK: lambda w: w.sink,
    specs.PROFILE: lambda w: w.profile.name,
    specs.NAMESPACE: lambda w: w.namespace,
    specs.SERVICE_NAME: lambda w: w.service_name,
    specs.PER_TASK_METRICS: lambda w: w.per_task_metrics,
    specs.INTERVAL: lambda w: w.interval_s,
    specs.MAX_DRIFT_PPM: lambda w: w.max_drift_ppm,
    specs.THRESHOLD_MS: lambda w: w.threshold_ms,
}
APP_VALUE: dict[SettingSpec, Callable[[AppSettings], object]] = {
    specs.MAX_DRIFT_PPM: lambda a: a.max_drift_ppm,
    specs.THRESHOLD_MS: lambda a: a.threshold_ms,
    specs.MAX_REFERENCE_AGE: lambda a: a.max_reference_age_s,
    specs.CACHE_TTL: lambda a: a.cache_ttl_s,
}


@dataclass(frozen=True)
class Case:
    spec: SettingSpec
    value: Any
    verdict: str
    raw: str | None = None  # REFUSED: the value as someone would write it in the environment

    def __str__(self) -> str:
        shown = repr(self.value)
        return f"{self.spec.prop}={shown if len(shown) <= 40 else shown[:37] + '...'}:{self.verdict}"


# ---------------------------------------------------------------- the edge values, from the specs
def number_cases(spec: SettingSpec) -> Iterator[Case]:
    assert spec.minimum is not None and spec.maximum is not None
    low, high = float(spec.minimum), float(spec.maximum)
    low_ok = STARTS if not spec.minimum_exclusive else REFUSED
    high_ok = STARTS if not spec.maximum_exclusive else REFUSED
    yield Case(spec, low, low_ok, format_number(low))
    yield Case(spec, high, high_ok, format_number(high))
    yield Case(spec, int(high), high_ok, str(int(high)))  # props are often written as ints
    yield Case(spec, math.nextafter(low, math.inf), STARTS)
    yield Case(spec, math.nextafter(high, -math.inf), STARTS)
    below, above = math.nextafter(low, -math.inf), math.nextafter(high, math.inf)
    yield Case(spec, below, REFUSED, repr(below))
    yield Case(spec, above, REFUSED, repr(above))
    yield Case(spec, float("nan"), REFUSED, "nan")
    yield Case(spec, float("inf"), REFUSED, "inf")
    yield Case(spec, True, PROP_ONLY)
    yield Case(spec, format_number(high), PROP_ONLY)  # a string prop, though it reads as a number
    yield Case(spec, None, PROP_ONLY)


def choice_cases(spec: SettingSpec) -> Iterator[Case]:
    for choice in spec.choices:
        for variant in dict.fromkeys((choice, choice.upper(), choice.title())):
            yield Case(spec, variant, STARTS)
        yield Case(spec, f" {choice}", PROP_ONLY)
    yield Case(spec, "bogus", REFUSED, "bogus")
    yield Case(spec, "", PROP_ONLY)  # an empty environment value is the default
    yield Case(spec, 1, PROP_ONLY)


def namespace_cases(spec: SettingSpec) -> Iterator[Case]:
    yield Case(spec, None, STARTS)  # the profile's namespace
    for good in ("N", "N" * 255, "Edge/Clock-_.#:09", "AWSx/y", "x/AWS/", "AWS"):
        yield Case(spec, good, STARTS)
    for bad in ("N" * 256, "AWS/ECS", "aws/Clock", "Aws/x", "has space", "Zürich", ""):
        yield Case(spec, bad, REFUSED, bad)
    yield Case(spec, " padded", PROP_ONLY)
    yield Case(spec, 5, PROP_ONLY)


def service_name_cases(spec: SettingSpec) -> Iterator[Case]:
    for good in ("s", "s" * 255, "with inner space", "ünïcode"):
        yield Case(spec, good, STARTS)
    for bad in ("s" * 256, "", "   "):
        yield Case(spec, bad, REFUSED, bad)
    yield Case(spec, " padded ", PROP_ONLY)
    yield Case(spec, None, PROP_ONLY)


def per_task_metrics_cases(spec: SettingSpec) -> Iterator[Case]:
    yield Case(spec, None, STARTS)  # the profile's
    yield Case(spec, [], STARTS)
    yield Case(spec, list(spec.choices), STARTS)
    yield Case(spec, (contract.CLOCK_ERROR_BOUND.name,), STARTS)
    yield Case(spec, ["Bogus"], REFUSED, "Bogus")
    lower = contract.CLOCK_ERROR_BOUND.name.lower()
    yield Case(spec, [lower], REFUSED, lower)  # metric names are case-sensitive
    yield Case(spec, [contract.CLOCK_ERROR_BOUND.name] * 2, PROP_ONLY)
    yield Case(spec, ["none"], PROP_ONLY)  # the environment's word for []
    yield Case(spec, contract.CLOCK_ERROR_BOUND.name, PROP_ONLY)  # a string, not a list


# The issue's examples: each synthesized cleanly and then stopped a container at start-up.
ISSUE_CASES = [
    Case(specs.NAMESPACE, "aws/Clock", REFUSED, "aws/Clock"),
    Case(specs.THRESHOLD_MS, 5e6, REFUSED, "5e6"),
    Case(specs.CACHE_TTL, 0, REFUSED, "0"),
    Case(specs.MAX_REFERENCE_AGE, 1e5, REFUSED, "1e5"),
]


def all_cases() -> list[Case]:
    cases: list[Case] = []
    for spec in CONSTRUCT_VALUE:
        if spec.kind is Kind.NUMBER:
            cases.extend(number_cases(spec))
        elif spec.kind is Kind.CHOICE:
            cases.extend(choice_cases(spec))
    cases.extend(namespace_cases(specs.NAMESPACE))
    cases.extend(service_name_cases(specs.SERVICE_NAME))
    cases.extend(per_task_metrics_cases(specs.PER_TASK_METRICS))
    return cases + [case for case in ISSUE_CASES if case not in cases]


CASES = all_cases()


# ---------------------------------------------------------------- the two sides
def construct(case: Case) -> ClockSettings:
    assert case.spec.prop is not None
    arguments: dict[str, Any] = {"service_name": "svc", CREATE_KEYWORD.get(case.spec.prop, case.spec.prop): case.value}
    return ClockSettings.create(**arguments)


def start_worker(environment: dict[str, str]) -> WorkerSettings:
    """The worker's entry point: `load_settings(os.environ)`, with what ECS adds."""
    return load_worker_settings({**environment, **ECS_ADDS})


def start_app(environment: dict[str, str]) -> AppSettings:
    return load_app_settings(environment)


def assert_containers_read(settings: ClockSettings, worker: WorkerSettings, app: AppSettings) -> None:
    for spec, value_of in WORKER_VALUE.items():
        assert value_of(worker) == CONSTRUCT_VALUE[spec](settings), spec.env
    for spec, value_of in APP_VALUE.items():
        assert value_of(app) == CONSTRUCT_VALUE[spec](settings), spec.env


def expected_value(case: Case, settings: ClockSettings) -> object:
    spec, value = case.spec, case.value
    if value is None:  # the profile's namespace or per-task metrics
        return settings.profile.namespace if spec is specs.NAMESPACE else settings.profile.per_task_metrics
    if spec.kind is Kind.NUMBER:
        return float(value)
    if spec.kind is Kind.CHOICE:
        (canonical,) = [choice for choice in spec.choices if choice.casefold() == value.casefold()]
        return canonical
    if spec.kind is Kind.NAMES:
        return tuple(value)
    return value


@pytest.mark.parametrize("case", CASES, ids=str)
def test_what_the_construct_accepts_both_containers_start_with(case: Case):
    if case.verdict == STARTS:
        settings = construct(case)
        assert CONSTRUCT_VALUE[case.spec](settings) == expected_value(case, settings)
        worker = start_worker(settings.worker_environment(app_port=contract.DEFAULT_APP_PORT))
        app = start_app(settings.app_environment())
        assert_containers_read(settings, worker, app)
        return
    with pytest.raises(ClockPropsError) as raised:
        construct(case)
    assert str(raised.value).startswith(f"{case.spec.prop} must be "), raised.value
    if case.verdict == PROP_ONLY:
        return
    assert case.raw is not None
    readers = {WORKER: start_worker, APP: start_app}
    for reader in sorted(case.spec.readers):
        with pytest.raises(SettingError) as refused:
            readers[reader]({case.spec.env: case.raw})
        assert refused.value.setting == case.spec.env, (reader, refused.value)
        assert str(refused.value).startswith(f"{case.spec.env}: "), (reader, refused.value)


# app_port: the construct builds the worker's CLOCK_APP_STATS_URL from it, and it is the
# port the app listens on (CLOCK_APP_PORT).
APP_PORT_CASES = [
    (1, STARTS, None),
    (65535, STARTS, None),
    (contract.DEFAULT_APP_PORT, STARTS, None),
    (0, REFUSED, "0"),
    (65536, REFUSED, "65536"),
    (-1, REFUSED, "-1"),
    (8080.0, REFUSED, "8080.0"),
    (True, PROP_ONLY, None),
    ("8080", PROP_ONLY, None),
]


@pytest.mark.parametrize(("port", "verdict", "raw"), APP_PORT_CASES, ids=[f"{p!r}:{v}" for p, v, _ in APP_PORT_CASES])
def test_app_port_edges(port: Any, verdict: str, raw: str | None):
    settings = ClockSettings.create(service_name="svc")
    if verdict == STARTS:
        worker = start_worker(settings.worker_environment(app_port=port))
        assert worker.app_stats_url == f"http://127.0.0.1:{port}{contract.APP_STATS_PATH}"
        assert start_app({specs.APP_PORT.env: specs.to_env(specs.APP_PORT, port)}).port == port
        return
    with pytest.raises(ClockPropsError, match=r"^app_port must be an integer from 1 to 65535, got "):
        settings.worker_environment(app_port=port)
    if verdict == REFUSED:
        with pytest.raises(SettingError) as refused:
            start_app({specs.APP_PORT.env: raw})
        assert refused.value.setting == specs.APP_PORT.env


# ---------------------------------------------------------------- the description itself
def test_every_setting_the_construct_writes_is_described_once_in_clockcore():
    settings = ClockSettings.create(service_name="svc")
    segment = contract.CLOCKBOUND_SHM_PATH
    worker_environment = settings.worker_environment(app_port=contract.DEFAULT_APP_PORT, clockbound_shm=segment)
    app_environment = settings.app_environment(clockbound_shm=segment)
    for name in worker_environment:
        assert WORKER in specs.BY_ENV[name].readers, name
    for name in app_environment:
        assert APP in specs.BY_ENV[name].readers, name
    written = set(worker_environment) | set(app_environment)
    # Every described setting is written to the containers that read it (app_port is
    # written as the worker's stats URL; the app is told its port by its image).
    # The segment's path is no prop: the construct writes its fixed path when the segment is on.
    for spec in specs.SETTINGS:
        if spec in (specs.APP_PORT, specs.CLOCKBOUND_SHM):
            assert spec is specs.APP_PORT or spec.prop is None
            if spec is specs.APP_PORT:
                continue
        assert spec.env in written, spec.env
        assert (spec.env in worker_environment) == (WORKER in spec.readers), spec.env
        assert (spec.env in app_environment) == (APP in spec.readers), spec.env
    assert set(CONSTRUCT_VALUE) | {specs.APP_PORT} == set(specs.BY_PROP.values())


def test_defaults_agree_and_are_allowed():
    for spec in specs.SETTINGS:
        if spec.default is not None:
            assert specs.validate(spec, spec.default) == spec.default, spec.env
    # The construct's defaults are the containers' defaults (but for the service name,
    # which the construct derives from the construct's path).
    settings = ClockSettings.create(service_name=contract.DEFAULT_SERVICE_NAME)
    assert_containers_read(settings, start_worker({}), start_app({}))


def test_a_token_is_refused_naming_the_prop():
    from aws_cdk import Token

    with pytest.raises(ClockPropsError, match=r"^namespace must be known at synth time"):
        ClockSettings.create(service_name="svc", namespace=Token.as_string({"Ref": "Namespace"}))
    with pytest.raises(ClockPropsError, match=r"^threshold_ms must be known at synth time"):
        ClockSettings.create(service_name="svc", threshold_ms=Token.as_number({"Ref": "Threshold"}))


# ---------------------------------------------------------------- one synthesis
EDGE_PROPS: dict[str, Any] = {
    "service_name": "s" * 255,
    "namespace": "Edge/Clock-_.#:09",
    "sink": "CloudWatch",
    "metrics_profile": "SEED",
    "per_task_metrics": list(specs.PER_TASK_METRICS.choices),
    "interval_seconds": 3600,
    "threshold_ms": 3_600_000,
    "max_drift_ppm": math.nextafter(1000.0, 0.0),
}


@pytest.fixture(scope="module")
def edges(tmp_path_factory: pytest.TempPathFactory) -> tuple[Synthesized, Any]:
    """One stack: the service construct with the project's app and edge values for its props."""
    import aws_cdk as cdk

    from clock_stack import ClockAccurateFargateService, ClockProps

    built: dict[str, Any] = {}

    def build(app: Any) -> Any:
        stack = cdk.Stack(app, "ContractEdges", env=cdk.Environment(region=REGION))
        built["service"] = ClockAccurateFargateService(stack, "Service", clock=ClockProps(**EDGE_PROPS))
        return stack

    return synth_stack(tmp_path_factory.mktemp("contract-edges"), build), built["service"]


def environment_of(synth: Synthesized, container: str) -> dict[str, str]:
    return {item["Name"]: item["Value"] for item in synth.container(container)["Environment"]}


def test_the_synthesized_environment_is_what_the_settings_layer_writes(edges):
    synth, service = edges
    settings: ClockSettings = service.settings
    worker_environment = environment_of(synth, "clock-worker")
    app_environment = environment_of(synth, "app")
    segment = contract.CLOCKBOUND_SHM_PATH
    assert worker_environment == settings.worker_environment(app_port=contract.DEFAULT_APP_PORT, clockbound_shm=segment)
    assert app_environment == settings.app_environment(clockbound_shm=segment)
    # Choices arrive canonical; numbers as written; and both containers start with it.
    assert worker_environment[contract.ENV_SINK] == "cloudwatch"
    assert worker_environment[contract.ENV_PROFILE] == "seed"
    assert worker_environment[contract.ENV_THRESHOLD_MS] == "3600000"
    assert float(worker_environment[contract.ENV_MAX_DRIFT_PPM]) == EDGE_PROPS["max_drift_ppm"]
    assert_containers_read(settings, start_worker(worker_environment), start_app(app_environment))


# ---------------------------------------------------------------- the real entry points
def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def process_env(image: str, settings: dict[str, str]) -> dict[str, str]:
    """A container's process: its image's PYTHONPATH and the given settings, nothing else."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join([str(CONTAINERS), str(CONTAINERS / image)]),
        "PYTHONDONTWRITEBYTECODE": "1",
        **settings,
    }


ENTRY_POINTS = {WORKER: ("worker", "clock_worker"), APP: ("app", "clock_app")}


@pytest.mark.parametrize("case", ISSUE_CASES, ids=str)
def test_the_real_entry_points_exit_2_for_what_the_construct_refuses(case: Case, tmp_path: Path):
    with pytest.raises(ClockPropsError, match=rf"^{case.spec.prop} must be "):
        construct(case)
    assert case.raw is not None
    for reader in sorted(case.spec.readers):
        image, module = ENTRY_POINTS[reader]
        env = process_env(image, {case.spec.env: case.raw, "CLOCK_HEARTBEAT_FILE": str(tmp_path / "heartbeat")})
        result = subprocess.run([sys.executable, "-m", module], env=env, capture_output=True, text=True, timeout=30)
        assert result.returncode == 2, (reader, result.stderr)
        assert result.stdout == ""
        (line,) = result.stderr.splitlines()
        if reader == WORKER:
            entry = json.loads(line)
            assert entry["setting"] == case.spec.env and case.raw in entry["message"]
        else:
            assert line.startswith(f"clock_app: invalid setting {case.spec.env}: {case.raw!r}"), line


class Running:
    """An entry point as a process; output lines collected until it is stopped."""

    def __init__(self, module: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", module],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._pump, daemon=True)
        self.reader.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        self.lines.extend(iter(self.process.stdout.readline, ""))

    def wait_for(self, predicate: Callable[[str], bool], *, timeout_s: float = 20.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = next((line for line in list(self.lines) if predicate(line)), None)
            if found is not None:
                return found
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no such line; exit={self.process.poll()} output={''.join(self.lines)[-2000:]}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        self.reader.join(timeout=5)
        return code


def test_the_real_entry_points_start_with_the_edge_environment(tmp_path: Path):
    settings = ClockSettings.create(
        service_name="s" * 255,
        sink="EMF",
        metrics_profile="Seed",
        interval_seconds=3600,
        threshold_ms=3_600_000,
        max_drift_ppm=1000,
        max_reference_age_seconds=86_400,
        cache_ttl_seconds=math.nextafter(0.0, 1.0),
    )
    heartbeat = {"CLOCK_HEARTBEAT_FILE": str(tmp_path / "heartbeat")}
    worker = Running("clock_worker", process_env("worker", {**settings.worker_environment(app_port=None), **heartbeat}))
    app = Running("clock_app", process_env("app", {**settings.app_environment(), "CLOCK_APP_PORT": str(free_port())}))
    try:
        started = json.loads(worker.wait_for(lambda line: '"event":"started"' in line))
        assert (started["threshold_ms"], started["interval_s"], started["profile"]) == (3_600_000.0, 3600.0, "seed")
        assert started["service"] == settings.service_name
        serving = app.wait_for(lambda line: "serving on http://" in line)
        assert "threshold 3.6e+06 ms" in serving
        app.wait_for(lambda line: "Application startup complete" in line)  # uvicorn handles SIGTERM from here
    finally:
        worker_exit, app_exit = worker.stop(), app.stop()
    assert worker_exit == 0, worker.lines[-5:]
    # uvicorn shuts down cleanly, then re-raises SIGTERM so the exit status says why it stopped.
    assert app_exit in (0, -signal.SIGTERM) and any("Application shutdown complete" in line for line in app.lines)
