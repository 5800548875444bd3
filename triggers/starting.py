"""Starting a run for an input blob, exactly once per upload, from any trigger.

The instance id is derived from the blob's path and ETag: a redelivered event, the
reconciliation and a user's "start" all land on the same orchestration, which is started only
when no instance with that id exists yet (Azure would otherwise replace a finished one).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import azure.durable_functions as df

from batching.layout import is_input, run_id_for
from batching.logs import event
from batching.ops import runindex
from batching.settings import Settings
from batching.storage.refs import bare_etag
from orchestrators.run_file import ORCHESTRATOR

log = logging.getLogger("batching.start")


def source_of(container: str, path: str, etag: str, size: int | None) -> dict[str, Any]:
    return {"container": container, "path": path, "etag": bare_etag(etag), "size": size}


async def start_run(
    client: df.DurableOrchestrationClient,
    settings: Settings,
    source: dict[str, Any],
    received_at: str | None = None,
    attempt: int = 0,
) -> tuple[str, bool]:
    """Start the run of `source` unless it exists; returns (run id, whether it was started)."""
    run_id = run_id_for(source["container"], source["path"], source["etag"], attempt)
    existing = await client.get_status(run_id)
    if existing is not None and existing.runtime_status is not None:
        event(log, "run exists", run_id, status=str(existing.runtime_status))
        return run_id, False
    received = received_at or datetime.now(UTC).isoformat()
    payload = {
        "run_id": run_id,
        "source": source,
        "config": settings.orchestration_config(),
        "received_at": received,
        "phase": "validating",
        "attempt": attempt,
    }
    # Indexed before it starts, so this write can never land after the run's own later ones.
    runindex.record(settings, run_id, received, source, "pending")
    await client.start_new(ORCHESTRATOR, run_id, payload)
    event(log, "run started", run_id, source=source["path"], size=source.get("size"))
    return run_id, True


def parse_blob_created(
    event_type: str, subject: str, data: dict[str, Any]
) -> tuple[str, str] | None:
    """(container, path) of a BlobCreated event for a JSONL file, else None."""
    if event_type != "Microsoft.Storage.BlobCreated":
        return None
    prefix = "/blobServices/default/containers/"
    if not subject.startswith(prefix) or "/blobs/" not in subject:
        return None
    container, path = subject[len(prefix) :].split("/blobs/", 1)
    if not is_input(path):
        return None
    return container, path


def wanted(settings: Settings, container: str) -> bool:
    return container == settings.input_container
