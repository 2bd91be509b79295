"""Property tests of the segment encoding: writer -> file -> independent reader.

Any record the protocol can carry comes back field for field; any header that is not a
v2 segment's is refused by both sides with an error naming what is wrong; the
generation always publishes an even, non-zero value and wraps 65534 -> 2.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from clockbound_segments import MAGIC, segment_bytes
from clockcore.clockbound import ClockBoundError, ClockBoundReader, ClockBoundWriter, SegmentRecord, SegmentStatus

I64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)

records = st.builds(
    SegmentRecord,
    as_of_ns=I64,
    void_after_ns=I64,
    bound_ns=st.integers(min_value=0, max_value=2**63 - 1),
    max_drift_ppb=st.integers(min_value=0, max_value=999_999_999),
    status=st.sampled_from(SegmentStatus),
    disruption_marker=st.integers(min_value=0, max_value=2**64 - 1),
    disruption_support=st.booleans(),
)


@contextmanager
def segment_path() -> Iterator[Path]:
    # Not tmp_path: hypothesis runs many examples in one test call.
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder) / "shm0"


@settings(max_examples=150, deadline=None)
@given(written=st.lists(records, min_size=1, max_size=4))
def test_any_record_round_trips_through_the_file(written: list[SegmentRecord]):
    with segment_path() as path, ClockBoundWriter(path) as writer:
        for record in written:
            generation = writer.write(record)
        snapshot = ClockBoundReader(path).snapshot()
    last = written[-1]
    assert snapshot.magic_ok and (snapshot.segment_size, snapshot.version) == (80, 2)
    assert snapshot.generation == generation == 2 * len(written)
    assert (snapshot.as_of.ns, snapshot.void_after.ns) == (last.as_of_ns, last.void_after_ns)
    assert 0 <= snapshot.as_of.nanoseconds < 1_000_000_000 and 0 <= snapshot.void_after.nanoseconds < 1_000_000_000
    assert (snapshot.bound_ns, snapshot.max_drift_ppb, snapshot.disruption_marker) == (
        last.bound_ns, last.max_drift_ppb, last.disruption_marker
    )
    # Compared by name: the reader's enum is its own, so a swapped value would show here.
    assert snapshot.status.name == last.status.name
    assert snapshot.disruption_support is last.disruption_support


# A header with exactly one thing wrong, and the error kind each side must give.
wrong_headers = st.one_of(
    st.binary(min_size=8, max_size=8).filter(lambda magic: magic != MAGIC).map(
        lambda magic: ({"magic": magic}, "bad_magic", "foreign")
    ),
    st.integers(min_value=0, max_value=65_535).filter(lambda version: version != 2).map(
        lambda version: ({"version": version}, "not_initialized" if version == 0 else "bad_version", "bad_version")
    ),
    st.integers(min_value=0, max_value=2**32 - 1).filter(lambda size: size != 80).map(
        lambda size: ({"segment_size": size}, "bad_size", "bad_size")
    ),
)


@settings(max_examples=200, deadline=None)
@given(case=wrong_headers)
def test_a_wrong_magic_version_or_size_is_refused_by_reader_and_writer(case: tuple[dict[str, object], str, str]):
    fields, reader_kind, writer_kind = case
    content = segment_bytes(**fields)  # type: ignore[arg-type]
    with segment_path() as path:
        path.write_bytes(content)
        try:
            ClockBoundReader(path)
        except ClockBoundError as error:
            assert error.kind == reader_kind, error
            assert str(path) in str(error)
        else:
            raise AssertionError(f"reader accepted {fields}")
        try:
            ClockBoundWriter(path)
        except ClockBoundError as error:
            assert error.kind == writer_kind, error
            assert str(path) in str(error)
        else:
            raise AssertionError(f"writer accepted {fields}")
        assert path.read_bytes() == content, "a refused file is left as it was"


@settings(max_examples=200, deadline=None)
@given(start=st.integers(min_value=0, max_value=65_535), writes=st.integers(min_value=1, max_value=4))
def test_the_published_generation_is_even_never_zero_and_wraps_to_two(start: int, writes: int):
    with segment_path() as path:
        path.write_bytes(segment_bytes(generation=start))
        with ClockBoundWriter(path) as writer:
            published = [writer.write(SegmentRecord(0, 1, 2, 3, SegmentStatus.SYNCHRONIZED)) for _ in range(writes)]
    expected, generation = [], start
    for _ in range(writes):
        generation = generation + 1 if generation % 2 == 0 else generation  # enter the update odd
        generation = (generation + 1) % 65_536 or 2  # leave it even, skipping 0
        expected.append(generation)
    assert published == expected
    assert all(value % 2 == 0 and value != 0 for value in published)


def test_65534_wraps_to_2_and_readers_follow():
    with segment_path() as path:
        path.write_bytes(segment_bytes(generation=65_532))
        reader = ClockBoundReader(path)
        with ClockBoundWriter(path) as writer:
            seen = []
            for bound in (1, 2, 3):
                seen.append(writer.write(SegmentRecord(0, 1, bound, 3, SegmentStatus.SYNCHRONIZED)))
                snapshot = reader.snapshot()
                assert (snapshot.generation, snapshot.bound_ns) == (seen[-1], bound)
    assert seen == [65_534, 2, 4]
