"""The API against the TMDS emulator: every verdict reason, the gate, the cache, bad input."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clockcore import contract


def set_scenario(emulator, scenario: str, **values: object) -> None:
    """Through the emulator's control API (Emulator.set_scenario cannot take bound_ms)."""
    answer = httpx.post(f"{emulator.base_url}/_emulator/scenario", json={"scenario": scenario, **values})
    assert answer.status_code == 200, answer.text


def wait_for_verdict(client, verdict: str, *, timeout_s: float = 5.0) -> None:
    """Poll /api/clock until the gate says `verdict` (the cache expires within one TTL)."""
    deadline = time.monotonic() + timeout_s
    while (seen := client.get("/api/clock").json()["verdict"]) != verdict:
        assert time.monotonic() < deadline, f"verdict still {seen} after {timeout_s} s"
        time.sleep(0.05)


def _ignore_errors(call) -> None:
    try:
        call()
    except Exception:  # noqa: BLE001 - the test only needs the request to be in flight
        pass


def test_ok_clock_is_safe_with_bounded_now(live_app, emulator):
    with live_app.client() as client:
        clock = client.get("/api/clock").json()
    assert clock["verdict"] == "SAFE" and clock["safe"] is True
    assert clock["reasons"] == [] and clock["error"] is None
    reading = clock["reading"]
    assert reading["bound_ms"] == pytest.approx(0.446931)
    assert reading["status"] == "SYNCHRONIZED"
    assert reading["task"]["task_id"] == "0123456789abcdef0123456789abcdef"
    bounded = clock["bounded_now"]
    assert bounded["earliest"] < bounded["latest"]
    assert clock["threshold_ms"] == contract.DEFAULT_THRESHOLD_MS
    assert clock["cache_ttl_s"] == contract.DEFAULT_CACHE_TTL_SECONDS


@pytest.mark.parametrize(
    ("scenario", "values", "reasons", "error_kind", "detail_fragment"),
    [
        ("high_bound", {}, ["bound_over_threshold"], None, "exceeds the 1 ms threshold"),
        ("unsynchronized", {"bound_ms": 0.3}, ["not_synchronized"], None, "NOT_SYNCHRONIZED"),
        ("stale_reference", {"stale_s": 30}, ["reference_too_old"], None, "limit 20 s"),
        ("http_500", {}, ["metadata_unavailable"], "http_status", "http_status: task metadata endpoint answered HTTP 500"),
        ("garbage", {}, ["metadata_unavailable"], "not_json", "not_json: task metadata answer is not JSON"),
        ("no_clock_drift", {}, ["metadata_unavailable"], "no_clock_drift", "no_clock_drift: task document has no ClockDrift"),
    ],
)
def test_each_verdict_reason(serve_app, emulator, scenario, values, reasons, error_kind, detail_fragment):
    # 30 s of growth at 15 ppm adds 0.45 ms: the stale case stays under the 1 ms threshold,
    # so each case has exactly one reason (at the default 50 ppm it would be 1.5 ms).
    app = serve_app(max_reference_age_s=20.0, max_drift_ppm=15.0)
    set_scenario(emulator, scenario, **values)
    with app.client() as client:
        clock = client.get("/api/clock").json()
        refused = client.post("/api/operations", json={"label": "transfer-1"})
        ready = client.get("/readyz")
    assert clock["verdict"] == "UNSAFE" and clock["reasons"] == reasons
    assert any(detail_fragment in detail for detail in clock["details"]), clock["details"]
    if error_kind is None:
        assert clock["reading"] is not None and clock["error"] is None
    else:
        assert clock["reading"] is None and clock["bounded_now"] is None
        assert clock["error"]["kind"] == error_kind
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["error"] == "clock_unsafe"
    assert refused.json()["reasons"] == reasons
    assert ready.status_code == 503 and ready.json()["reasons"] == reasons


def test_unreachable_metadata_endpoint_is_metadata_unavailable(serve_app, emulator):
    app = serve_app(metadata_uri="http://127.0.0.1:9/v4/nothing")
    with app.client() as client:
        clock = client.get("/api/clock").json()
    assert clock["reasons"] == ["metadata_unavailable"]
    assert clock["error"]["kind"] == "connection"


def test_no_metadata_uri_is_unsafe_but_alive(serve_app):
    app = serve_app(metadata_uri=None)
    with app.client() as client:
        assert client.get("/api/clock").json()["error"]["kind"] == "uri_unset"
        assert client.get("/healthz").json() == {"status": "ok"}


