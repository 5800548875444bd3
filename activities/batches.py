"""Activities around Azure OpenAI batches: admit, submit, check, cancel, collect."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from batching import admission, collection, submission
from batching.settings import Settings

bp = df.Blueprint()


@bp.activity_trigger(input_name="payload", activity="admit_batch")
def admit_batch(payload: dict[str, Any]) -> dict[str, Any]:
    limits = payload["limits"]
    return admission.admit(
        Settings.from_env(), payload["key"], payload["deployment"], int(payload["tokens"]),
        limits["max_active_batches"], limits["max_enqueued_tokens"],
    )


@bp.activity_trigger(input_name="payload", activity="submit_batch")
def submit_batch(payload: dict[str, Any]) -> dict[str, Any]:
    return submission.submit_batch(
        Settings.from_env(), payload["run_id"], payload["source"], payload["key"],
        int(payload["attempt"]), payload["input"], payload["endpoint"], int(payload["tokens"]),
        payload.get("etag"),
    )


@bp.activity_trigger(input_name="payload", activity="check_batch")
def check_batch(payload: dict[str, Any]) -> dict[str, Any]:
    return submission.check_batch(Settings.from_env(), payload["batch_id"], payload.get("key"))


@bp.activity_trigger(input_name="payload", activity="cancel_batch")
def cancel_batch(payload: dict[str, Any]) -> dict[str, Any]:
    return submission.cancel_batch(Settings.from_env(), payload["batch_id"], payload.get("key"))


@bp.activity_trigger(input_name="payload", activity="collect_batch")
def collect_batch(payload: dict[str, Any]) -> dict[str, Any]:
    return collection.collect_batch(
        Settings.from_env(), payload["run_id"], payload["source"], payload["chunk"],
        payload["batch"], bool(payload["resubmit"]),
    )
