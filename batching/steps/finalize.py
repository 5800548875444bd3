"""The end of a run: the run folder's files, then cleanup.

Outputs are written (each by its own activity, in parallel) before anything is deleted: the
Azure OpenAI files and the work area go only once results.jsonl, errors.jsonl, table.csv and
metadata.json exist, and the input moves last into the run folder (or, when the run failed,
into the error container beside a report), so it never triggers again and is never lost.

results.jsonl, errors.jsonl and table.csv are in input order: each chunk's sorted runs, of every
round, are merged by input position, chunk after chunk (`batching.steps.ordering`). A run of one
chunk and one round with no table gets results.jsonl from the collection instead, sorted there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import orjson
from azure.core.exceptions import ResourceNotFoundError

from batching.context import RunContext
from batching.jsonlines import iter_lines
from batching.layout import RunLayout
from batching.service import aoai, ledger
from batching.settings import Settings
from batching.steps.cost import estimate_cost
from batching.steps.counts import failed_requests, results_written, skipped_lines
from batching.steps.intake import SKIPPED, keep_input
from batching.steps.ordering import merge, read_run
from batching.steps.tables import write_rows
from batching.storage import blobs as storage
from batching.storage.refs import BlobRef


def _tagged(blocks: Iterator[bytes], kind: str, keyed: bool) -> Iterator[tuple[int, str, bytes]]:
    if keyed:
        return ((position, kind, line) for position, line in read_run(blocks))
    # a part collected before outputs were ordered: its lines as they are, before the others
    return ((-1, kind, line) for _, line in iter_lines(blocks) if line)


MERGE_BLOCK = 4 << 20  # bytes read at a time from each run being merged


def _run_blocks(settings: Settings, ref: BlobRef) -> Iterator[bytes]:
    """A run's bytes in `MERGE_BLOCK` ranges: a chunk's runs are all open during its merge,
    and a whole-blob download would fetch up to 32 MB of each at once. The first range's
    answer tells the blob's size (no separate properties request)."""
    client = storage.blob(settings.storage, ref)
    first = client.download_blob(offset=0, length=MERGE_BLOCK, max_concurrency=1)
    block = first.readall()
    # "bytes 0-END/TOTAL": the whole blob's size
    range_ = str(first.properties.content_range or "")
    size = int(range_.rsplit("/", 1)[1]) if "/" in range_ else len(block)
    yield block
    for offset in range(MERGE_BLOCK, size, MERGE_BLOCK):
        length = min(MERGE_BLOCK, size - offset)
        yield client.download_blob(offset=offset, length=length, max_concurrency=1).readall()


def _in_order(
    settings: Settings, chunks: list[dict[str, Any]], kinds: tuple[str, ...]
) -> Iterator[tuple[str, bytes]]:
    """(kind, line) of the chunks' parts of these kinds, in input order."""
    for c in sorted(chunks, key=lambda c: int(c["index"])):
        runs = []
        for part in c["parts"]:
            for kind in kinds:
                refs = part[kind] if isinstance(part[kind], list) else [part[kind]]
                for ref in refs:
                    blocks = _run_blocks(settings, BlobRef.from_dict(ref))
                    runs.append(_tagged(blocks, kind, bool(part.get("keyed"))))
        for _, kind, line in merge(runs):
            yield kind, line


def _lines(rows: Iterator[tuple[str, bytes]]) -> Iterator[bytes]:
    for _, line in rows:
        yield line + b"\n"


def _skipped(
    settings: Settings, layout: RunLayout, summary: dict[str, Any]
) -> list[Iterator[bytes]]:
    if not summary.get("skipped"):
        return []
    return [storage.read_blocks(storage.blob(settings.storage, layout.work(SKIPPED)))]


def _concat(settings: Settings, sources: Any, dest: BlobRef, content_type: str) -> int:
    with storage.BlobWriter(storage.blob(settings.storage, dest), content_type) as out:
        for blocks in sources:
            for block in blocks:
                out.write(block)
    return out.bytes_written


def write_results(ctx: RunContext, chunks: list[dict[str, Any]]) -> dict[str, Any]:
    written = results_written(chunks)
    if written is not None:  # the collection wrote it: the parts hold no results to merge
        return written
    settings, layout = ctx.settings, ctx.layout
    dest = layout.output("results.jsonl")
    ordered = _lines(_in_order(settings, chunks, ("results",)))
    size = _concat(settings, [ordered], dest, "application/jsonl")
    return {"results": dest.to_dict(), "bytes": size}


def write_errors(
    ctx: RunContext, chunks: list[dict[str, Any]], summary: dict[str, Any]
) -> dict[str, Any]:
    """errors.jsonl, only when something failed: final failures and skipped invalid lines."""
    settings, layout = ctx.settings, ctx.layout
    if not failed_requests(chunks, summary):
        return {"errors": None}
    dest = layout.output("errors.jsonl")
    ordered = _lines(_in_order(settings, chunks, ("failures",)))
    sources = [ordered, *_skipped(settings, layout, summary)]
    _concat(settings, sources, dest, "application/jsonl")
    return {"errors": dest.to_dict()}


def write_table(
    ctx: RunContext, chunks: list[dict[str, Any]], columns: list[str]
) -> dict[str, Any]:
    settings, layout = ctx.settings, ctx.layout
    dest = layout.output("table.csv")
    with storage.BlobWriter(storage.blob(settings.storage, dest), "text/csv") as out:
        rows = write_rows(columns, _in_order(settings, chunks, ("results", "failures")), out)
    return {"table": dest.to_dict(), "rows": rows}


