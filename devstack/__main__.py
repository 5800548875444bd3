"""`make run`: the whole product on this machine.

Starts Azurite (127.0.0.1:10000-10002), the Azure OpenAI emulator (127.0.0.1:8765) and the local
Functions host (127.0.0.1:7071) running the unchanged function_app, all keeping their data under
.local/ so a restart resumes where it stopped; watches batch-input for new files and shows the
runs as they progress. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from devstack import services
from devstack.services import ROOT

LOCAL = ROOT / ".local"


def local_settings() -> dict[str, str]:
    """local.settings.json when the user made one, else the example's values."""
    for name in ("local.settings.json", "local.settings.json.example"):
        path = ROOT / name
        if path.exists():
            values: dict[str, str] = json.loads(path.read_text())["Values"]
            return values
    raise SystemExit("local.settings.json.example is missing")


def _progress_table(instances: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(title="runs (newest first)", expand=True)
    for col in ("run", "source", "phase", "progress", "status", "waiting"):
        table.add_column(col, overflow="fold")
    for inst in sorted(instances, key=lambda i: str(i.get("createdTime")), reverse=True)[:20]:
        custom = inst.get("customStatus") or {}
        req = custom.get("requests") or {}
        total, done = (
            int(req.get("total") or 0),
            int(req.get("succeeded") or 0) + int(req.get("failed") or 0),
        )
        bar_width = 20
        filled = int(bar_width * done / total) if total else 0
        bar = f"{'█' * filled}{'░' * (bar_width - filled)} {done}/{total}"
        output = inst.get("output") if isinstance(inst.get("output"), dict) else {}
        table.add_row(
            str(inst.get("instanceId")),
            str(custom.get("source") or ""),
            str(custom.get("phase") or ""),
            bar,
            str((output or {}).get("status") or inst.get("runtimeStatus")),
            str(custom.get("waiting") or ""),
        )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument(
        "--batch-duration",
        type=float,
        default=float(os.environ.get("EMULATOR_BATCH_DURATION", "20")),
        help="how long an emulated batch runs, seconds (EMULATOR_BATCH_DURATION)",
    )
    parser.add_argument("--no-ui", action="store_true", help="log lines instead of a live table")
    parser.add_argument(
        "--app-dir",
        type=Path,
        default=ROOT,
        help="the folder holding function_app.py (default: this repository)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # The Azure SDKs log every HTTP request at INFO: useful when debugging them, noise here.
    logging.getLogger("azure").setLevel(logging.WARNING)
    app_dir = args.app_dir.resolve()
    refused = _worker_refusal(app_dir)
    if refused:
        print(refused, file=sys.stderr)
        return 2

    from azure.storage.blob import BlobServiceClient

    from batching.settings import Settings
    from batching.storage.blobs import ensure_containers
    from devstack.durable.clock import RealClock
    from devstack.host.host import FunctionHost
    from devstack.host.workers import FLEX_WORKER_PROCESSES
    from devstack.watcher import Watcher

    values = local_settings()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    with contextlib.ExitStack() as stack:
        az = stack.enter_context(services.azurite(LOCAL / "azurite", 10000, 10001, 10002))
        env = {
            **values,
            "AzureWebJobsStorage": az.connection_string,
            "BATCH_STORAGE": az.connection_string,
        }
        em = stack.enter_context(
            services.emulator(
                LOCAL / "emulator",
                port=8765,
                api_key=values.get("AZURE_OPENAI_API_KEY"),
                batch_duration=args.batch_duration,
                storage=az.connection_string,
            )
        )
        env["AZURE_OPENAI_ENDPOINT"] = em.endpoint
        settings = Settings.from_env(env)
        ensure_containers(settings.storage, settings.containers)
        sys.path.insert(0, str(app_dir))
        import function_app

        host = FunctionHost(
            function_app.app,
            LOCAL / "host",
            RealClock(),
            env=env,
            host_json=app_dir / "host.json",
            port=7071,
            # as in Azure, the app's orchestrators and activities run in worker processes
            worker_processes=FLEX_WORKER_PROCESSES,
            app_dir=app_dir,
        )
        stack.enter_context(host)
        blobs = BlobServiceClient.from_connection_string(az.connection_string)
        watcher = Watcher(
            blobs.get_container_client(settings.input_container),
            f"{host.base_url}/runtime/webhooks/eventgrid?functionName=on_blob_created",
        )
        watcher.start()
        stack.callback(watcher.stop)
        print(
            f"""
  Local stack is up.
    storage (Azurite)     {az.connection_string.split(";BlobEndpoint=")[1].split(";")[0]}
    Azure OpenAI emulator {em.endpoint}   (batches take ~{args.batch_duration:.0f}s)
    Functions host        {host.base_url}   (GET /api/health)

  Drop a JSONL file into the '{settings.input_container}' container, at any folder depth:
    .venv/bin/python -m batchctl submit samples/quickstart.jsonl --prefix demo/
  Results appear in '{settings.output_container}/<folder>/<name>/<run-id>/'. Ctrl-C stops.
""",
            flush=True,
        )
        try:
            _show(host, args.no_ui)
        except KeyboardInterrupt:
            print("stopping...", file=sys.stderr)
    return 0


def _worker_refusal(app_dir: Path) -> str | None:
    """Why Azure's Python worker would refuse the app, or None when it loads every function.

    The local host serves nothing the real worker would refuse: it asks the worker's own code
    (azure-functions-runtime, in `.venv-worker`) first.
    """
    from devstack.host.worker import WorkerRefusedError, WorkerUnavailableError, require_loadable

    try:
        verdict = require_loadable(app_dir)
    except WorkerRefusedError as exc:
        return "The Python worker refuses this app, as Azure would:\n  " + "\n  ".join(
            e.message for e in exc.verdict.errors
        )
    except WorkerUnavailableError as exc:
        return f"Cannot check the app with the Python worker: {exc}"
    logging.getLogger("devstack").info(
        "the Python worker loads all %d functions", len(verdict.loaded)
    )
    return None


def _show(host: Any, plain: bool) -> None:
    if plain or not sys.stdout.isatty():
        last: dict[str, str] = {}
        while True:
            for inst in host.list_instances():
                custom = inst.get("customStatus") or {}
                line = f"{custom.get('phase')} {custom.get('requests')} {inst.get('runtimeStatus')}"
                if last.get(inst["instanceId"]) != line:
                    last[inst["instanceId"]] = line
                    print(f"{inst['instanceId']}: {line}", flush=True)
            time.sleep(1)
    from rich.live import Live

    with Live(_progress_table([]), refresh_per_second=2) as live:
        while True:
            live.update(_progress_table(host.list_instances()))
            time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
