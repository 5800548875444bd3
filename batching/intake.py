"""The first steps of a run: validate the input, reject it with a report, or cut it into chunks.

Nothing is sent to Azure OpenAI before the whole file has been validated. The full report
(every problem, up to the limit) is kept as a work file; the orchestration only carries the
summary, so its history stays small whatever the file holds.
"""

from __future__ import annotations

from typing import Any

import orjson
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

from batching import storage
from batching.layout import RunLayout
from batching.settings import Settings
from batching.splitting import write_chunks
from batching.validation import ValidationOptions, validate

REPORT = "validation.json"
SKIPPED = "skipped.jsonl"


def _options(settings: Settings) -> ValidationOptions:
    return ValidationOptions(
        max_requests_per_batch=settings.max_requests_per_batch,
        max_bytes_per_batch=settings.max_bytes_per_batch,
        deployments=settings.deployments,
        invalid_lines=settings.invalid_lines,
    )


def validate_input(settings: Settings, run_id: str, source: dict[str, Any]) -> dict[str, Any]:
    """Validate the input as it was uploaded (its ETag); returns the report without problems."""
    layout = RunLayout.of(settings, source["path"], run_id)
    client = storage.blob(settings.storage, layout.source)
    try:
        report = validate(storage.read_blocks(client, source.get("etag")), _options(settings))
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
    storage.write_bytes(
        storage.blob(settings.storage, layout.work(REPORT)),
        orjson.dumps(full, option=orjson.OPT_INDENT_2),
        "application/json",
    )
    summary = {k: v for k, v in full.items() if k != "problems"}
    summary["skipped"] = report.invalid_lines if report.valid else 0
    if not report.valid:
        counts = ", ".join(f"{n} {code}" for code, n in sorted(full["problem_counts"].items()))
        summary["reason"] = f"validation failed: {counts}"
    return summary


def reject_input(
    settings: Settings, run_id: str, source: dict[str, Any], summary: dict[str, Any]
) -> dict[str, Any]:
    """Write report.json to the error folder and move the input beside it."""
    layout = RunLayout.of(settings, source["path"], run_id)
    report_ref = layout.error("report.json")
    work_report = storage.blob(settings.storage, layout.work(REPORT))
    report: dict[str, Any] = (
        orjson.loads(work_report.download_blob().readall()) if storage.exists(work_report) else {}
    )
    report.update(
        {
            "source": f"{source['container']}/{source['path']}",
            "run_id": run_id,
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
        storage.blob(settings.storage, report_ref),
        orjson.dumps(report, option=orjson.OPT_INDENT_2),
        "application/json",
    )
    moved = None
    if not summary.get("gone"):
        try:
            storage.move_blob(
                settings.storage, layout.source, layout.error("input.jsonl"), source.get("etag")
            )
            moved = layout.error("input.jsonl").to_dict()
        except (ResourceNotFoundError, ResourceModifiedError):
            moved = None  # replaced meanwhile: the new upload has a run of its own
    storage.delete_prefix(
        storage.blob_service(settings.storage).get_container_client(settings.work_container),
        layout.work_prefix,
    )
    return {"report": report_ref.to_dict(), "input": moved, "reason": summary.get("reason")}


def prepare_chunks(
    settings: Settings, run_id: str, source: dict[str, Any], summary: dict[str, Any]
) -> list[dict[str, Any]]:
    """The chunks to submit: the input itself when it fits, else chunk blobs in the work area.

    Skipped invalid lines (INVALID_LINES=skip) are written to a work file and reported later.
    """
    layout = RunLayout.of(settings, source["path"], run_id)
    plan = summary["split"]
    # The input itself goes up when it is exactly the one chunk: no skipped lines, and no blank
    # lines or CRLF endings (a chunk is the normalised lines, so the byte counts then differ).
    if len(plan) == 1 and not summary.get("skipped") and plan[0]["bytes"] == summary["bytes"]:
        return [
            {
                "index": 0,
                "input": layout.source.to_dict(),
                "etag": source.get("etag"),
                "requests": summary["requests"],
                "bytes": summary["bytes"],
                "tokens": summary["tokens"]["total"],
            }
        ]
    report = _report(settings, layout)
    refs = [layout.work(f"chunks/c{i:04d}.jsonl") for i in range(len(plan))]
    writers = [storage.BlobWriter(storage.blob(settings.storage, r)) for r in refs]
    skipped = storage.BlobWriter(storage.blob(settings.storage, layout.work(SKIPPED)))
    write_chunks(
        storage.read_blocks(storage.blob(settings.storage, layout.source), source.get("etag")),
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
                "etag": None,
                "requests": spec["requests"],
                "bytes": spec["bytes"],
                "tokens": int(total_tokens * share),
            }
        )
    return chunks


def _report(settings: Settings, layout: RunLayout) -> Any:
    """The validation report again, as the splitter takes it."""
    from batching.validation import ValidationReport

    raw = storage.blob(settings.storage, layout.work(REPORT)).download_blob().readall()
    return ValidationReport.from_dict(orjson.loads(raw))
