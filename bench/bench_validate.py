"""Benchmark: `batchctl validate --json` against a bare `json.loads`-per-line loop, per file shape.

Run: `.venv/bin/python -m bench.bench_validate [--mb MB] [--repeat R] [--shapes a,b] [--no-busy]`.
Generates (once, into bench/out/) a deterministic file of about MB megabytes (default 64) for
each shape of request people send: `review` (the original bench file: ~1.9 KB structured-output
chat requests, English prose with quotes, line breaks, accented, CJK and emoji text),
`long-prose` (~30 KB documents), `short-messages` (40-turn conversations), `tools` (ten
function definitions a request), `images` (two base64 images a request, ~100 KB lines) and
`responses` (/responses bodies with instructions and a json_schema text format). Both commands
run as whole processes, alternately, R times each on each file: first with nothing else of ours
running, then again with a busy-loop process keeping the other core busy. Best and median wall
time, the best CPU time (user + system), the median (and range) of each validate run's CPU over
the loop run's right after it, and the peak RSS (from wait4) are reported. Goals:
validate no slower than the loop on every shape, quiet and busy, and peak RSS under 200 MB.
Commands run with Python's bytecode cache on, as an installed `batchctl` runs
(PYTHONDONTWRITEBYTECODE, which this machine's environment sets, is dropped: with it every run
compiles the project's modules again), after one warm-up.
`--count-tokens` measures `batchctl validate --count-tokens` (the tokenizer's count) instead.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

OUT = Path(__file__).parent / "out"
# the installed console script when there is one (what people run), else `-m batchctl`
_SCRIPT = Path(sys.executable).parent / "batchctl"
BATCHCTL = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "batchctl"]
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


def _review(rng: random.Random, i: int) -> tuple[str, dict[str, Any]]:
    """~1.9 KB: a structured-output chat request about a review (the original bench file)."""
    system = "You summarise customer reviews. Answer in JSON that follows the schema."
    review = "".join(_prose(rng, rng.randint(25, 55)) for _ in range(5))
    return "/chat/completions", {
        "model": "gpt-4o-batch",
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": f"Review #{i}:\n{review}"},
        ],
        "max_tokens": 400,
        "response_format": SCHEMA,
    }


def _long_prose(rng: random.Random, i: int) -> tuple[str, dict[str, Any]]:
    """~30 KB: one long document to summarise."""
    document = "".join(_prose(rng, rng.randint(40, 120)) for _ in range(60))
    return "/chat/completions", {
        "model": "gpt-4o-batch",
        "messages": [
            {"role": "system", "content": "Summarise the document in five bullet points."},
            {"role": "user", "content": f"Document {i}:\n\n{document}"},
        ],
        "max_completion_tokens": 800,
    }


def _short_messages(rng: random.Random, i: int) -> tuple[str, dict[str, Any]]:
    """~3 KB: a conversation of 40 short turns."""
    turns = [{"role": "system", "content": "You are a helpful support agent."}]
    for t in range(40):
        words = " ".join(rng.choices(WORDS, k=rng.randint(4, 14)))
        turns.append({"role": "user" if t % 2 == 0 else "assistant", "content": words + "?"})
    turns.append({"role": "user", "content": f"Ticket {i}: what should I do next?"})
    return "/chat/completions", {"model": "gpt-4o-batch", "messages": turns, "max_tokens": 300}


def _tool(rng: random.Random, n: int) -> dict[str, Any]:
    props = {
        f"{rng.choice(WORDS)}_{k}": {
            "type": rng.choice(["string", "integer", "boolean"]),
            "description": " ".join(rng.choices(WORDS, k=rng.randint(6, 16))),
        }
        for k in range(rng.randint(3, 8))
    }
    props["options"] = {
        "type": "object",
        "properties": {"mode": {"type": "string", "enum": ["fast", "full", "dry_run"]}},
    }
    return {
        "type": "function",
        "function": {
            "name": f"tool_{n}_{rng.choice(WORDS)}",
            "description": " ".join(rng.choices(WORDS, k=rng.randint(10, 30))),
            "parameters": {"type": "object", "properties": props, "required": list(props)[:2]},
        },
    }


def _tools(rng: random.Random, i: int) -> tuple[str, dict[str, Any]]:
    """~7 KB: ten function tools and a short question (the tools dominate)."""
    question = " ".join(rng.choices(WORDS, k=25))
    return "/chat/completions", {
        "model": "gpt-4o-batch",
        "messages": [{"role": "user", "content": f"Request {i}: {question}"}],
        "tools": [_tool(rng, n) for n in range(10)],
        "tool_choice": "auto",
        "max_tokens": 200,
    }


def _images(rng: random.Random, i: int) -> tuple[str, dict[str, Any]]:
    """~100 KB: a question about two base64-encoded images."""
    parts: list[dict[str, Any]] = [{"type": "text", "text": f"Photo set {i}: what is damaged?"}]
    for _ in range(2):
        data = base64.b64encode(rng.randbytes(rng.randint(30_000, 45_000))).decode()
        parts.append({"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{data}"}})
    return "/chat/completions", {
        "model": "gpt-4o-batch",
        "messages": [{"role": "user", "content": parts}],
        "max_tokens": 300,
    }


def _responses(rng: random.Random, i: int) -> tuple[str, dict[str, Any]]:
    """~2 KB: a /responses request with instructions and a json_schema text format."""
    review = "".join(_prose(rng, rng.randint(25, 55)) for _ in range(4))
    return "/responses", {
        "model": "gpt-4o-batch",
        "instructions": "Summarise the review. Answer in JSON that follows the schema.",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": f"#{i}\n{review}"}]}],
        "text": {"format": {"type": "json_schema", **SCHEMA["json_schema"]}},
        "max_output_tokens": 400,
    }


SHAPES = {
    "review": _review,
    "long-prose": _long_prose,
    "short-messages": _short_messages,
    "tools": _tools,
    "images": _images,
    "responses": _responses,
}


def generate(path: Path, shape: str, megabytes: int) -> int:
    """A deterministic file of `shape` requests, about `megabytes` MB; returns its lines."""
    rng = random.Random(42)
    make = SHAPES[shape]
    limit, written, i = megabytes * 1_000_000, 0, 0
    with path.open("wb") as f:
        while written < limit:
            url, body = make(rng, i)
            line = {"custom_id": f"{shape}-{i:07d}", "method": "POST", "url": url, "body": body}
            data = orjson.dumps(line) + b"\n"
            f.write(data)
            written += len(data)
            i += 1
    return i


# A child's peak RSS includes its parent's until it execs, so runs start from this small
# launcher, which prints the run's wall time, peak RSS (KB), exit status and CPU seconds (user +
# system, with the processes it waited for: validate's token-counting child).
LAUNCHER = """
import os, subprocess, sys, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
seconds = time.perf_counter() - start
cpu = usage.ru_utime + usage.ru_stime
print(seconds, usage.ru_maxrss, os.waitstatus_to_exitcode(status), cpu)
"""


# The environment of every measured command: the bytecode cache on, as where batchctl is installed.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def measure(command: list[str]) -> tuple[float, float, float]:
    """(wall seconds, peak RSS in MB, CPU seconds) of one subprocess run."""
    launched = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *command], capture_output=True, check=True, env=ENV
    )
    seconds, peak_kb, status, cpu = launched.stdout.split()
    if int(status) not in (0, 1):
        raise SystemExit(f"{command} failed with exit status {int(status)}")
    return float(seconds), int(peak_kb) / 1024, float(cpu)


BUSY = "while True: pass"


def _commands(count_tokens: bool) -> dict[str, list[str]]:
    validate = [*BATCHCTL, "validate", "--json", *(["--count-tokens"] if count_tokens else [])]
    return {"validate": validate, "loop": [sys.executable, "-c", BASELINE]}


def _measure_all(
    files: dict[str, Path], repeat: int, commands: dict[str, list[str]]
) -> dict[str, dict[str, list[tuple[float, float, float]]]]:
    """shape -> command -> [(seconds, peak MB, CPU s)], the commands alternating on each file."""
    runs: dict[str, dict[str, list[tuple[float, float, float]]]] = {}
    for shape, path in files.items():
        runs[shape] = {name: [] for name in commands}
        for _ in range(repeat):
            for name, command in commands.items():
                runs[shape][name].append(measure([*command, str(path)]))
    return runs


def _report(title: str, files: dict[str, Path], runs: dict[str, Any], repeat: int) -> None:
    print(f"\n{title} (best of {repeat}; median in brackets; CPU: user + system, best)")
    print(
        "| shape | MB | lines | validate s | loop s | validate / loop "
        "| validate CPU s | loop CPU s | CPU ratio | paired CPU ratio | validate peak MB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for shape, path in files.items():
        size = path.stat().st_size / 1e6
        with path.open("rb") as f:
            lines = sum(block.count(b"\n") for block in iter(lambda f=f: f.read(1 << 20), b""))
        v = [t for t, _, _ in runs[shape]["validate"]]
        loop = [t for t, _, _ in runs[shape]["loop"]]
        v_cpu = min(c for _, _, c in runs[shape]["validate"])
        loop_cpu = min(c for _, _, c in runs[shape]["loop"])
        rss = max(m for _, m, _ in runs[shape]["validate"])
        # Each validate run against the loop run right after it: the VM's speed drifts by tens
        # of percent within minutes, so the best of each can come from different speeds.
        pairs = [
            v_run[2] / loop_run[2]
            for v_run, loop_run in zip(runs[shape]["validate"], runs[shape]["loop"], strict=True)
        ]
        print(
            f"| {shape} | {size:.0f} | {lines:,} | {min(v):.2f} ({statistics.median(v):.2f}) "
            f"| {min(loop):.2f} ({statistics.median(loop):.2f}) | {min(v) / min(loop):.2f} "
            f"| {v_cpu:.2f} | {loop_cpu:.2f} | {v_cpu / loop_cpu:.2f} "
            f"| {statistics.median(pairs):.2f} ({min(pairs):.2f}-{max(pairs):.2f}) | {rss:.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=64, help="size of each shape's file")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated")
    parser.add_argument("--no-busy", action="store_true", help="skip the busy-core pass")
    parser.add_argument(
        "--count-tokens", action="store_true", help="validate --count-tokens (the tokenizer)"
    )
    args = parser.parse_args()
    commands = _commands(args.count_tokens)
    OUT.mkdir(exist_ok=True)
    files = {}
    for shape in args.shapes.split(","):
        path = OUT / f"validate-{shape}-{args.mb}mb.jsonl"
        if not path.exists():
            generate(path, shape, args.mb)
        files[shape] = path
    for path in files.values():  # a warm-up: the bytecode cache, the files in memory
        for command in commands.values():
            measure([*command, str(path)])
    print("validate:", " ".join(commands["validate"]), "FILE")
    quiet = _measure_all(files, args.repeat, commands)
    _report("Quiet (nothing else of ours running)", files, quiet, args.repeat)
    if not args.no_busy:
        busy = subprocess.Popen([sys.executable, "-c", BUSY])
        try:
            loaded = _measure_all(files, args.repeat, commands)
        finally:
            busy.kill()
            busy.wait()
        _report("The other core busy (a busy-loop process)", files, loaded, args.repeat)
    print(f"\ngoals: validate / loop <= 1.00 on every shape; peak RSS < {RSS_GOAL_MB} MB")
    load = Path("/proc/loadavg")
    if load.exists():
        print(f"load average at the end: {' '.join(load.read_text().split()[:3])}")


if __name__ == "__main__":
    main()
