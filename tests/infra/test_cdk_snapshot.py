"""The demo stack's whole template as one snapshot: a smoke test that catches any change
anywhere in the demo. What each construct promises is asserted, with small snapshots,
in test_construct_*.py.

Every snapshot goes through the `snapshot` fixture of tests/conftest.py, which writes
asset hashes as <asset-hash> (tests/normalized_snapshot.py): the snapshot changes when
the infrastructure does, not when a Python file in an image does. The other tests here
show that the normalization has something to do in the demo, that it hides hashes
only, and that the fixture every test gets applies it.

Update after an intended change: pytest tests/infra/test_cdk_snapshot.py --snapshot-update
"""

from __future__ import annotations

import copy
import hashlib
import json

from infra.synth import Synthesized
from normalized_snapshot import ASSET_HASH, ASSET_HASH_PLACEHOLDER, NormalizedAmberExtension


def test_demo_template_matches_snapshot(demo: Synthesized, snapshot):
    assert demo.template_json == snapshot


def test_the_snapshot_fixture_normalizes_asset_hashes(snapshot):
    assert snapshot.extension_class is NormalizedAmberExtension


def test_other_asset_hashes_give_the_same_snapshot(demo: Synthesized):
    raw = json.dumps(demo.template_json)
    hashes = set(ASSET_HASH.findall(raw))
    assert hashes, "the demo has image assets: without a hash in it this test would prove nothing"
    # What a one-line edit in an image's source does to the template: every hash changes.
    rehashed = json.loads(ASSET_HASH.sub(lambda match: hashlib.sha256(match.group().encode()).hexdigest(), raw))
    assert rehashed != demo.template_json

    extension = NormalizedAmberExtension()
    serialized = extension.serialize(demo.template_json)
    assert extension.serialize(rehashed) == serialized
    assert not ASSET_HASH.search(serialized)
    assert ASSET_HASH_PLACEHOLDER in serialized


def test_a_change_besides_a_hash_still_changes_the_snapshot(demo: Synthesized):
    changed = copy.deepcopy(demo.template_json)
    (bound_alarm,) = [
        resource["Properties"]
        for logical_id, resource in changed["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm" and "MonitoringBoundOverThreshold" in logical_id
    ]
    bound_alarm["EvaluationPeriods"] += 1

    extension = NormalizedAmberExtension()
    assert extension.serialize(changed) != extension.serialize(demo.template_json)


def test_only_whole_64_digit_hex_runs_are_asset_hashes():
    digest = "ab" * 32
    extension = NormalizedAmberExtension()
    serialized = extension.serialize({f"key-{digest}": [f"repo:{digest}", f"{digest}.zip", "c" * 65, "d" * 63]})
    assert digest not in serialized
    assert serialized.count(ASSET_HASH_PLACEHOLDER) == 3
    assert "c" * 65 in serialized and "d" * 63 in serialized
