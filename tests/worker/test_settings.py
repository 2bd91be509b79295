"""Settings: defaults, every bad value named, and the process's exit on bad configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clock_worker.settings import (
    DEFAULT_BUFFER_SAMPLES,
    DEFAULT_HEARTBEAT_FILE,
    load_settings,
)
from clockcore import contract
from clockcore.errors import SettingError

from .conftest import base_env, run_worker_once


def test_defaults_follow_the_contract():
    settings = load_settings({})
    assert settings.sink == contract.DEFAULT_SINK == "emf"
    assert settings.profile is contract.STANDARD_PROFILE
    assert settings.namespace == contract.DEFAULT_NAMESPACE
    assert settings.service_name == contract.DEFAULT_SERVICE_NAME
    assert settings.per_task_metrics == contract.DEFAULT_PER_TASK_METRICS
    assert settings.interval_s == contract.DEFAULT_INTERVAL_SECONDS == 5.0
    assert settings.max_drift_ppm == contract.DEFAULT_MAX_DRIFT_PPM
    assert settings.buffer_samples == DEFAULT_BUFFER_SAMPLES
    assert str(settings.heartbeat_file) == DEFAULT_HEARTBEAT_FILE
    assert settings.app_stats_url is None
    assert settings.cron_jobs == ()
    assert settings.log_level == "INFO"
    # CloudWatch sink: batch for up to 5 s; the alarms' threshold decides what may wait.
    assert settings.publish_max_delay_s == 5.0
    assert settings.threshold_ms == contract.DEFAULT_THRESHOLD_MS == 1.0
    # Faster than once a minute: high resolution.
    assert settings.storage_resolution == 1
    assert load_settings({"CLOCK_INTERVAL_SECONDS": "60"}).storage_resolution == 60


def test_seed_profile_uses_the_seed_namespace_and_dimensions():
    settings = load_settings({"CLOCK_METRICS_PROFILE": "seed"})
    assert settings.namespace == "ECS/ContainerInsights"
    assert settings.profile.per_task_dimensions == ("ClusterName", "Family", "TaskID")
    assert settings.per_task_metrics == ("ClockErrorBound",)
    # An explicit namespace still wins.
    assert load_settings({"CLOCK_METRICS_PROFILE": "seed", "CLOCK_NAMESPACE": "Mine"}).namespace == "Mine"


def test_per_task_metrics_can_be_listed_or_turned_off():
    listed = load_settings({"CLOCK_PER_TASK_METRICS": "ClockErrorBound, ClockSynchronized,ClockErrorBound"})
    assert listed.per_task_metrics == ("ClockErrorBound", "ClockSynchronized")
    assert load_settings({"CLOCK_PER_TASK_METRICS": ""}).per_task_metrics == ()
    assert load_settings({"CLOCK_PER_TASK_METRICS": "none"}).per_task_metrics == ()


def test_publish_delay_and_threshold_can_be_set():
    settings = load_settings({"CLOCK_PUBLISH_MAX_DELAY_SECONDS": "0", "CLOCK_THRESHOLD_MS": "2.5"})
    assert settings.publish_max_delay_s == 0.0 and settings.threshold_ms == 2.5
    assert load_settings({"CLOCK_PUBLISH_MAX_DELAY_SECONDS": "60"}).publish_max_delay_s == 60.0


def test_cloudwatch_sink_takes_the_region_from_either_variable():
    assert load_settings({"CLOCK_SINK": "cloudwatch", "AWS_REGION": "eu-west-1"}).region == "eu-west-1"
    assert load_settings({"CLOCK_SINK": "CloudWatch", "AWS_DEFAULT_REGION": "eu-west-2"}).region == "eu-west-2"


def test_choices_match_in_any_case_and_become_canonical():
    settings = load_settings({"CLOCK_SINK": "EMF", "CLOCK_METRICS_PROFILE": "Seed", "CLOCK_LOG_LEVEL": "debug"})
    assert (settings.sink, settings.profile, settings.log_level) == ("emf", contract.SEED_PROFILE, "DEBUG")


def test_a_bad_value_says_what_is_allowed():
    with pytest.raises(SettingError) as raised:
        load_settings({"CLOCK_THRESHOLD_MS": "5e6"})
    assert str(raised.value) == (
        "CLOCK_THRESHOLD_MS: '5e6' is out of range; expected a number greater than 0 and at most 3600000"
    )


def test_unknown_clock_settings_are_reported_not_fatal():
    settings = load_settings({"CLOCK_INTERVALL_SECONDS": "5", "CLOCK_THRESHOLD_MS": "1"})
    assert settings.unknown_settings == ("CLOCK_INTERVALL_SECONDS",)


BAD_SETTINGS = [
    ({"CLOCK_SINK": "kinesis"}, "CLOCK_SINK"),
    ({"CLOCK_INTERVAL_SECONDS": "0"}, "CLOCK_INTERVAL_SECONDS"),
    ({"CLOCK_INTERVAL_SECONDS": "-5"}, "CLOCK_INTERVAL_SECONDS"),
    ({"CLOCK_INTERVAL_SECONDS": "0.5"}, "CLOCK_INTERVAL_SECONDS"),
    ({"CLOCK_INTERVAL_SECONDS": "ten"}, "CLOCK_INTERVAL_SECONDS"),
    ({"CLOCK_INTERVAL_SECONDS": "nan"}, "CLOCK_INTERVAL_SECONDS"),
    ({"CLOCK_NAMESPACE": ""}, "CLOCK_NAMESPACE"),
    ({"CLOCK_NAMESPACE": "AWS/ECS"}, "CLOCK_NAMESPACE"),
    ({"CLOCK_NAMESPACE": "aws/Clock"}, "CLOCK_NAMESPACE"),
    ({"CLOCK_NAMESPACE": "x" * 256}, "CLOCK_NAMESPACE"),
    ({"CLOCK_NAMESPACE": "has spaces"}, "CLOCK_NAMESPACE"),
    ({"CLOCK_SERVICE_NAME": "  "}, "CLOCK_SERVICE_NAME"),
    ({"CLOCK_SERVICE_NAME": "x" * 256}, "CLOCK_SERVICE_NAME"),
    ({"CLOCK_METRICS_PROFILE": "legacy"}, "CLOCK_METRICS_PROFILE"),
    ({"CLOCK_PER_TASK_METRICS": "ClockErrorBound,Bogus"}, "CLOCK_PER_TASK_METRICS"),
    ({"CLOCK_MAX_DRIFT_PPM": "-1"}, "CLOCK_MAX_DRIFT_PPM"),
    ({"CLOCK_MAX_DRIFT_PPM": "1001"}, "CLOCK_MAX_DRIFT_PPM"),
    ({"CLOCK_APP_STATS_URL": "ftp://127.0.0.1/stats"}, "CLOCK_APP_STATS_URL"),
    ({"CLOCK_APP_STATS_URL": "http://127.0.0.1:99999/stats"}, "CLOCK_APP_STATS_URL"),
    ({"CLOCK_BUFFER_SAMPLES": "0"}, "CLOCK_BUFFER_SAMPLES"),
    ({"CLOCK_BUFFER_SAMPLES": "1.5"}, "CLOCK_BUFFER_SAMPLES"),
    ({"CLOCK_METADATA_READ_TIMEOUT_SECONDS": "0"}, "CLOCK_METADATA_READ_TIMEOUT_SECONDS"),
    ({"CLOCK_INTERVAL_SECONDS": "1", "CLOCK_METADATA_READ_TIMEOUT_SECONDS": "0.9"}, "CLOCK_METADATA_READ_TIMEOUT_SECONDS"),
    ({"CLOCK_CLOUDWATCH_MAX_ATTEMPTS": "0"}, "CLOCK_CLOUDWATCH_MAX_ATTEMPTS"),
    ({"CLOCK_JOB_TIMEOUT_SECONDS": "0"}, "CLOCK_JOB_TIMEOUT_SECONDS"),
    ({"CLOCK_LOG_LEVEL": "chatty"}, "CLOCK_LOG_LEVEL"),
    ({"CLOCK_PUBLISH_MAX_DELAY_SECONDS": "-1"}, "CLOCK_PUBLISH_MAX_DELAY_SECONDS"),
    ({"CLOCK_PUBLISH_MAX_DELAY_SECONDS": "61"}, "CLOCK_PUBLISH_MAX_DELAY_SECONDS"),
    ({"CLOCK_PUBLISH_MAX_DELAY_SECONDS": "soon"}, "CLOCK_PUBLISH_MAX_DELAY_SECONDS"),
    ({"CLOCK_PUBLISH_MAX_DELAY_SECONDS": "inf"}, "CLOCK_PUBLISH_MAX_DELAY_SECONDS"),
    ({"CLOCK_THRESHOLD_MS": "0"}, "CLOCK_THRESHOLD_MS"),
    ({"CLOCK_THRESHOLD_MS": "-1"}, "CLOCK_THRESHOLD_MS"),
    ({"CLOCK_THRESHOLD_MS": "nan"}, "CLOCK_THRESHOLD_MS"),
    ({"CLOCK_THRESHOLD_MS": "5e6"}, "CLOCK_THRESHOLD_MS"),
    ({"CLOCK_SINK": "cloudwatch"}, "AWS_REGION"),
    ({"CLOCK_SINK": "cloudwatch", "AWS_REGION": "us east 1"}, "AWS_REGION"),
    ({"CLOCK_SINK": "cloudwatch", "AWS_DEFAULT_REGION": "eu_west_1"}, "AWS_DEFAULT_REGION"),
    ({"CLOCK_SINK": "cloudwatch", "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": "localhost:4566"}, "AWS_ENDPOINT_URL"),
    ({"CLOCK_SINK": "cloudwatch", "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_CLOUDWATCH": "http://h:0x1"},
     "AWS_ENDPOINT_URL_CLOUDWATCH"),
    ({"CLOCK_CRONTAB": "* * * * *"}, "CLOCK_CRONTAB"),
    ({"CLOCK_CRONTAB_FILE": "/nonexistent/crontab"}, "CLOCK_CRONTAB_FILE"),
]


@pytest.mark.parametrize(("env", "setting"), BAD_SETTINGS, ids=[f"{s}={list(e.values())[-1]!r}" for e, s in BAD_SETTINGS])
def test_bad_values_name_their_setting(env, setting):
    with pytest.raises(SettingError) as raised:
        load_settings(env)
    assert raised.value.setting == setting
    assert str(raised.value).startswith(f"{setting}: ")


def test_a_bad_crontab_line_is_named(tmp_path: Path):
    crontab = tmp_path / "crontab"
    crontab.write_text("# nightly\n0 3 * * * /bin/true\n\n61 * * * * /bin/echo late\n")
    with pytest.raises(SettingError) as raised:
        load_settings({"CLOCK_CRONTAB_FILE": str(crontab)})
    assert raised.value.setting == "CLOCK_CRONTAB_FILE"
    assert "line 4" in str(raised.value) and "61 * * * *" in str(raised.value)


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"CLOCK_SINK": "kinesis"}, "CLOCK_SINK"),
        ({"CLOCK_INTERVAL_SECONDS": "0"}, "CLOCK_INTERVAL_SECONDS"),
        ({"CLOCK_NAMESPACE": ""}, "CLOCK_NAMESPACE"),
        ({"CLOCK_PUBLISH_MAX_DELAY_SECONDS": "-1"}, "CLOCK_PUBLISH_MAX_DELAY_SECONDS"),
        ({"CLOCK_CRONTAB": "*/5 * * * * 'unbalanced"}, "CLOCK_CRONTAB"),
    ],
)
def test_the_process_exits_2_with_one_line_naming_the_setting(tmp_path, env, setting):
    result = run_worker_once(base_env(tmp_path, **env))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    entry = json.loads(lines[0])
    assert entry["event"] == "bad_configuration"
    assert entry["setting"] == setting
    assert setting in entry["message"]
    assert "Traceback" not in result.stderr


def test_an_unexpected_error_ends_as_one_json_line_and_exit_1(tmp_path):
    # Simulate a bug inside the loop; the entry point must still not print a traceback.
    probe = (
        "import sys; import clock_worker.worker as w; import clock_worker.__main__ as m\n"
        "def broken(self): raise RuntimeError('simulated bug')\n"
        "w.Worker.run = broken\n"
        "sys.exit(m.main())\n"
    )
    import subprocess
    import sys

    env = base_env(tmp_path)
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=20)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    entry = json.loads(lines[0])
    assert entry["event"] == "crashed" and "simulated bug" in entry["message"]
    assert "Traceback" in entry["exception"]  # kept for the developer, inside the one JSON line
