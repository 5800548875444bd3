"""Where `batchctl validate` spends its CPU, per file shape (the files bench_validate makes).

Run: `.venv/bin/python -m bench.validate_breakdown [--mb MB] [--shapes a,b]` after
`python -m bench.bench_validate` has generated the files. In one process, CPU seconds
(`time.process_time`, best of 3): the stdlib loop, reading the lines and `orjson.loads` alone,
validating as `batchctl validate` does (approximate tokens), validating with the token estimate
stubbed out (reading, parsing, checks, split plan), the tokenizer estimator's bookkeeping,
building the encoding (once: `--count-tokens` and the pipeline pay it, in the child or
in-process) and encoding the samples. Then the start-up both commands pay as whole processes:
CPU of `batchctl validate --json` on a one-line file and of the loop's `python -c "import json"`
(best of 10, bytecode cache on).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from batching.jsonlines import iter_bounded_lines, read_blocks
from batching.tokens import estimate as tokens
from batching.validation import validator as validation
from batching.validation.validator import ValidationOptions, validate
from bench.bench_validate import OUT, SHAPES

OPTIONS = ValidationOptions(max_requests_per_batch=1_000_000, max_bytes_per_batch=1 << 40)


def _cpu(work: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        work()
        best = min(best, time.process_time() - start)
    return best


class _Stub:
    def __init__(self, *_: object, **__: object) -> None:
        pass

    def add(self, _: object) -> None:
        pass

    def result(self) -> None:
        return None


class _Keeping(tokens.TokenEstimator):
    """The real estimator, never handing samples to a child (they are encoded here)."""

    def __init__(self, name: str, **kwargs: object) -> None:
        super().__init__(name, child_after_chars=1 << 62)
        self.kept = self._pending


def _row(shape: str, path: Path, encode: Callable[[str], list[int]]) -> str:
    def loop() -> None:
        with path.open(encoding="utf-8") as f:
            for line in f:
                json.loads(line)

    def parse() -> None:
        for _, raw in iter_bounded_lines(read_blocks(path), 1 << 30):
            orjson.loads(raw)  # type: ignore[arg-type]

    real = validation.TokenEstimator
    loop_s = _cpu(loop)
    parse_s = _cpu(parse)
    approximate = _cpu(lambda: validate(read_blocks(path), OPTIONS, count_tokens=False))
    validation.TokenEstimator = _Stub  # type: ignore[assignment,misc]
    checks = _cpu(lambda: validate(read_blocks(path), OPTIONS))
    kept: list[_Keeping] = []

    def keeping(name: str, **_: object) -> _Keeping:
        kept.append(_Keeping(name))
        return kept[-1]

    validation.TokenEstimator = keeping  # type: ignore[assignment]
    with_tokens = _cpu(lambda: validate(read_blocks(path), OPTIONS), repeat=1)
    validation.TokenEstimator = real  # type: ignore[misc]
    samples = kept[-1].kept
    chars = sum(len(p) for pieces in samples for p in pieces)
    counting = _cpu(lambda: [encode(p) for pieces in samples for p in pieces])
    bookkeeping = max(0.0, with_tokens - checks)
    return (
        f"| {shape} | {loop_s:.2f} | {parse_s:.2f} | {approximate:.2f} | {checks:.2f} "
        f"| {bookkeeping:.2f} | {chars:,} | {counting:.2f} |"
    )


def _startup_cpu(command: list[str], repeat: int = 10) -> float:
    """Best CPU seconds (user + system) of a whole process, bytecode cache on."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    best = float("inf")
    for _ in range(repeat):
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=env)
        _, _, usage = os.wait4(child.pid, 0)
        best = min(best, usage.ru_utime + usage.ru_stime)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=64)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    args = parser.parse_args()
    start = time.process_time()
    encode = tokens.get_encoding("o200k_base").encode_ordinary
    build = time.process_time() - start
    print(f"building o200k_base: {build:.2f} s CPU (paid once per validate process)")
    print(
        "| shape | loop | orjson alone | validate | parse + checks | token bookkeeping "
        "| sample chars | encode samples |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for shape in args.shapes.split(","):
        print(_row(shape, OUT / f"validate-{shape}-{args.mb}mb.jsonl", encode))
    one_line = OUT / "validate-one-line.jsonl"
    with (OUT / f"validate-review-{args.mb}mb.jsonl").open("rb") as f:
        one_line.write_bytes(f.readline())
    script = Path(sys.executable).parent / "batchctl"
    validate_s = _startup_cpu([str(script), "validate", "--json", str(one_line)])
    loop_s = _startup_cpu([sys.executable, "-c", "import json"])
    print(f"start-up CPU: batchctl validate {validate_s:.3f} s, loop {loop_s:.3f} s")


if __name__ == "__main__":
    main()
