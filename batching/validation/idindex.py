"""Duplicate custom_id detection that stays small for a million ids.

A set of a million custom_id strings takes ~100 MB. This keeps each id's 64-bit hash (Python's
string hash) and the line it was first seen on: in a dict while there are few (fast, ~100
bytes an id, at most `DICT_IDS` of them), then in an open-addressing table of two flat arrays
(16-32 bytes an id). Two different ids share a 64-bit hash with probability ~n^2/2^65 (about
3e-8 for a million ids), which would report a false duplicate; no duplicate is ever missed.
The hash is salted per process, so such a collision would not repeat in another pass.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable

DICT_IDS = 200_000
_EMPTY = -1  # hash() never returns -1


class CustomIdIndex:
    """custom_id -> first line number, for ids added in file order."""

    def __init__(self) -> None:
        self._small: dict[int, int] | None = {}
        self._hashes = array("q")
        self._lines = array("I")
        self._room = 0  # inserts left before the table grows

    def add(self, custom_id: str, line: int) -> int:
        """Record `custom_id` on `line`; return the earlier line if it was seen, else 0."""
        if self._small is not None:
            earlier = self._small.setdefault(hash(custom_id), line)
            if len(self._small) > DICT_IDS:
                self._to_table()
            return 0 if earlier == line else earlier
        key = hash(custom_id)
        hashes = self._hashes
        mask = len(hashes) - 1
        slot = key & mask
        while (found := hashes[slot]) != _EMPTY:
            if found == key:
                return self._lines[slot]
            slot = (slot + 1) & mask
        hashes[slot] = key
        self._lines[slot] = line
        self._room -= 1
        if not self._room:
            self._grow(zip(hashes, self._lines, strict=True), 2 * len(hashes))
        return 0

    def get(self, custom_id: str) -> int:
        """The line `custom_id` was added with, else 0 (for the outputs' input order)."""
        key = hash(custom_id)
        if self._small is not None:
            return self._small.get(key, 0)
        hashes = self._hashes
        mask = len(hashes) - 1
        slot = key & mask
        while (found := hashes[slot]) != _EMPTY:
            if found == key:
                return self._lines[slot]
            slot = (slot + 1) & mask
        return 0

    def _to_table(self) -> None:
        assert self._small is not None
        small, self._small = self._small, None
        self._grow(small.items(), 1 << (2 * len(small)).bit_length())

    def _grow(self, entries: Iterable[tuple[int, int]], capacity: int) -> None:
        """Rebuild the table with `capacity` slots (a power of two) from (hash, line) pairs."""
        self._hashes = hashes = array("q", [_EMPTY]) * capacity
        self._lines = lines = array("I", bytes(4 * capacity))
        mask = capacity - 1
        size = 0
        for key, line in entries:
            if key != _EMPTY:
                slot = key & mask
                while hashes[slot] != _EMPTY:
                    slot = (slot + 1) & mask
                hashes[slot] = key
                lines[slot] = line
                size += 1
        self._room = capacity * 3 // 4 - size
