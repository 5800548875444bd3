"""Writing a validated file out as its planned chunks, in one streaming pass.

The pipeline passes `open_chunk`, which opens a writable sink per chunk (a staged block-blob
upload, say); `directory_sinks` is the file-based one. In skip mode the lines are checked again
with the validator's own `LineChecker` (same file, same decisions) and invalid ones go to the
`open_skipped` sink as JSON lines {line, code, message, custom_id, text}. If the stream does not
match the plan (the input changed since it was validated) `PlanMismatchError` is raised.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

import orjson

from batching.jsonlines import LineTooLong, iter_bounded_lines
from batching.validation.plan import Chunk
from batching.validation.validator import LineChecker, Problem, ValidationReport

FLUSH_BYTES = 4 << 20  # sinks get few large writes: each may be a network call


class Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...

    def close(self) -> None: ...


class PlanMismatchError(RuntimeError):
    """The input does not match the report's split plan: validate it again."""


# What was written to a chunk; equal to its plan, which is checked as each chunk closes.
ChunkResult = Chunk


class _Writer:
    """Buffers one sink's lines into large writes."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._buffer: list[bytes] = []
        self._buffered = 0

    def write(self, line: bytes) -> None:
        self._buffer.append(line)
        self._buffered += len(line)
        if self._buffered >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            self._sink.write(b"".join(self._buffer))
            self._buffer = []
            self._buffered = 0

    def close(self) -> None:
        self.flush()
        self._sink.close()


def write_chunks(
    blocks: Iterable[bytes],
    report: ValidationReport,
    open_chunk: Callable[[int], Sink],
    open_skipped: Callable[[], Sink] | None = None,
) -> list[ChunkResult]:
    """Stream `blocks` (the validated input, again) into the chunks of `report.split`."""
    if not report.valid:
        raise ValueError("the file is not valid: there is nothing to split")
    checker = LineChecker(report.options) if report.options.invalid_lines == "skip" else None
    chunks = _Chunks(report.split, open_chunk)
    skipped: _Writer | None = None
    try:
        for number, raw in iter_bounded_lines(blocks, report.options.line_limit):
            if isinstance(raw, bytes) and (not raw or raw.isspace()):
                continue
            problem = checker.check(number, raw) if checker else None
            if isinstance(problem, Problem):
                if open_skipped is not None:
                    skipped = skipped or _Writer(open_skipped())
                    skipped.write(_skipped_line(problem, raw))
            elif isinstance(raw, LineTooLong):
                raise PlanMismatchError(f"line {number} is longer than the validated file's")
            else:
                chunks.add(number, raw)
    finally:
        chunks.close()
        if skipped is not None:
            skipped.close()
    if len(chunks.written) != len(report.split):
        raise PlanMismatchError(
            f"the input ended after {len(chunks.written)} of {len(report.split)} planned chunks"
        )
    return chunks.written


class _Chunks:
    """Fills the planned chunks in order, checking each against its plan as it closes."""

    def __init__(self, plan: list[Chunk], open_chunk: Callable[[int], Sink]) -> None:
        self._plan = iter(plan)
        self._open = open_chunk
        self._chunk: Chunk | None = None
        self._writer: _Writer | None = None
        self._first = self._requests = self._bytes = 0
        self.written: list[ChunkResult] = []

    def add(self, number: int, raw: bytes) -> None:
        if self._writer is None or self._chunk is None:
            self._chunk = next(self._plan, None)
            if self._chunk is None:
                raise PlanMismatchError(f"line {number} is past the last planned chunk")
            self._writer = _Writer(self._open(self._chunk.index))
            self._first, self._requests, self._bytes = number, 0, 0
        self._writer.write(raw + b"\n")
        self._requests += 1
        self._bytes += len(raw) + 1
        if self._requests == self._chunk.requests:
            self.close()
            written = ChunkResult(
                self._chunk.index, self._first, number, self._requests, self._bytes
            )
            if written != self._chunk:
                raise PlanMismatchError(f"planned {self._chunk}, but the input gave {written}")
            self.written.append(written)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _skipped_line(problem: Problem, raw: bytes | LineTooLong) -> bytes:
    text = None if isinstance(raw, LineTooLong) else raw.decode("utf-8", "replace")
    record = {**problem.to_dict(), "text": text}
    return orjson.dumps(record) + b"\n"


def directory_sinks(
    directory: Path, stem: str = "chunk"
) -> tuple[Callable[[int], Sink], Callable[[], Sink]]:
    """File sinks: `{stem}-0000.jsonl`, ... and `{stem}-skipped.jsonl` in `directory`."""

    def open_chunk(index: int) -> Sink:
        return (directory / f"{stem}-{index:04d}.jsonl").open("wb")

    def open_skipped() -> Sink:
        return (directory / f"{stem}-skipped.jsonl").open("wb")

    return open_chunk, open_skipped
