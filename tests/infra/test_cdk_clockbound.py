"""The construct shares the worker's ClockBound segment with the task, and makes the app
wait for a synchronized clock: read from the task definitions as ECS runs them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clockcore import contract
from infra.synth import REGION, Synthesized, cdk_context, synth_stack

SEGMENT_DIR = "/var/run/clockbound"
NGINX = "public.ecr.aws/nginx/nginx:1.27"


def environment_of(container: dict[str, Any]) -> dict[str, str]:
    return {item["Name"]: item["Value"] for item in container.get("Environment", [])}


def segment_mounts(container: dict[str, Any]) -> list[tuple[str, bool]]:
    return [(m["SourceVolume"], m["ReadOnly"]) for m in container.get("MountPoints", []) if m["ContainerPath"] == SEGMENT_DIR]


def task_volumes(synth: Synthesized) -> list[dict[str, Any]]:
    (task_definition,) = synth.resources("AWS::ECS::TaskDefinition").values()
    return task_definition["Properties"]["Volumes"]


def test_the_worker_writes_the_segment_on_a_task_volume_and_the_app_reads_it(demo: Synthesized):
    worker, app = demo.container("clock-worker"), demo.container("app")
    # Task storage (no host path), fresh for each task, shared by its containers.
    assert {"Name": "clockbound"} in task_volumes(demo)
    assert segment_mounts(worker) == [("clockbound", False)]
    assert segment_mounts(app) == [("clockbound", True)]
    for container in (worker, app):
        assert environment_of(container)[contract.ENV_CLOCKBOUND_SHM] == contract.CLOCKBOUND_SHM_PATH
    # The void-after cap the worker writes is the app's reference-age limit.
    assert environment_of(worker)[contract.ENV_MAX_REFERENCE_AGE] == environment_of(app)[contract.ENV_MAX_REFERENCE_AGE]


def test_the_app_starts_only_on_a_synchronized_clock(demo: Synthesized):
    worker, app = demo.container("clock-worker"), demo.container("app")
    assert app["DependsOn"] == [{"Condition": "HEALTHY", "ContainerName": "clock-worker"}]
    # HEALTHY needs a health check; ECS gives up on the dependency after its StartTimeout
    # (Fargate's maximum, 120 s), and the essential app then never starts: the task stops.
    assert worker["HealthCheck"]["Command"] == ["CMD", "python", "-m", "clock_worker.healthcheck"]
    assert worker["HealthCheck"]["Interval"] == 10
    assert worker["StartTimeout"] == 120
    assert worker["Essential"] is False and app["Essential"] is True


@pytest.fixture(scope="module")
def options_off(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    import aws_cdk as cdk

    from clock_stack import ClockAccurateFargateService

    def build(app: Any) -> Any:
        stack = cdk.Stack(app, "SegmentOff", env=cdk.Environment(region=REGION))
        ClockAccurateFargateService(stack, "Service", clockbound_segment=False, wait_for_clock_sync=False)
        return stack

    return synth_stack(tmp_path_factory.mktemp("segment-off"), build)


def test_both_can_be_turned_off(options_off: Synthesized):
    worker, app = options_off.container("clock-worker"), options_off.container("app")
    assert "clockbound" not in [volume["Name"] for volume in task_volumes(options_off)]
    assert segment_mounts(worker) == segment_mounts(app) == []
    assert contract.ENV_CLOCKBOUND_SHM not in environment_of(worker)
    assert contract.ENV_CLOCKBOUND_SHM not in environment_of(app)
    assert "DependsOn" not in app


def test_task_monitoring_shares_the_segment_with_every_other_container_by_default(consumer_task_definition: Synthesized):
    api = consumer_task_definition.container("api")
    assert segment_mounts(api) == [("clockbound", True)]
    assert environment_of(api)[contract.ENV_CLOCKBOUND_SHM] == contract.CLOCKBOUND_SHM_PATH
    assert "DependsOn" not in api  # waiting is opt-in for a task definition of yours


def test_task_monitoring_readers_and_waiting_are_yours_to_choose(tmp_path: Path):
    import aws_cdk as cdk
    from aws_cdk import aws_ecs as ecs
    from aws_cdk.assertions import Template

    from clock_stack import ClockTaskMonitoring

    app = cdk.App(context=cdk_context(), outdir=str(tmp_path))
    stack = cdk.Stack(app, "Readers", env=cdk.Environment(region=REGION))
    task_definition = ecs.FargateTaskDefinition(stack, "Task", cpu=512, memory_limit_mib=1024)
    database = task_definition.add_container("db", image=ecs.ContainerImage.from_registry(NGINX), container_name="db")
    task_definition.add_container("proxy", image=ecs.ContainerImage.from_registry(NGINX), container_name="proxy")
    ClockTaskMonitoring(stack, "Clock", task_definition=task_definition, clockbound_readers=[database], wait_for_clock_sync=True)
    synth = Synthesized(app=app, stack=stack, template=Template.from_stack(stack), outdir=tmp_path)
    db, proxy = synth.container("db"), synth.container("proxy")
    assert segment_mounts(db) == [("clockbound", True)]
    assert db["DependsOn"] == [{"Condition": "HEALTHY", "ContainerName": "clock-worker"}]
    assert segment_mounts(proxy) == [] and "DependsOn" not in proxy


def test_readers_must_belong_to_the_task_definition():
    import aws_cdk as cdk
    from aws_cdk import aws_ecs as ecs

    from clock_stack import ClockPropsError, ClockTaskMonitoring

    stack = cdk.Stack(cdk.App(), "Foreign", env=cdk.Environment(region=REGION))
    mine = ecs.FargateTaskDefinition(stack, "Mine")
    other = ecs.FargateTaskDefinition(stack, "Other")
    stranger = other.add_container("x", image=ecs.ContainerImage.from_registry(NGINX))
    with pytest.raises(ClockPropsError, match="clockbound_readers must be containers of task_definition"):
        ClockTaskMonitoring(stack, "Clock", task_definition=mine, clockbound_readers=[stranger])