def build_metadata(
    ctx: RunContext,
    chunks: list[dict[str, Any]],
    summary: dict[str, Any],
    status: str,
    received_at: str | None,
    finished_at: str,
) -> dict[str, Any]:
    """metadata.json: what ran, how it ended, what it used and cost, where the outputs are."""
    settings, run_id, source, layout = ctx.settings, ctx.run_id, ctx.source, ctx.layout
    skipped = skipped_lines(summary)
    succeeded = sum(c["succeeded"] for c in chunks)
    failed = failed_requests(chunks, summary)
    usage = {"prompt": 0, "completion": 0, "total": 0}
    model = None
    batches = []
    for c in chunks:
        for b in c["batches"]:
            u = b["outcome"]["usage"]
            for k in usage:
                usage[k] += int(u.get(k) or 0)
            model = model or u.get("model")
            batches.append(
                {
                    "id": b["id"],
                    "status": b["status"],
                    "chunk": c["index"],
                    "round": b["round"],
                    "input_file_id": b["input_file_id"],
                    "output_file_id": b["output_file_id"],
                    "error_file_id": b["error_file_id"],
                    "request_counts": b["request_counts"],
                    "errors": b.get("errors") or [],
                }
            )
    reasons = [f"chunk {c['index']}: {c['reason']}" for c in chunks if c.get("reason")]
    return {
        "status": status,
        "all_succeeded": failed == 0 and succeeded == summary["requests"] + skipped,
        "source": f"{source['container']}/{source['path']}",
        "etag": source.get("etag"),
        "instance_id": run_id,
        "run_id": run_id,
        "requests": {
            "total": summary["requests"] + skipped,
            "succeeded": succeeded,
            "failed": failed,
            "skipped_invalid": skipped,
        },
        "batches": batches,
        "chunks": [
            {
                "index": c["index"],
                "requests": c["requests"],
                "rounds": c["round"] + 1,
                "status": c.get("end"),
                "reason": c.get("reason"),
            }
            for c in chunks
        ],
        "tokens": {"estimated": summary.get("tokens"), "usage": usage},
        "cost": estimate_cost(settings, model, usage),
        "deployment": summary.get("deployment"),
        "endpoint": summary.get("endpoint"),
        "batch_mode": settings.batch_mode,
        "reason": "; ".join(reasons) or None,
        "timestamps": {"received": received_at, "finished": finished_at},
        "outputs": {"folder": layout.output_folder_url_path()},
    }


def write_metadata(ctx: RunContext, metadata: dict[str, Any]) -> dict[str, Any]:
    dest = ctx.layout.output("metadata.json")
    storage.write_bytes(
        ctx.blob(dest),
        orjson.dumps(metadata, option=orjson.OPT_INDENT_2),
        "application/json",
    )
    return {
        "metadata": dest.to_dict(),
        "tokens": metadata["tokens"]["usage"],
        "cost": metadata["cost"],
    }


def cleanup_run(
    ctx: RunContext, chunks: list[dict[str, Any]], status: str, reason: str | None
) -> dict[str, Any]:
    """Keep the input (the run's snapshot) in the run or error folder, delete the original
    upload if unchanged, the Azure OpenAI files (files mode) or the service's output folders
    (blob mode), the work area, and the run's ledgers last. Safe to repeat."""
    settings, run_id, source, layout = ctx.settings, ctx.run_id, ctx.source, ctx.layout
    if status == "failed":
        dest = layout.error("input.jsonl")
        report = {
            "run_id": run_id,
            "status": status,
            "reason": reason,
            "source": f"{source['container']}/{source['path']}",
            "outputs": layout.output_folder_url_path(),
        }
        storage.write_bytes(
            storage.blob(settings.storage, layout.error("report.json")),
            orjson.dumps(report, option=orjson.OPT_INDENT_2),
            "application/json",
        )
    else:
        dest = layout.output("input.jsonl")
    # The run's snapshot is its input, whatever became of the original upload meanwhile.
    moved = keep_input(ctx, dest)
    c = aoai.client(settings)
    # The batches' files, and every upload in the run's ledger: an upload whose batch was never
    # created (cancelled, or refused for quota) belongs to no batch but must go too.
    file_ids = {
        file_id
        for chunk in chunks
        for b in chunk["batches"]
        for file_id in (b["input_file_id"], b["output_file_id"], b["error_file_id"])
        if file_id
    }
    # The run's ledgers (one query of its partition) name its uploads, whose ids are deleted
    # before the ledgers are.
    ledgers = ledger.of_run(ctx)
    recorded, unrecorded = ledger.uploads(ledgers)
    file_ids.update(recorded)
    for name, started_at in unrecorded:  # recovery: an upload whose id was never recorded
        found = aoai.find_file_since(c, name, ledger.since(started_at))
        if found is not None:
            file_ids.add(found["id"])
    storage.parallel(lambda file_id: aoai.delete_file(c, file_id), sorted(file_ids))
    deleted = len(file_ids)
    service = storage.blob_service(settings.storage)
    if settings.blob_mode:  # the service's output folders: their lines are in the run folder
        outputs = service.get_container_client(settings.service_output_container)
        with contextlib.suppress(ResourceNotFoundError):
            storage.delete_prefix(outputs, layout.service_prefix)
    storage.delete_prefix(service.get_container_client(settings.work_container), layout.work_prefix)
    ledger.forget(ledgers)
    return {"input": moved, "deleted_files": deleted}
