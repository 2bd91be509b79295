"""Judge a ClockBound segment the way `clockcore.verdict.judge` judges a TMDS reading.

The worker turns each reading into a segment record (`mapping`); an application that
reads the segment must reach the verdict the metadata path reaches for the same clock
state, with the same reasons and the same sentences. The rules, in order:

1. A record that must not be trusted at all gives `metadata_unavailable` alone, the
   segment's "no reading could be taken" (as `judge(None)` gives it alone, without
   looking at any bound):
   - a field the protocol does not allow (max drift of 10^9 ppb or more, a magic number
     that changed under the mapping), or clock disruption support on (a client would
     have to check a VMClock: Fargate has none, and this code cannot);
   - stored status Disrupted;
   - an as-of more than 1 µs ahead of this host's monotonic clock (another boot's segment);
   - void: CLOCK_MONOTONIC_COARSE has reached void-after, unless the reference is too old
     by rule 2, which then speaks instead. The mapping caps void-after at "as-of + max
     reference age", so a segment made from a stale reading is void from the start; the
     metadata path calls that reading `reference_too_old`, and so does this. A void
     segment whose reference is still young means the writer stopped updating it.
2. Otherwise the record's clock state, the same three checks `judge` makes, in its order:
   - `not_synchronized` when the stored status is FreeRunning (the worker read
     NOT_SYNCHRONIZED after a synchronized reading) or Unknown (it read NOT_SYNCHRONIZED
     and never a synchronized one, or a reading without a status): the metadata path
     calls both of those readings `not_synchronized`. The stored status is used, not a
     client's `now()` status, which turns Synchronized into FreeRunning 5 s after as-of
     (the ClockBound daemon's restart grace) however fresh the worker's writes are;
   - `bound_over_threshold` when the grown bound, bound + (now - as-of) x max drift,
     exceeds the threshold;
   - `reference_too_old` when the reference is older than the limit. The mapping moved
     as-of one second (TMDS stamps whole seconds) and one coarse-clock tick before the
     reference; the age counts from the reference again, (now - as-of) - that allowance,
     so it is the age the metadata path computes for the same reading.

Bounds are integers of nanoseconds: the growth term is rounded up (never below the
client's truncated one), and a bound is over a threshold of T ms when it exceeds
floor(T x 10^6) ns. Because every rule is a threshold on the monotonic clock, the
judgement also says until when it holds (`valid_until_ns`): the first instant the grown
bound could cross the threshold, the reference could become too old, or void-after comes,
for this record. A new record (a new generation) is judged afresh.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from clockcore.clockbound.mapping import REFERENCE_RESOLUTION_NS, coarse_resolution_ns
from clockcore.clockbound.reader import (
    CAUSALITY_BLUR_NS,
    MAX_DRIFT_PPB_LIMIT,
    ClockStatus,
    SegmentSnapshot,
)
from clockcore.verdict import Verdict, VerdictReason

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
# "Never changes for this record": beyond any CLOCK_MONOTONIC_COARSE reading.
FOREVER_NS = 2**63 - 1

SAFE = Verdict(True)


@dataclass(frozen=True)
class SegmentLimits:
    """The app's clock settings in the segment's units, computed once."""

    threshold_ns: int  # a grown bound above this is over the threshold
    max_reference_age_ns: int  # a reference older than this is too old
    threshold_ms: float
    max_reference_age_s: float
    # What the mapping moved as-of back from the reference: 1 s and one coarse-clock tick.
    reference_allowance_ns: int

    @classmethod
    def of(
        cls, *, threshold_ms: float, max_reference_age_s: float, reference_allowance_ns: int | None = None
    ) -> SegmentLimits:
        # Decimal(repr(x)): the number as written, so 0.3 ms is 300000 ns, not 299999.
        return cls(
            threshold_ns=math.floor(Decimal(repr(threshold_ms)) * NS_PER_MS),
            max_reference_age_ns=math.floor(Decimal(repr(max_reference_age_s)) * NS_PER_S),
            threshold_ms=threshold_ms,
            max_reference_age_s=max_reference_age_s,
            reference_allowance_ns=(
                REFERENCE_RESOLUTION_NS + coarse_resolution_ns()
                if reference_allowance_ns is None
                else reference_allowance_ns
            ),
        )


@dataclass(frozen=True)
class SegmentJudgement:
    """A segment record judged at one monotonic instant."""

    verdict: Verdict
    monotonic_ns: int  # the CLOCK_MONOTONIC_COARSE instant judged
    # The verdict (safe or not, and its reasons) is the same for this record at every
    # instant from monotonic_ns up to, not including, this one.
    valid_until_ns: int
    # The record can be shown as a reading (rule 2); False: the verdict is metadata_unavailable.
    trusted: bool
    effective_bound_ns: int  # bound grown from as-of to monotonic_ns
    reference_age_ns: int  # from the reference, the mapping's allowance taken back
    void: bool
    # Why the record is not trusted, in a word: void, disrupted, malformed, unsupported, causality.
    problem: str | None = None


def grown_bound_ns(bound_ns: int, max_drift_ppb: int, elapsed_ns: int) -> int:
    """bound + elapsed x max drift, in whole ns, the growth rounded up."""
    if elapsed_ns <= 0:
        return bound_ns
    return bound_ns + -(-elapsed_ns * max_drift_ppb // NS_PER_S)


def _untrusted(
    path: str,
    problem: str,
    detail: str,
    monotonic_ns: int,
    valid_until_ns: int,
    effective_ns: int,
    age_ns: int,
    void: bool,
) -> SegmentJudgement:
    verdict = Verdict(False, (VerdictReason.METADATA_UNAVAILABLE,), (f"ClockBound segment {path} {detail}",))
    return SegmentJudgement(verdict, monotonic_ns, valid_until_ns, False, effective_ns, age_ns, void, problem)


def judge_segment(
    snapshot: SegmentSnapshot, *, monotonic_ns: int, limits: SegmentLimits, path: str
) -> SegmentJudgement:
    """The verdict on a segment record at CLOCK_MONOTONIC_COARSE instant `monotonic_ns` (module doc)."""
    as_of_ns = snapshot.as_of.ns
    void_after_ns = snapshot.void_after.ns
    elapsed_ns = monotonic_ns - as_of_ns
    if elapsed_ns < -CAUSALITY_BLUR_NS:
        ahead = f"{-elapsed_ns / NS_PER_S:.3f} s"
        detail = f"has an as-of {ahead} ahead of this host's monotonic clock (a segment from another boot or host?)"
        # Time may cure it (or the next record): judged again at every instant.
        return _untrusted(path, "causality", detail, monotonic_ns, monotonic_ns, snapshot.bound_ns, 0, False)
    elapsed_ns = max(0, elapsed_ns)
    effective_ns = grown_bound_ns(snapshot.bound_ns, snapshot.max_drift_ppb, elapsed_ns)
    age_ns = max(0, elapsed_ns - limits.reference_allowance_ns)
    void = monotonic_ns >= void_after_ns

    # Rule 1: nothing in this record may be used. These hold as long as the record does.
    problem: tuple[str, str] | None = None
    if snapshot.max_drift_ppb >= MAX_DRIFT_PPB_LIMIT:
        problem = ("malformed", f"is malformed: a max drift of {snapshot.max_drift_ppb} ppb is not a clock's drift")
    elif not snapshot.magic_ok:
        problem = ("malformed", "is malformed: its magic number changed after it was opened")
    elif snapshot.disruption_support:
        problem = ("unsupported", "has clock disruption support on: it asks for a VMClock check this app cannot make")
    elif snapshot.status is ClockStatus.DISRUPTED:
        problem = ("disrupted", "has clock status Disrupted: the clock was disrupted and its bound must not be trusted")
    if problem is not None:
        return _untrusted(path, *problem, monotonic_ns, FOREVER_NS, effective_ns, age_ns, void)
    age_limit_at_ns = (
        as_of_ns + limits.reference_allowance_ns + limits.max_reference_age_ns + 1
    )  # first too-old instant
    too_old = age_ns > limits.max_reference_age_ns
    if void and not too_old:
        since = f"{(monotonic_ns - void_after_ns) / NS_PER_S:.1f} s"
        detail = f"is void since {since}: its writer stopped updating it (void-after passed)"
        # Until its reference turns too old, which rule 2 then reports.
        return _untrusted(path, "void", detail, monotonic_ns, age_limit_at_ns, effective_ns, age_ns, void)

    # Rule 2: the record's clock state, judged as `judge` judges a reading.
    reasons: list[VerdictReason] = []
    details: list[str] = []
    status = snapshot.status
    if status is ClockStatus.FREE_RUNNING:
        reasons.append(VerdictReason.NOT_SYNCHRONIZED)
        details.append(
            "clock synchronization status is NOT_SYNCHRONIZED (ClockBound segment status FreeRunning: "
            "the bound grows from the last synchronized reading)"
        )
    elif status is ClockStatus.UNKNOWN:
        reasons.append(VerdictReason.NOT_SYNCHRONIZED)
        details.append(
            "clock synchronization status is UNKNOWN (ClockBound segment status Unknown: not synchronized yet)"
        )
    over = effective_ns > limits.threshold_ns
    if over:
        reasons.append(VerdictReason.BOUND_OVER_THRESHOLD)
        details.append(
            f"effective clock error bound {effective_ns / NS_PER_MS:.3f} ms exceeds the "
            f"{limits.threshold_ms:g} ms threshold"
        )
    if too_old:
        reasons.append(VerdictReason.REFERENCE_TOO_OLD)
        details.append(f"clock reference is {age_ns / NS_PER_S:.0f} s old (limit {limits.max_reference_age_s:g} s)")

    # Until when all of that holds: the next threshold this record's state can cross.
    valid_until_ns = FOREVER_NS
    if not void:
        valid_until_ns = void_after_ns
    if not too_old:
        valid_until_ns = min(valid_until_ns, age_limit_at_ns)
    if not over and snapshot.max_drift_ppb > 0:
        # Still within the threshold while elapsed x drift <= headroom x 10^9 (growth rounded up).
        headroom_ns = limits.threshold_ns - snapshot.bound_ns
        valid_until_ns = min(valid_until_ns, as_of_ns + headroom_ns * NS_PER_S // snapshot.max_drift_ppb + 1)
    verdict = SAFE if not reasons else Verdict(False, tuple(reasons), tuple(details))
    return SegmentJudgement(verdict, monotonic_ns, valid_until_ns, True, effective_ns, age_ns, void)
