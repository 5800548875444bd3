"""`make bench`: every benchmark, one after the other; figures go into docs/benchmarks.md."""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = (
    "bench.bench_cli_start",
    "bench.bench_validate",
    "bench.bench_lines",
    "bench.bench_pipeline",
    "bench.bench_history",
    "bench.bench_runs",
)


def main() -> int:
    for module in BENCHMARKS:
        print(f"== {module}", flush=True)
        code = subprocess.call([sys.executable, "-m", module])
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
