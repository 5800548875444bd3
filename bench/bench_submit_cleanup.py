"""What a blob-mode run's `submit_batch` and `cleanup_run` cost, side by side across checkouts.

    .venv/bin/python -m bench.bench_submit_cleanup [--runs 150] [--fill 3000] [--repeat 3]
        [--against DIR ...]

One Azurite (first filled with `--fill` blobs in a container of their own: Azurite's CPU per
blob request grows with the blobs in the account) and one emulator (batches that run long
enough to stay in flight). Then, `--repeat` times, for this checkout and each `--against`
checkout in turn, a child process running that checkout's code stages `--runs` runs (an input
and its snapshot each: not measured) and calls, for each run, `submit_batch` then
`cleanup_run`. Reported per run: the child's CPU ms in each of the two (the app's side of
every request), and Azurite's and the emulator's CPU ms over the child's whole life (the
staging included, which is the same for every checkout).

The child only uses what every checkout since the ledger has: `RunContext.of`,
`submission.submit_batch`, `finalize.cleanup_run`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.counting import cpu_by_process

ROOT = Path(__file__).resolve().parent.parent
LINE = (
    b'{"custom_id": "t%d", "method": "POST", "url": "/chat/completions", '
    b'"body": {"model": "gpt-4o-batch", "messages": [{"role": "user", "content": "hi"}]}}\n'
)


def child(repo: str, connection: str, endpoint: str, runs: int, tag: str) -> None:
    """In the child: the app's code from `repo`; prints submit and cleanup CPU ms per run."""
    sys.path.insert(0, repo)
    from batching.context import RunContext
    from batching.service import submission
    from batching.settings import Settings
    from batching.steps import finalize
    from batching.storage import blobs as storage

    settings = Settings.from_env(
        {
            "AZURE_OPENAI_ENDPOINT": endpoint,
            "AZURE_OPENAI_API_KEY": "k",
            "AZURE_OPENAI_BATCH_MODE": "blob",
            "BATCH_STORAGE": connection,
            "INPUT_CONTAINER": "sc-in",
            "OUTPUT_CONTAINER": "sc-out",
            "ERROR_CONTAINER": "sc-err",
            "WORK_CONTAINER": "sc-work",
            "SERVICE_OUTPUT_CONTAINER": "sc-svc",
        }
    )
    storage.ensure_containers(settings.storage, settings.containers)
    data = b"".join(LINE % i for i in range(3))
    contexts = []
    for i in range(runs):
        source = {"container": "sc-in", "path": f"{tag}/{i}.jsonl"}
        ctx = RunContext.of(settings, f"{tag}-{i}", source)
        storage.write_bytes(ctx.blob(ctx.layout.source), data, "application/jsonl")
        storage.write_bytes(ctx.blob(ctx.layout.snapshot), data, "application/jsonl")
        contexts.append(ctx)
    submit = cleanup = 0.0
    for ctx in contexts:
        started = time.process_time()
        created = submission.submit_batch(
            ctx,
            {
                "run_id": ctx.run_id,
                "source": ctx.source,
                "key": f"{ctx.run_id}/c0/r0",
                "attempt": 0,
                "input": ctx.layout.snapshot.to_dict(),
                "endpoint": "/chat/completions",
                "tokens": 100,
            },
        )
        submitted = time.process_time()
        assert created["status"] == "created", created
        finalize.cleanup_run(ctx, [{"batches": []}], "completed", None)
        submit += submitted - started
        cleanup += time.process_time() - submitted
    print(f"{1000 * submit / runs:.2f} {1000 * cleanup / runs:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=150)
    parser.add_argument("--fill", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--against", action="append", default=[], help="another checkout")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        repo, connection, endpoint, runs, tag = args.child
        child(repo, connection, endpoint, int(runs), tag)
        return
    from azure.storage.blob import BlobServiceClient

    from devstack import services

    checkouts = [str(ROOT), *(str(Path(a).resolve()) for a in args.against)]
    with tempfile.TemporaryDirectory() as tmp, services.azurite(Path(tmp) / "az") as az:
        filler = BlobServiceClient.from_connection_string(az.connection_string)
        fill = filler.get_container_client("sc-fill")
        fill.create_container()
        for i in range(args.fill):
            fill.upload_blob(f"f/{i:06d}", b"x")
        with services.emulator(
            Path(tmp) / "em", batch_duration=3600, api_key="k", storage=az.connection_string
        ) as em:
            print("checkout | submit ms | cleanup ms | Azurite ms | emulator ms (a run)")
            for rep in range(args.repeat):
                for n, repo in enumerate(checkouts):
                    before = cpu_by_process()
                    out = subprocess.run(
                        [sys.executable, "-m", "bench.bench_submit_cleanup", "--child", repo,
                         az.connection_string, em.endpoint, str(args.runs), f"r{rep}c{n}"],
                        cwd=ROOT, capture_output=True, text=True, check=True,
                    )  # fmt: skip
                    after = cpu_by_process()
                    cost = {
                        k: 1000 * (after[k] - before[k]) / args.runs
                        for k in ("azurite", "emulator")
                    }
                    submit, cleanup = out.stdout.split()
                    print(
                        f"{repo} | {submit} | {cleanup} | {cost['azurite']:.1f} | "
                        f"{cost['emulator']:.1f}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
