"""schemathesis against the app's own OpenAPI schema: whatever it generates, the app
answers as documented, and never with a 5xx other than the documented 503 refusal.

Run with a SAFE clock (operations run) and with the metadata endpoint down (every gated
route refuses), so both sides of the gate meet generated input; and with the ClockBound
segment as the source, live and broken, whose answers carry the segment's fields.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from clock_app.app import create_app
from clock_app.settings import load_settings


def _schema(emulator, scenario: str, **env: str):
    emulator.set_scenario(scenario)
    app = create_app(load_settings({"ECS_CONTAINER_METADATA_URI_V4": emulator.metadata_uri, **env}))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.fixture
def safe_clock_schema(emulator):
    return _schema(emulator, "ok")


@pytest.fixture
def metadata_down_schema(emulator):
    return _schema(emulator, "http_500")


@pytest.fixture
def segment_schema(emulator, tmp_path):
    from segment_feed import SegmentFeed

    feed = SegmentFeed(tmp_path / "shm0", emulator.metadata_uri, interval_s=60)
    feed.sample()
    try:
        yield _schema(emulator, "ok", CLOCK_CLOCKBOUND_SHM=str(tmp_path / "shm0"))
    finally:
        feed.close()


@pytest.fixture
def broken_segment_schema(emulator, tmp_path):
    (tmp_path / "shm0").write_bytes(b"not a segment" * 10)
    return _schema(emulator, "ok", CLOCK_CLOCKBOUND_SHM=str(tmp_path / "shm0"))


def _only_documented_server_errors(case, response) -> None:
    if response.status_code >= 500:
        documented = case.operation.definition.raw.get("responses", {})
        assert response.status_code == 503 and "503" in documented, (
            f"{case.operation.label} answered {response.status_code} (documented: {sorted(documented)}): {response.text[:300]}"
        )


# Few examples per operation: the routes are small and the suite shares two cores.
FAST = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))

safe_clock = schemathesis.pytest.from_fixture("safe_clock_schema")
metadata_down = schemathesis.pytest.from_fixture("metadata_down_schema")
segment = schemathesis.pytest.from_fixture("segment_schema")
broken_segment = schemathesis.pytest.from_fixture("broken_segment_schema")


@safe_clock.parametrize()
@FAST
def test_api_with_a_safe_clock(case):
    response = case.call_and_validate(excluded_checks=[not_a_server_error])
    _only_documented_server_errors(case, response)


@metadata_down.parametrize()
@FAST
def test_api_with_the_metadata_endpoint_down(case):
    response = case.call_and_validate(excluded_checks=[not_a_server_error])
    _only_documented_server_errors(case, response)


@segment.parametrize()
@FAST
def test_api_with_the_segment_as_the_source(case):
    response = case.call_and_validate(excluded_checks=[not_a_server_error])
    _only_documented_server_errors(case, response)


@broken_segment.parametrize()
@FAST
def test_api_with_a_broken_segment(case):
    response = case.call_and_validate(excluded_checks=[not_a_server_error])
    _only_documented_server_errors(case, response)
