"""Judge a reading: may critical, time-stamped work run now?"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from clockcore.reading import ClockReading, SyncStatus


class VerdictReason(str, enum.Enum):
    BOUND_OVER_THRESHOLD = "bound_over_threshold"
    NOT_SYNCHRONIZED = "not_synchronized"
    REFERENCE_TOO_OLD = "reference_too_old"
    METADATA_UNAVAILABLE = "metadata_unavailable"


@dataclass(frozen=True)
class Verdict:
    safe: bool
    reasons: tuple[VerdictReason, ...] = field(default_factory=tuple)
    # A sentence per reason, for people (API bodies, the page, logs).
    details: tuple[str, ...] = field(default_factory=tuple)

    @property
    def label(self) -> str:
        return "SAFE" if self.safe else "UNSAFE"


def judge(
    reading: ClockReading | None,
    *,
    at: datetime,
    threshold_ms: float,
    max_reference_age_s: float,
    unavailable_detail: str = "no clock reading could be taken",
) -> Verdict:
    """SAFE only with a synchronized clock whose effective bound is within threshold."""
    if reading is None:
        return Verdict(False, (VerdictReason.METADATA_UNAVAILABLE,), (unavailable_detail,))
    reasons: list[VerdictReason] = []
    details: list[str] = []
    if reading.status is not SyncStatus.SYNCHRONIZED:
        reasons.append(VerdictReason.NOT_SYNCHRONIZED)
        details.append(f"clock synchronization status is {reading.status.value}")
    effective = reading.effective_bound_ms_at(at)
    if effective > threshold_ms:
        reasons.append(VerdictReason.BOUND_OVER_THRESHOLD)
        details.append(f"effective clock error bound {effective:.3f} ms exceeds the {threshold_ms:g} ms threshold")
    age = reading.reference_age_s_at(at)
    if age is not None and age > max_reference_age_s:
        reasons.append(VerdictReason.REFERENCE_TOO_OLD)
        details.append(f"clock reference is {age:.0f} s old (limit {max_reference_age_s:g} s)")
    return Verdict(not reasons, tuple(reasons), tuple(details))