def test_gate_runs_when_safe_and_refuses_then_recovers(live_app, emulator):
    with live_app.client() as client:
        allowed = client.post("/api/operations", json={"label": "transfer-42"})
        assert allowed.status_code == 200
        body = allowed.json()
        assert body["label"] == "transfer-42"
        assert body["timestamp"] == body["stamped"]["latest"]
        assert body["stamped"]["bound_ms"] <= 1.0

        emulator.set_scenario("high_bound")
        # Once the cached SAFE sample has expired, the gate answers from the new state.
        wait_for_verdict(client, "UNSAFE")
        refused = client.post("/api/operations", json={"label": "transfer-43"})
        assert refused.status_code == 503
        assert "bound_over_threshold" in refused.json()["message"]

        emulator.set_scenario("ok")
        wait_for_verdict(client, "SAFE")
        assert client.post("/api/operations", json={"label": "transfer-44"}).status_code == 200
        assert client.get(contract.APP_STATS_PATH).json() == {"allowed": 2, "refused": 1}


def test_commit_waits_about_twice_the_bound(live_app):
    with live_app.client() as client:
        commit = client.post("/api/commit", json={"label": "order-7"})
    assert commit.status_code == 200
    body = commit.json()
    # Spanner's rule: visible only once every clock agrees the stamp is past, which takes
    # about 2 x epsilon from the stamp. waited_ms counts from the start of the wait, a
    # little after the stamp (more on a busy machine), so it may be a little less.
    assert body["visible_at"]["earliest"] > body["timestamp"]
    assert 0 < body["waited_ms"] <= 2 * body["bound_ms"] + 250


def test_commit_is_gated(live_app, emulator):
    emulator.set_scenario("unsynchronized")
    with live_app.client() as client:
        refused = client.post("/api/commit", json={"label": "order-8"})
        assert refused.status_code == 503
        assert "not_synchronized" in refused.json()["reasons"]
        assert client.get("/api/operations/stats").json() == {"allowed": 0, "refused": 1}


def test_healthz_never_depends_on_the_clock(live_app, emulator):
    emulator.set_scenario("http_500")
    with live_app.client() as client:
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200
    emulator.set_scenario("slow", delay_s=5)
    with live_app.client() as client:
        # A clock request starts a metadata fetch that hangs for 5 s; /healthz must not wait for it.
        asked = emulator.task_requests
        def ask_the_clock() -> None:
            # Until the cached outage expires, answers come from the cache; then one hangs.
            with live_app.client() as other:
                while emulator.task_requests == asked:
                    _ignore_errors(lambda: other.get("/api/clock", timeout=10))

        hanging = threading.Thread(target=ask_the_clock, daemon=True)
        hanging.start()
        deadline = time.monotonic() + 5
        while emulator.task_requests == asked:
            assert time.monotonic() < deadline, "the clock request never reached the metadata endpoint"
            time.sleep(0.02)
        started = time.monotonic()
        assert client.get("/healthz").status_code == 200
        assert time.monotonic() - started < 0.5
        assert hanging.is_alive(), "the metadata fetch was still in flight"


def test_readyz_is_200_when_safe(live_app):
    with live_app.client() as client:
        ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["verdict"] == "SAFE"


def test_history_records_one_entry_per_metadata_request(serve_app, emulator):
    app = serve_app(cache_ttl_s=0.2, history_size=3)
    with app.client() as client:
        for scenario in ("ok", "high_bound", "http_500", "ok"):
            emulator.set_scenario(scenario)
            time.sleep(0.25)
            client.get("/api/clock")
            client.get("/api/clock")  # within the TTL: no new entry
        history = client.get("/api/history").json()
        limited = client.get("/api/history", params={"limit": 1}).json()
    assert history["capacity"] == 3 and len(history["readings"]) == 3  # the ring dropped the oldest
    first, second, third = history["readings"]
    assert first["reasons"] == ["bound_over_threshold"] and first["effective_bound_ms"] > 5
    assert second["error_kind"] == "http_status" and second["effective_bound_ms"] is None
    assert third["safe"] is True and third["status"] == "SYNCHRONIZED"
    assert limited["readings"] == [third]
    assert emulator.task_requests == 4


def test_200_concurrent_requests_on_a_cold_cache_make_one_metadata_request(live_app, emulator):
    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(base_url=live_app.url, timeout=30, limits=limits) as client:
            return await asyncio.gather(*(client.get("/api/clock") for _ in range(200)))

    # Slow the endpoint down so every request arrives while the one fetch is in flight.
    emulator.set_scenario("slow", delay_s=0.5)
    responses = asyncio.run(burst())
    assert [response.status_code for response in responses] == [200] * 200
    assert emulator.task_requests == 1
    assert {response.json()["reading"]["sampled_at"] for response in responses} == {responses[0].json()["reading"]["sampled_at"]}


