"""Pipeline overhead: 50 files of 1,000 requests through the whole local stack.

Measures the time from the first upload to the last metadata.json, and reports it as overhead
over the emulator's batch duration D (the part the service itself takes). Run:

    .venv/bin/python -m bench.bench_pipeline [--files 50] [--requests 1000] [--duration 20]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
from azure.storage.blob import BlobServiceClient

from devstack import services


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


def run(files: int, requests: int, duration: float, poll: int) -> dict[str, float]:
    import function_app
    from batching.settings import Settings
    from batching.storage import ensure_containers
    from devstack.clock import RealClock
    from devstack.host import FunctionHost
    from devstack.watcher import Watcher
    from tests.e2e import fast_settings

    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        root = Path(tmp)
        az = stack.enter_context(services.azurite(root / "azurite"))
        em = stack.enter_context(
            services.emulator(root / "em", batch_duration=duration, api_key="test-key")
        )
        env = {
            **fast_settings(az, em, "bench"),
            "POLL_INITIAL_SECONDS": str(poll),
            "POLL_MAX_SECONDS": str(poll),
        }
        settings = Settings.from_env(env)
        ensure_containers(settings.storage, settings.containers)
        host = stack.enter_context(
            FunctionHost(function_app.app, root / "host", RealClock(), env=env)
        )
        blobs = BlobServiceClient.from_connection_string(az.connection_string)
        inputs = blobs.get_container_client(settings.input_container)
        outputs = blobs.get_container_client(settings.output_container)
        watcher = Watcher(
            inputs,
            f"{host.base_url}/runtime/webhooks/eventgrid?functionName=on_blob_created",
            interval=0.5,
        )
        payloads = [make_file(i, requests) for i in range(files)]
        watcher.start()
        stack.callback(watcher.stop)

        start = time.monotonic()
        uploaded: dict[str, float] = {}

        def upload(i: int) -> None:
            inputs.upload_blob(f"bench/f{i:03d}.jsonl", payloads[i])
            uploaded[f"bench/f{i:03d}"] = time.monotonic()

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(upload, range(files)))
        done: dict[str, float] = {}
        deadline = start + duration * 4 + 600
        while len(done) < files:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(done)} of {files} runs finished")
            for b in outputs.list_blobs(name_starts_with="bench/"):
                if b.name.endswith("/metadata.json"):
                    stem = b.name.split("/")[1]
                    done.setdefault(f"bench/{stem}", time.monotonic())
            time.sleep(0.25)
        total = max(done.values()) - start
        per_run = [done[k] - uploaded[k] for k in done]
        return {
            "files": files,
            "requests_per_file": requests,
            "batch_duration_s": duration,
            "poll_s": poll,
            "upload_to_last_metadata_s": round(total, 1),
            "overhead_over_D_s": round(total - duration, 1),
            "per_run_median_s": round(statistics.median(per_run), 1),
            "per_run_max_s": round(max(per_run), 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=20.0, help="emulator batch duration D")
    parser.add_argument("--poll", type=int, default=2, help="POLL_INITIAL/MAX_SECONDS")
    args = parser.parse_args()
    print(
        orjson.dumps(
            run(args.files, args.requests, args.duration, args.poll), option=orjson.OPT_INDENT_2
        ).decode()
    )


if __name__ == "__main__":
    main()
