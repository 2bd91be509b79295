"""The answers' instants: iso_utc spells exactly what pydantic writes for the same datetime."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic_core import to_json

from clock_app.isotime import iso_utc, iso_utc_pair, utc_from_us, utc_us

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FIRST_US = utc_us(datetime(1, 1, 1, tzinfo=UTC))
LAST_US = utc_us(datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))
TODAY_US = utc_us(datetime(2026, 12, 1, tzinfo=UTC))


def pydantic_text(us: int) -> str:
    return to_json(EPOCH + timedelta(microseconds=us)).decode().strip('"')


@settings(max_examples=3000, deadline=None)
@given(us=st.integers(min_value=FIRST_US, max_value=LAST_US))
def test_any_instant_is_spelled_as_pydantic_spells_its_datetime(us):
    assert iso_utc(us) == pydantic_text(us)
    assert utc_us(utc_from_us(us)) == us


@settings(max_examples=3000, deadline=None)
@given(
    second=st.integers(min_value=TODAY_US // 1_000_000 - 5, max_value=TODAY_US // 1_000_000 + 5),
    fraction=st.one_of(st.sampled_from([0, 1, 999_999, 500_000, 100]), st.integers(min_value=0, max_value=999_999)),
)
def test_neighbouring_instants_share_the_cached_second_correctly(second, fraction):
    """Around a second's edges, where the cache of the last second is used or replaced:
    whole seconds carry no fraction, the others six digits."""
    us = second * 1_000_000 + fraction
    assert iso_utc(us) == pydantic_text(us)
    assert iso_utc(us - 1) == pydantic_text(us - 1)
    assert iso_utc(us) == pydantic_text(us)


def test_examples_a_reader_can_check():
    assert iso_utc(0) == "1970-01-01T00:00:00Z"
    assert iso_utc(1) == "1970-01-01T00:00:00.000001Z"
    assert iso_utc(-1) == "1969-12-31T23:59:59.999999Z"
    assert iso_utc(1_796_164_507_493_839) == "2026-12-01T22:35:07.493839Z"
    assert iso_utc(1_796_164_507_000_000) == "2026-12-01T22:35:07Z"


def test_beyond_datetimes_years_it_raises_as_making_the_datetime_would():
    for us in (LAST_US + 1, FIRST_US - 1):
        with pytest.raises(OverflowError):
            iso_utc(us)
        with pytest.raises(OverflowError):
            utc_from_us(us)
    assert iso_utc(TODAY_US) == "2026-12-01T00:00:00Z"  # a failure leaves the cache usable


def test_threads_spelling_different_seconds_never_mix_a_second_with_anothers_text():
    """The cache is one (second, text) tuple replaced whole: threads racing over it may
    recompute, but never pair one second's fraction with another's text."""
    failures: list[str] = []
    seconds = [TODAY_US + k * 1_000_000 for k in range(4)]

    def spell(offset: int) -> None:
        for round_ in range(4000):
            us = seconds[(round_ + offset) % len(seconds)] + round_
            if iso_utc(us) != pydantic_text(us):
                failures.append(f"{us}: {iso_utc(us)}")

    threads = [threading.Thread(target=spell, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


@settings(max_examples=3000, deadline=None)
@given(
    earliest_us=st.integers(min_value=TODAY_US - 3_000_000, max_value=TODAY_US + 3_000_000),
    width_us=st.one_of(st.integers(min_value=0, max_value=2_000), st.integers(min_value=0, max_value=3_000_000)),
)
def test_a_pair_is_spelled_as_each_end_alone(earliest_us, width_us):
    """Both ends of a bounded time in one call: inside the cached second, across a second's
    edge, on a whole second, and with the cache holding another second."""
    latest_us = earliest_us + width_us
    assert iso_utc_pair(earliest_us, latest_us) == (pydantic_text(earliest_us), pydantic_text(latest_us))
    iso_utc(latest_us)  # the cache now holds the latest end's second
    assert iso_utc_pair(earliest_us, latest_us) == (pydantic_text(earliest_us), pydantic_text(latest_us))