def test_metadata_requests_stay_at_one_per_ttl_under_load(serve_app, emulator):
    app = serve_app(cache_ttl_s=0.25)
    started = time.monotonic()
    with app.client() as client:
        requests = 0
        while time.monotonic() - started < 1.3:
            assert client.post("/api/operations", json={"label": "load"}).status_code == 200
            requests += 1
    elapsed = time.monotonic() - started
    assert requests > 50
    # One fetch per TTL at most, plus the first.
    assert emulator.task_requests <= elapsed / 0.25 + 1


def test_outage_is_cached_too(serve_app, emulator):
    emulator.set_scenario("http_500")
    app = serve_app()
    with app.client() as client:
        for _ in range(30):
            assert client.post("/api/operations", json={"label": "x"}).status_code == 503
    assert emulator.task_requests == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"content": b'{"label": "x"', "headers": {"Content-Type": "application/json"}}, "request body is not valid JSON"),
        ({"json": {}}, "body.label: Field required"),
        ({"json": {"label": ""}}, "body.label: String should have at least 1 character"),
        ({"json": {"label": "x" * 101}}, "body.label: String should have at most 100 characters"),
        ({"json": {"label": "a\nb"}}, "body.label: String should match pattern"),
        ({"json": {"label": 5}}, "body.label: Input should be a valid string"),
        ({"json": {"label": "x", "amount": 1}}, "body.amount: Extra inputs are not permitted"),
        ({"json": ["label"]}, "request body must be a JSON object sent as application/json"),
        ({"content": b"label=x", "headers": {"Content-Type": "text/plain"}}, "request body must be a JSON object"),
        ({}, "request body must be a JSON object"),
    ],
)
def test_bad_operation_bodies_get_422_with_a_clear_message(live_app, kwargs, message):
    with live_app.client() as client:
        answer = client.post("/api/operations", **kwargs)
        stats = client.get("/api/operations/stats").json()
    assert answer.status_code == 422
    assert answer.json()["error"] == "invalid_request"
    assert message in answer.json()["message"]
    assert stats == {"allowed": 0, "refused": 0}  # invalid requests are not operations


def test_bad_history_limit_is_422(live_app):
    with live_app.client() as client:
        answer = client.get("/api/history", params={"limit": "zero"})
        assert answer.status_code == 422 and "query.limit" in answer.json()["message"]
        # Spaces around the number: pydantic's lax integers strip them, the schema's
        # integer allows none (schemathesis found "3\r" accepted).
        for written in ("3\r", " 3", "3 ", "\t3\n"):
            answer = client.get("/api/history", params={"limit": written})
            assert answer.status_code == 422, written
            assert "without spaces around it" in answer.json()["message"], written
        for written in ("3", "1000.0"):  # integers as the schema counts them
            assert client.get("/api/history", params={"limit": written}).status_code == 200, written


def test_oversized_bodies_are_refused_with_413(live_app):
    big = b'{"label": "' + b"x" * 20_000 + b'"}'
    with live_app.client() as client:
        declared = client.post("/api/operations", content=big, headers={"Content-Type": "application/json"})
        chunked = client.post("/api/operations", content=iter([big[:10_000], big[10_000:]]), headers={"Content-Type": "application/json"})
        small_chunked = client.post("/api/operations", content=iter([b'{"label":', b' "ok"}']), headers={"Content-Type": "application/json"})
    for answer in (declared, chunked):
        assert answer.status_code == 413
        assert answer.json() == {"error": "body_too_large", "message": "request body is larger than the 16384-byte limit", "detail": None}
    assert small_chunked.status_code == 200


def test_unknown_paths_and_methods_are_json_4xx(live_app):
    with live_app.client() as client:
        missing = client.get("/api/nothing")
        wrong_method = client.get("/api/operations")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert wrong_method.status_code == 405 and wrong_method.json()["error"] == "method_not_allowed"


def test_local_and_bench_routes_are_absent_by_default(live_app):
    with live_app.client() as client:
        assert client.post("/api/local/scenario", json={"scenario": "ok"}).status_code == 404
        assert client.get("/api/local/emulator").status_code == 404
        assert client.post("/api/bench/operations-ungated", json={"label": "x"}).status_code == 404
        paths = client.get("/openapi.json").json()["paths"]
    assert not any(path.startswith(("/api/local", "/api/bench")) for path in paths)


@pytest.mark.parametrize("twin_after", [False, True])
def test_the_twin_is_routed_beside_the_gated_route(twin_after):
    from clock_app.app import create_app
    from clock_app.settings import load_settings

    app = create_app(load_settings({"CLOCK_APP_BENCH_ROUTES": "on", "CLOCK_APP_BENCH_TWIN_AFTER": "on" if twin_after else "off"}))
    paths = [getattr(route, "path", None) for route in app.router.routes[:3]]
    beside = ["/api/operations", "/api/bench/operations-ungated"]
    assert paths == ["/openapi.json", *(beside if twin_after else beside[::-1])]


