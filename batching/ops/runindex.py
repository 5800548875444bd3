"""The runs index: one Azure Table entity per run, so listing runs costs one page, not all runs.

Design: PartitionKey is the constant `run` (one partition serves a couple of thousand writes a
second, far above the rate runs change phase). RowKey is the inverted time the run was received
(milliseconds until year 2286, zero-padded) followed by the run id: the table returns rows in
RowKey order, so that order is newest first, a time window is a RowKey range, and the page after
a row is `RowKey gt` that row's key. Every write is an upsert (merge) of the run's own entity,
so writing twice is harmless. A run is written when it arrives, when its figures are known and
when it ends: the listing reads a run that has not ended live from its orchestration, so the
phases in between are not written (each write cost the app's worker as much as a blob copy).
Status and source-prefix filters are evaluated by the table service within the partition.
The same table keeps each run's ledger in a partition of the run's own (`batching.service.ledger`),
which no query here reads.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

import orjson
from azure.core.exceptions import AzureError
from azure.data.tables import UpdateMode

from batching.settings import Settings
from batching.statuses import RUN_ENDED
from batching.storage.tables import table

PARTITION = "run"
_MAX_MS = 10**13 - 1
_RUNTIME = {"error": "Failed", "terminated": "Terminated"}
log = logging.getLogger("batching.runindex")


def _ms(at: str | datetime) -> int:
    when = datetime.fromisoformat(at) if isinstance(at, str) else at
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


# A page cursor is a row key: 13 digits of inverted milliseconds, "_", the run id.
CURSOR = re.compile(r"\d{13}_[A-Za-z0-9._-]{1,200}")


def row_key(received_at: str, run_id: str) -> str:
    """Newest first: the inverted receive time, then the run id (unique)."""
    return f"{_MAX_MS - _ms(received_at):013d}_{run_id}"


def _bound(at: str | datetime) -> str:
    """The RowKey prefix of runs received at `at` (rows of older runs sort after it)."""
    return f"{_MAX_MS - _ms(at):013d}"


def record(
    settings: Settings,
    run_id: str,
    received_at: str | None,
    source: dict[str, Any],
    phase: str | None,
    status: str = "running",
    **fields: Any,
) -> None:
    """Upsert the run's entity: its phase and status (left as they are when `phase` is None:
    a write that may land after the run's last one), and any of requests, tokens, cost,
    reason (JSON-encoded) and outputs ({name: blob}, one property per output). Never fails
    the caller: a failed write is logged, and the run's next phase writes the entity again."""
    if not received_at:
        return
    entity: dict[str, Any] = {
        "PartitionKey": PARTITION,
        "RowKey": row_key(received_at, run_id),
        "RunId": run_id,
        "Source": str(source.get("path") or ""),
        "Container": str(source.get("container") or ""),
        "Received": received_at,
        "Updated": datetime.now(UTC).isoformat(),
    }
    if phase is not None:
        entity.update(Phase=phase, Status=status)
    for key, value in fields.items():
        if key == "outputs":  # one property each, so later writes add to earlier ones
            for name, ref in value.items():
                if ref is not None:
                    entity[f"Out_{name}"] = orjson.dumps(ref).decode()
        elif value is not None:
            entity[key[:1].upper() + key[1:]] = orjson.dumps(value).decode()
    try:
        table(settings.storage, settings.runs_table).upsert_entity(entity, mode=UpdateMode.MERGE)
    except AzureError as e:
        log.warning("runs index: %s not updated (%s): %s", run_id, phase, e)


def _quote(value: str) -> str:
    return value.replace("'", "''")


def _prefix_end(prefix: str) -> str:
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def query(
    settings: Settings,
    limit: int,
    after: str | None = None,
    status: str | None = None,
    prefix: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """The newest `limit` index rows (after the row key `after`, from a previous page) that
    match; and the key to continue from, None when there are no more. Cost: one query of at
    most limit + 1 rows (the service may split it when filters skip many rows)."""
    clauses = [f"PartitionKey eq '{PARTITION}'"]
    if after:
        clauses.append(f"RowKey gt '{_quote(after)}'")
    if until:  # received before `until`: rows from the inverted time just after it
        clauses.append(f"RowKey ge '{int(_bound(until)) + 1:013d}'")
    if since:  # received at or after `since`
        clauses.append(f"RowKey lt '{int(_bound(since)) + 1:013d}'")
    if status:
        clauses.append(f"Status eq '{_quote(status)}'")
    if prefix:
        clauses.append(
            f"Source ge '{_quote(prefix)}' and Source lt '{_quote(_prefix_end(prefix))}'"
        )
    rows: list[dict[str, Any]] = []
    entities = table(settings.storage, settings.runs_table).query_entities(
        " and ".join(clauses), results_per_page=min(limit + 1, 1000)
    )
    for entity in entities:
        rows.append(dict(entity))
        if len(rows) > limit:
            break
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1]["RowKey"] if more and rows else None)


def summary(row: dict[str, Any]) -> dict[str, Any]:
    """A run summary (the shape of `batching.ops.runs.summary`) from its index row."""

    def loaded(key: str) -> Any:
        raw = row.get(key)
        return orjson.loads(raw) if isinstance(raw, str) and raw else None

    status = str(row.get("Status") or "running")
    requests = loaded("Requests") or {"total": 0, "succeeded": 0, "failed": 0, "pending": 0}
    total = int(requests.get("total") or 0)
    done = int(requests.get("succeeded") or 0) + int(requests.get("failed") or 0)
    return {
        "id": row.get("RunId"),
        "source": row.get("Source"),
        "phase": row.get("Phase"),
        "status": status,
        "runtime_status": _RUNTIME.get(status, "Completed" if status in RUN_ENDED else "Running"),
        "requests": requests,
        "progress": round(done / total, 4) if total else (1.0 if status in RUN_ENDED else 0.0),
        "tokens": loaded("Tokens"),
        "cost": loaded("Cost"),
        "waiting": None,
        "reason": loaded("Reason"),
        "created": row.get("Received"),
        "updated": row.get("Updated"),
        "outputs": {k[4:]: loaded(k) for k in sorted(row) if k.startswith("Out_")},
        "error": None,
    }
