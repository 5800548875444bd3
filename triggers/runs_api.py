"""The runs API: list, inspect, start, cancel and retry runs over HTTP (JSON).

Function-level auth in Azure (a function or host key); the local host serves it open.
"""

from __future__ import annotations

import logging
from typing import Any

import azure.durable_functions as df
import azure.functions as func
import orjson
from azure.core.exceptions import ResourceNotFoundError

from batching import runs, storage
from batching.layout import RunLayout, is_input
from batching.logs import event
from batching.settings import Settings
from batching.storage import BlobRef
from orchestrators.run_file import CANCEL_EVENT, ORCHESTRATOR
from triggers.starting import source_of, start_run

bp = df.Blueprint()
AUTH = func.AuthLevel.FUNCTION
log = logging.getLogger("batching.api")


def _json(body: Any, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(orjson.dumps(body), status_code=status, mimetype="application/json")


def _error(status: int, message: str) -> func.HttpResponse:
    return _json({"error": message}, status)


async def _instance(client: df.DurableOrchestrationClient, run_id: str) -> dict[str, Any] | None:
    status = await client.get_status(run_id, show_input=True)
    if status is None or status.runtime_status is None:
        return None
    data: dict[str, Any] = status.to_json()
    return data


@bp.function_name("runs_list")
@bp.route(route="runs", methods=["GET"], auth_level=AUTH)
@bp.durable_client_input(client_name="client")
async def runs_list(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """GET /api/runs?status=&prefix=&limit=&cursor=: newest first."""
    try:
        limit = max(1, min(200, int(req.params.get("limit", "50"))))
        cursor = max(0, int(req.params.get("cursor", "0")))
    except ValueError:
        return _error(400, "limit and cursor must be whole numbers")
    instances = [s.to_json() for s in await client.get_status_all() if s.name == ORCHESTRATOR]
    found = [runs.summary(i) for i in instances]
    found = [
        r for r in found if runs.matches(r, req.params.get("status"), req.params.get("prefix"))
    ]
    return _json(runs.page(found, limit, cursor))


@bp.function_name("runs_start")
@bp.route(route="runs", methods=["POST"], auth_level=AUTH)
@bp.durable_client_input(client_name="client")
async def runs_start(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """POST /api/runs {"path": "dir/file.jsonl"}: run a file already in the input container."""
    try:
        path = str(req.get_json()["path"]).lstrip("/")
    except (ValueError, KeyError, TypeError):
        return _error(400, 'send {"path": "<folder>/<file>.jsonl"} (a blob in the input container)')
    if not is_input(path):
        return _error(400, f"{path} is not a .jsonl file")
    settings = Settings.from_env()
    blob = storage.blob(settings.storage, BlobRef(settings.input_container, path))
    try:
        props = blob.get_blob_properties()
    except ResourceNotFoundError:
        return _error(404, f"{settings.input_container}/{path} does not exist")
    source = source_of(settings.input_container, path, str(props.etag), props.size)
    run_id, started = await start_run(client, settings, source)
    return _json({"id": run_id, "started": started}, 202 if started else 200)


@bp.function_name("runs_get")
@bp.route(route="runs/{id}", methods=["GET"], auth_level=AUTH)
@bp.durable_client_input(client_name="client")
async def runs_get(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    run_id = req.route_params["id"]
    instance = await _instance(client, run_id)
    if instance is None:
        return _error(404, f"no run {run_id}")
    return _json(runs.detail(Settings.from_env(), instance))


@bp.function_name("runs_cancel")
@bp.route(route="runs/{id}/cancel", methods=["POST"], auth_level=AUTH)
@bp.durable_client_input(client_name="client")
async def runs_cancel(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """Cancel the run's batches; it ends as `cancelled` with its partial results written."""
    run_id = req.route_params["id"]
    instance = await _instance(client, run_id)
    if instance is None:
        return _error(404, f"no run {run_id}")
    if runs.run_status(instance) != "running":
        return _error(409, f"run {run_id} is {runs.run_status(instance)}, not running")
    await client.raise_event(run_id, CANCEL_EVENT, {"by": "api"})
    event(log, "cancel requested", run_id, by="api")
    return _json({"id": run_id, "cancelling": True}, 202)


@bp.function_name("runs_retry")
@bp.route(route="runs/{id}/retry", methods=["POST"], auth_level=AUTH)
@bp.durable_client_input(client_name="client")
async def runs_retry(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """Reprocess a failed or rejected run: its kept input goes back to the input container."""
    run_id = req.route_params["id"]
    instance = await _instance(client, run_id)
    if instance is None:
        return _error(404, f"no run {run_id}")
    status = runs.run_status(instance)
    if status not in ("failed", "invalid", "error", "expired", "cancelled", "terminated"):
        return _error(
            409, f"run {run_id} is {status}; only a run that did not complete can be retried"
        )
    settings = Settings.from_env()
    kept_input = runs.run_input(instance)
    source = kept_input.get("source") or {}
    if not source.get("path"):
        return _error(410, f"run {run_id} has no recorded input")
    layout = RunLayout.of(settings, source["path"], run_id)
    origin = runs.kept_input(settings, layout, source.get("etag"))
    if origin is None:
        return _error(410, f"the input of run {run_id} is no longer stored")
    if origin != layout.source:
        storage.copy_blob(
            storage.blob(settings.storage, origin), storage.blob(settings.storage, layout.source)
        )
    props = storage.blob(settings.storage, layout.source).get_blob_properties()
    new_source = source_of(settings.input_container, source["path"], str(props.etag), props.size)
    # A copied-back input is a new upload (new ETag); the same upload needs a new attempt number.
    attempt = 0 if origin != layout.source else int(kept_input.get("attempt") or 0) + 1
    new_id, _ = await start_run(client, settings, new_source, attempt=attempt)
    event(log, "retry started", new_id, retry_of=run_id, origin=origin.container)
    return _json({"id": new_id, "retry_of": run_id}, 202)
