"""What a run created at Azure OpenAI, recorded by the run itself: one small blob per upload.

Before an upload or a batch is created the ledger says "started" (with the time); right after,
it records the id. An activity re-run after a crash reads the ledger and reuses what it finds,
so the normal path never lists the account. Only when the ledger says "started" without an id
(the worker died between the create call and the write) is the account listed, newest first,
and only back to the time the create started: the recovery path.

The blob lives in the run's work area (`<run>/ledger/c<chunk>-r<round>.json`), which is deleted
last, after the run's Azure OpenAI files are. Writes are conditional on the blob's ETag, so two
copies of one activity cannot both think they started the same create.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobClient, ContentSettings

from batching.context import RunContext
from batching.storage import blobs as storage

LEDGER_FOLDER = "ledger"
# Listing on the recovery path stops at the create's start minus this (clock skew between the
# worker and the service).
CLOCK_SKEW = timedelta(minutes=5)


class LedgerConflict(Exception):
    """Another execution wrote the ledger meanwhile; the activity fails and is retried."""


class LedgerExists(LedgerConflict):
    """A ledger taken as new (`Ledger.new`) was there already: read it and start over."""


def ledger_name(key: str) -> str:
    """`run/c0/r0` -> `ledger/c0-r0.json` (relative to the run's work area)."""
    parts = key.split("/")
    return f"{LEDGER_FOLDER}/{'-'.join(parts[1:])}.json"


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def since(started_at: str) -> int:
    """The Unix time a recovery listing goes back to for a create started at `started_at`."""
    return int((datetime.fromisoformat(started_at) - CLOCK_SKEW).timestamp())


@dataclass
class Ledger:
    """The record of one upload (a chunk's round) and the batches created from it."""

    blob: BlobClient
    etag: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    unread: bool = False  # taken as new without a look: its first write raises LedgerExists

    @classmethod
    def load(cls, ctx: RunContext, key: str) -> Ledger:
        client = ctx.blob(ctx.layout.work(ledger_name(key)))
        try:
            download = client.download_blob()
        except ResourceNotFoundError:
            return cls(client, None, _empty(key))
        return cls(client, download.properties.etag, orjson.loads(download.readall()))

    @classmethod
    def new(cls, ctx: RunContext, key: str) -> Ledger:
        """The ledger taken as new without reading it, where it is almost always new (a round's
        first attempt): its first write is create-only either way, and raises `LedgerExists`
        when an earlier run of the activity left one, which the caller then loads."""
        return cls(ctx.blob(ctx.layout.work(ledger_name(key))), None, _empty(key), unread=True)

    @property
    def upload(self) -> dict[str, Any] | None:
        u = self.data.get("upload")
        return u if isinstance(u, dict) else None

    def batch(self, attempt: int) -> dict[str, Any] | None:
        b = self.data.get("batches", {}).get(str(attempt))
        return b if isinstance(b, dict) else None

    def set_upload(self, **fields: Any) -> None:
        self.data["upload"] = {**(self.upload or {}), **fields}
        self._save()

    def set_batch(self, attempt: int, **fields: Any) -> None:
        self.data.setdefault("batches", {})[str(attempt)] = {
            **(self.batch(attempt) or {}),
            **fields,
        }
        self._save()

    def _save(self) -> None:
        kwargs: dict[str, Any] = {
            "overwrite": True,
            "content_settings": ContentSettings(content_type="application/json"),
        }
        if self.etag:
            kwargs.update(etag=self.etag, match_condition=MatchConditions.IfNotModified)
        else:
            kwargs.update(overwrite=False)
        try:
            result = self.blob.upload_blob(orjson.dumps(self.data), **kwargs)
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError) as e:
            if self.unread:  # it was there already
                raise LedgerExists(f"{self.blob.blob_name} exists") from e
            raise LedgerConflict(f"{self.blob.blob_name} changed meanwhile") from e
        self.etag = result["etag"]
        self.unread = False


def _empty(key: str) -> dict[str, Any]:
    return {"key": key, "upload": None, "batches": {}}


def uploads(
    ctx: RunContext, work_names: Sequence[str] | None = None
) -> tuple[list[str], list[tuple[str, str]]]:
    """(ids of every upload the run recorded, (file name, started_at) of each upload that
    started without an id being recorded). `work_names`: the caller's listing of the run's
    work area, so it is not listed again."""
    layout, settings = ctx.layout, ctx.settings
    work = storage.blob_service(settings.storage).get_container_client(settings.work_container)
    ids: list[str] = []
    unknown: list[tuple[str, str]] = []
    prefix = layout.work(LEDGER_FOLDER + "/").path
    if work_names is None:
        work_names = list(work.list_blob_names(name_starts_with=prefix))
    for name in (n for n in work_names if n.startswith(prefix)):
        try:
            data = orjson.loads(work.get_blob_client(name).download_blob().readall())
        except ResourceNotFoundError:
            continue
        upload = data.get("upload") or {}
        if upload.get("id"):
            ids.append(str(upload["id"]))
        elif upload.get("started_at"):
            unknown.append((str(upload.get("name")), str(upload["started_at"])))
    return ids, unknown