def test_ungated_twin_runs_whatever_the_clock(serve_app, emulator):
    app = serve_app(bench_routes=True)
    emulator.set_scenario("http_500")
    with app.client() as client:
        answer = client.post("/api/bench/operations-ungated", json={"label": "bench"})
        assert answer.status_code == 200 and answer.json()["label"] == "bench"
        assert client.get("/api/operations/stats").json() == {"allowed": 0, "refused": 0}
        assert "/api/bench/operations-ungated" not in client.get("/openapi.json").json()["paths"]
    assert emulator.task_requests == 0


def test_local_mode_switches_the_emulator_scenario(local_app, emulator):
    with local_app.client() as client:
        state = client.get("/api/local/emulator").json()
        assert state["scenario"] == "ok" and "high_bound" in state["scenarios"]
        assert client.get("/api/clock").json()["verdict"] == "SAFE"
        switched = client.post("/api/local/scenario", json={"scenario": "high_bound"})
        assert switched.status_code == 200 and switched.json()["scenario"] == "high_bound"
        # The switch drops the cached sample: the next check sees the new scenario at once.
        assert client.get("/api/clock").json()["reasons"] == ["bound_over_threshold"]
        unknown = client.post("/api/local/scenario", json={"scenario": "meltdown"})
        assert unknown.status_code == 422 and "unknown scenario 'meltdown'" in unknown.json()["message"]
        malformed = client.post("/api/local/scenario", json={"scenario": "../reset"})
        assert malformed.status_code == 422
    assert emulator.task_requests == 2


def test_local_mode_reports_a_missing_emulator_as_502(serve_app):
    app = serve_app(emulator_url="http://127.0.0.1:9")
    with app.client() as client:
        answer = client.post("/api/local/scenario", json={"scenario": "ok"})
    assert answer.status_code == 502 and answer.json()["error"] == "emulator_unavailable"


def test_the_hot_answers_are_spelled_as_their_documented_models():
    """The gated route and its twin serialize plain dicts (no model per request), their
    instants spelled by iso_utc: the same bytes as the documented models, for a whole
    second, a label that needs escaping and the status as the plain str the stamp carries."""
    from datetime import datetime, timedelta, timezone

    from clock_app.isotime import iso_utc_pair, utc_us

    for now in (
        datetime(2026, 12, 1, 18, 0, 0, 123456, tzinfo=timezone.utc),
        datetime(2026, 12, 1, 18, 0, 1, tzinfo=timezone.utc),  # no fraction: no ".000000"
    ):
        earliest = now - timedelta(microseconds=447)
        for label in ("transfer-42", 'quote " backslash \\ é \u2028 \U0001f600'):
            assert_answers_match_models(label, utc_us(earliest), utc_us(now), 0.4471)
    assert iso_utc_pair(utc_us(earliest), utc_us(now))[1] == "2026-12-01T18:00:01Z"


@settings(max_examples=400, deadline=None)
@given(
    label=st.text(max_size=64),
    earliest_us=st.integers(min_value=0, max_value=2**41),
    width_us=st.integers(min_value=0, max_value=2_000_000),
    bound_ms=st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False),
)
def test_any_answer_is_spelled_as_its_documented_model(label, earliest_us, width_us, bound_ms):
    """orjson and the models agree byte for byte on any label (escapes, non-ASCII), any
    bound (shortest floats, exponents) and instants on either side of a second."""
    assert_answers_match_models(label, earliest_us, earliest_us + width_us, bound_ms)


def assert_answers_match_models(label: str, earliest_us: int, latest_us: int, bound_ms: float) -> None:
    from clock_app.isotime import iso_utc_pair, utc_from_us
    from clock_app.models import BoundedTimeModel, OperationResult, UngatedOperationResult, answer_json
    from clockcore import SyncStatus

    earliest, latest = iso_utc_pair(earliest_us, latest_us)
    stamped = {"earliest": earliest, "latest": latest, "status": "SYNCHRONIZED", "bound_ms": bound_ms}
    body = {"operation_id": "ab" * 16, "label": label, "timestamp": latest, "stamped": stamped}
    model = OperationResult(
        operation_id="ab" * 16,
        label=label,
        timestamp=utc_from_us(latest_us),
        stamped=BoundedTimeModel(
            earliest=utc_from_us(earliest_us),
            latest=utc_from_us(latest_us),
            status=SyncStatus.SYNCHRONIZED,
            bound_ms=bound_ms,
        ),
    )
    assert answer_json(body) == model.model_dump_json().encode()  # type: ignore[arg-type]
    twin = {"operation_id": "cd" * 16, "label": label, "timestamp": latest}
    twin_model = UngatedOperationResult(operation_id="cd" * 16, label=label, timestamp=utc_from_us(latest_us))
    assert answer_json(twin) == twin_model.model_dump_json().encode()  # type: ignore[arg-type]
