"""Activities of a run's start: validate, reject, cut into chunks."""

from __future__ import annotations

import logging
from typing import Any

import azure.durable_functions as df

from batching import intake
from batching.logs import event
from batching.requests import PrepareRequest, RejectRequest, ValidateRequest
from batching.settings import Settings

bp = df.Blueprint()
log = logging.getLogger("batching.intake")


@bp.activity_trigger(input_name="payload", activity="validate_input")
def validate_input(payload: ValidateRequest) -> dict[str, Any]:
    summary = intake.validate_input(Settings.from_env(), payload["run_id"], payload["source"])
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
    return summary


@bp.activity_trigger(input_name="payload", activity="reject_input")
def reject_input(payload: RejectRequest) -> dict[str, Any]:
    rejected = intake.reject_input(
        Settings.from_env(), payload["run_id"], payload["source"], payload["summary"]
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
    chunks = intake.prepare_chunks(
        Settings.from_env(), payload["run_id"], payload["source"], payload["summary"]
    )
    event(
        log,
        "chunks prepared",
        payload["run_id"],
        chunks=len(chunks),
        requests=sum(int(c["requests"]) for c in chunks),
    )
    return chunks
