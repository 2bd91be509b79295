"""Run a synthesized Fargate task definition's containers with podman, the way ECS runs them.

One podman pod is the task: its containers share one network namespace (awsvpc: the
worker reaches the app on 127.0.0.1:8080). Each container gets what its definition in
the template says: the image built from its asset, the Environment, a read-only root
file system, the task volumes at their mount points, the memory limit, the stop
timeout (ECS's default, 30 s, where the definition has none). The agent's own variables
are added as Fargate adds them, with ECS_CONTAINER_METADATA_URI_V4 pointing at the
emulator.

Network: the pod has a network namespace of its own (slirp4netns, as root too). Its
published ports listen on the host's 127.0.0.1 only, and `allow_host_loopback` lets the
containers reach the host's 127.0.0.1 at slirp4netns's gateway address: that is how the
emulator, which listens on the host's loopback, serves the task. Nothing listens on or
talks to any other host address.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from collected_output import CollectedOutput
from scripts.images import Builder

# slirp4netns maps this address inside the namespace to the host's 127.0.0.1.
HOST_LOOPBACK_FROM_POD = "10.0.2.2"
ECS_DEFAULT_STOP_TIMEOUT_S = 30  # ECS_CONTAINER_STOP_TIMEOUT's default (Fargate uses it)
ASSET_HASH = re.compile(r"[0-9a-f]{64}")


def asset_hash_of(definition: dict[str, Any]) -> str:
    """The image asset a container definition uses: the tag in its (Fn::Sub) ECR image URI."""
    found = ASSET_HASH.findall(json.dumps(definition["Image"]))
    assert len(found) == 1, f"{definition['Name']}: expected one asset hash in {definition['Image']}"
    return found[0]


def environment_of(definition: dict[str, Any]) -> dict[str, str]:
    return {entry["Name"]: entry["Value"] for entry in definition.get("Environment", [])}


def stop_timeout_of(definition: dict[str, Any]) -> int:
    return int(definition.get("StopTimeout", ECS_DEFAULT_STOP_TIMEOUT_S))


class LogFollower:
    """`podman logs --follow` of one container: stdout and stderr lines as they come."""

    def __init__(self, podman: Builder, container: str) -> None:
        self.process = subprocess.Popen(
            podman.command("logs", "--follow", container), env=podman.env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.output = CollectedOutput(self.process)

    def lines(self, stream: str = "stdout") -> list[str]:
        with self.output.lock:
            return list(self.output.stdout if stream == "stdout" else self.output.stderr)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.output.join(5)


@dataclass
class StoppedContainer:
    name: str
    exit_code: int
    seconds: float  # from the stop request to the container's exit
    stop_timeout_s: int


@dataclass
class FargateTaskPod:
    """The task definition `task_definition` (template Properties) as one podman pod."""

    podman: Builder
    task_definition: dict[str, Any]
    images: dict[str, str]  # asset hash -> built image tag
    metadata_uri: str  # the emulator, as the host reaches it (http://127.0.0.1:PORT/...)
    region: str
    host_ports: dict[int, int]  # container port -> host port on 127.0.0.1
    overrides: dict[str, dict[str, str]] = field(default_factory=dict)  # container name -> env overrides
    name: str = field(default_factory=lambda: f"clock-task-{uuid.uuid4().hex[:8]}")
    logs: dict[str, LogFollower] = field(default_factory=dict)
    _volumes: list[str] = field(default_factory=list)
    became_healthy: dict[str, float] = field(default_factory=dict)  # container -> monotonic time
    _started: bool = False

    # ------------------------------------------------------------ definitions
    @property
    def definitions(self) -> list[dict[str, Any]]:
        return list(self.task_definition["ContainerDefinitions"])

    def definition(self, name: str) -> dict[str, Any]:
        for definition in self.definitions:
            if definition["Name"] == name:
                return definition
        raise AssertionError(f"no container {name!r} in the task definition")

    def container(self, name: str) -> str:
        """The podman container name of the task definition's container `name`."""
        return f"{self.name}-{name}"

    def agent_environment(self) -> dict[str, str]:
        """What Fargate's agent adds to every container's environment."""
        uri = self.metadata_uri.replace("127.0.0.1", HOST_LOOPBACK_FROM_POD, 1)
        return {"ECS_CONTAINER_METADATA_URI_V4": uri, "AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region,
                "AWS_EXECUTION_ENV": "AWS_ECS_FARGATE"}

    def environment(self, definition: dict[str, Any]) -> dict[str, str]:
        overrides = self.overrides.get(definition["Name"], {})
        unknown = set(overrides) - set(environment_of(definition))
        assert not unknown, f"overrides only change what the template sets; {sorted(unknown)} are not in it"
        return {**environment_of(definition), **overrides, **self.agent_environment()}

    def run_arguments(self, definition: dict[str, Any]) -> list[str]:
        arguments = ["run", "--detach", "--pod", self.name, "--name", self.container(definition["Name"]),
                     "--stop-timeout", str(stop_timeout_of(definition))]
        if definition.get("ReadonlyRootFilesystem"):
            # Only the task volumes are writable, as on Fargate (no tmpfs added by podman).
            arguments += ["--read-only", "--read-only-tmpfs=false"]
        if definition.get("User"):
            arguments += ["--user", str(definition["User"])]
        if definition.get("Memory"):
            arguments += ["--memory", f"{int(definition['Memory'])}m"]
        if definition.get("MemoryReservation"):
            arguments += ["--memory-reservation", f"{int(definition['MemoryReservation'])}m"]
        for mount in definition.get("MountPoints", []):
            mode = "ro" if mount.get("ReadOnly") else "rw"
            arguments += ["--volume", f"{self.name}-{mount['SourceVolume']}:{mount['ContainerPath']}:{mode}"]
        for key, value in self.environment(definition).items():
            arguments += ["--env", f"{key}={value}"]
        arguments.append(self.images[asset_hash_of(definition)])
        if definition.get("Command"):
            arguments += list(definition["Command"])
        return arguments

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        published = [argument for container_port, host_port in self.host_ports.items()
                     for argument in ("--publish", f"127.0.0.1:{host_port}:{container_port}")]
        self.podman.run("pod", "create", "--name", self.name,
                        "--network", "slirp4netns:allow_host_loopback=true,port_handler=slirp4netns", *published)
        self._started = True
        for volume in self.task_definition.get("Volumes", []):
            # A volume without a host path: task storage, fresh for each task.
            volume_name = f"{self.name}-{volume['Name']}"
            self.podman.run("volume", "create", volume_name)
            self._volumes.append(volume_name)
        for definition in self.start_order():
            for dependency in definition.get("DependsOn", []):
                self.wait_for_condition(dependency["ContainerName"], dependency["Condition"])
            self.podman.run(*self.run_arguments(definition))
            self.logs[definition["Name"]] = LogFollower(self.podman, self.container(definition["Name"]))

    def start_order(self) -> list[dict[str, Any]]:
        """Containers after those they depend on (ECS resolves `DependsOn` the same way)."""
        ordered: list[dict[str, Any]] = []
        pending = self.definitions
        while pending:
            ready = [d for d in pending if all(dep["ContainerName"] in {o["Name"] for o in ordered}
                                               for dep in d.get("DependsOn", []))]
            assert ready, f"circular DependsOn among {[d['Name'] for d in pending]}"
            ordered.extend(ready)
            pending = [d for d in pending if d not in ready]
        return ordered

    def wait_for_condition(self, name: str, condition: str) -> None:
        """Hold a dependent container back as ECS does, up to the dependency's StartTimeout."""
        assert condition in ("START", "HEALTHY"), f"condition {condition} is not modelled here"
        if condition == "START":
            return
        timeout_s = float(self.definition(name).get("StartTimeout", 120))
        last: list[subprocess.CompletedProcess] = []

        def healthy() -> bool:
            last[:] = [self.healthcheck(name)]
            return last[0].returncode == 0

        try:
            wait_until(healthy, timeout_s=timeout_s, what=f"{name} HEALTHY (its StartTimeout)", every_s=0.5)
        except AssertionError as error:
            follower = self.logs.get(name)
            logs = "\n".join(follower.lines("stderr")[-15:]) if follower else ""
            check = (last[0].stdout + last[0].stderr).strip() if last else ""
            raise AssertionError(f"{error}; last health check: {check}\n{name} stderr:\n{logs}") from None
        self.became_healthy[name] = time.monotonic()

    def inspect(self, name: str, template: str) -> str:
        return self.podman.run("container", "inspect", "--format", template, self.container(name)).stdout.strip()

    def running(self, name: str) -> bool:
        return self.inspect(name, "{{.State.Running}}") == "true"

    def exec(self, name: str, *command: str) -> subprocess.CompletedProcess:
        return self.podman.run("exec", self.container(name), *command, check=False, timeout=60)

    def healthcheck(self, name: str) -> subprocess.CompletedProcess:
        """The image's HEALTHCHECK, run once now (`podman healthcheck run`)."""
        return self.podman.run("healthcheck", "run", self.container(name), check=False, timeout=60)

    def stop(self) -> dict[str, StoppedContainer]:
        """`podman pod stop`: SIGTERM to every container, SIGKILL after each one's own stop timeout."""
        asked = time.time()
        self.podman.run("pod", "stop", self.name, timeout=max(stop_timeout_of(d) for d in self.definitions) + 60)
        stopped = {}
        for definition in self.definitions:
            name = definition["Name"]
            finished_ns = int(self.inspect(name, "{{.State.FinishedAt.UnixNano}}"))
            stopped[name] = StoppedContainer(
                name=name,
                exit_code=int(self.inspect(name, "{{.State.ExitCode}}")),
                seconds=finished_ns / 1e9 - asked,
                stop_timeout_s=stop_timeout_of(definition),
            )
        for follower in self.logs.values():
            follower.process.wait(timeout=30)  # `logs --follow` ends with its container
        return stopped

    def remove(self) -> None:
        for follower in self.logs.values():
            follower.close()
        if self._started:
            self.podman.run("pod", "rm", "--force", self.name, check=False, timeout=120)
        for volume in self._volumes:
            self.podman.run("volume", "rm", "--force", volume, check=False, timeout=60)


def wait_until(predicate: Callable[[], Any], *, timeout_s: float, what: str, every_s: float = 0.1) -> Any:
    """Poll `predicate` until it returns something truthy, or fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(every_s)
