"""Task documents shaped like AWS's "task metadata v4 examples for tasks on Fargate",
for the tests of every area that parses them (tests/ is on sys.path through the
rootdir conftest)."""

from __future__ import annotations

import copy
from typing import Any

_FARGATE_TASK: dict[str, Any] = {
    "Cluster": "arn:aws:ecs:us-west-2:111122223333:cluster/default",
    "TaskARN": "arn:aws:ecs:us-west-2:111122223333:task/default/e9028f8d5d8e4f258373e7b93ce9a3c3",
    "Family": "curltest",
    "ServiceName": "MyService",
    "Revision": "3",
    "DesiredStatus": "RUNNING",
    "KnownStatus": "RUNNING",
    "Limits": {"CPU": 0.25, "Memory": 512},
    "PullStartedAt": "2020-10-08T20:47:16.053330955Z",
    "PullStoppedAt": "2020-10-08T20:47:19.592684631Z",
    "AvailabilityZone": "us-west-2a",
    "Containers": [
        {
            "DockerId": "e9028f8d5d8e4f258373e7b93ce9a3c3-2495160603",
            "Name": "curl",
            "Image": "111122223333.dkr.ecr.us-west-2.amazonaws.com/curltest:latest",
            "Labels": {"com.amazonaws.ecs.task-definition-family": "curltest"},
            "Networks": [{"NetworkMode": "awsvpc", "IPv4Addresses": ["192.0.2.3"]}],
        }
    ],
    "LaunchType": "FARGATE",
    "ClockDrift": {
        "ClockErrorBound": 0.446931,
        "ReferenceTimestamp": "2023-07-21T16:09:17Z",
        "ClockSynchronizationStatus": "SYNCHRONIZED",
    },
    "EphemeralStorageMetrics": {"Utilized": 261, "Reserved": 20496},
}



def fargate_task_document(**changes: Any) -> dict[str, Any]:
    """A fresh copy of the example; a key given `...` is removed, any other value replaces it."""
    document = copy.deepcopy(_FARGATE_TASK)
    for key, value in changes.items():
        if value is ...:
            document.pop(key, None)
        else:
            document[key] = value
    return document
