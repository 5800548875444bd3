"""Activities of a run's end: the run folder's files (written in parallel), then cleanup."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from batching import finalize
from batching.settings import Settings

bp = df.Blueprint()


@bp.activity_trigger(input_name="payload", activity="write_results")
def write_results(payload: dict[str, Any]) -> dict[str, Any]:
    return finalize.write_results(
        Settings.from_env(), payload["run_id"], payload["source"], payload["chunks"]
    )


@bp.activity_trigger(input_name="payload", activity="write_errors")
def write_errors(payload: dict[str, Any]) -> dict[str, Any]:
    return finalize.write_errors(
        Settings.from_env(), payload["run_id"], payload["source"], payload["chunks"],
        payload["summary"],
    )


@bp.activity_trigger(input_name="payload", activity="write_table")
def write_table(payload: dict[str, Any]) -> dict[str, Any]:
    return finalize.write_table(
        Settings.from_env(), payload["run_id"], payload["source"], payload["chunks"],
        payload["columns"],
    )


@bp.activity_trigger(input_name="payload", activity="write_metadata")
def write_metadata(payload: dict[str, Any]) -> dict[str, Any]:
    settings = Settings.from_env()
    metadata = finalize.build_metadata(
        settings, payload["run_id"], payload["source"], payload["chunks"], payload["summary"],
        payload["status"], payload.get("received_at"), payload["finished_at"],
    )
    return finalize.write_metadata(settings, payload["run_id"], payload["source"], metadata)


@bp.activity_trigger(input_name="payload", activity="cleanup_run")
def cleanup_run(payload: dict[str, Any]) -> dict[str, Any]:
    return finalize.cleanup_run(
        Settings.from_env(), payload["run_id"], payload["source"], payload["chunks"],
        payload["status"], payload.get("reason"),
    )
