"""Runs as people see them: durable instance status shaped into summaries and details.

The orchestration's custom status carries the live phase and counts; its output carries how it
ended; metadata.json (read from storage) has the full detail of a finished run.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from azure.core.exceptions import ResourceNotFoundError

from batching.layout import RunLayout
from batching.ops import runindex
from batching.ops.api import public_error
from batching.settings import Settings
from batching.statuses import RUN_ENDED
from batching.storage import blobs as storage
from batching.storage.refs import BlobRef, bare_etag

ACTIVE = ("Running", "Pending", "ContinuedAsNew")


def _status_name(raw: Any) -> str:
    """`OrchestrationRuntimeStatus.Running` or `Running` -> `Running`."""
    return str(raw or "").rsplit(".", 1)[-1]


def run_status(instance: dict[str, Any]) -> str:
    """running | completed | failed | expired | cancelled | invalid | error | terminated."""
    runtime = _status_name(instance.get("runtimeStatus"))
    output = instance.get("output")
    if runtime == "Completed" and isinstance(output, dict):
        return str(output.get("status") or "completed")
    if runtime in ACTIVE:
        return "running"
    if runtime == "Failed":
        return "error"
    return runtime.lower() or "unknown"


def run_input(instance: dict[str, Any]) -> dict[str, Any]:
    """The orchestration's input: the status carries it as JSON text (as Azure does), or parsed."""
    raw = instance.get("input")
    if isinstance(raw, str | bytes):
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return {}
    return raw if isinstance(raw, dict) else {}


def summary(instance: dict[str, Any]) -> dict[str, Any]:
    custom = instance.get("customStatus") or {}
    if not isinstance(custom, dict):
        custom = {}
    output = instance.get("output") if isinstance(instance.get("output"), dict) else {}
    source = custom.get("source") or (run_input(instance).get("source") or {}).get("path")
    requests = custom.get("requests") or {"total": 0, "succeeded": 0, "failed": 0, "pending": 0}
    if run_status(instance) == "invalid" or custom.get("phase") == "rejected":
        requests = not_run(requests)
    total = int(requests.get("total") or 0)
    done = int(requests.get("succeeded") or 0) + int(requests.get("failed") or 0)
    return {
        "id": instance.get("instanceId"),
        "source": source,
        "phase": custom.get("phase")
        or ("pending" if _status_name(instance.get("runtimeStatus")) == "Pending" else None),
        "status": run_status(instance),
        "runtime_status": _status_name(instance.get("runtimeStatus")),
        "requests": requests,
        "progress": round(done / total, 4)
        if total
        else (1.0 if run_status(instance) != "running" else 0.0),
        "tokens": custom.get("tokens"),
        "cost": custom.get("cost"),
        "waiting": custom.get("waiting"),
        # createdTime is the current execution's (continue-as-new starts one); received_at is
        # when the file arrived, which the run carries in its input
        "created": run_input(instance).get("received_at") or instance.get("createdTime"),
        "updated": instance.get("lastUpdatedTime"),
        "outputs": {
            k: v
            for k, v in (output or {}).items()
            if k in ("results", "errors", "table", "metadata", "report", "input")
        },
        # A code and a one-line reason; the failure's text stays in the logs and the instance.
        "error": public_error(instance.get("output")) if run_status(instance) == "error" else None,
    }


def not_run(requests: dict[str, Any]) -> dict[str, Any]:
    """The counts of a rejected run: what was neither done nor failed was not run (not pending)."""
    total = int(requests.get("total") or 0)
    done = int(requests.get("succeeded") or 0) + int(requests.get("failed") or 0)
    return {**requests, "pending": 0, "not_run": max(0, total - done)}


def detail(settings: Settings, instance: dict[str, Any]) -> dict[str, Any]:
    """The summary plus chunks, batches, rounds and, once written, metadata.json's content."""
    result = summary(instance)
    custom = instance.get("customStatus") if isinstance(instance.get("customStatus"), dict) else {}
    result["chunks"] = (custom or {}).get("chunk_states") or []  # the first chunks at work
    result["chunk_counts"] = (custom or {}).get("chunk_counts") or {}
    for key in ("metadata", "report"):  # metadata.json once written; report.json if invalid
        ref = (result["outputs"] or {}).get(key)
        if ref:
            result[key] = _stored_json(settings, BlobRef.from_dict(ref))
    return result


def _stored_json(settings: Settings, ref: BlobRef) -> Any:
    """A JSON file the run wrote, or None when it is gone."""
    try:
        return orjson.loads(storage.blob(settings.storage, ref).download_blob().readall())
    except ResourceNotFoundError:
        return None


async def list_page(
    settings: Settings,
    client: Any,
    limit: int,
    cursor: str | None = None,
    status: str | None = None,
    prefix: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> dict[str, Any]:
    """One page of runs, newest first, from the runs index: `limit` rows whatever the number of
    runs. A run the index shows as not ended is read live from its durable instance (its phase
    and progress); one found ended there but not in the index (it failed or was terminated, so
    no activity wrote its end) is written back. `next` continues after this page."""
    if cursor is not None and not runindex.CURSOR.fullmatch(cursor):
        raise ValueError("cursor must be the `next` of a previous page")
    for name, value in (("since", since), ("until", until)):
        if value is not None:
            try:
                datetime.fromisoformat(value)
            except ValueError:
                raise ValueError(f"{name} must be an ISO 8601 time") from None
    rows, nxt = runindex.query(settings, limit, cursor, status, prefix, since, until)
    found = []
    for row in rows:
        run = runindex.summary(row)
        if run["status"] not in RUN_ENDED:
            live = await client.get_status(str(row.get("RunId")))
            if live is not None and live.runtime_status is not None:
                run = summary(live.to_json())
                if run["status"] in ("error", "terminated"):
                    runindex.record(
                        settings,
                        str(row.get("RunId")),
                        str(row.get("Received")),
                        {"path": row.get("Source"), "container": row.get("Container")},
                        "done",
                        run["status"],
                    )
        found.append(run)
    return {"runs": found, "count": len(found), "next": nxt}


def matches(run: dict[str, Any], status: str | None, prefix: str | None) -> bool:
    if status and run["status"] != status:
        return False
    return not (prefix and not str(run.get("source") or "").startswith(prefix))


def page(runs: list[dict[str, Any]], limit: int, cursor: int) -> dict[str, Any]:
    """Newest first, `limit` at a time; `next` is the cursor of the following page."""
    ordered = sorted(runs, key=lambda r: str(r.get("created") or ""), reverse=True)
    chunk = ordered[cursor : cursor + limit]
    nxt = cursor + limit if cursor + limit < len(ordered) else None
    return {"runs": chunk, "total": len(ordered), "next": nxt}


def kept_input(settings: Settings, layout: RunLayout, etag: str | None) -> BlobRef | None:
    """Where the run's input is kept for a retry: its copy in the error or run folder, else its
    staged snapshot (a run that crashed mid-way), else the original upload if it is still the
    version the run started from (a run that ended before staging it)."""
    for ref in layout.kept_inputs():
        if storage.exists(storage.blob(settings.storage, ref)):
            return ref
    try:
        props = storage.blob(settings.storage, layout.source).get_blob_properties()
    except ResourceNotFoundError:
        return None
    if etag and bare_etag(str(props.etag)) != bare_etag(etag):
        return None  # replaced by a new upload, which is a run of its own
    return layout.source
