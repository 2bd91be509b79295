"""Fixtures every test area shares: the TMDS emulator, a moto CloudWatch server, and the
`snapshot` fixture every snapshot is taken with.

The servers listen on 127.0.0.1 on free ports; nothing here reaches beyond loopback.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from emulator import Emulator
from normalized_snapshot import NormalizedAmberExtension

FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@pytest.fixture
def snapshot(snapshot):
    """syrupy's `snapshot`, with asset hashes normalized (normalized_snapshot.py) for every
    test that takes one: a snapshot changes when the output does, not when an image file does."""
    return snapshot.use_extension(NormalizedAmberExtension)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A fresh task-metadata emulator in scenario "ok"."""
    with Emulator() as running:
        yield running


@dataclass
class MotoCloudWatch:
    """A real moto server (in this process, so its state outlives a restart)."""

    port: int
    server: object

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """Environment for a process that should talk to this server."""
        return {**FAKE_AWS_ENV, "AWS_ENDPOINT_URL": self.endpoint_url}

    def client(self):
        import boto3

        return boto3.client(
            "cloudwatch",
            endpoint_url=self.endpoint_url,
            region_name=FAKE_AWS_ENV["AWS_REGION"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def reset(self) -> None:
        import urllib.request

        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST"), timeout=5)


@pytest.fixture(scope="session")
def moto_cloudwatch() -> Iterator[MotoCloudWatch]:
    for key, value in FAKE_AWS_ENV.items():
        os.environ.setdefault(key, value)
    moto = MotoCloudWatch(port=free_port(), server=None)
    moto.start()
    try:
        yield moto
    finally:
        moto.stop()


@pytest.fixture
def cloudwatch(moto_cloudwatch: MotoCloudWatch) -> MotoCloudWatch:
    """The session's moto server, emptied for this test."""
    moto_cloudwatch.reset()
    return moto_cloudwatch
