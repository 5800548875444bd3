"""Lines out of a stream of byte blocks, whatever the block boundaries.

Inputs arrive as blob download chunks or file reads; a line may span any number of blocks.
Only the pieces of the line in progress are held, so memory is bounded by the longest line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

BLOCK_SIZE = 1 << 20


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


def read_blocks(path: Path, block_size: int = BLOCK_SIZE) -> Iterator[bytes]:
    """The file's bytes in blocks of `block_size`, for callers that validate or split a file."""
    with path.open("rb") as f:
        while block := f.read(block_size):
            yield block
