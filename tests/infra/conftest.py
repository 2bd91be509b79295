"""Synthesized CDK apps, made once per configuration and shared by every infra test.

Synthesis costs seconds (jsii runs aws-cdk-lib in Node), so each configuration is built
once per session: the demo stack with the defaults from cdk.json, a variant with every
optional feature switched the other way, and the two consumer apps.
"""

from __future__ import annotations

import os

import pytest

from infra.synth import ROOT

# jsii runs aws-cdk-lib on `node` from PATH; `make test` puts the venv's Node 24 first,
# and this keeps a bare `.venv/bin/python -m pytest` off an older system Node too.
if (ROOT / ".venv" / "bin" / "node").exists():
    os.environ.setdefault("JSII_NODE", str(ROOT / ".venv" / "bin" / "node"))

from infra.synth import (
    VARIANT_CONTEXT,
    Synthesized,
    build_consumer_service,
    build_consumer_task_definition,
    synth_demo,
    synth_stack,
)


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The demo stack exactly as `make synth` builds it (cdk.json's defaults)."""
    return synth_demo(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="session")
def variant(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The demo stack with every optional feature flipped (VARIANT_CONTEXT)."""
    return synth_demo(tmp_path_factory.mktemp("variant"), **VARIANT_CONTEXT)


@pytest.fixture(scope="session")
def consumer_service(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synth_stack(tmp_path_factory.mktemp("consumer-service"), build_consumer_service)


@pytest.fixture(scope="session")
def consumer_task_definition(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synth_stack(tmp_path_factory.mktemp("consumer-task-definition"), build_consumer_task_definition)
