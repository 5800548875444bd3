"""Outputs in input order, streamed: sorted runs keyed by input position, merged per chunk.

The service writes a batch's output lines in any order, and a request that is resubmitted comes
back in a later round's files. So that results.jsonl, errors.jsonl and table.csv follow the
input, every line the collection writes carries its request's *position*: its index among the
lines of the chunk's first-round input (chunks are consecutive runs of the input's accepted
lines, so (chunk, position) is the input order).

- Collecting a batch (`batching.steps.results.collect`) looks each custom_id up in `Positions`,
  built from the round's input; a resubmission round's input comes with the positions of its lines
  (`KeyedLines` writes them beside it, a uint32 array), since it is a subset of the first.
- Results and failures go to `SortedRuns`: lines are buffered up to `RUN_BYTES`, sorted by position
  and written as one run (`POSITION LINE` per line); a large batch makes several runs.
- At the end (`batching.steps.finalize`) each chunk's runs, of every round, are merged with a heap
  (`merge`), chunk after chunk.

Memory: `Positions` takes 16-32 bytes per request of one chunk (a `CustomIdIndex`), a run
buffer at most `RUN_BYTES` plus one line, and the merge one read of `finalize.MERGE_BLOCK` per
run of the chunk being merged. Nothing holds a whole output.
"""

from __future__ import annotations

import heapq
import sys
from array import array
from collections.abc import Callable, Iterable, Iterator
from operator import itemgetter
from typing import Any, Protocol, TypeVar

import orjson

from batching.jsonlines import iter_lines
from batching.validation.idindex import CustomIdIndex

RUN_BYTES = 32 << 20  # lines buffered per sorted run
WRITE_BYTES = 4 << 20  # sinks get few large writes: each may be a network call
UNKNOWN = 1 << 32  # the position of a custom_id the input does not have: after every other
_Keyed = TypeVar("_Keyed", bound=tuple[Any, ...])  # (position, ...)


class Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...

    def close(self) -> None: ...


class KeyedSink(Protocol):
    """Where the collection writes a line with its input position."""

    def add(self, position: int, line: bytes) -> None: ...


def _keys_from(blocks: Iterable[bytes]) -> Iterator[int]:
    """The uint32 positions `KeyedLines` wrote, whatever the block boundaries."""
    rest = b""
    for block in blocks:
        data = rest + block if rest else block
        whole = len(data) - len(data) % 4
        keys = array("I")
        keys.frombytes(data[:whole])
        if sys.byteorder == "big":
            keys.byteswap()
        yield from keys
        rest = data[whole:]
    if rest:
        raise ValueError("a positions file ends inside a number")


class Positions:
    """custom_id -> position in the chunk's first-round input (0, 1, ...).

    Keeps 64-bit hashes (`CustomIdIndex`), not the ids: two ids with the same hash (about 3e-8
    for a million ids) share a position, which orders one line wrongly and loses nothing.
    """

    def __init__(self) -> None:
        self._index = CustomIdIndex()
        self.count = 0

    def add(self, custom_id: str, position: int) -> None:
        self._index.add(custom_id, position + 1)  # the index keeps 0 for "absent"
        self.count += 1

    def __call__(self, custom_id: str) -> int:
        found = self._index.get(custom_id)
        return found - 1 if found else UNKNOWN

    @classmethod
    def of_input(
        cls, blocks: Iterable[bytes], positions: Iterable[bytes] | None = None
    ) -> Positions:
        """Read a round's input: its lines are positions 0, 1, ... unless `positions` (the
        round's positions file) says which lines of the first round they are."""
        found = cls()
        keys: Iterator[int] = iter(range(1 << 62)) if positions is None else _keys_from(positions)
        for _, raw in iter_lines(blocks):
            if raw and not raw.isspace():
                custom_id = orjson.loads(raw).get("custom_id")
                found.add(str(custom_id), next(keys))
        return found


class _Buffered:
    """Collects small writes into `WRITE_BYTES` pieces for a sink."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._pieces: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        self._pieces.append(data)
        self._size += len(data)
        if self._size >= WRITE_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._pieces:
            self._sink.write(b"".join(self._pieces))
            self._pieces, self._size = [], 0

    def close(self) -> None:
        self.flush()
        self._sink.close()


class SortedRuns:
    """Keyed lines into runs sorted by position, each run its own sink (`open_run(i)`)."""

    def __init__(self, open_run: Callable[[int], Sink], run_bytes: int | None = None) -> None:
        self._open = open_run
        self._run_bytes = run_bytes or RUN_BYTES
        self._buffer: list[tuple[int, int, bytes]] = []
        self._bytes = 0
        self.runs = 0

    def add(self, position: int, line: bytes) -> None:
        # (position, arrival, line): equal positions keep their order and lines never compare
        self._buffer.append((position, len(self._buffer), line))
        self._bytes += len(line) + 12
        if self._bytes >= self._run_bytes:
            self._flush()

    def _flush(self) -> None:
        self._drain(self._open(self.runs), keyed=True)
        self.runs += 1

    def _drain(self, sink: Sink, keyed: bool) -> int:
        """Write the buffer to `sink` in position order (`POSITION LINE` lines when `keyed`),
        close it and empty the buffer; returns the bytes written."""
        self._buffer.sort()
        out = _Buffered(sink)
        size = 0
        for position, _, line in self._buffer:
            data = b"%d %b\n" % (position, line) if keyed else line + b"\n"
            out.write(data)
            size += len(data)
        out.close()
        self._buffer, self._bytes = [], 0
        return size

    def close(self) -> int:
        """Write the last run; returns the number of runs (0 when no line came)."""
        if self._buffer:
            self._flush()
        return self.runs

    def close_unkeyed(self, sink: Sink) -> int | None:
        """When every line is still in the buffer (no run written yet): write them to `sink`
        in position order without their keys, as the final output is, and return the bytes
        written. None, writing nothing, when runs were written already: they need a merge."""
        return None if self.runs else self._drain(sink, keyed=False)


class KeyedLines:
    """Lines that come in position order (a resubmission's input): the lines as they are to
    one sink, their positions to another, as uint32s (what `Positions.of_input` reads)."""

    def __init__(self, lines: Sink, positions: Sink) -> None:
        self._lines = _Buffered(lines)
        self._positions_sink = positions
        self._positions = array("I")
        self.count = 0

    def add(self, position: int, line: bytes) -> None:
        self._lines.write(line + b"\n")
        self._positions.append(min(position, UNKNOWN - 1))
        self.count += 1

    def close(self) -> None:
        self._lines.close()
        if sys.byteorder == "big":
            self._positions.byteswap()
        self._positions_sink.write(self._positions.tobytes())  # 4 bytes a line of one chunk
        self._positions_sink.close()


def read_run(blocks: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """(position, line) from a run `SortedRuns` wrote."""
    for _, raw in iter_lines(blocks):
        if raw:
            position, _, line = raw.partition(b" ")
            yield int(position), line


def merge(runs: Iterable[Iterable[_Keyed]]) -> Iterator[_Keyed]:
    """The runs' (position, ...) tuples in position order (stable: ties keep run order)."""
    return heapq.merge(*runs, key=itemgetter(0))
