"""One retry per run: a claim blob, created only if absent, decides between concurrent retries.

Two `POST /api/runs/{id}/retry` at once would both copy the kept input back and start a run each.
The first to create `retries/<run id>.json` in the work container goes on; any other gets a
conflict naming the run the first one started. A retry that fails before its run starts gives
its claim back, so the run can be retried again.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from batching.layout import RunLayout
from batching.ops import runs
from batching.settings import Settings
from batching.storage import blobs as storage
from batching.storage.blobpaths import BlobPathError, check_blob_path
from batching.storage.refs import BlobRef, bare_etag


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


class InputGoneError(Exception):
    """The run's input is no longer stored (or was never recorded): it cannot be retried."""


@dataclass(frozen=True)
class Restored:
    """A retried run's input, back in the input container: what its new run starts from."""

    source: dict[str, Any]  # container, path, etag, size of the input blob
    attempt: int  # a new attempt number when the very same upload runs again
    origin: str  # the container the kept input came from


def restore_input(settings: Settings, run_id: str, instance: dict[str, Any]) -> Restored:
    """Put the run's kept input back where it was uploaded (the error or run folder's copy, or
    the run's snapshot), unless the upload itself is still there unchanged."""
    kept_input = runs.run_input(instance)
    source = kept_input.get("source") or {}
    path = source.get("path")
    if not isinstance(path, str) or not path:
        raise InputGoneError(f"run {run_id} has no recorded input")
    try:
        check_blob_path(path)
    except BlobPathError:
        raise InputGoneError(f"the input path of run {run_id} names no blob") from None
    layout = RunLayout.of(settings, path, run_id)
    origin = runs.kept_input(settings, layout, source.get("etag"))
    if origin is None:
        raise InputGoneError(f"the input of run {run_id} is no longer stored")
    if origin != layout.source:
        storage.copy_blob(
            storage.blob(settings.storage, origin), storage.blob(settings.storage, layout.source)
        )
    props = storage.blob(settings.storage, layout.source).get_blob_properties()
    restored = {
        "container": settings.input_container,
        "path": path,
        "etag": bare_etag(str(props.etag)),
        "size": props.size,
    }
    # A copied-back input is a new upload (new ETag); the same upload needs a new attempt number.
    attempt = 0 if origin != layout.source else int(kept_input.get("attempt") or 0) + 1
    return Restored(restored, attempt, origin.container)
