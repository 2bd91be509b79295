"""The demo stack's template, snapshotted with asset hashes normalized: the snapshot
changes when the infrastructure does, not when a Python file in an image does.

Update after an intended change: pytest tests/infra/test_cdk_snapshot.py --snapshot-update
"""

from __future__ import annotations

from infra.synth import HASH_PATTERN, Synthesized, normalize_hashes


def test_demo_template_matches_snapshot(demo: Synthesized, snapshot):
    normalized = normalize_hashes(demo.template_json)
    assert not HASH_PATTERN.search(str(normalized))
    assert normalized == snapshot
