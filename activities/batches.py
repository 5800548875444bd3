"""Activities around Azure OpenAI batches: admit, submit, check, cancel, collect."""

from __future__ import annotations

import logging
from typing import Any

import azure.durable_functions as df

from batching.context import RunContext
from batching.logs import event
from batching.requests import (
    AdmitRequest,
    BatchRequest,
    CollectRequest,
    SubmitRequest,
    run_part,
)
from batching.service import admission, submission
from batching.settings import Settings
from batching.statuses import BATCH_TERMINAL, collects_now, resubmits
from batching.steps import collection

bp = df.Blueprint()
log = logging.getLogger("batching.batches")


def _batch_event(message: str, payload: BatchRequest, batch: dict[str, Any]) -> None:
    terminal = str(batch.get("status")).lower() in BATCH_TERMINAL
    event(
        log,
        message,
        payload["run_id"],
        level=logging.INFO if terminal else logging.DEBUG,
        key=payload.get("key"),
        batch_id=batch.get("id"),
        status=batch.get("status"),
        counts=batch.get("request_counts") or None,
        quota=bool(batch.get("quota_message")),
    )


@bp.activity_trigger(input_name="payload", activity="admit_batch")
def admit_batch(payload: AdmitRequest) -> dict[str, Any]:
    limits = payload["limits"]
    answer = admission.admit(
        Settings.from_env(),
        payload["key"],
        payload["deployment"],
        int(payload["tokens"]),
        limits["max_active_batches"],
        limits["max_enqueued_tokens"],
        payload.get("arrived"),
    )
    event(
        log,
        "admission",
        payload["run_id"],
        level=logging.DEBUG,
        key=payload["key"],
        granted=answer.get("granted"),
        position=answer.get("position"),
    )
    return answer


@bp.activity_trigger(input_name="payload", activity="submit_batch")
def submit_batch(payload: SubmitRequest) -> dict[str, Any]:
    result = submission.submit_batch(RunContext.of_request(payload), payload)
    outcome = result["status"]
    event(
        log,
        f"batch submit: {outcome}",
        payload["run_id"],
        level={"quota": logging.WARNING, "error": logging.WARNING, "pending": logging.DEBUG}.get(
            outcome, logging.INFO
        ),
        key=payload["key"],
        attempt=payload["attempt"],
        batch_id=(result.get("batch") or {}).get("id"),
        message=result.get("message"),
    )
    return result


@bp.activity_trigger(input_name="payload", activity="check_batch")
def check_batch(payload: BatchRequest) -> dict[str, Any]:
    """The batch's status; with `collect`, a batch that ended is collected in the same step, and
    the answer is `{"batch", "collected"}` (safe to run twice: collecting is)."""
    batch = submission.check_batch(Settings.from_env(), payload["batch_id"], payload.get("key"))
    _batch_event("batch checked", payload, batch)
    how = payload.get("collect")
    if how is None or not collects_now(batch, how["cancelling"]):
        return batch
    collect: CollectRequest = {
        **run_part(payload),
        "chunk": how["chunk"],
        "batch": batch,
        "resubmit": how["resubmit"],
        "final_results": bool(how.get("final_results")),
    }
    return {"batch": batch, "collected": _collect(collect)}


@bp.activity_trigger(input_name="payload", activity="cancel_batch")
def cancel_batch(payload: BatchRequest) -> dict[str, Any]:
    batch = submission.cancel_batch(Settings.from_env(), payload["batch_id"], payload.get("key"))
    event(
        log,
        "batch cancel requested",
        payload["run_id"],
        key=payload.get("key"),
        batch_id=payload["batch_id"],
        status=batch.get("status"),
    )
    return batch


@bp.activity_trigger(input_name="payload", activity="collect_batch")
def collect_batch(payload: CollectRequest) -> dict[str, Any]:
    """A batch that ended, collected after the check that saw it (chunks that never ran,
    histories of code from before checks collected)."""
    return _collect(payload)


def _collect(payload: CollectRequest) -> dict[str, Any]:
    """Collect; `resubmit` says whether the run allows a round, and a failed batch gets none."""
    outcome = collection.collect_batch(
        RunContext.of_request(payload),
        payload["chunk"],
        payload["batch"],
        resubmits(payload["batch"], bool(payload["resubmit"])),
        bool(payload.get("final_results")),
    )
    counts = outcome["counts"]
    event(
        log,
        "batch collected",
        payload["run_id"],
        chunk=payload["chunk"]["index"],
        round=payload["chunk"]["round"],
        batch_id=payload["batch"].get("id"),
        succeeded=counts["succeeded"],
        failed=counts["failed"],
        retry=counts["retry"],
        failure_codes=counts.get("failure_codes") or None,
    )
    return outcome
