"""`ClockWorkerSidecar` alone on a bare Stack: the worker container (environment, health
check, restart, limits), its volumes and the segment it shares, its logs, and its IAM.

Two configurations, each synthesized once, on a Fargate task definition with one app
container (`app`, someone's image):
- `emf_sidecar`: the defaults (EMF sink, ClockBound segment on, read-only root) with the
  app's counters on port 8080, the segment shared with `app`, which waits for the clock;
- `api_sidecar`: the CloudWatch sink, ECS Exec on, no segment, the team's own log key
  and a week of log retention; `app` is "shared with" but neither mounts nor waits.

Update the snapshot after an intended change:
pytest tests/infra/test_construct_sidecar.py --snapshot-update
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from clock_stack.sidecar import (
    CLOCKBOUND_VOLUME,
    WORKER_CONTAINER_NAME,
    WORKER_MEMORY_LIMIT_MIB,
    WORKER_SEGMENT_PATH,
    WORKER_START_TIMEOUT,
)
from clockcore import contract
from infra.synth import (
    CONSUMER_IMAGE,
    Synthesized,
    actions_of,
    env_of,
    policy_statements,
    synth_construct,
)

SERVICE = "orders"
APP_PORT = 8080
READER_MOUNT = {"ContainerPath": "/var/run/clockbound", "SourceVolume": "clockbound", "ReadOnly": True}


def _task_with_app(stack):
    from aws_cdk import aws_ecs as ecs

    task_definition = ecs.FargateTaskDefinition(stack, "Task")
    image = ecs.ContainerImage.from_registry(CONSUMER_IMAGE)
    app = task_definition.add_container("App", container_name="app", image=image)
    return task_definition, app


def build_emf_sidecar(stack):
    from clock_stack.settings import ClockSettings
    from clock_stack.sidecar import ClockWorkerSidecar

    task_definition, app = _task_with_app(stack)
    settings = ClockSettings.create(service_name=SERVICE)
    sidecar = ClockWorkerSidecar(stack, "Worker", task_definition=task_definition, settings=settings, app_port=APP_PORT)
    sidecar.share_segment([app], wait_for_clock_sync=True)
    return SimpleNamespace(sidecar=sidecar, task_definition=task_definition, settings=settings)


def build_api_sidecar(stack):
    from aws_cdk import aws_kms as kms
    from aws_cdk import aws_logs as logs

    from clock_stack.settings import ClockSettings
    from clock_stack.sidecar import ClockWorkerSidecar

    task_definition, app = _task_with_app(stack)
    settings = ClockSettings.create(service_name=SERVICE, sink="cloudwatch", namespace="Team/Clock")
    key = kms.Key(stack, "TeamLogsKey", enable_key_rotation=True)
    sidecar = ClockWorkerSidecar(
        stack,
        "Worker",
        task_definition=task_definition,
        settings=settings,
        enable_execute_command=True,
        clockbound_segment=False,
        log_encryption_key=key,
        log_retention=logs.RetentionDays.ONE_WEEK,
    )
    sidecar.share_segment([app], wait_for_clock_sync=False)
    return SimpleNamespace(sidecar=sidecar, task_definition=task_definition, settings=settings, key=key)


@pytest.fixture(scope="module")
def emf_sidecar(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synth_construct(tmp_path_factory.mktemp("sidecar-emf"), "SidecarStack", build_emf_sidecar)


@pytest.fixture(scope="module")
def api_sidecar(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synth_construct(tmp_path_factory.mktemp("sidecar-api"), "ApiSidecarStack", build_api_sidecar)


def task_definition_of(synth: Synthesized) -> dict:
    return synth.properties_of(synth.built.task_definition)


# ---------------------------------------------------------------- the container
def test_worker_environment_is_exactly_the_clock_settings(emf_sidecar):
    worker = emf_sidecar.container(WORKER_CONTAINER_NAME)
    assert env_of(worker) == {
        "CLOCK_SINK": "emf",
        "CLOCK_NAMESPACE": "FargateClock",
        "CLOCK_METRICS_PROFILE": "standard",
        "CLOCK_SERVICE_NAME": SERVICE,
        "CLOCK_PER_TASK_METRICS": "EffectiveClockErrorBound",
        "CLOCK_INTERVAL_SECONDS": "5",
        "CLOCK_MAX_DRIFT_PPM": "50",
        "CLOCK_THRESHOLD_MS": "1",
        "CLOCK_MAX_REFERENCE_AGE_SECONDS": "120",
        # The worker writes the segment in its own folder; readers see it at ClockBound's path.
        "CLOCK_CLOCKBOUND_SHM": "/var/lib/clockbound/shm0",
        # The app's gate counters, over the task's shared loopback.
        "CLOCK_APP_STATS_URL": "http://127.0.0.1:8080/api/operations/stats",
    }
    settings = emf_sidecar.built.settings
    assert env_of(worker) == settings.worker_environment(app_port=APP_PORT, clockbound_shm=WORKER_SEGMENT_PATH)


def test_worker_health_check_runs_every_10_s_with_3_retries_and_30_s_grace(emf_sidecar):
    worker = emf_sidecar.container(WORKER_CONTAINER_NAME)
    assert worker["HealthCheck"] == {
        "Command": ["CMD", "python", "-m", "clock_worker.healthcheck"],
        "Interval": 10,
        "Timeout": 5,
        "Retries": 3,
        "StartPeriod": 30,
    }
    # Containers waiting for its HEALTHY wait at most Fargate's maximum start timeout.
    assert worker["StartTimeout"] == 120 == WORKER_START_TIMEOUT.to_seconds()
    assert worker["StopTimeout"] == 10


def test_worker_is_a_non_essential_sidecar_capped_at_128_mib_that_restarts_in_place(emf_sidecar):
    worker = emf_sidecar.container(WORKER_CONTAINER_NAME)
    assert worker["Essential"] is False
    assert worker["RestartPolicy"] == {"Enabled": True, "RestartAttemptPeriod": 60}
    assert worker["Memory"] == WORKER_MEMORY_LIMIT_MIB == 128
    assert worker["ReadonlyRootFilesystem"] is True
    assert "LinuxParameters" not in worker


# ---------------------------------------------------------------- volumes and the segment
def test_worker_writes_only_to_tmp_and_the_segment_volume(emf_sidecar):
    assert task_definition_of(emf_sidecar)["Volumes"] == [{"Name": "clock-worker-tmp"}, {"Name": CLOCKBOUND_VOLUME}]
    assert emf_sidecar.container(WORKER_CONTAINER_NAME)["MountPoints"] == [
        {"ContainerPath": "/tmp", "SourceVolume": "clock-worker-tmp", "ReadOnly": False},
        {"ContainerPath": "/var/lib/clockbound", "SourceVolume": "clockbound", "ReadOnly": False},
    ]


def test_a_reader_gets_the_segment_read_only_at_clockbounds_path_and_waits_for_a_synchronized_worker(emf_sidecar):
    app = emf_sidecar.container("app")
    assert app["MountPoints"] == [READER_MOUNT]
    assert env_of(app) == {"CLOCK_CLOCKBOUND_SHM": "/var/run/clockbound/shm0"}
    assert env_of(app)[contract.ENV_CLOCKBOUND_SHM] == contract.CLOCKBOUND_SHM_PATH
    assert app["DependsOn"] == [{"ContainerName": "clock-worker", "Condition": "HEALTHY"}]


def test_without_the_segment_no_volume_mount_or_path_and_no_wait(api_sidecar):
    assert task_definition_of(api_sidecar)["Volumes"] == [{"Name": "clock-worker-tmp"}]
    worker = api_sidecar.container(WORKER_CONTAINER_NAME)
    assert "CLOCK_CLOCKBOUND_SHM" not in env_of(worker)
    assert [mount["ContainerPath"] for mount in worker["MountPoints"]] == ["/tmp"]
    app = api_sidecar.container("app")
    assert "MountPoints" not in app and "Environment" not in app and "DependsOn" not in app


def test_with_ecs_exec_the_worker_root_is_writable_and_it_gets_an_init_process(api_sidecar):
    worker = api_sidecar.container(WORKER_CONTAINER_NAME)
    assert worker["ReadonlyRootFilesystem"] is False
    assert worker["LinuxParameters"]["InitProcessEnabled"] is True


# ---------------------------------------------------------------- logs
def test_worker_logs_go_non_blocking_to_an_encrypted_group_kept_30_days(emf_sidecar):
    sidecar = emf_sidecar.built.sidecar
    group_id = emf_sidecar.logical_id(sidecar.log_group)
    log = emf_sidecar.container(WORKER_CONTAINER_NAME)["LogConfiguration"]
    assert log["LogDriver"] == "awslogs"
    assert log["Options"] == {
        "awslogs-group": {"Ref": group_id},
        "awslogs-stream-prefix": "worker",
        "awslogs-region": "us-east-1",
        "mode": "non-blocking",
        "max-buffer-size": "26214400b",  # 25 MiB
    }
    group = emf_sidecar.properties_of(sidecar.log_group)
    assert group["RetentionInDays"] == 30
    key_id = emf_sidecar.logical_id(sidecar.log_encryption_key)
    assert group["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert emf_sidecar.properties_of(sidecar.log_encryption_key)["EnableKeyRotation"] is True
    # The execution role (the awslogs driver) may write to that group.
    execution_role = emf_sidecar.built.task_definition.execution_role
    writes = [
        statement
        for statement in policy_statements(emf_sidecar, execution_role)
        if "logs:PutLogEvents" in actions_of(statement)
    ]
    assert [statement["Resource"] for statement in writes] == [{"Fn::GetAtt": [group_id, "Arn"]}]


def test_a_given_log_key_and_retention_are_used_and_no_key_is_made(api_sidecar):
    built = api_sidecar.built
    group = api_sidecar.properties_of(built.sidecar.log_group)
    assert group["KmsKeyId"] == {"Fn::GetAtt": [api_sidecar.logical_id(built.key), "Arn"]}
    assert group["RetentionInDays"] == 7
    assert list(api_sidecar.resources("AWS::KMS::Key")) == [api_sidecar.logical_id(built.key)]


# ---------------------------------------------------------------- IAM
def test_emf_sink_gives_the_task_role_no_permission_at_all(emf_sidecar):
    built = emf_sidecar.built
    assert built.sidecar.put_metric_data_policy is None
    assert policy_statements(emf_sidecar, built.task_definition.task_role) == []
    every_action = [
        action
        for policy in emf_sidecar.resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        for action in actions_of(statement)
    ]
    assert not [action for action in every_action if action.startswith("cloudwatch:")]


def test_cloudwatch_sink_may_put_metric_data_into_its_namespace_only(api_sidecar):
    built = api_sidecar.built
    policy = api_sidecar.properties_of(built.sidecar.put_metric_data_policy)
    assert policy["Roles"] == [{"Ref": api_sidecar.logical_id(built.task_definition.task_role)}]
    assert policy["PolicyDocument"]["Statement"] == [
        {
            "Action": "cloudwatch:PutMetricData",
            "Effect": "Allow",
            # PutMetricData has no resource-level permissions; the condition scopes it.
            "Resource": "*",
            "Condition": {"StringEquals": {"cloudwatch:namespace": "Team/Clock"}},
        }
    ]
    assert env_of(api_sidecar.container(WORKER_CONTAINER_NAME))["CLOCK_NAMESPACE"] == "Team/Clock"


# ---------------------------------------------------------------- snapshot
def test_worker_container_matches_snapshot(emf_sidecar, snapshot):
    assert emf_sidecar.container(WORKER_CONTAINER_NAME) == snapshot
