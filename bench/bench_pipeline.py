"""Pipeline overhead: 50 files of 1,000 requests through the whole local stack.

Measures the time from the first upload to the last run's end (its orchestration's last update,
after metadata.json), and reports it as overhead over the emulator's batch duration D (the part
the service itself takes). Also reported, per run: the app's storage transactions, durable
history events (appended; and replayed: read back by the episodes, each of which replays its
execution's history), orchestrator episodes and Azure OpenAI calls; and the CPU seconds each
process spent meanwhile (`host`: the local host, the app's HTTP and Event Grid functions, the
Event Grid stand-in and this script's polling; `workers`: the app's orchestrators and
activities, in a worker process as `make run` runs them; `emulator`; `azurite`), their total, and
the whole machine's busy, idle and steal seconds (whether the VM got its cores). Run:

    .venv/bin/python -m bench.bench_pipeline [--files 50] [--requests 1000] [--duration 20]
        [--poll 2] [--poll-max 2]  # status checks: every 2 s; `make run`'s grow from 2 s to 10 s
        [--worker-processes 1]   # 0: the whole app in the host's process, as before 2026-12-03
        [--cpus 1.2]   # everything within 1.2 CPUs' worth of time (bench/cpulimit.py; root)
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from azure.storage.blob import BlobServiceClient, ContainerClient

from bench.apphost import app_host
from bench.counting import (
    Counters,
    cpu_by_process,
    cpu_since,
    machine_cpu,
    machine_cpu_since,
    record_requests,
)
from bench.cpulimit import cpu_quota
from devstack import services
from devstack.durable.store import TERMINAL
from devstack.host.workers import FLEX_WORKER_PROCESSES


def make_file(index: int, requests: int) -> bytes:
    lines = (
        orjson.dumps(
            {
                "custom_id": f"f{index}-{i}",
                "method": "POST",
                "url": "/chat/completions",
                "body": {
                    "model": "gpt-4o-batch",
                    "max_tokens": 50,
                    "messages": [
                        {"role": "system", "content": "You answer in one sentence."},
                        {"role": "user", "content": f"Tell me fact number {i} about item {index}."},
                    ],
                },
            }
        )
        for i in range(requests)
    )
    return b"\n".join(lines) + b"\n"


@dataclass
class Pipeline:
    """The local stack of one benchmark: Azurite, the emulator and the host running the app."""

    host: Any
    inputs: ContainerClient
    outputs: ContainerClient
    emulator: services.Emulator
    azurite: services.Azurite
    settings: Any
    worker_requests: Path  # where the app's worker processes record their storage requests


@contextlib.contextmanager
def pipeline(
    duration: float,
    poll: int,
    *,
    poll_max: int | None = None,
    env_extra: dict[str, str] | None = None,
    worker_processes: int = FLEX_WORKER_PROCESSES,
) -> Iterator[Pipeline]:
    """Start the whole local stack in a temporary folder, with the Event Grid watcher running."""
    from batching.settings import Settings
    from batching.storage.blobs import ensure_containers
    from devstack.watcher import Watcher
    from tests.support.stack import fast_settings

    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        root = Path(tmp)
        az = stack.enter_context(services.azurite(root / "azurite"))
        em = stack.enter_context(
            services.emulator(
                root / "em",
                batch_duration=duration,
                api_key="test-key",
                storage=az.connection_string,
            )
        )
        env = {
            **fast_settings(az, em, "bench"),
            "POLL_INITIAL_SECONDS": str(poll),
            "POLL_MAX_SECONDS": str(poll_max or poll),
            **(env_extra or {}),
        }
        settings = Settings.from_env(env)
        ensure_containers(settings.storage, settings.containers)
        worker_requests = root / "worker-requests"
        worker_requests.mkdir()
        host = stack.enter_context(
            app_host(
                root / "host",
                env,
                functools.partial(record_requests, str(worker_requests)),
                worker_processes,
            )
        )
        blobs = BlobServiceClient.from_connection_string(az.connection_string)
        inputs = blobs.get_container_client(settings.input_container)
        outputs = blobs.get_container_client(settings.output_container)
        watcher = Watcher(
            inputs,
            f"{host.base_url}/runtime/webhooks/eventgrid?functionName=on_blob_created",
            interval=0.5,
        )
        watcher.start()
        stack.callback(watcher.stop)
        yield Pipeline(host, inputs, outputs, em, az, settings, worker_requests)


def drive(p: Pipeline, payloads: list[bytes], folder: str, timeout: float) -> dict[str, Any]:
    """Upload the files (8 at a time) into `folder` and wait until every run has ended; returns
    the wall time from the first upload to the last run's end, and per run.

    A run's end is its orchestration's last update (after metadata.json and cleanup), read from
    the host's own store: listing the output container once a second instead cost Azurite
    0.25 CPU s and this process 0.12 CPU s per listing at 3,000 blobs, CPU the runs share, and
    more the more files there are. One listing at the end checks every run wrote metadata.json.
    """
    start = datetime.now(UTC)
    uploaded: dict[str, datetime] = {}

    def upload(i: int) -> None:
        p.inputs.upload_blob(f"{folder}/f{i:03d}.jsonl", payloads[i])
        uploaded[f"f{i:03d}"] = datetime.now(UTC)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(upload, range(len(payloads))))
    deadline = time.monotonic() + timeout
    while sum(p.host.store.status_counts().get(s, 0) for s in TERMINAL) < len(payloads):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not every one of {len(payloads)} runs ended in time")
        time.sleep(0.5)
    # from the store, not the status API: its times are whole seconds
    ended = [i for i in p.host.store.instances() if i.name == "run_file" and i.terminal]
    failed = [i.instance_id for i in ended if i.status != "Completed"]
    if failed:
        raise RuntimeError(f"runs did not complete: {failed[:5]}")
    metadata = {
        name.split("/")[1]
        for name in p.outputs.list_blob_names(name_starts_with=f"{folder}/")
        if name.endswith("/metadata.json")
    }
    if metadata != set(uploaded):
        raise RuntimeError(f"no metadata.json for {sorted(set(uploaded) - metadata)[:5]}")
    done = {i.instance_id.split("-")[0]: i.updated for i in ended}
    per_run = [(done[stem] - uploaded[stem]).total_seconds() for stem in uploaded]
    return {
        "wall_s": (max(done.values()) - start).total_seconds(),
        "per_run_median_s": statistics.median(per_run),
        "per_run_max_s": max(per_run),
    }


def aoai_calls(p: Pipeline) -> int:
    """Every Azure OpenAI call the emulator has answered so far."""
    state: dict[str, Any] = httpx.get(f"{p.emulator.endpoint}/_emulator/state").json()
    return sum(state["requests"].values())


def reference_cpu_s(rounds: int = 20_000) -> float:
    """CPU seconds of a fixed piece of pure-Python work, best of 3: the VM's speed moves by up
    to half within an hour, so each run says at what speed it ran (measured before and after)."""
    doc = orjson.loads(make_file(0, 1).splitlines()[0])
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for i in range(rounds):
            json.loads(json.dumps({**doc, "custom_id": str(i)}))
        best = min(best, time.process_time() - start)
    return round(best, 3)


def run(
    files: int,
    requests: int,
    duration: float,
    poll: int,
    poll_max: int,
    workers: int = FLEX_WORKER_PROCESSES,
    cpus: float | None = None,
) -> dict[str, Any]:
    speed_before = reference_cpu_s()
    with cpu_quota(cpus) if cpus else contextlib.nullcontext() as quota:
        result = _measure(files, requests, duration, poll, poll_max, workers)
        result["cpu_quota"] = quota and {"cpus": cpus, **quota.throttled()}
    result["reference_cpu_s_before_after"] = [speed_before, reference_cpu_s()]
    return result


def _measure(
    files: int, requests: int, duration: float, poll: int, poll_max: int, workers: int
) -> dict[str, Any]:
    with pipeline(duration, poll, poll_max=poll_max, worker_processes=workers) as p:
        counters = Counters(p.worker_requests)
        payloads = [make_file(i, requests) for i in range(files)]
        calls = aoai_calls(p)
        cpu, machine = cpu_by_process(), machine_cpu()
        counters.install()
        try:
            timing = drive(p, payloads, "bench", duration * 4 + 600)
        finally:
            counters.uninstall()
        cpu, machine = cpu_since(cpu), machine_cpu_since(machine)
        calls = aoai_calls(p) - calls
        storage = counters.app_storage(
            p.settings.input_container, p.settings.output_container, files
        )
        total = timing["wall_s"]
        blobs = BlobServiceClient.from_connection_string(p.azurite.connection_string)
        left = {
            c.name: sum(1 for _ in blobs.get_container_client(c.name).list_blob_names())
            for c in blobs.list_containers()
        }
        return {
            "files": files,
            "requests_per_file": requests,
            "batch_duration_s": duration,
            "poll_s": [poll, poll_max],
            "worker_processes": workers,
            "upload_to_last_run_end_s": round(total, 1),
            "overhead_over_D_s": round(total - duration, 1),
            "per_run_median_s": round(timing["per_run_median_s"], 1),
            "per_run_max_s": round(timing["per_run_max_s"], 1),
            "storage_transactions_per_run": round(storage / files, 1),
            "history_events_per_run": round(counters.history / files, 1),
            "history_events_replayed_per_run": round(counters.replayed / files, 1),
            "episodes_per_run": round(counters.episodes / files, 1),
            "aoai_calls_per_run": round(calls / files, 1),
            "cpu_s": cpu,
            # The work is the same in every run: its total CPU is the best reading of how fast
            # the VM ran (it moved by up to half within an hour; the swings measured with
            # `machine_cpu_s` showed no steal).
            "cpu_s_total": round(sum(cpu.values()), 1),
            "machine_cpu_s": machine,
            "blobs_at_end": left,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=20.0, help="emulator batch duration D")
    parser.add_argument("--poll", type=int, default=2, help="POLL_INITIAL_SECONDS")
    parser.add_argument("--poll-max", type=int, default=2, help="POLL_MAX_SECONDS")
    parser.add_argument(
        "--worker-processes",
        type=int,
        default=FLEX_WORKER_PROCESSES,
        help="the app's worker processes, as make run has them (0: in the host's process)",
    )
    parser.add_argument(
        "--cpus",
        type=float,
        default=None,
        help="run everything within this many CPUs' worth of time (a cgroup quota; root)",
    )
    args = parser.parse_args()
    print(
        orjson.dumps(
            run(
                args.files,
                args.requests,
                args.duration,
                args.poll,
                args.poll_max,
                args.worker_processes,
                args.cpus,
            ),
            option=orjson.OPT_INDENT_2,
        ).decode()
    )


if __name__ == "__main__":
    main()
