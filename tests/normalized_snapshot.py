"""The one syrupy extension every snapshot in the suite is taken with (tests/conftest.py
overrides the `snapshot` fixture with it), so no test has to remember to normalize.

CDK names each asset (an image build context, a Lambda bundle) by the SHA-256 of its
content: 64 lowercase hex digits in image URIs, S3 keys and asset parameters. They
change with every edit to a file inside the asset, which says nothing about the
infrastructure, so they are written as `<asset-hash>`. Nothing else is touched.
"""

from __future__ import annotations

import re
from typing import Any

from syrupy.extensions.amber import AmberSnapshotExtension

# Exactly 64 hex digits: a longer hex run is not an asset hash and stays as it is.
ASSET_HASH = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
ASSET_HASH_PLACEHOLDER = "<asset-hash>"


def normalize_asset_hashes(text: str) -> str:
    return ASSET_HASH.sub(ASSET_HASH_PLACEHOLDER, text)


class NormalizedAmberExtension(AmberSnapshotExtension):
    """Amber snapshots (`__snapshots__/<module>.ambr`) with asset hashes normalized.

    Applied to the serialized text, so it covers keys and values at any depth, and it
    runs on both sides of a comparison: what is written with --snapshot-update and what
    a test run compares with the stored file.
    """

    def serialize(self, data: Any, **kwargs: Any) -> str:
        return normalize_asset_hashes(super().serialize(data, **kwargs))
