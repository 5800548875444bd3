"""Activities of a run's start: validate, reject, cut into chunks."""

from __future__ import annotations

import logging
from typing import Any

import azure.durable_functions as df

from batching.context import RunContext
from batching.logs import event
from batching.ops import runindex, runs
from batching.requests import PrepareRequest, RejectRequest, RunRequest, ValidateRequest
from batching.settings import Settings
from batching.steps import intake

bp = df.Blueprint()
log = logging.getLogger("batching.intake")


def _index(settings: Settings, payload: RunRequest, phase: str, *args: Any, **kw: Any) -> None:
    runindex.record(
        settings,
        payload["run_id"],
        payload.get("received_at"),
        payload["source"],
        phase,
        *args,
        **kw,
    )


@bp.activity_trigger(input_name="payload", activity="validate_input")
def validate_input(payload: ValidateRequest) -> dict[str, Any]:
    ctx = RunContext.of_request(payload)
    summary = intake.validate_input(ctx)
    event(
        log,
        "input validated",
        payload["run_id"],
        source=payload["source"]["path"],
        valid=summary["valid"],
        requests=summary.get("requests"),
        bytes=summary.get("bytes"),
        invalid_lines=summary.get("invalid_lines"),
        problems=summary.get("problem_counts") or None,
    )
    return _with_chunk(ctx, payload, summary)


def _with_chunk(ctx: RunContext, payload: RunRequest, summary: dict[str, Any]) -> dict[str, Any]:
    """The summary, with the input's chunk when the input is itself the one chunk: such a run
    needs no prepare_chunks activity."""
    chunks = intake.one_chunk(ctx, summary) if summary["valid"] else None
    if chunks is None:
        return summary
    _chunks_ready(payload, chunks)
    return {**summary, "chunks": chunks}


@bp.activity_trigger(input_name="payload", activity="reject_input")
def reject_input(payload: RejectRequest) -> dict[str, Any]:
    ctx = RunContext.of_request(payload)
    settings = ctx.settings
    rejected = intake.reject_input(ctx, payload["summary"])
    total = int(payload["summary"].get("requests") or 0)
    counts = runs.not_run({"total": total, "succeeded": 0, "failed": 0, "pending": 0})
    _index(
        settings,
        payload,
        "rejected",
        "invalid",
        requests=counts,
        outputs={"report": rejected.get("report")},
    )
    event(
        log,
        "input rejected",
        payload["run_id"],
        level=logging.WARNING,
        reason=rejected.get("reason"),
        report=(rejected.get("report") or {}).get("path"),
    )
    return rejected


@bp.activity_trigger(input_name="payload", activity="prepare_chunks")
def prepare_chunks(payload: PrepareRequest) -> list[dict[str, Any]]:
    chunks = intake.prepare_chunks(RunContext.of_request(payload), payload["summary"])
    _chunks_ready(payload, chunks)
    return chunks


def _chunks_ready(payload: RunRequest, chunks: list[dict[str, Any]]) -> None:
    """The run is about to submit: log its chunks. (The runs index is not written: the listing
    reads a run that has not ended live from its orchestration.)"""
    requests = sum(int(c["requests"]) for c in chunks)
    event(log, "chunks prepared", payload["run_id"], chunks=len(chunks), requests=requests)
