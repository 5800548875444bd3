"""Admission: at most N batches, and at most T estimated tokens per deployment, in flight.

Runs beyond the limits wait their turn in order of arrival instead of failing on quota. The
ledger is one small JSON blob in the work container, changed only under a blob lease, so
concurrent activities on any number of instances see one consistent queue. Entries older than
a batch can live are dropped, so a run that vanished cannot hold a slot forever.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobLeaseClient

from batching.settings import Settings
from batching.storage import blobs as storage
from batching.storage.refs import BlobRef

LEDGER = "_admission/ledger.json"
LEASE_SECONDS = 15
LOCK_TIMEOUT_SECONDS = 60.0
STALE_SECONDS = 26 * 3600


def _ledger_blob(settings: Settings) -> BlobClient:
    return storage.blob(settings.storage, BlobRef(settings.work_container, LEDGER))


def _locked(settings: Settings, change: Callable[[dict[str, Any]], Any]) -> Any:
    """Apply `change` to the ledger under a lease and write it back."""
    client = _ledger_blob(settings)
    with contextlib.suppress(ResourceExistsError):
        client.upload_blob(b'{"active": {}, "queue": []}', overwrite=False)
    deadline = time.monotonic() + LOCK_TIMEOUT_SECONDS
    while True:
        try:
            lease: BlobLeaseClient = client.acquire_lease(lease_duration=LEASE_SECONDS)
            break
        except HttpResponseError as e:
            if e.status_code != 409 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    try:
        ledger = orjson.loads(client.download_blob(lease=lease).readall())
        now = datetime.now(UTC).timestamp()
        ledger["active"] = {
            k: v for k, v in ledger["active"].items() if now - v["since"] < STALE_SECONDS
        }
        result = change(ledger)
        client.upload_blob(orjson.dumps(ledger), overwrite=True, lease=lease)
        return result
    finally:
        with contextlib.suppress(ResourceNotFoundError):
            lease.release()


def admit(
    settings: Settings,
    key: str,
    deployment: str | None,
    tokens: int,
    max_active: int,
    max_tokens: int,
    arrived: str | None = None,
) -> dict[str, Any]:
    """Queue `key` if new; grant queued entries in order while they fit. Idempotent.

    The queue is ordered by `arrived` (when the run's file arrived, ISO 8601): runs wait their
    turn by arrival, not by how soon their validation finished.
    """
    at = _epoch(arrived)

    def change(ledger: dict[str, Any]) -> dict[str, Any]:
        active: dict[str, Any] = ledger["active"]
        queue: list[dict[str, Any]] = ledger["queue"]
        if key in active:
            return {"granted": True, "position": None}
        if all(q["key"] != key for q in queue):
            place = next((i for i, q in enumerate(queue) if q.get("arrived", 0.0) > at), len(queue))
            entry = {"key": key, "deployment": deployment or "", "tokens": tokens, "arrived": at}
            queue.insert(place, entry)
        now = datetime.now(UTC).timestamp()
        while queue and _fits(active, queue[0], max_active, max_tokens):
            head = queue.pop(0)
            active[head["key"]] = {**head, "since": now}
        if key in active:
            return {"granted": True, "position": None}
        position = next(i for i, q in enumerate(queue) if q["key"] == key)
        return {"granted": False, "position": position + 1}

    result: dict[str, Any] = _locked(settings, change)
    return result


def _epoch(arrived: str | None) -> float:
    """Seconds since the epoch of an ISO 8601 time; now when it is missing or malformed."""
    try:
        return datetime.fromisoformat(str(arrived)).timestamp()
    except ValueError:
        return datetime.now(UTC).timestamp()


def _fits(active: dict[str, Any], entry: dict[str, Any], max_active: int, max_tokens: int) -> bool:
    if max_active and len(active) >= max_active:
        return False
    same = [a for a in active.values() if a["deployment"] == entry["deployment"]]
    # A chunk larger than the whole budget still runs, alone, rather than wait forever.
    return not (
        max_tokens and same and sum(a["tokens"] for a in same) + entry["tokens"] > max_tokens
    )


def release(settings: Settings, key: str) -> None:
    """Free `key`'s slot (or queue place); nothing happens when it holds none."""
    if not (settings.run.max_active_batches or settings.run.max_enqueued_tokens):
        return

    def change(ledger: dict[str, Any]) -> None:
        ledger["active"].pop(key, None)
        ledger["queue"] = [q for q in ledger["queue"] if q["key"] != key]

    _locked(settings, change)
