"""Lines out of a stream of byte blocks, whatever the block boundaries.

Inputs arrive as blob download chunks or file reads; a line may span any number of blocks.
Only the pieces of the line in progress are held, so memory is bounded by the longest line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

BLOCK_SIZE = 1 << 20
_CR = ord("\r")


def iter_lines(blocks: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """Yield (1-based line number, line without its b"\\n" or b"\\r\\n").

    A last line without a newline is yielded; a trailing newline does not make an empty line.
    """
    number = 0
    pending: list[bytes] = []  # pieces of a line that started in an earlier block
    for block in blocks:
        if not block:
            continue
        lines = block.split(b"\n")
        if pending:
            pending.append(lines[0])
            if len(lines) == 1:
                continue
            lines[0] = b"".join(pending)
            pending = []
        tail = lines.pop()
        if tail:
            pending.append(tail)
        for line in lines:
            number += 1
            yield number, line[:-1] if line.endswith(b"\r") else line
    if pending:
        line = b"".join(pending)
        yield number + 1, line[:-1] if line.endswith(b"\r") else line


@dataclass(frozen=True, slots=True)
class LineTooLong:
    """A line longer than the limit: its size only, its bytes were never held."""

    size: int  # bytes, without the line end


class _Line:
    """The line in progress across blocks: its pieces while within the limit, else its size."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pieces: list[bytes] = []
        self.size = 0
        self.over = False
        self.cr = False  # its last byte so far is b"\r"

    def add(self, piece: bytes) -> None:
        if not piece:
            return
        self.size += len(piece)
        self.cr = piece.endswith(b"\r")
        if self.over:
            return
        if self.size > self.limit + 1:  # + 1: room for a CR before the LF
            self.over, self.pieces = True, []
        else:
            self.pieces.append(piece)

    def take(self) -> bytes | LineTooLong:
        size = self.size - self.cr
        if self.cr and self.pieces:
            self.pieces[-1] = self.pieces[-1][:-1]
        too_long = self.over or size > self.limit
        line = LineTooLong(size) if too_long else b"".join(self.pieces)
        self.pieces, self.size, self.over, self.cr = [], 0, False, False
        return line


def iter_bounded_lines(
    blocks: Iterable[bytes], max_bytes: int
) -> Iterator[tuple[int, bytes | LineTooLong]]:
    """As `iter_lines`, but a line longer than `max_bytes` is yielded as `LineTooLong`.

    Its bytes are counted as they stream past and dropped, so memory stays within `max_bytes`
    (plus one block) whatever the line's length.
    """
    number = 0
    line = _Line(max_bytes)
    for block in blocks:
        if not block:
            continue
        # Line ends are found with `find` (memchr), not `split`, which looks at every byte in
        # turn: a fifth of the time validating a file of long lines took. A line is sliced out
        # only when it is within the limit.
        find = block.find
        start = 0
        end = find(b"\n")
        if end >= 0 and line.size:  # the first line end ends a line begun in earlier blocks
            number += 1
            line.add(block[:end])
            yield number, line.take()
            start = end + 1
            end = find(b"\n", start)
        while end >= 0:
            number += 1
            stop = end - 1 if end > start and block[end - 1] == _CR else end
            if stop - start <= max_bytes:
                yield number, block[start:stop]
            else:
                yield number, LineTooLong(stop - start)
            start = end + 1
            end = find(b"\n", start)
        if start < len(block):
            line.add(block[start:] if start else block)
    if line.size:
        yield number + 1, line.take()


def read_blocks(path: Path, block_size: int = BLOCK_SIZE) -> Iterator[bytes]:
    """The file's bytes in blocks of `block_size`, for callers that validate or split a file."""
    with path.open("rb") as f:
        while block := f.read(block_size):
            yield block
