"""The worker as a real process with the EMF sink, against the TMDS emulator:
EMF lines checked against the specification's structure, scenarios switched mid-run,
every bad metadata answer logged once and counted, never a crash."""

from __future__ import annotations

import socket
import threading
from collections import Counter

import pytest

from clockcore import contract

from .conftest import assert_on_one_second_grid, base_env
from .test_parts import validate_emf

pytestmark = pytest.mark.timeout(120)


def emf_env(tmp_path, emulator, **settings):
    return base_env(tmp_path, ECS_CONTAINER_METADATA_URI_V4=emulator.metadata_uri, CLOCK_SINK="emf", **settings)


def test_emf_lines_follow_the_spec_and_the_contract(tmp_path, emulator, start_worker):
    worker = start_worker(emf_env(tmp_path, emulator, CLOCK_SERVICE_NAME="orders", CLOCK_NAMESPACE="ClockTest"))
    lines = worker.wait_for_emf(3, timeout_s=10)
    code, took = worker.terminate()
    assert code == 0 and took < 5
    for document in lines:
        validate_emf(document)
        service, per_task = document["_aws"]["CloudWatchMetrics"]
        assert service["Namespace"] == per_task["Namespace"] == "ClockTest"
        assert service["Dimensions"] == [["Service"]]
        assert [m["Name"] for m in service["Metrics"]] == [
            "ClockErrorBound", "EffectiveClockErrorBound", "ClockSynchronized", "ClockReferenceAge", "ClockSampleFailures"
        ]
        assert all(m["StorageResolution"] == 1 for m in service["Metrics"])  # 1 s interval: high resolution
        assert per_task["Dimensions"] == [["Service", "TaskID"]]
        assert [m["Name"] for m in per_task["Metrics"]] == ["EffectiveClockErrorBound"]
        assert document["Service"] == "orders"
        assert document["ServiceName"] == "clock-demo-service"  # information, no dimension
        assert document["TaskID"] == "0123456789abcdef0123456789abcdef"
        assert document["ClockErrorBound"] == 0.446931
        assert document["ClockSynchronized"] == 1
        assert document["ClockSampleFailures"] == 0
        assert 0 <= document["ClockReferenceAge"] < 2
        assert document["EffectiveClockErrorBound"] == pytest.approx(
            0.446931 + document["ClockReferenceAge"] * contract.DEFAULT_MAX_DRIFT_PPM * 0.001
        )
    # Paced on a 1 s grid.
    stamps = [document["_aws"]["Timestamp"] for document in lines]
    assert_on_one_second_grid(stamps)
    # stdout holds EMF lines only; stderr holds JSON logs only (the view parses every line).
    assert {entry["event"] for entry in worker.logs()} >= {"started", "stopping", "stopped"}
    assert worker.process.stdout is not None


def test_scenarios_switched_mid_run_show_up_in_the_next_samples(tmp_path, emulator, start_worker):
    worker = start_worker(emf_env(tmp_path, emulator))
    worker.wait_for_emf(1, timeout_s=10)
    phases = [
        ("high_bound", {"bound_ms": 7.5}, lambda d: d.get("ClockErrorBound") == 7.5 and d["ClockSynchronized"] == 1),
        ("unsynchronized", {}, lambda d: d.get("ClockSynchronized") == 0 and d["ClockErrorBound"] == 12.5),
        ("bound_omitted", {}, lambda d: d.get("ClockErrorBound") == 0 and d["ClockSampleFailures"] == 0),
        ("stale_reference", {"stale_s": 600}, lambda d: d.get("ClockReferenceAge", 0) >= 600
         and d["EffectiveClockErrorBound"] >= 0.446931 + 600 * 0.015),
        ("ok", {}, lambda d: d.get("ClockErrorBound") == 0.446931 and d["ClockReferenceAge"] < 2),
    ]
    for scenario, values, matches in phases:
        emulator.set_scenario(scenario, **values)
        seen_before = len(worker.stdout_lines)
        worker.wait_for(
            lambda: any(matches(d) for d in worker.emf_lines()[seen_before:]), timeout_s=4, what=f"a {scenario} sample"
        )
    code, _ = worker.terminate()
    assert code == 0
    assert worker.logs("sample_failed") == []


