"""Benchmark: how fast `batchctl` starts.

Run: `.venv/bin/python -m bench.bench_cli_start [--repeat R]`.
Times, as whole processes started R times each (alternately, hyperfine-style, best and median
reported): the interpreter alone (`python -c pass`, the floor), `batchctl --help`,
`batchctl validate --help`, `batchctl validate --json` on the small sample (approximate tokens,
no tokenizer), the same with `--count-tokens` (which builds the token encoding in-process), and
`batchctl results --help`. Then `python -X importtime` for each command's imports alone.
Commands run with Python's bytecode cache on, as an installed `batchctl` runs: the
PYTHONDONTWRITEBYTECODE that this machine's environment sets is dropped (with it every run
compiles the project's modules again); the warm-up runs write the cache.
Goal: `batchctl --help` and `batchctl validate` start in <= 0.15 s.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "quickstart.jsonl"
GOAL_S = 0.15
# The bytecode cache on, as where batchctl is installed (see the module's docstring).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _batchctl() -> list[str]:
    """The installed console script when there is one (what people run), else `-m batchctl`."""
    script = Path(sys.executable).parent / "batchctl"
    return [str(script)] if script.exists() else [sys.executable, "-m", "batchctl"]


def _wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, capture_output=True, check=True, env=ENV)
    return time.perf_counter() - start


def _import_seconds(args: list[str]) -> float:
    """Cumulative import time of everything the command imports (python -X importtime)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "batchctl", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env=ENV,
    )
    total = 0
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S.*)$", line)
        if m and not m.group(2).startswith(" "):  # top-level imports only: no double count
            total += int(m.group(1))
    return total / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    cli = _batchctl()
    cases = {
        "python -c pass (floor)": ([sys.executable, "-c", "pass"], None),
        "batchctl --help": ([*cli, "--help"], ["--help"]),
        "batchctl validate --help": ([*cli, "validate", "--help"], ["validate", "--help"]),
        "batchctl validate --json sample": (
            [*cli, "validate", "--json", str(SAMPLE)],
            ["validate", "--json", str(SAMPLE)],
        ),
        "batchctl validate --json --count-tokens sample": (
            [*cli, "validate", "--json", "--count-tokens", str(SAMPLE)],
            ["validate", "--json", "--count-tokens", str(SAMPLE)],
        ),
        "batchctl results --help": ([*cli, "results", "--help"], ["results", "--help"]),
    }
    for _ in range(args.warmup):
        for command, _ in cases.values():
            _wall(command)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeat):
        for name, (command, _) in cases.items():
            times[name].append(_wall(command))
    shown = " ".join(Path(c).name if c == cli[0] else c for c in cli)
    print(f"{shown}: best and median of {args.repeat} runs each")
    print("| command | best s | median s | imports s (under -X importtime) |")
    print("|---|---:|---:|---:|")
    for name, (_, imports) in cases.items():
        best, median = min(times[name]), statistics.median(times[name])
        imported = f"{_import_seconds(imports):.3f}" if imports else "-"
        print(f"| `{name}` | {best:.3f} | {median:.3f} | {imported} |")
    for name in ("batchctl --help", "batchctl validate --help", "batchctl validate --json sample"):
        print(f"{name}: median {statistics.median(times[name]):.3f} s (goal <= {GOAL_S})")
    loadavg = Path("/proc/loadavg")
    if loadavg.exists():
        print(f"load average at the end: {' '.join(loadavg.read_text().split()[:3])}")


if __name__ == "__main__":
    main()
