"""Benchmark: `batchctl validate --json` against a bare `json.loads`-per-line loop.

Run: `.venv/bin/python -m bench.bench_validate [--requests N] [--repeat R]`.
Generates (once, into bench/out/) a file of N structured-output chat requests of about 1.9 KB
each (100,000 requests: about 190 MB): English prose with quotes, line breaks, and some accented,
CJK and emoji text. Both commands run as subprocesses, alternately, R times each; the best wall
time and the peak RSS (from wait4) are reported. Goals: validate no slower than the loop, and
peak RSS under 200 MB.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
from pathlib import Path

import orjson

OUT = Path(__file__).parent / "out"
RSS_GOAL_MB = 200
BASELINE = """
import json, sys
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        json.loads(line)
"""
_WORD_LIST = (
    "the of and to in is was for on that with as by at from this be are have it not or an "
    "customer review product delivery quality price support order refund warranty battery "
    "screen keyboard shipping package arrived damaged excellent terrible average recommend "
    "would could should because however although summary extract list detail answer question "
    "building height city country architect floors completed tower bridge museum station"
)
WORDS = _WORD_LIST.split()
FOREIGN = ("naïve", "café", "Zürich", "São", "東京タワー", "北京", "📦", "✓", "—", "€12,50")
SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "review_summary",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {
                "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]},
                "summary": {"type": "string"},
                "issues": {"type": "array", "items": {"type": "string"}},
                "score": {"type": ["integer", "null"]},
            },
            "required": ["sentiment", "summary", "issues", "score"],
            "additionalProperties": False,
        },
    },
}


def _prose(rng: random.Random, words: int) -> str:
    text = rng.choices(WORDS, k=words)
    for i in range(0, words, 12):
        text[i] = text[i].capitalize()
        if rng.random() < 0.05:
            text[i] = rng.choice(FOREIGN)
    text[rng.randrange(words)] = '"quoted"'
    return " ".join(text).replace(" the ", ". The ", 3) + ".\n"


def generate(path: Path, requests: int) -> None:
    """A deterministic file of `requests` lines of about 1.9 KB."""
    rng = random.Random(42)
    system = "You summarise customer reviews. Answer in JSON that follows the schema."
    with path.open("wb") as f:
        for i in range(requests):
            review = "".join(_prose(rng, rng.randint(25, 55)) for _ in range(5))
            body = {
                "model": "gpt-4o-batch",
                "messages": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": f"Review #{i}:\n{review}"},
                ],
                "max_tokens": 400,
                "response_format": SCHEMA,
            }
            line = {"custom_id": f"review-{i:07d}", "method": "POST", "url": "/chat/completions"}
            f.write(orjson.dumps({**line, "body": body}) + b"\n")


# A child's peak RSS includes its parent's until it execs, so runs start from this small
# launcher, which prints the run's wall time, peak RSS (KB) and exit status.
LAUNCHER = """
import os, subprocess, sys, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
print(time.perf_counter() - start, usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def measure(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one subprocess run."""
    launched = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *command], capture_output=True, check=True
    )
    seconds, peak_kb, status = launched.stdout.split()
    if int(status) not in (0, 1):
        raise SystemExit(f"{command} failed with exit status {int(status)}")
    return float(seconds), int(peak_kb) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    path = OUT / f"validate-{args.requests}.jsonl"
    if not path.exists():
        generate(path, args.requests)
    size = path.stat().st_size
    commands = {
        "batchctl validate --json": [sys.executable, "-m", "batchctl", "validate", "--json"],
        "json.loads loop (stdlib)": [sys.executable, "-c", BASELINE],
    }
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(args.repeat):
        for name, command in commands.items():
            runs[name].append(measure([*command, str(path)]))
    print(f"{path.name}: {args.requests:,} requests, {size / 1e6:.1f} MB, best of {args.repeat}")
    print("| command | best s | median s | MB/s (best) | peak RSS MB |")
    print("|---|---:|---:|---:|---:|")
    for name, results in runs.items():
        times = [s for s, _ in results]
        best, rss = min(times), max(m for _, m in results)
        row = f"{best:.2f} | {statistics.median(times):.2f} | {size / 1e6 / best:.0f} | {rss:.0f}"
        print(f"| {name} | {row} |")
    ours = min(s for s, _ in runs["batchctl validate --json"])
    base = min(s for s, _ in runs["json.loads loop (stdlib)"])
    rss = max(m for _, m in runs["batchctl validate --json"])
    print(f"validate / loop time: {ours / base:.2f} (goal <= 1.00)")
    print(f"validate peak RSS: {rss:.0f} MB (goal < {RSS_GOAL_MB})")


if __name__ == "__main__":
    main()
