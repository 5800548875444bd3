"""Durable Task history events in the JSON shape the Python SDK reads.

The Durable extension hands the Python worker DTFx history events serialized with PascalCase
keys (`EventType`, `EventId`, `Timestamp`, `TaskScheduledId`, ...). These builders produce the same
shapes so the real `azure-functions-durable` replay code runs unmodified over them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from azure.durable_functions.constants import DATETIME_STRING_FORMAT
from azure.durable_functions.models.history import HistoryEventType as T

Event = dict[str, Any]


def fmt_time(when: datetime) -> str:
    """The timestamp format of the SDK (`2024-01-01T00:00:00.000000Z`); sorts as text."""
    return when.astimezone(UTC).strftime(DATETIME_STRING_FORMAT)


def parse_time(text: str) -> datetime:
    """`fmt_time`'s text (and the SDK's timer times) back: `fromisoformat` reads that format,
    at a tenth of `strptime`'s cost, which every episode's replay check paid per event."""
    when = datetime.fromisoformat(text)
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def status_time(when: datetime) -> str:
    """Times in status payloads: the extension's `ToString("s") + "Z"`."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event(kind: T, when: datetime, event_id: int = -1, **fields: Any) -> Event:
    return {"EventType": int(kind), "EventId": event_id, "Timestamp": fmt_time(when), **fields}


def orchestrator_started(when: datetime) -> Event:
    return event(T.ORCHESTRATOR_STARTED, when)


def orchestrator_completed(when: datetime) -> Event:
    return event(T.ORCHESTRATOR_COMPLETED, when)


def execution_started(
    when: datetime,
    name: str,
    instance_id: str,
    execution_id: str,
    input_text: str | None,
    parent: dict[str, Any] | None,
) -> Event:
    return event(
        T.EXECUTION_STARTED,
        when,
        Name=name,
        Version="",
        Input=input_text,
        OrchestrationInstance={"InstanceId": instance_id, "ExecutionId": execution_id},
        ParentInstance=parent,
    )


def execution_completed(
    when: datetime, status: str, result: str | None, failure: str | None = None
) -> Event:
    fields: dict[str, Any] = {"OrchestrationStatus": status, "Result": result}
    if failure is not None:
        fields["FailureDetails"] = {"ErrorMessage": failure}
    return event(T.EXECUTION_COMPLETED, when, **fields)


def execution_terminated(when: datetime, reason: str | None) -> Event:
    return event(T.EXECUTION_TERMINATED, when, Input=reason)


def task_scheduled(when: datetime, task_id: int, name: str, input_text: str | None) -> Event:
    return event(T.TASK_SCHEDULED, when, task_id, Name=name, Version="", Input=input_text)


def task_completed(when: datetime, task_id: int, result: str | None) -> Event:
    return event(T.TASK_COMPLETED, when, TaskScheduledId=task_id, Result=result)


def task_failed(when: datetime, task_id: int, reason: str, details: str) -> Event:
    return event(T.TASK_FAILED, when, TaskScheduledId=task_id, Reason=reason, Details=details)


def timer_created(when: datetime, task_id: int, fire_at: str) -> Event:
    return event(T.TIMER_CREATED, when, task_id, FireAt=fire_at)


def timer_fired(when: datetime, task_id: int, fire_at: str) -> Event:
    return event(T.TIMER_FIRED, when, TimerId=task_id, FireAt=fire_at)


def sub_orchestration_created(
    when: datetime, task_id: int, name: str, instance_id: str, input_text: str | None
) -> Event:
    return event(
        T.SUB_ORCHESTRATION_INSTANCE_CREATED,
        when,
        task_id,
        Name=name,
        Version="",
        InstanceId=instance_id,
        Input=input_text,
    )


def sub_orchestration_completed(when: datetime, task_id: int, result: str | None) -> Event:
    return event(
        T.SUB_ORCHESTRATION_INSTANCE_COMPLETED, when, TaskScheduledId=task_id, Result=result
    )


def sub_orchestration_failed(when: datetime, task_id: int, reason: str, details: str) -> Event:
    return event(
        T.SUB_ORCHESTRATION_INSTANCE_FAILED,
        when,
        TaskScheduledId=task_id,
        Reason=reason,
        Details=details,
    )


def event_raised(when: datetime, name: str, input_text: str | None) -> Event:
    return event(T.EVENT_RAISED, when, Name=name, Input=input_text)
