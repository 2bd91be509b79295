"""Contract round trip: what the real worker publishes, run with the environment the
template gives it, is exactly what the alarms in the same template watch.

The worker runs as `python -m clock_worker` (as the image runs it) against the
task-metadata emulator, with the worker container's Environment taken verbatim from the
synthesized template. Only what ECS would add (the metadata URI, the region) and the
test's endpoints are added; the app's counters URL is dropped (no app runs here).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from clockcore import contract
from emulator.server import TASK_ID
from infra.synth import ROOT, Synthesized

pytestmark = pytest.mark.timeout(120)

WORKER_PYTHONPATH = os.pathsep.join([str(ROOT / "containers"), str(ROOT / "containers" / "worker")])
BOUND_MS = 3.25  # the emulator's reported bound: above every configured threshold
# Growth is reference age × 50 ppm; the emulator's reference is at most a second or two old.
GROWTH_ALLOWANCE_MS = 0.1
SCHEMA_PATTERN = re.compile(r'SCHEMA\(\\?"(?P<namespace>[^"\\]+)\\?", (?P<dimensions>[^)]+)\)')


@dataclass(frozen=True)
class WatchedMetric:
    alarm: str
    namespace: str
    metric_name: str
    dimensions: dict[str, str]
    period: int
    threshold: float


def service_level_alarms(synth: Synthesized) -> list[WatchedMetric]:
    watched = []
    for logical_id, resource in synth.resources("AWS::CloudWatch::Alarm").items():
        properties = resource["Properties"]
        (query,) = properties["Metrics"]
        if "MetricStat" not in query:
            continue  # the Metrics Insights alarm; checked on its own below
        metric = query["MetricStat"]["Metric"]
        if metric["Namespace"] == "AWS/ECS":
            continue  # the ECS service's own metric (are tasks running?), not the worker's
        watched.append(
            WatchedMetric(
                alarm=logical_id,
                namespace=metric["Namespace"],
                metric_name=metric["MetricName"],
                dimensions={item["Name"]: item["Value"] for item in metric["Dimensions"]},
                period=query["MetricStat"]["Period"],
                threshold=properties["Threshold"],
            )
        )
    assert len(watched) == 3, "bound, not synchronized, no data"
    return watched


def insights_schema(synth: Synthesized) -> tuple[str, str, list[str], dict[str, str]]:
    """(namespace, metric name, dimension keys, WHERE conditions) of the Metrics Insights alarm's query."""
    for resource in synth.resources("AWS::CloudWatch::Alarm").values():
        (query,) = resource["Properties"]["Metrics"]
        if "Expression" in query:
            expression = json.dumps(query["Expression"])
            match = SCHEMA_PATTERN.search(expression)
            assert match, expression
            metric_name = re.search(r"SELECT MAX\((\w+)\)", expression).group(1)
            conditions = dict(re.findall(r"(\w+) = '([^']*)'", expression))
            return match["namespace"], metric_name, [name.strip() for name in match["dimensions"].split(",")], conditions
    raise AssertionError("no Metrics Insights alarm")


def worker_environment(synth: Synthesized) -> dict[str, str]:
    for task_definition in synth.resources("AWS::ECS::TaskDefinition").values():
        for container in task_definition["Properties"]["ContainerDefinitions"]:
            if container["Name"] == "clock-worker":
                environment = {item["Name"]: item["Value"] for item in container["Environment"]}
                # Everything is a literal: the worker can be told at deploy time what alarms name.
                assert all(isinstance(value, str) for value in environment.values()), environment
                return environment
    raise AssertionError("no worker container")


class Worker:
    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "clock_worker"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        for stream, sink in ((self.process.stdout, self.stdout), (self.process.stderr, self.stderr)):
            threading.Thread(target=lambda s=stream, t=sink: t.extend(iter(s.readline, "")), daemon=True).start()

    def emf_documents(self) -> list[dict]:
        documents = []
        for line in list(self.stdout):
            try:
                document = json.loads(line)
            except ValueError:
                continue
            if isinstance(document, dict) and "_aws" in document:
                documents.append(document)
        return documents

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def describe(self) -> str:
        return f"exit={self.process.poll()} stderr={''.join(self.stderr)[-2000:]}"


def wait_for(condition, *, timeout_s: float, worker: Worker, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        if worker.process.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout_s} s; worker {worker.describe()}")


def run_worker(synth: Synthesized, *, emulator, tmp_path: Path, extra: dict[str, str]) -> tuple[Worker, dict[str, str]]:
    template_env = worker_environment(synth)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": WORKER_PYTHONPATH,
        "PYTHONDONTWRITEBYTECODE": "1",
        **template_env,
        contract.ENV_METADATA_URI: emulator.metadata_uri,
        "CLOCK_HEARTBEAT_FILE": str(tmp_path / "heartbeat"),
        **extra,
    }
    env.pop(contract.ENV_APP_STATS_URL, None)
    # Fargate may not report ServiceName: the alarms must match without it.
    emulator.set_scenario("high_bound", bound_ms=BOUND_MS, service_name=None)
    return Worker(env), template_env


def assert_bound_value(value: float, watched: WatchedMetric) -> None:
    assert BOUND_MS <= value <= BOUND_MS + GROWTH_ALLOWANCE_MS, value
    assert value > watched.threshold, "the sample would trip the alarm"