BAD_ANSWERS = {
    "garbage": "not_json",
    "http_500": "http_status",
    "no_clock_drift": "no_clock_drift",
    "slow": "timeout",
}


def test_every_bad_metadata_answer_is_one_log_line_and_a_counted_failure(tmp_path, emulator, start_worker):
    worker = start_worker(emf_env(tmp_path, emulator))
    worker.wait_for_emf(1, timeout_s=10)
    for scenario, kind in BAD_ANSWERS.items():
        emulator.set_scenario(scenario, **({"delay_s": 2.0} if scenario == "slow" else {}))
        worker.wait_for(
            lambda: any(entry["kind"] == kind for entry in worker.logs("sample_failed")), timeout_s=5, what=f"{scenario} failure"
        )
    emulator.set_scenario("ok")
    seen = len(worker.stdout_lines)
    worker.wait_for(lambda: any(d.get("ClockSampleFailures") == 0 for d in worker.emf_lines()[seen:]), timeout_s=5,
                    what="recovery")
    code, _ = worker.terminate()
    assert code == 0
    failures = worker.logs("sample_failed")
    assert set(BAD_ANSWERS.values()) == {entry["kind"] for entry in failures}
    # One log line per failed sample, and each failed sample published as a failure.
    failed_lines = [d for d in worker.emf_lines() if d["ClockSampleFailures"] == 1]
    assert len(failed_lines) == len(failures)
    for document in failed_lines:
        validate_emf(document)
        assert "ClockErrorBound" not in document
        # The task is known from earlier samples, so the per-task set is still there.
        assert document["TaskID"] == "0123456789abcdef0123456789abcdef"
    assert failures[-1]["failures_total"] == len(failures)
    assert all(entry["level"] == "warning" and entry["message"] for entry in failures)


def _refusing_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again: connections are refused


@pytest.fixture
def silent_server():
    """Accepts connections and never answers: a metadata endpoint that hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


def test_unusable_metadata_uris_are_failures_not_crashes(tmp_path, start_worker, silent_server):
    cases = {
        "uri_unset": None,
        "uri_invalid": "file:///etc/passwd",
        "connection": f"http://127.0.0.1:{_refusing_port()}/v4/x",
        "timeout": f"http://127.0.0.1:{silent_server}/v4/x",
    }
    workers = {}
    for kind, uri in cases.items():
        env = base_env(tmp_path / kind, CLOCK_SINK="emf")
        (tmp_path / kind).mkdir()
        if uri is not None:
            env["ECS_CONTAINER_METADATA_URI_V4"] = uri
        workers[kind] = start_worker(env)
    for kind, worker in workers.items():
        lines = worker.wait_for_emf(2, timeout_s=10)
        code, took = worker.terminate()
        assert code == 0 and took < 5, kind
        failures = worker.logs("sample_failed")
        assert Counter(entry["kind"] for entry in failures) == Counter({kind: len(lines)}), kind
        for document in lines:
            validate_emf(document)
            assert document["ClockSampleFailures"] == 1
            # Nothing is known about the task: only the service-level directive.
            assert len(document["_aws"]["CloudWatchMetrics"]) == 1
        assert not any("Traceback" in line for line in worker.stderr_lines)


def test_a_slow_metadata_answer_does_not_shift_the_schedule(tmp_path, emulator, start_worker):
    # Each answer takes 0.4 s (under the 0.5 s read timeout): samples stay 1 s apart.
    emulator.set_scenario("slow", delay_s=0.4)
    worker = start_worker(emf_env(tmp_path, emulator))
    lines = worker.wait_for_emf(5, timeout_s=12)
    worker.terminate()
    stamps = [document["_aws"]["Timestamp"] for document in lines]
    assert all(d["ClockSampleFailures"] == 0 for d in lines)
    assert_on_one_second_grid(stamps)
