"""HTTP, Event Grid and timer functions of the toy app, some with the durable client binding."""

from __future__ import annotations

import json
from typing import Any

import azure.durable_functions as df
import azure.functions as func

bp = df.Blueprint()

events: list[dict[str, Any]] = []
ticks: list[bool] = []


@bp.route(route="items/{id}", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
def item(req: func.HttpRequest) -> func.HttpResponse:
    body = req.get_json() if req.get_body() else None
    payload = {
        "id": req.route_params["id"],
        "method": req.method,
        "query": dict(req.params),
        "body": body,
        "header": req.headers.get("x-test"),
    }
    return func.HttpResponse(json.dumps(payload), mimetype="application/json", status_code=201)


@bp.route(route="files/{*path}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def files(req: func.HttpRequest) -> str:
    return f"path={req.route_params.get('path', '')}"


@bp.route(route="start/{name}", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = req.get_json() if req.get_body() else None
    instance_id = await client.start_new(req.route_params["name"], req.params.get("id"), body)
    status = await client.get_status(instance_id)
    response: func.HttpResponse = client.create_check_status_response(req, instance_id)
    response.headers["x-first-status"] = str(status.runtime_status.value if status else None)
    return response


@bp.route(
    route="manage/{instance_id}/{op}", methods=["POST", "GET"], auth_level=func.AuthLevel.ANONYMOUS
)
@bp.durable_client_input(client_name="client")
async def manage(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    instance_id, op = req.route_params["instance_id"], req.route_params["op"]
    result: Any = None
    if op == "status":
        status = await client.get_status(instance_id, show_history=True, show_history_output=True)
        result = status.to_json() if status else None
        if status and status.historyEvents:
            result["historyLength"] = len(status.historyEvents)
    elif op == "raise":
        await client.raise_event(instance_id, "approve", req.get_json())
    elif op == "terminate":
        await client.terminate(instance_id, "stopped by test")
    elif op == "purge":
        result = (await client.purge_instance_history(instance_id)).instances_deleted
    elif op == "running":
        found = await client.get_status_by(runtime_status=[df.OrchestrationRuntimeStatus.Running])
        result = sorted(s.instance_id for s in found)
    elif op == "all":
        result = sorted(s.instance_id for s in await client.get_status_all())
    return func.HttpResponse(json.dumps(result), mimetype="application/json")


@bp.event_grid_trigger(arg_name="event")
@bp.durable_client_input(client_name="client")
async def on_blob(event: func.EventGridEvent, client: df.DurableOrchestrationClient) -> None:
    events.append({"subject": event.subject, "type": event.event_type, "data": event.get_json()})
    await client.start_new("chain", f"blob-{event.id}", event.subject)


@bp.timer_trigger(schedule="*/1 * * * * *", arg_name="timer", run_on_startup=False)
def tick(timer: func.TimerRequest) -> None:
    ticks.append(timer.past_due)
