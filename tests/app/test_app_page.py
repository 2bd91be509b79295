"""The page at `/`: served from the package, nothing from elsewhere, and alive in a real browser."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
STATIC = REPO / "containers" / "app" / "clock_app" / "static"
# Only `make screenshot` refreshes the README's picture; a test run writes to its temp folder.
SCREENSHOT_ENV = "CLOCK_SCREENSHOT"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]


def test_page_and_assets_are_served_by_the_app(live_app):
    with live_app.client() as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        referenced = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        for url in referenced:
            if url.startswith("/static/"):
                assert client.get(url).status_code == 200, url
        assert client.get("/static/../settings.py").status_code == 404
        assert client.get("/static/index.css").status_code == 404


def test_no_asset_reaches_beyond_the_app():
    for path in STATIC.iterdir():
        text = path.read_text()
        # Only the SVG namespace URI may look like a URL; it is never fetched.
        external = [url for url in re.findall(r"https?://[^\s\"')]+", text) if url != "http://www.w3.org/2000/svg"]
        assert external == [], f"{path.name} refers to {external}"
        assert "//cdn" not in text and "@import" not in text


def _browser_or_skip():
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        if os.environ.get("CI"):
            pytest.fail("chromium is missing; in CI the browser test must run (make system-packages installs it)")
        pytest.skip("chromium is not installed (make system-packages installs it)")
    from playwright.sync_api import sync_playwright

    return sync_playwright


@pytest.mark.browser
def _wait_for_history(app_url: str, entries: int, *, timeout_s: float = 15.0) -> None:
    """Until the app's history (what the chart draws) holds `entries` samples."""
    deadline = time.monotonic() + timeout_s
    while len(httpx.get(f"{app_url}/api/history", timeout=5).json()["readings"]) < entries:
        assert time.monotonic() < deadline, f"fewer than {entries} samples after {timeout_s} s"
        time.sleep(0.1)


def test_page_shows_the_gate_closing_and_opening_in_chromium(local_app, emulator, tmp_path):
    sync_playwright = _browser_or_skip()
    screenshot = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "screenshot.png")
    problems: list[str] = []
    foreign_requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860}, device_scale_factor=1)
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("request", lambda request: None if request.url.startswith(local_app.url) else foreign_requests.append(request.url))
            page.goto(local_app.url + "/")
            page.wait_for_selector("#verdict[data-verdict=SAFE]", timeout=10_000)
            assert page.text_content("#sync") == "SYNCHRONIZED"
            # Which source answered: no segment is configured here, so the metadata endpoint.
            assert page.text_content("#source-pill") == "metadata endpoint"
            assert page.text_content("#source") == "answered by task metadata endpoint"
            # Local mode: the scenario control is there, one button per emulator scenario.
            page.wait_for_selector("#scenario-card:not([hidden]) button[data-scenario=high_bound]")
            page.click("#run-op")
            page.wait_for_selector("#op-result.ok")
            _wait_for_history(local_app.url, 4)  # a few samples on the chart

            # The emulator switches behind the page's back: the page sees it by polling.
            emulator.set_scenario("high_bound")
            page.wait_for_selector("#verdict[data-verdict=UNSAFE]", timeout=5_000)
            assert "bound_over_threshold" in page.text_content("#reasons")
            page.click("#run-op")
            page.wait_for_selector("#op-result.bad")
            assert "Refused (503): bound_over_threshold" in page.text_content("#op-result")
            page.wait_for_function("document.getElementById('refused').textContent === '1'", timeout=5_000)

            # Back to ok through the page's own control, and the gate opens again.
            page.click("button[data-scenario=ok]")
            page.wait_for_selector("#verdict[data-verdict=SAFE]", timeout=5_000)
            page.click("#run-commit")
            page.wait_for_selector("#op-result.ok")
            assert "Committed at" in page.text_content("#op-result")
            samples = len(httpx.get(f"{local_app.url}/api/history", timeout=5).json()["readings"])

            # For the README: the gate closed, the bound over the threshold on the chart.
            page.click("button[data-scenario=high_bound]")
            page.wait_for_selector("#verdict[data-verdict=UNSAFE]", timeout=5_000)
            page.click("#run-op")
            page.wait_for_selector("#op-result.bad")
            _wait_for_history(local_app.url, samples + 3)  # the high bound drawn over a few samples
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    # Chromium logs every non-2xx fetch; the refusals above are the expected 503s.
    assert [problem for problem in problems if "status of 503" not in problem] == [], problems
    assert foreign_requests == [], foreign_requests
    assert screenshot.stat().st_size > 10_000


@pytest.mark.browser
def test_page_names_the_clockbound_segment_when_it_answers(serve_app, emulator, tmp_path):
    from segment_feed import SegmentFeed

    sync_playwright = _browser_or_skip()
    shm = tmp_path / "shm0"
    feed = SegmentFeed(shm, emulator.metadata_uri, interval_s=60)
    problems: list[str] = []
    try:
        feed.sample()
        app = serve_app(clockbound_shm=str(shm))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 860})
                page.on("pageerror", lambda error: problems.append(str(error)))
                page.goto(app.url + "/")
                page.wait_for_selector("#source-pill[data-source=clockbound]", timeout=10_000)
                page.wait_for_selector("#verdict[data-verdict=SAFE]", timeout=5_000)
                assert page.text_content("#source-pill") == "ClockBound segment"
                source = page.text_content("#source") or ""
                assert source.startswith(f"answered by ClockBound segment {shm} · generation 2 · stored status Synchronized")
                assert page.text_content("#task") == "the ClockBound segment carries no task identity"
                # The worker writes a large bound: the page follows the segment on its next poll.
                emulator.set_scenario("high_bound")
                feed.sample()
                page.wait_for_selector("#verdict[data-verdict=UNSAFE]", timeout=5_000)
                assert "bound_over_threshold" in page.text_content("#reasons")
                assert "generation 4" in (page.text_content("#source") or "")
            finally:
                browser.close()
    finally:
        feed.close()
    assert problems == []
