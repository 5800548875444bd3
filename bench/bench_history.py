"""Per-run cost against an account's history: an empty account, then one holding old batch files
and batches. Run:

    .venv/bin/python -m bench.bench_history [--files 60] [--requests 20] [--duration 8]
        [--old-files 3000] [--old-batches 300] [--modes blob,files]

For each case, a fresh local stack (Azurite, the emulator with batch duration D, the host running
the unchanged `function_app`); in the second case the emulator is first filled, an hour in the
past, with `--old-files` batch files (with an expiry, as the service allows 10,000 of those) and
`--old-batches` batches. Then the same files run through the pipeline. Reported per run: Azure
OpenAI calls (the emulator counts every call), of which listing calls (`GET /openai/files`,
`GET /openai/batches`); storage transactions of the app (every request that reaches Azurite,
blob and table, counted at the azure-core transport, without the benchmark's own uploads and
polling and the Event Grid stand-in's listing); durable history events (every event the engine
appends to an orchestration's history, over all its executions) and of them the events replayed
(read back by the episodes: each replays its execution's whole history, which the durable SDK
parses again); and the wall time from the first upload to the last run's end.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import orjson
from openai import AzureOpenAI

from bench.bench_pipeline import Pipeline, drive, make_file, pipeline
from bench.counting import Counters

LISTING = ("GET /openai/files", "GET /openai/batches")
TERMINAL = ("completed", "failed", "expired", "cancelled")


def _emulator(p: Pipeline) -> dict[str, Any]:
    state: dict[str, Any] = httpx.get(f"{p.emulator.endpoint}/_emulator/state").json()
    return state


def seed(p: Pipeline, files: int, batches: int) -> None:
    """Fill the account an hour in the past: batch files, and batches over some of them."""
    base = p.emulator.endpoint
    httpx.post(f"{base}/_emulator/clock", json={"offset_seconds": -3600}).raise_for_status()
    client = AzureOpenAI(
        azure_endpoint=base, api_key="test-key", api_version="2024-10-21", max_retries=5
    )
    line = make_file(0, 1)

    def upload(i: int) -> str:
        f = client.files.create(
            file=(f"old-{i:05d}.jsonl", line, "application/jsonl"),
            purpose="batch",
            expires_after={"anchor": "created_at", "seconds": 1209600},
        )
        return f.id

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(upload, range(files)))
        list(
            pool.map(
                lambda i: client.batches.create(
                    input_file_id=ids[i],
                    endpoint="/chat/completions",
                    completion_window="24h",
                    metadata={"key": f"old/{i}"},
                ),
                range(batches),
            )
        )
    httpx.post(f"{base}/_emulator/clock", json={"offset_seconds": 0}).raise_for_status()
    # The old batches must have ended: the emulator processing them would slow the runs down.
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        states = _emulator(p)["batches"]
        if sum(n for status, n in states.items() if status not in TERMINAL) == 0:
            return
        time.sleep(0.5)
    raise TimeoutError(f"old batches did not end: {states}")


def measure(
    files: int, requests: int, duration: float, old_files: int, old_batches: int, mode: str
) -> dict[str, Any]:
    with pipeline(duration, 2, env_extra={"AZURE_OPENAI_BATCH_MODE": mode}) as p:
        counters = Counters(p.worker_requests)
        if old_files or old_batches:
            seed(p, old_files, old_batches)
        before = Counter(_emulator(p)["requests"])
        payloads = [make_file(i, requests) for i in range(files)]
        counters.install()
        try:
            timing = drive(p, payloads, "bench", duration * 4 + 600)
        finally:
            counters.uninstall()
        calls = Counter(_emulator(p)["requests"])
        calls.subtract(before)
        total = sum(calls.values())
        listing = sum(calls[k] for k in LISTING)
        storage = counters.app_storage(
            p.settings.input_container, p.settings.output_container, files
        )
        return {
            "mode": mode,
            "old_files": old_files,
            "old_batches": old_batches,
            "wall_s": round(timing["wall_s"], 1),
            "aoai_calls_per_run": round(total / files, 2),
            "listing_calls_per_run": round(listing / files, 2),
            "storage_transactions_per_run": round(storage / files, 1),
            "history_events_per_run": round(counters.history / files, 1),
            "history_events_replayed_per_run": round(counters.replayed / files, 1),
            "episodes_per_run": round(counters.episodes / files, 1),
            "aoai_calls": {k: v for k, v in sorted(calls.items()) if v},
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=60)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--duration", type=float, default=8.0, help="emulator batch duration D")
    parser.add_argument("--old-files", type=int, default=3000)
    parser.add_argument("--old-batches", type=int, default=300)
    parser.add_argument(
        "--modes", default="blob", help="comma-separated batch modes to measure: blob, files"
    )
    args = parser.parse_args()
    for mode in args.modes.split(","):
        common = (args.files, args.requests, args.duration)
        empty = measure(*common, 0, 0, mode)
        result: dict[str, Any] = {
            "mode": mode,
            "files": args.files,
            "requests_per_file": args.requests,
            "batch_duration_s": args.duration,
            "empty": empty,
        }
        if args.old_files or args.old_batches:
            loaded = measure(*common, args.old_files, args.old_batches, mode)
            result["loaded"] = loaded
            result["wall_ratio"] = round(loaded["wall_s"] / empty["wall_s"], 2)
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode(), flush=True)


if __name__ == "__main__":
    main()
