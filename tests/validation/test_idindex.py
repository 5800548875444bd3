"""CustomIdIndex: the duplicate custom_id detector, before and after it leaves its dict."""

from __future__ import annotations

import pytest

from batching.validation import idindex
from batching.validation.idindex import DICT_IDS, CustomIdIndex


def _fill(index: CustomIdIndex, count: int) -> None:
    for line in range(1, count + 1):
        assert index.add(f"id-{line}", line) == 0, f"id-{line} reported as a duplicate"


def test_first_sighting_returns_zero_and_a_repeat_returns_the_first_line() -> None:
    index = CustomIdIndex()
    assert index.add("a", 1) == 0
    assert index.add("b", 2) == 0
    assert index.add("a", 3) == 1
    assert index.add("b", 7) == 2
    assert index.add("a", 9) == 1  # always the first line, not the latest repeat


@pytest.mark.parametrize("count", [DICT_IDS - 1, DICT_IDS, DICT_IDS + 1, 250_000])
def test_duplicates_are_found_at_and_past_the_dict_limit(count: int) -> None:
    index = CustomIdIndex()
    _fill(index, count)
    assert index.add("new-id", count + 1) == 0
    assert index.add("id-1", count + 2) == 1
    assert index.add(f"id-{count}", count + 3) == count
    assert index.add(f"id-{count // 2}", count + 4) == count // 2
    assert index.add("new-id", count + 5) == count + 1


def test_the_index_leaves_its_dict_only_past_the_limit() -> None:
    index = CustomIdIndex()
    _fill(index, DICT_IDS)
    assert index._small is not None
    index.add("one-more", DICT_IDS + 1)
    assert index._small is None


def test_duplicates_survive_the_table_growing() -> None:
    """The first table holds 3/4 of 2^19 slots; ids past that rebuild it twice as large."""
    index = CustomIdIndex()
    first_table = 1 << (2 * (DICT_IDS + 1)).bit_length()
    count = first_table * 3 // 4 + 10
    _fill(index, count)
    assert len(index._hashes) == 2 * first_table
    for line in (1, DICT_IDS, DICT_IDS + 1, first_table * 3 // 4, count):
        assert index.add(f"id-{line}", count + 1) == line


def test_line_numbers_past_sixteen_bits_come_back_whole() -> None:
    index = CustomIdIndex()
    _fill(index, DICT_IDS + 1)
    big = 3_000_000_000  # needs 32 unsigned bits
    assert index.add("late", big) == 0
    assert index.add("late", big + 1) == big


def test_colliding_slots_probe_to_the_next_free_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ids whose hashes share the low bits land in one probe chain and are all found again."""
    monkeypatch.setattr(idindex, "DICT_IDS", 0)  # straight to the table (8 slots for one id)
    index = CustomIdIndex()
    assert index.add("seed", 1) == 0
    ids = [f"c{i}" for i in range(2000)]
    lines = {cid: n for n, cid in enumerate(ids, start=2)}
    for cid, line in lines.items():
        assert index.add(cid, line) == 0
    for cid, line in lines.items():
        assert index.add(cid, 10**6) == line
    assert index.add("seed", 5) == 1


def test_the_table_starts_at_twice_the_ids_and_grows_when_three_quarters_full() -> None:
    """Past DICT_IDS ids the table gets the power of two above twice their count (2^19 for
    200,001) and doubles on the insert that fills 3/4 of it (393,216 ids)."""
    index = CustomIdIndex()
    _fill(index, DICT_IDS + 1)
    assert len(index._hashes) == 1 << 19
    full = (1 << 19) * 3 // 4
    for line in range(DICT_IDS + 2, full):
        index.add(f"id-{line}", line)
    assert len(index._hashes) == 1 << 19  # 393,215 ids: one slot of room left
    index.add(f"id-{full}", full)
    assert len(index._hashes) == 1 << 20
    assert index.add("id-1", full + 1) == 1


def test_get_returns_the_line_an_id_was_added_with_and_zero_for_an_unknown_id() -> None:
    """While the index is a dict: the first line of an id, 0 (not None) for one never added."""
    index = CustomIdIndex()
    for cid, line in (("a", 1), ("b", 2), ("a", 3)):
        index.add(cid, line)
    assert index._small is not None
    assert index.get("a") == 1
    assert index.get("b") == 2
    missing = index.get("never-added")
    assert missing == 0 and missing is not None


def test_get_follows_probe_chains_in_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """In the table (straight there, like the colliding-slots test), ids displaced along a
    probe chain, ids placed before and after the table grew, and unknown ids (0) all come
    back right."""
    monkeypatch.setattr(idindex, "DICT_IDS", 0)
    index = CustomIdIndex()
    lines = {f"c{i}": i + 1 for i in range(2000)}
    for cid, line in lines.items():
        assert index.add(cid, line) == 0
    assert index._small is None
    for cid, line in lines.items():
        assert index.get(cid) == line, cid
    for i in range(2000, 2100):
        assert index.get(f"c{i}") == 0
    assert index.get("") == 0
