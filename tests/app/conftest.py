"""Fixtures for the app's tests: the app served by a real uvicorn on loopback, against the emulator."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import httpx
import pytest
import uvicorn

from clock_app.app import create_app
from clock_app.settings import AppSettings, load_settings
from emulator import Emulator


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class LiveApp:
    """The app served by uvicorn in a background thread."""

    settings: AppSettings
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, **kwargs)  # type: ignore[arg-type]

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve(settings: AppSettings) -> LiveApp:
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="clock-app", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the app did not start")
        time.sleep(0.02)
    return LiveApp(settings=settings, server=server, thread=thread)


def settings_for(emulator: Emulator, **overrides: object) -> AppSettings:
    base = load_settings({"ECS_CONTAINER_METADATA_URI_V4": emulator.metadata_uri, "CLOCK_APP_PORT": str(free_port())})
    return replace(base, **overrides)  # type: ignore[arg-type]


@pytest.fixture
def serve_app(emulator: Emulator) -> Iterator[Callable[..., LiveApp]]:
    """Start the app with settings overrides (e.g. cache_ttl_s=0.2); stopped after the test."""
    started: list[LiveApp] = []

    def start(**overrides: object) -> LiveApp:
        running = serve(settings_for(emulator, **overrides))
        started.append(running)
        return running

    try:
        yield start
    finally:
        for running in started:
            running.stop()


@pytest.fixture
def live_app(emulator: Emulator) -> Iterator[LiveApp]:
    """The app with default clock settings (TTL 1 s, threshold 1 ms) against a fresh emulator."""
    running = serve(settings_for(emulator))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def local_app(emulator: Emulator) -> Iterator[LiveApp]:
    """The app in local mode: the emulator's scenario can be switched through it."""
    running = serve(settings_for(emulator, emulator_url=emulator.base_url))
    try:
        yield running
    finally:
        running.stop()
