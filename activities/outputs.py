"""Activities of a run's end: the run folder's files (written in parallel), then cleanup."""

from __future__ import annotations

import logging
from typing import Any

import azure.durable_functions as df

from batching.context import RunContext
from batching.logs import event
from batching.ops import runindex
from batching.requests import (
    ChunksRequest,
    CleanupRequest,
    ErrorsRequest,
    FailureRequest,
    MetadataRequest,
    TableRequest,
    run_part,
)
from batching.steps import failures, finalize

bp = df.Blueprint()
log = logging.getLogger("batching.outputs")


@bp.activity_trigger(input_name="payload", activity="write_results")
def write_results(payload: ChunksRequest) -> dict[str, Any]:
    return finalize.write_results(RunContext.of_request(payload), payload["chunks"])


@bp.activity_trigger(input_name="payload", activity="write_errors")
def write_errors(payload: ErrorsRequest) -> dict[str, Any]:
    return finalize.write_errors(
        RunContext.of_request(payload), payload["chunks"], payload["summary"]
    )


@bp.activity_trigger(input_name="payload", activity="write_table")
def write_table(payload: TableRequest) -> dict[str, Any]:
    return finalize.write_table(
        RunContext.of_request(payload), payload["chunks"], payload["columns"]
    )


@bp.activity_trigger(input_name="payload", activity="write_metadata")
def write_metadata(payload: MetadataRequest) -> dict[str, Any]:
    ctx = RunContext.of_request(payload)
    written, figures = _write_metadata(ctx, payload)
    # The run's figures, not its phase: cleanup may run alongside and write the run's end first.
    runindex.record(
        ctx.settings,
        payload["run_id"],
        payload.get("received_at"),
        payload["source"],
        None,
        **figures,
    )
    return written


def _write_metadata(
    ctx: RunContext, payload: MetadataRequest
) -> tuple[dict[str, Any], dict[str, Any]]:
    """metadata.json, and the run's figures for the runs index."""
    metadata = finalize.build_metadata(
        ctx,
        payload["chunks"],
        payload["summary"],
        payload["status"],
        payload.get("received_at"),
        payload["finished_at"],
    )
    written = finalize.write_metadata(ctx, metadata)
    event(
        log,
        "metadata written",
        payload["run_id"],
        status=metadata["status"],
        succeeded=metadata["requests"]["succeeded"],
        failed=metadata["requests"]["failed"],
        tokens=metadata["tokens"]["usage"]["total"],
        cost_usd=metadata["cost"].get("total"),
        folder=metadata["outputs"]["folder"],
    )
    figures = {
        "requests": {**metadata["requests"], "pending": 0},
        "tokens": metadata["tokens"]["usage"],
        "cost": metadata["cost"],
        "outputs": {"metadata": written["metadata"]},
    }
    return written, figures


@bp.activity_trigger(input_name="payload", activity="cleanup_run")
def cleanup_run(payload: CleanupRequest) -> dict[str, Any]:
    """Clean up; with `metadata` (metadata.json is the run's only write) write it first, in
    the same step: nothing is deleted before it is written, and the runs index gets the run's
    figures and its end in one write. Safe to run twice: both steps are."""
    ctx = RunContext.of_request(payload)
    written: dict[str, Any] | None = None
    figures: dict[str, Any] = {"outputs": {}}
    end = payload.get("metadata")
    if end is not None:
        written, figures = _write_metadata(
            ctx,
            {
                **run_part(payload),
                "chunks": payload["chunks"],
                "summary": end["summary"],
                "status": payload["status"],
                "finished_at": end["finished_at"],
            },
        )
    cleaned = finalize.cleanup_run(
        ctx,
        payload["chunks"],
        payload["status"],
        payload.get("reason"),
    )
    figures["outputs"] = {**figures["outputs"], "input": cleaned.get("input")}
    runindex.record(
        ctx.settings,
        payload["run_id"],
        payload.get("received_at"),
        payload["source"],
        "done",
        payload["status"],
        reason=payload.get("reason"),
        **figures,
    )
    event(
        log,
        "run cleaned up",
        payload["run_id"],
        status=payload["status"],
        input=(cleaned.get("input") or {}).get("path"),
        deleted_files=cleaned["deleted_files"],
    )
    return cleaned if written is None else {**cleaned, "written": written}


@bp.activity_trigger(input_name="payload", activity="record_failure")
def record_failure(payload: FailureRequest) -> dict[str, Any]:
    """A run failed on an unexpected error: its detail into metadata.json (not the API)."""
    written = failures.record_failure(
        RunContext.of_request(payload),
        payload["detail"],
        payload.get("phase"),
        payload["failed_at"],
    )
    event(log, "failure recorded", payload["run_id"], level=logging.ERROR, **written["metadata"])
    return written
