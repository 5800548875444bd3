"""The first steps of a run: validate the input, reject it with a report, or cut it into chunks.

Nothing is sent to Azure OpenAI before the whole file has been validated. The full report
(every problem, up to the limit) is kept as a work file; the orchestration only carries the
summary, so its history stays small whatever the file holds.
"""

from __future__ import annotations

from typing import Any

import orjson
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

from batching.context import RunContext
from batching.settings import Settings
from batching.storage import blobs as storage
from batching.storage.refs import BlobRef
from batching.validation.splitting import write_chunks
from batching.validation.validator import ValidationOptions, validate

REPORT = "validation.json"
SKIPPED = "skipped.jsonl"


def _options(settings: Settings) -> ValidationOptions:
    return ValidationOptions(
        max_requests_per_batch=settings.max_requests_per_batch,
        max_bytes_per_batch=settings.max_bytes_per_batch,
        max_line_bytes=settings.max_line_bytes,
        deployments=settings.deployments,
        invalid_lines=settings.invalid_lines,
    )


def stage_input(ctx: RunContext) -> None:
    """Take the run's own copy of the upload (exactly its ETag) into the work area, once.

    From here on the run reads only this snapshot: the user may overwrite or delete the
    original at any time (an overwrite is a new upload with a run of its own).
    """
    storage.stage_copy(
        ctx.blob(ctx.layout.source), ctx.blob(ctx.layout.snapshot), ctx.source.get("etag")
    )


def validate_input(ctx: RunContext) -> dict[str, Any]:
    """Stage the upload (its ETag) as the run's snapshot and validate that; returns the report
    without problems."""
    try:
        stage_input(ctx)
        snapshot = ctx.blob(ctx.layout.snapshot)
        report = validate(storage.read_blocks(snapshot), _options(ctx.settings))
    except (ResourceNotFoundError, ResourceModifiedError):
        return {
            "valid": False,
            "gone": True,
            "requests": 0,
            "bytes": 0,
            "problem_counts": {},
            "reason": "the input was deleted or replaced before it could be validated; "
            "a replacement upload runs on its own",
        }
    full = report.to_dict()
    summary = {k: v for k, v in full.items() if k != "problems"}
    summary["skipped"] = report.invalid_lines if report.valid else 0
    if not report.valid:
        counts = ", ".join(f"{n} {code}" for code, n in sorted(full["problem_counts"].items()))
        summary["reason"] = f"validation failed: {counts}"
    if not (report.valid and _is_one_chunk(summary)):
        # Read again by reject_input (the problems) or prepare_chunks (the splitter); a file
        # that is its own one chunk needs neither.
        storage.write_bytes(
            ctx.blob(ctx.layout.work(REPORT)),
            orjson.dumps(full, option=orjson.OPT_INDENT_2),
            "application/json",
        )
    return summary


def reject_input(ctx: RunContext, summary: dict[str, Any]) -> dict[str, Any]:
    """Write report.json to the error folder and move the input beside it."""
    layout, source = ctx.layout, ctx.source
    report_ref = layout.error("report.json")
    work_report = ctx.blob(layout.work(REPORT))
    report: dict[str, Any] = (
        orjson.loads(work_report.download_blob().readall()) if storage.exists(work_report) else {}
    )
    report.update(
        {
            "source": f"{source['container']}/{source['path']}",
            "run_id": ctx.run_id,
            "reason": summary.get("reason"),
            "status": "invalid",
            # none of its requests ran: not pending, not failed (`requests` is the valid count)
            "request_counts": {
                "total": int(summary.get("requests") or 0),
                "succeeded": 0,
                "failed": 0,
                "pending": 0,
                "not_run": int(summary.get("requests") or 0),
            },
        }
    )
    storage.write_bytes(
        ctx.blob(report_ref),
        orjson.dumps(report, option=orjson.OPT_INDENT_2),
        "application/json",
    )
    moved = None
    if not summary.get("gone"):
        moved = keep_input(ctx, layout.error("input.jsonl"))
    storage.delete_prefix(
        storage.blob_service(ctx.settings.storage).get_container_client(
            ctx.settings.work_container
        ),
        layout.work_prefix,
    )
    return {"report": report_ref.to_dict(), "input": moved, "reason": summary.get("reason")}


