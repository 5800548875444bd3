"""Missed events: a timer that starts runs for input files nobody started.

Event Grid gives up after its retries, or a subscription is briefly missing; the file then sits
in the input container. Every run moves its input away when it ends, so a JSONL file still
there after a grace period either has a run in flight (found by its id and left alone) or none.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import azure.durable_functions as df
import azure.functions as func

from batching.layout import is_input
from batching.logs import event
from batching.settings import Settings
from batching.storage import blobs as storage
from triggers.starting import source_of, start_run

bp = df.Blueprint()
log = logging.getLogger("batching.reconcile")


async def reconcile_inputs(client: df.DurableOrchestrationClient, settings: Settings) -> list[str]:
    """Start every unstarted input older than the grace period; returns the runs started."""
    container = storage.blob_service(settings.storage).get_container_client(
        settings.input_container
    )
    now = datetime.now(UTC)
    started = []
    for b in container.list_blobs():
        if not is_input(b.name):
            continue
        if (now - b.last_modified).total_seconds() < settings.reconcile_grace_seconds:
            continue
        source = source_of(settings.input_container, b.name, str(b.etag), b.size)
        run_id, new = await start_run(client, settings, source, b.last_modified.isoformat())
        if new:
            event(log, "started a run whose event was missed", run_id, level=logging.WARNING)
            started.append(run_id)
    return started


@bp.function_name("reconcile")
@bp.timer_trigger(
    arg_name="timer", schedule="%RECONCILE_SCHEDULE%", run_on_startup=False, use_monitor=True
)
@bp.durable_client_input(client_name="client")
async def reconcile(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    """The schedule is the app setting RECONCILE_SCHEDULE, which must exist (Bicep sets it)."""
    await reconcile_inputs(client, Settings.from_env())
