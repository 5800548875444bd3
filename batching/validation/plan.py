"""The split plan: where to cut a file into batches under the request and byte limits.

Planned while validating (the same pass), from two flat arrays per accepted line (line number and
cumulative bytes: 12 bytes a request). Chunks are balanced: a file just over a limit becomes two
halves, not a full chunk and a tiny tail, so the batches finish at about the same time.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from dataclasses import asdict, dataclass

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: batchctl start-up
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True)
class Chunk:
    """Lines first_line..last_line of the input (accepted lines only) become batch `index`."""

    index: int
    first_line: int
    last_line: int
    requests: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SplitPlanner:
    """Records accepted lines in order; `plan()` cuts them into balanced chunks."""

    def __init__(self, max_requests: int, max_bytes: int) -> None:
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self._lines = array("I")
        self._ends = array("Q")  # bytes of the accepted lines up to and including each one
        self._total = 0

    def add(self, line: int, size: int) -> None:
        """Accept `line`, which takes `size` bytes (newline included) in a chunk."""
        self._lines.append(line)
        self._total += size
        self._ends.append(self._total)

    def plan(self) -> list[Chunk]:
        """Fewest chunks the limits allow (plus one when lines do not divide evenly)."""
        ends, count, total = self._ends, len(self._ends), self._total
        wanted = max(math.ceil(count / self.max_requests), math.ceil(total / self.max_bytes))
        chunks: list[Chunk] = []
        start = 0
        while start < count:
            done = ends[start - 1] if start else 0
            left = max(1, wanted - len(chunks))
            limit = min(start + self.max_requests, bisect_right(ends, done + self.max_bytes, start))
            by_count = start + math.ceil((count - start) / left)
            by_bytes = bisect_left(ends, done + math.ceil((total - done) / left), start) + 1
            end = max(start + 1, min(limit, by_count, by_bytes))
            chunks.append(
                Chunk(
                    index=len(chunks),
                    first_line=self._lines[start],
                    last_line=self._lines[end - 1],
                    requests=end - start,
                    bytes=ends[end - 1] - done,
                )
            )
            start = end
        return chunks