def keep_input(ctx: RunContext, dest: BlobRef) -> dict[str, str] | None:
    """Move the run's snapshot to `dest` (run or error folder), then delete the original upload
    if it is still that version. Safe to repeat; returns `dest`, or None when nothing was kept.

    The original goes only after its copy is at `dest`; an upload that replaced it meanwhile is
    a new file with a run of its own and is left alone.
    """
    settings, layout, etag = ctx.settings, ctx.layout, ctx.source.get("etag")
    try:
        try:  # the snapshot, or an earlier attempt already moved it
            storage.move_blob(settings.storage, layout.snapshot, dest, None)
        except ResourceNotFoundError:  # a run staged before snapshots: the original is its input
            storage.move_blob(settings.storage, layout.source, dest, etag)
    except (ResourceNotFoundError, ResourceModifiedError):
        return None  # replaced or deleted before it was ever staged
    storage.delete_unchanged(ctx.blob(layout.source), etag)
    return dest.to_dict()


def one_chunk(ctx: RunContext, summary: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The chunks when the input itself is the one chunk, else None (chunk blobs are needed).
    Reads and writes nothing, so `validate_input` gives these itself and the run needs no
    `prepare_chunks` activity."""
    if not _is_one_chunk(summary):
        return None
    return [
        {
            "index": 0,
            "input": ctx.layout.snapshot.to_dict(),
            "requests": summary["requests"],
            "bytes": summary["bytes"],
            "tokens": summary["tokens"]["total"],
        }
    ]


def _is_one_chunk(summary: dict[str, Any]) -> bool:
    """One chunk, no skipped lines, and no blank lines or CRLF endings (a chunk is the
    normalised lines, so the byte counts then differ)."""
    plan = summary["split"]
    return len(plan) == 1 and not summary.get("skipped") and plan[0]["bytes"] == summary["bytes"]


def prepare_chunks(ctx: RunContext, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The chunks to submit: the input itself when it fits, else chunk blobs in the work area.

    Skipped invalid lines (INVALID_LINES=skip) are written to a work file and reported later.
    """
    layout = ctx.layout
    plan = summary["split"]
    whole = one_chunk(ctx, summary)
    if whole is not None:
        return whole
    report = _report(ctx)
    refs = [layout.work(f"chunks/c{i:04d}.jsonl") for i in range(len(plan))]
    # Written once: a chunk the service may already be reading (blob mode) is never replaced.
    writers = [storage.BlobWriter(ctx.blob(r), create_only=True) for r in refs]
    skipped = storage.BlobWriter(ctx.blob(layout.work(SKIPPED)))
    write_chunks(
        storage.read_blocks(ctx.blob(layout.snapshot)),
        report,
        writers.__getitem__,
        (lambda: skipped) if summary.get("skipped") else None,
    )
    total_tokens = summary["tokens"]["total"]
    chunks = []
    for i, (ref, spec) in enumerate(zip(refs, plan, strict=True)):
        share = spec["requests"] / max(1, summary["requests"])
        chunks.append(
            {
                "index": i,
                "input": ref.to_dict(),
                "requests": spec["requests"],
                "bytes": spec["bytes"],
                "tokens": int(total_tokens * share),
            }
        )
    return chunks


def _report(ctx: RunContext) -> Any:
    """The validation report again, as the splitter takes it."""
    from batching.validation.validator import ValidationReport

    raw = ctx.blob(ctx.layout.work(REPORT)).download_blob().readall()
    return ValidationReport.from_dict(orjson.loads(raw))
