"""Token counting in a child process, so that loading the encoding overlaps parsing.

Building an encoding takes ~0.25 s of CPU that holds the GIL (threads cannot hide it), a fifth
of the time validating a 190 MB file takes. For large files the estimator hands its samples to
`python -m batching.tokens.child ENCODING`, which loads the encoding on another core meanwhile.
Protocol: one JSON array of strings (a sample's pieces) per line on stdin; at the end of input,
one JSON array with each sample's token count on stdout.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import orjson

PIPE_BYTES = 1 << 20  # room for the samples sent while the child is still loading
# For an input at least this large, the child starts before the first line is read (before the
# validator is even imported), building the encoding most deployments use: its start-up and the
# encoding (~0.3 s of CPU) then overlap the whole parse instead of following its first lines.
EARLY_CHILD_BYTES = 8 << 20
EARLY_ENCODING = "o200k_base"


class ChildCounter:
    """Counts samples in a child process; `counts()` waits for it."""

    def __init__(self, encoding_name: str) -> None:
        self.encoding_name = encoding_name
        root = str(Path(__file__).resolve().parents[2])
        path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
        self._child = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            [sys.executable, "-m", "batching.tokens.child", encoding_name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": path},
        )
        assert self._child.stdin is not None
        self._stdin = self._child.stdin
        with contextlib.suppress(OSError):  # Linux only; a smaller pipe only costs waiting
            fcntl.fcntl(self._stdin.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)

    def submit(self, pieces: Sequence[str]) -> None:
        with contextlib.suppress(BrokenPipeError):  # the child died: `counts()` says why
            self._stdin.write(orjson.dumps(list(pieces)) + b"\n")

    def close(self) -> None:
        """Stop the child if it still runs (its counts were not wanted, or never asked for)."""
        if self._child.returncode is None:
            self._child.kill()
            self._child.wait()
        for pipe in (self._child.stdin, self._child.stdout, self._child.stderr):
            if pipe is not None:
                pipe.close()

    def counts(self) -> list[int]:
        out, err = self._child.communicate()
        if self._child.returncode != 0:
            raise RuntimeError(f"the token counter failed: {err.decode(errors='replace')}")
        counts: list[int] = orjson.loads(out)
        return counts


def early_counter(size: int) -> ChildCounter | None:
    """A child started now for an input of `size` bytes, if it is large enough to need one.

    `batching.validation.validator.validate(counter=...)` uses it when the file's deployment
    needs this encoding, and stops it otherwise.
    """
    return ChildCounter(EARLY_ENCODING) if size >= EARLY_CHILD_BYTES else None


def main() -> None:
    from batching.tokens.encoding import get_encoding

    encode = get_encoding(sys.argv[1]).encode_ordinary
    counts = [sum(len(encode(p)) for p in orjson.loads(line)) for line in sys.stdin.buffer]
    sys.stdout.buffer.write(orjson.dumps(counts))


if __name__ == "__main__":
    main()