# ---------------------------------------------------------------- EMF (the demo's default sink)
def test_emf_lines_carry_what_the_alarms_watch(demo: Synthesized, emulator, tmp_path: Path):
    worker, template_env = run_worker(demo, emulator=emulator, tmp_path=tmp_path, extra={})
    try:
        assert template_env[contract.ENV_SINK] == contract.SINK_EMF
        documents = wait_for(worker.emf_documents, timeout_s=20, worker=worker, what="an EMF line")
    finally:
        worker.stop()
    document = documents[0]
    published = set()  # (namespace, metric, frozenset(dimensions)) the line defines
    high_resolution = set()
    for directive in document["_aws"]["CloudWatchMetrics"]:
        for dimension_set in directive["Dimensions"]:
            dimensions = frozenset((name, document[name]) for name in dimension_set)
            for metric in directive["Metrics"]:
                published.add((directive["Namespace"], metric["Name"], dimensions))
                if metric.get("StorageResolution") == 1:
                    high_resolution.add(metric["Name"])
    for watched in service_level_alarms(demo):
        key = (watched.namespace, watched.metric_name, frozenset(watched.dimensions.items()))
        assert key in published, f"{watched.alarm} watches {key}, the worker published {sorted(published, key=str)}"
        if watched.period < 60:
            assert watched.metric_name in high_resolution, f"{watched.alarm} has {watched.period} s periods"
        if watched.metric_name == contract.EFFECTIVE_BOUND.name:
            assert_bound_value(document[watched.metric_name], watched)
    namespace, metric_name, dimension_keys, conditions = insights_schema(demo)
    per_task = [dims for ns, name, dims in published if (ns, name) == (namespace, metric_name) and len(dims) > 1]
    assert [sorted(name for name, _ in dims) for dims in per_task] == [sorted(dimension_keys)]
    assert dict(per_task[0])[contract.TASK_ID_DIMENSION] == TASK_ID
    assert conditions and conditions.items() <= dict(per_task[0]).items(), (conditions, per_task[0])


# ---------------------------------------------------------------- PutMetricData
@pytest.mark.parametrize("configuration", ["demo", "variant"])
def test_put_metric_data_carries_what_the_alarms_watch(
    configuration: str, request: pytest.FixtureRequest, emulator, cloudwatch, tmp_path: Path
):
    synth: Synthesized = request.getfixturevalue(configuration)
    # The demo's template says emf; the variant's says cloudwatch and runs as synthesized.
    extra = {**cloudwatch.env(), contract.ENV_SINK: contract.SINK_CLOUDWATCH}
    worker, template_env = run_worker(synth, emulator=emulator, tmp_path=tmp_path, extra=extra)
    client = cloudwatch.client()
    watched_metrics = service_level_alarms(synth)
    try:
        if configuration == "variant":
            assert template_env[contract.ENV_SINK] == contract.SINK_CLOUDWATCH
        for watched in watched_metrics:
            dimensions = [{"Name": name, "Value": value} for name, value in watched.dimensions.items()]

            def listed(watched=watched, dimensions=dimensions):
                found = client.list_metrics(
                    Namespace=watched.namespace, MetricName=watched.metric_name, Dimensions=dimensions
                )["Metrics"]
                # list_metrics matches on a subset of dimensions; the alarm needs the exact set.
                return [metric for metric in found if len(metric["Dimensions"]) == len(dimensions)]

            wait_for(listed, timeout_s=30, worker=worker, what=f"{watched.metric_name} {watched.dimensions}")
            if watched.metric_name == contract.EFFECTIVE_BOUND.name:
                now = datetime.now(timezone.utc)
                statistics = client.get_metric_statistics(
                    Namespace=watched.namespace,
                    MetricName=watched.metric_name,
                    Dimensions=dimensions,
                    StartTime=now - timedelta(minutes=5),
                    EndTime=now + timedelta(minutes=1),
                    Period=60,
                    Statistics=["Maximum"],
                )["Datapoints"]
                assert statistics
                assert_bound_value(max(point["Maximum"] for point in statistics), watched)
        namespace, metric_name, dimension_keys, conditions = insights_schema(synth)
        per_task = client.list_metrics(Namespace=namespace, MetricName=metric_name)["Metrics"]
        per_task_sets = [
            {item["Name"]: item["Value"] for item in metric["Dimensions"]} for metric in per_task if len(metric["Dimensions"]) > 1
        ]
        assert [sorted(dimensions) for dimensions in per_task_sets] == [sorted(dimension_keys)]
        # The WHERE clause selects what the worker published, with no ServiceName in the metadata.
        assert conditions and conditions.items() <= per_task_sets[0].items(), (conditions, per_task_sets)
    finally:
        worker.stop()


# ---------------------------------------------------------------- threshold
@pytest.mark.parametrize("configuration", ["demo", "variant"])
def test_the_worker_is_told_the_threshold_the_bound_alarms_use(configuration: str, request: pytest.FixtureRequest):
    """The CloudWatch sink sends a sample crossing the threshold at once (no batching):
    that is only right when it is the alarms' threshold."""
    from clock_worker.settings import load_settings

    synth: Synthesized = request.getfixturevalue(configuration)
    # ECS adds the region; the template's environment is the rest.
    told = load_settings({**worker_environment(synth), "AWS_REGION": "us-east-1"}).threshold_ms
    thresholds = {
        float(resource["Properties"]["Threshold"])
        for resource in synth.resources("AWS::CloudWatch::Alarm").values()
        if any(
            "Expression" in query or query["MetricStat"]["Metric"]["MetricName"] == contract.EFFECTIVE_BOUND.name
            for query in resource["Properties"]["Metrics"]
        )
    }
    assert thresholds == {told}, (thresholds, told)
