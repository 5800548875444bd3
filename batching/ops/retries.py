"""One retry per run: a claim blob, created only if absent, decides between concurrent retries.

Two `POST /api/runs/{id}/retry` at once would both copy the kept input back and start a run each.
The first to create `retries/<run id>.json` in the work container goes on; any other gets a
conflict naming the run the first one started. A retry that fails before its run starts gives
its claim back, so the run can be retried again.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

import orjson
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from batching.settings import Settings
from batching.storage import blobs as storage
from batching.storage.refs import BlobRef


def _ref(settings: Settings, run_id: str) -> BlobRef:
    return BlobRef(settings.work_container, f"retries/{run_id}.json")


def claim(settings: Settings, run_id: str) -> dict[str, Any] | None:
    """Claim the retry of `run_id`: None when claimed now, else the existing claim's content."""
    client = storage.blob(settings.storage, _ref(settings, run_id))
    body = {"retry_of": run_id, "claimed_at": datetime.now(UTC).isoformat(), "new_id": None}
    try:
        client.upload_blob(orjson.dumps(body), overwrite=False)
        return None
    except ResourceExistsError:
        pass
    try:
        found: dict[str, Any] = orjson.loads(client.download_blob().readall())
        return found
    except (ResourceNotFoundError, orjson.JSONDecodeError):
        return {"retry_of": run_id, "new_id": None}


def record(settings: Settings, run_id: str, new_id: str) -> None:
    """Note which run the retry started (what a later retry of `run_id` is told)."""
    body = {"retry_of": run_id, "claimed_at": datetime.now(UTC).isoformat(), "new_id": new_id}
    storage.blob(settings.storage, _ref(settings, run_id)).upload_blob(
        orjson.dumps(body), overwrite=True
    )


def release(settings: Settings, run_id: str) -> None:
    """Give the claim back: the retry did not start a run."""
    client = storage.blob(settings.storage, _ref(settings, run_id))
    with contextlib.suppress(ResourceNotFoundError):
        client.delete_blob()
