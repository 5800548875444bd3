"""The runs API: list, inspect, start, cancel and retry runs over HTTP (JSON).

Function-level auth in Azure (a function or host key); the local host serves it open.

Each route takes every method and answers 405 itself for the ones it does not serve: the Functions
host answers 404 to a method a route was not declared with. Bad input is a 4xx with a one-line
`error`, a `code` and the bad `field` (batching.ops.api); an unexpected failure is logged in full
and answered with a reference, never a traceback.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import azure.durable_functions as df
import azure.functions as func
import orjson
from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError

from batching.logs import event
from batching.ops import api, retries, runs
from batching.settings import Settings
from batching.statuses import RUN_RETRYABLE
from batching.storage import blobs as storage
from batching.storage.refs import BlobRef
from orchestrators.run_file import CANCEL_EVENT
from triggers.starting import source_of, start_run

bp = df.Blueprint()
AUTH = func.AuthLevel.FUNCTION
log = logging.getLogger("batching.api")

Handler = Callable[[], Awaitable[func.HttpResponse]]


def _json(body: Any, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(orjson.dumps(body), status_code=status, mimetype="application/json")


def _problem(problem: api.Problem, allowed: tuple[str, ...] = ()) -> func.HttpResponse:
    response = _json(problem.body(), problem.status)
    if problem.status == 405:
        response.headers["Allow"] = ", ".join(allowed)
    return response


async def _serve(
    req: func.HttpRequest, handlers: dict[str, Handler], run_id: str | None = None
) -> func.HttpResponse:
    """Dispatch on the method; a Problem becomes its answer, anything else a logged 5xx."""
    allowed = tuple(handlers)
    method = (req.method or "").upper()
    handler = handlers.get(method)
    if handler is None:
        return _problem(api.not_allowed(method, allowed), allowed)
    try:
        return await handler()
    except api.Problem as problem:
        return _problem(problem, allowed)
    except Exception as e:
        reference = f"run_id={run_id}" if run_id else f"request_id={uuid.uuid4().hex[:12]}"
        log.exception(
            "runs API %s %s failed %s",
            method,
            req.url.split("?")[0],
            reference,
            extra={"run_id": run_id} if run_id else {},
        )
        if isinstance(e, AzureError):
            return _problem(api.unavailable("storage"))
        return _problem(api.internal(reference))


async def _instance(client: df.DurableOrchestrationClient, run_id: str) -> dict[str, Any] | None:
    status = await client.get_status(run_id, show_input=True)
    if status is None or status.runtime_status is None:
        return None
    data: dict[str, Any] = status.to_json()
    return data


async def _existing(client: df.DurableOrchestrationClient, run_id: str) -> dict[str, Any]:
    instance = await _instance(client, run_id)
    if instance is None:
        raise api.Problem(404, "not_found", f"no run {run_id}")
    return instance


def _route_id(req: func.HttpRequest) -> str:
    return api.run_id(req.route_params.get("id") or "")


@bp.function_name("runs")
@bp.route(route="runs", auth_level=AUTH)
@bp.durable_client_input(client_name="client")
async def runs_collection(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """GET lists runs; POST starts one."""
    return await _serve(
        req, {"GET": lambda: runs_list(req, client), "POST": lambda: runs_start(req, client)}
    )


async def runs_list(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """GET /api/runs?status=&prefix=&since=&until=&limit=&cursor=: the newest `limit` runs
    from the runs index, and `next`, the cursor of the following page (null at the end)."""
    query = api.list_query(req.params)
    page = await runs.list_page(
        Settings.from_env(),
        client,
        query.limit,
        cursor=query.cursor,
        status=query.status,
        prefix=query.prefix,
        since=query.since,
        until=query.until,
    )
    return _json(page)


async def runs_start(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """POST /api/runs {"path": "dir/file.jsonl"}: run a file already in the input container."""
    path = api.start_path(req.get_body())
    settings = Settings.from_env()
    blob = storage.blob(settings.storage, BlobRef(settings.input_container, path))
    try:
        props = blob.get_blob_properties()
    except ResourceNotFoundError:
        raise api.Problem(
            404, "not_found", f"{settings.input_container}/{path} does not exist", "path"
        ) from None
    except HttpResponseError as e:
        if e.status_code != 400:
            raise
        raise api.bad("path", "storage refused it as a blob name") from None
    source = source_of(settings.input_container, path, str(props.etag), props.size)
    run_id, started = await start_run(client, settings, source)
    return _json({"id": run_id, "started": started}, 202 if started else 200)


@bp.function_name("runs_get")
@bp.route(route="runs/{id}", auth_level=AUTH)
@bp.durable_client_input(client_name="client")
async def runs_get(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    async def get() -> func.HttpResponse:
        run_id = _route_id(req)
        instance = await _existing(client, run_id)
        return _json(runs.detail(Settings.from_env(), instance))

    return await _serve(req, {"GET": get}, req.route_params.get("id"))


@bp.function_name("runs_cancel")
@bp.route(route="runs/{id}/cancel", auth_level=AUTH)
@bp.durable_client_input(client_name="client")
async def runs_cancel(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """Cancel the run's batches; it ends as `cancelled` with its partial results written."""

    async def cancel() -> func.HttpResponse:
        run_id = _route_id(req)
        api.check_body_size(req.get_body())
        instance = await _existing(client, run_id)
        status = runs.run_status(instance)
        if status != "running":
            raise api.Problem(409, "conflict", f"run {run_id} is {status}, not running")
        await client.raise_event(run_id, CANCEL_EVENT, {"by": "api"})
        event(log, "cancel requested", run_id, by="api")
        return _json({"id": run_id, "cancelling": True}, 202)

    return await _serve(req, {"POST": cancel}, req.route_params.get("id"))


@bp.function_name("runs_retry")
@bp.route(route="runs/{id}/retry", auth_level=AUTH)
@bp.durable_client_input(client_name="client")
async def runs_retry(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """Reprocess a failed or rejected run: its kept input goes back to the input container.

    A run is retried once: a second retry, concurrent or later, is a conflict that names the
    run the first one started (retry that run instead).
    """

    async def retry() -> func.HttpResponse:
        run_id = _route_id(req)
        api.check_body_size(req.get_body())
        instance = await _existing(client, run_id)
        status = runs.run_status(instance)
        if status not in RUN_RETRYABLE:
            raise api.Problem(
                409,
                "conflict",
                f"run {run_id} is {status}; only a run that did not complete can be retried",
            )
        settings = Settings.from_env()
        earlier = retries.claim(settings, run_id)
        if earlier is not None:
            new_id = earlier.get("new_id")
            raise api.Problem(
                409,
                "conflict",
                f"run {run_id} was already retried as run {new_id}"
                if new_id
                else f"a retry of run {run_id} is under way",
            )
        try:
            new_id = await _retry(client, settings, run_id, instance)
        except BaseException:
            retries.release(settings, run_id)
            raise
        retries.record(settings, run_id, new_id)
        return _json({"id": new_id, "retry_of": run_id}, 202)

    return await _serve(req, {"POST": retry}, req.route_params.get("id"))


async def _retry(
    client: df.DurableOrchestrationClient, settings: Settings, run_id: str, instance: dict[str, Any]
) -> str:
    """Put the run's kept input back and start its new run; returns the new run's id."""
    try:
        restored = retries.restore_input(settings, run_id, instance)
    except retries.InputGoneError as gone:
        raise api.Problem(410, "gone", str(gone)) from None
    new_id, _ = await start_run(client, settings, restored.source, attempt=restored.attempt)
    event(log, "retry started", new_id, retry_of=run_id, origin=restored.origin)
    return new_id
