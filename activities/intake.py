"""Activities of a run's start: validate, reject, cut into chunks."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from batching import intake
from batching.settings import Settings

bp = df.Blueprint()


@bp.activity_trigger(input_name="payload", activity="validate_input")
def validate_input(payload: dict[str, Any]) -> dict[str, Any]:
    return intake.validate_input(Settings.from_env(), payload["run_id"], payload["source"])


@bp.activity_trigger(input_name="payload", activity="reject_input")
def reject_input(payload: dict[str, Any]) -> dict[str, Any]:
    return intake.reject_input(
        Settings.from_env(), payload["run_id"], payload["source"], payload["summary"]
    )


@bp.activity_trigger(input_name="payload", activity="prepare_chunks")
def prepare_chunks(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return intake.prepare_chunks(
        Settings.from_env(), payload["run_id"], payload["source"], payload["summary"]
    )
