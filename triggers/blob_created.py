"""The BlobCreated trigger: an Event Grid event for a new input file starts its run.

It reads only the event, never the file: validation is the orchestration's first step.
"""

from __future__ import annotations

import logging

import azure.durable_functions as df
import azure.functions as func

from batching.settings import Settings
from triggers.starting import parse_blob_created, source_of, start_run, wanted

bp = df.Blueprint()
log = logging.getLogger("batching.trigger")


@bp.function_name("on_blob_created")
@bp.event_grid_trigger(arg_name="event")
@bp.durable_client_input(client_name="client")
async def on_blob_created(
    event: func.EventGridEvent, client: df.DurableOrchestrationClient
) -> None:
    parsed = parse_blob_created(event.event_type, event.subject, event.get_json() or {})
    if parsed is None:
        log.info("event ignored", extra={"event_type": event.event_type, "subject": event.subject})
        return
    container, path = parsed
    settings = Settings.from_env()
    if not wanted(settings, container):
        log.info("event for another container ignored", extra={"container": container})
        return
    data = event.get_json()
    source = source_of(container, path, str(data.get("eTag") or ""), data.get("contentLength"))
    received = event.event_time.isoformat() if event.event_time else None
    await start_run(client, settings, source, received)
