"""Runs listing latency: one page of `GET /api/runs` at 20 runs and at 2,000 runs. Run:

    .venv/bin/python -m bench.bench_runs [--sizes 20 2000] [--limit 50] [--repeat 30]

Azurite and the local host running the unchanged `function_app`; the runs index is filled with
ended runs (as their activities write them), then the first page and a page deep in the listing
(the `next` of the first) are fetched `--repeat` times each, and the median and 95th percentile
latency reported per index size.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.apphost import app_host
from devstack import services


def _fill(settings: Any, start: int, count: int) -> None:
    from batching.ops import runindex

    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def one(i: int) -> None:
        runindex.record(
            settings,
            f"run-{i:06d}",
            (t0 + timedelta(seconds=i)).isoformat(),
            {"container": "batch-input", "path": f"team/f{i:06d}.jsonl"},
            "done",
            "completed",
            requests={"total": 100, "succeeded": 100, "failed": 0, "pending": 0},
            tokens={"prompt": 1000, "completion": 500, "total": 1500},
            cost={"total": 0.01},
            outputs={"metadata": {"container": "batch-output", "path": f"team/f{i:06d}/m"}},
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(start, start + count)))


def _latency(url: str, params: dict[str, str], repeat: int) -> dict[str, float]:
    times = []
    with httpx.Client(timeout=30) as http:
        for _ in range(repeat):
            t = time.perf_counter()
            http.get(url, params=params).raise_for_status()
            times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return {
        "median_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[int(len(times) * 0.95) - 1], 1),
    }


def run(sizes: list[int], limit: int, repeat: int) -> list[dict[str, Any]]:
    from batching.settings import Settings
    from tests.support.stack import fast_settings

    results = []
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        root = Path(tmp)
        az = stack.enter_context(services.azurite(root / "azurite"))
        fake_em = services.Emulator(services.free_port(), "unused")  # listing never calls it
        env = fast_settings(az, fake_em, "runs")
        settings = Settings.from_env(env)
        host = stack.enter_context(app_host(root / "host", env))
        url = f"{host.base_url}/api/runs"
        filled = 0
        for size in sorted(sizes):
            _fill(settings, filled, size - filled)
            filled = size
            first = httpx.get(url, params={"limit": str(limit)}, timeout=30).json()
            assert len(first["runs"]) == min(limit, size)
            deeper = {"limit": str(limit), "cursor": first["next"]} if first["next"] else None
            results.append(
                {
                    "runs": size,
                    "limit": limit,
                    "first_page": _latency(url, {"limit": str(limit)}, repeat),
                    "next_page": _latency(url, deeper, repeat) if deeper else None,
                    "filtered_page": _latency(
                        url, {"limit": str(limit), "status": "completed"}, repeat
                    ),
                }
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 2000])
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    result = run(args.sizes, args.limit, args.repeat)
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
