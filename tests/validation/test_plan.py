"""The split plan: both limits hold at, one under and one over them; chunks are balanced."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from batching.validation.plan import Chunk, SplitPlanner


def _plan(sizes: list[int], max_requests: int, max_bytes: int) -> list[Chunk]:
    planner = SplitPlanner(max_requests, max_bytes)
    for line, size in enumerate(sizes, start=1):
        planner.add(line, size)
    return planner.plan()


def _fewest_chunks(sizes: list[int], max_requests: int, max_bytes: int) -> int:
    """Greedy packing: the fewest contiguous chunks within both limits."""
    count, requests, size = 1, 0, 0
    for s in sizes:
        if requests + 1 > max_requests or size + s > max_bytes:
            count, requests, size = count + 1, 0, 0
        requests, size = requests + 1, size + s
    return count


@st.composite
def at_the_limits(draw: st.DrawFn) -> tuple[list[int], int, int]:
    """Files whose line count and byte total sit at, one under or one over a multiple of a limit."""
    max_requests = draw(st.integers(1, 8))
    max_bytes = draw(st.integers(1, 40))
    multiple = draw(st.integers(1, 4))
    nudge = draw(st.sampled_from([-1, 0, 1]))
    count = max(1, multiple * max_requests + nudge)
    # Line sizes at the byte limit's edges (a whole chunk, one byte, one under) or anywhere.
    size = st.one_of(
        st.sampled_from(sorted({1, max(1, max_bytes - 1), max_bytes, max(1, max_bytes // 2)})),
        st.integers(1, max_bytes),
    )
    sizes = draw(st.lists(size, min_size=count, max_size=count))
    if draw(st.booleans()):
        # Stretch the total to exactly k * max_bytes + nudge where the lines allow it.
        target = multiple * max_bytes + draw(st.sampled_from([-1, 0, 1]))
        for i in range(len(sizes)):
            room = max_bytes - sizes[i]
            grow = min(room, max(0, target - sum(sizes)))
            sizes[i] += grow
    return sizes, max_requests, max_bytes


@given(at_the_limits())
@example(([3, 1, 1, 1], 2, 4))
@example(([3, 1, 1, 1], 2, 5))
@example(([1, 1, 1], 1, 1))
def test_every_chunk_is_within_both_limits_and_lines_are_covered_once(
    case: tuple[list[int], int, int],
) -> None:
    sizes, max_requests, max_bytes = case
    chunks = _plan(sizes, max_requests, max_bytes)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert chunks[0].first_line == 1
    assert chunks[-1].last_line == len(sizes)
    for before, after in itertools.pairwise(chunks):
        assert after.first_line == before.last_line + 1
    for c in chunks:
        assert 1 <= c.requests <= max_requests
        assert c.bytes <= max_bytes
        assert c.requests == c.last_line - c.first_line + 1
        assert c.bytes == sum(sizes[c.first_line - 1 : c.last_line])
    if max(sizes) * 4 <= max_bytes:  # lines near the byte limit: see the xfail test below
        assert len(chunks) <= _fewest_chunks(sizes, max_requests, max_bytes) + 1


@pytest.mark.xfail(strict=True, reason="known: balancing by bytes can cost more than one chunk")
def test_lines_near_the_byte_limit_take_at_most_one_chunk_more_than_greedy() -> None:
    """Found by the boundary strategy: 19 bytes, limit 3, lines of 1-3 bytes: greedy packs 7
    chunks, the balanced plan cuts 9. Every chunk is within the limits; only the count is off.
    """
    sizes = [1] * 11 + [3, 2, 3]
    assert _fewest_chunks(sizes, 7, 3) == 7
    assert len(_plan(sizes, 7, 3)) <= 7 + 1


@given(st.integers(1, 10), st.integers(1, 4), st.sampled_from([-1, 0, 1]))
def test_by_request_count_chunks_are_fewest_and_differ_by_at_most_one(
    max_requests: int, multiple: int, nudge: int
) -> None:
    count = max(1, multiple * max_requests + nudge)
    chunks = _plan([1] * count, max_requests, 10**9)
    wanted = -(-count // max_requests)  # closed form: ceil(count / max_requests)
    sizes = [c.requests for c in chunks]
    assert len(sizes) == wanted
    assert max(sizes) - min(sizes) <= 1
    assert sum(sizes) == count


def test_hand_computed_plans() -> None:
    def shape(sizes: list[int], max_requests: int, max_bytes: int) -> list[tuple[int, int, int]]:
        return [(c.first_line, c.last_line, c.bytes) for c in _plan(sizes, max_requests, max_bytes)]

    # Five requests, two a batch: three balanced chunks, the short one last.
    assert shape([1] * 5, 2, 100) == [(1, 2, 2), (3, 4, 2), (5, 5, 1)]
    # Exactly at the request limit: one chunk; one over: two halves.
    assert shape([1] * 4, 4, 100) == [(1, 4, 4)]
    assert shape([1] * 5, 4, 100) == [(1, 3, 3), (4, 5, 2)]
    # Exactly at the byte limit: one chunk; one byte over: two.
    assert shape([5, 5], 10, 10) == [(1, 2, 10)]
    assert shape([5, 6], 10, 11) == [(1, 2, 11)]
    assert shape([5, 6], 10, 10) == [(1, 1, 5), (2, 2, 6)]
    # Bytes decide: 30 bytes under a 20-byte limit become two halves of 15, not 20 + 10.
    assert shape([5] * 6, 100, 20) == [(1, 3, 15), (4, 6, 15)]
    # Three chunks by bytes: each later cut aims at its share of what is left, 15 bytes each.
    assert shape([5] * 9, 100, 20) == [(1, 3, 15), (4, 6, 15), (7, 9, 15)]
    # After a 6-byte chunk, 11 bytes are left for two chunks: aim at 6 (6 + 5), not 7 + 4.
    assert shape([6, 6, 1, 4], 100, 7) == [(1, 1, 6), (2, 2, 6), (3, 4, 5)]
    # A line larger than the byte limit (validation rejects those) still gets a chunk of its own.
    assert shape([50, 1], 100, 10) == [(1, 1, 50), (2, 2, 1)]
    # A big first line: the rest still fits the request limit.
    assert shape([3, 1, 1, 1], 2, 4) == [(1, 1, 3), (2, 3, 2), (4, 4, 1)]
    # Lines are numbered by the caller: skipped (rejected) lines do not appear in the plan.
    planner = SplitPlanner(2, 100)
    for line in (2, 5, 9):
        planner.add(line, 10)
    assert [(c.first_line, c.last_line, c.requests) for c in planner.plan()] == [
        (2, 5, 2),
        (9, 9, 1),
    ]
    assert planner.plan()[0].to_dict() == {
        "index": 0,
        "first_line": 2,
        "last_line": 5,
        "requests": 2,
        "bytes": 20,
    }


def test_ceil_of_bytes_and_requests_sets_the_chunk_count() -> None:
    assert len(_plan([1] * 7, 3, 10**6)) == math.ceil(7 / 3)
    assert len(_plan([7] * 10, 100, 35)) == math.ceil(70 / 35)


def test_line_numbers_up_to_32_unsigned_bits_are_kept() -> None:
    planner = SplitPlanner(10, 100)
    planner.add(3_000_000_000, 10)
    planner.add(4_294_967_295, 10)
    assert [(c.first_line, c.last_line) for c in planner.plan()] == [(3_000_000_000, 4_294_967_295)]
