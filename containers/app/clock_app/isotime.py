"""Instants as whole microseconds since the Unix epoch, and their RFC 3339 text.

The gated operation and its benchmark twin answer with timestamps per request. Making an
aware datetime per timestamp (about 0.19 µs) and having pydantic-core write it (about
0.23 µs more than a str) was most of what the gate's larger answer cost: the gate keeps
bounded time as integers (`clock_app.segment.Stamp`) and the answer spells them here,
from a cached "YYYY-MM-DDTHH:MM:SS" of the current second, in the exact text pydantic
gives the documented models' datetimes: six fraction digits, none at all on a whole
second, and "Z" (tests/app/test_isotime.py holds the two equal across datetime's range).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

US_PER_S = 1_000_000
_NAIVE_EPOCH = datetime(1970, 1, 1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)

# (the first microsecond of the last second asked for, its "YYYY-MM-DDTHH:MM:SS."):
# replaced whole, never mutated, so a reader on another thread sees a matching pair.
_last_second: tuple[int, str] = (0, "1970-01-01T00:00:00.")


def iso_utc(us: int) -> str:
    """RFC 3339 UTC text of `us` microseconds since the epoch, as pydantic writes that datetime.

    About 0.17 µs within the second last asked for (a subtraction, a range check, one
    %-format). Raises OverflowError outside datetime's years 1-9999, as making the
    datetime would.
    """
    global _last_second
    last = _last_second
    fraction = us - last[0]
    if not 0 < fraction < US_PER_S:
        if fraction:  # another second: its text once
            start = us - us % US_PER_S
            last = _last_second = (start, (_NAIVE_EPOCH + timedelta(microseconds=start)).isoformat() + ".")
            fraction = us - start
        if not fraction:
            return last[1][:-1] + "Z"  # a whole second: pydantic writes no fraction
    return "%s%06dZ" % (last[1], fraction)  # noqa: UP031 - 0.17 µs where the f-string's :06d takes 0.29


def iso_utc_pair(earliest_us: int, latest_us: int) -> tuple[str, str]:
    """`iso_utc` of both ends of a bounded time, in one call (the gated answer's hot path).

    The ends are a bound apart, well under a second: both usually fall in the second the
    cache holds, and then this is two %-formats.
    """
    last = _last_second
    earliest, latest = earliest_us - last[0], latest_us - last[0]
    if earliest > 0 and latest < US_PER_S:
        return "%s%06dZ" % (last[1], earliest), "%s%06dZ" % (last[1], latest)  # noqa: UP031 - see iso_utc
    return iso_utc(earliest_us), iso_utc(latest_us)


def utc_us(moment: datetime) -> int:
    """An aware datetime as whole microseconds since the epoch (exact)."""
    return (moment - _EPOCH) // _ONE_US


def utc_from_us(us: int) -> datetime:
    """Whole microseconds since the epoch as an aware UTC datetime (exact)."""
    return _EPOCH + timedelta(0, 0, us)  # positional: 0.28 µs, where microseconds=us takes 0.42
