"""What a run created at Azure OpenAI, recorded by the run itself: one table entity per upload.

Before an upload or a batch is created the ledger says "started" (with the time); right after,
it records the id. An activity re-run after a crash reads the ledger and reuses what it finds,
so the normal path never lists the account. Only when the ledger says "started" without an id
(the worker died between the create call and the write) is the account listed, newest first,
and only back to the time the create started: the recovery path.

The ledger is kept in the data account's runs table (`RUNS_TABLE`), in a partition of the run's
own (`ledger-<run id>`; the runs index is partition `run`), one entity per chunk round (RowKey
`c<chunk>-r<round>`) with the upload and each batch attempt as a JSON property of its own. A
table entity rather than a blob: its requests cost less than a blob's (Azurite's a third to a
half), and it adds nothing to the blob count Azurite scans on every blob request. Cleanup
deletes the run's partition last, after the run's Azure OpenAI files are. Writes are conditional
on the entity's ETag, so two copies of one activity cannot both think they started the same
create.
"""

from __future__ import annotations

from collections.abc import Iterable
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
from azure.data.tables import TableClient, UpdateMode

from batching.context import RunContext
from batching.storage.tables import table

PARTITION_PREFIX = "ledger-"
UPLOAD = "Upload"  # the entity's property holding the round's upload
# Listing on the recovery path stops at the create's start minus this (clock skew between the
# worker and the service).
CLOCK_SKEW = timedelta(minutes=5)
MESSAGE_CHARS = 2000  # a refusal's message as recorded (a table property holds 32K characters)


class LedgerConflict(Exception):
    """Another execution wrote the ledger meanwhile; the activity fails and is retried."""


class LedgerExists(LedgerConflict):
    """A ledger taken as new (`Ledger.new`) was there already: read it and start over."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def since(started_at: str) -> int:
    """The Unix time a recovery listing goes back to for a create started at `started_at`."""
    return int((datetime.fromisoformat(started_at) - CLOCK_SKEW).timestamp())


def _table(ctx: RunContext) -> TableClient:
    return table(ctx.settings.storage, ctx.settings.runs_table)


def _partition(run_id: str) -> str:
    return PARTITION_PREFIX + run_id


def _row(key: str) -> str:
    """`run/c0/r0` -> `c0-r0`."""
    return "-".join(key.split("/")[1:])


@dataclass
class Ledger:
    """The record of one upload (a chunk's round) and the batches created from it."""

    table: TableClient
    partition: str
    row: str
    key: str
    etag: str | None = None
    upload: dict[str, Any] | None = None
    batches: dict[int, dict[str, Any]] = field(default_factory=dict)
    unread: bool = False  # taken as new without a look: its first write raises LedgerExists

    @classmethod
    def load(cls, ctx: RunContext, key: str) -> Ledger:
        client, partition = _table(ctx), _partition(ctx.run_id)
        try:
            entity = client.get_entity(partition, _row(key))
        except ResourceNotFoundError:
            return cls(client, partition, _row(key), key)
        return cls._of(client, entity)

    @classmethod
    def new(cls, ctx: RunContext, key: str) -> Ledger:
        """The ledger taken as new without reading it, where it is almost always new (a round's
        first attempt): its first write is create-only either way, and raises `LedgerExists`
        when an earlier run of the activity left one, which the caller then loads."""
        return cls(_table(ctx), _partition(ctx.run_id), _row(key), key, unread=True)

    @classmethod
    def _of(cls, client: TableClient, entity: Any) -> Ledger:
        upload = entity.get(UPLOAD)
        return cls(
            client,
            str(entity["PartitionKey"]),
            str(entity["RowKey"]),
            str(entity.get("Key") or ""),
            etag=str(entity.metadata["etag"]),
            upload=orjson.loads(upload) if upload else None,
            batches={
                int(name[1:]): orjson.loads(value)
                for name, value in entity.items()
                if name[:1] == "A" and name[1:].isdigit()
            },
        )

    def batch(self, attempt: int) -> dict[str, Any] | None:
        return self.batches.get(attempt)

    def set_upload(self, **fields: Any) -> None:
        self.upload = {**(self.upload or {}), **fields}
        self._save()

    def set_batch(self, attempt: int, **fields: Any) -> None:
        self.batches[attempt] = {**(self.batch(attempt) or {}), **fields}
        self._save()

    def _entity(self) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "PartitionKey": self.partition,
            "RowKey": self.row,
            "Key": self.key,
        }
        if self.upload is not None:
            entity[UPLOAD] = orjson.dumps(self.upload).decode()
        for attempt, batch in sorted(self.batches.items()):
            entity[f"A{attempt}"] = orjson.dumps(batch).decode()
        return entity

    def _save(self) -> None:
        entity = self._entity()
        try:
            if self.etag:
                result = self.table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=self.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            else:
                result = self.table.create_entity(entity)
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError) as e:
            if self.unread:  # it was there already
                raise LedgerExists(f"the ledger of {self.key} exists") from e
            raise LedgerConflict(f"the ledger of {self.key} changed meanwhile") from e
        self.etag = str(result["etag"])
        self.unread = False


def of_run(ctx: RunContext) -> list[Ledger]:
    """Every ledger the run wrote: one query of its partition (not a listing of the account)."""
    client = _table(ctx)
    found = client.query_entities(
        "PartitionKey eq @partition", parameters={"partition": _partition(ctx.run_id)}
    )
    return [Ledger._of(client, entity) for entity in found]


def uploads(ledgers: Iterable[Ledger]) -> tuple[list[str], list[tuple[str, str]]]:
    """(ids of every upload recorded, (file name, started_at) of each upload that started
    without an id being recorded)."""
    ids: list[str] = []
    unknown: list[tuple[str, str]] = []
    for record in ledgers:
        upload = record.upload or {}
        if upload.get("id"):
            ids.append(str(upload["id"]))
        elif upload.get("started_at"):
            unknown.append((str(upload.get("name")), str(upload["started_at"])))
    return ids, unknown


def forget(ledgers: Iterable[Ledger]) -> None:
    """Delete the ledgers: the last thing a run's cleanup does (deleting one twice is fine)."""
    for record in ledgers:
        record.table.delete_entity(record.partition, record.row)
