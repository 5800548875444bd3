"""Orchestrators and activities of the toy app: one small function per Durable feature."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import azure.durable_functions as df

bp = df.Blueprint()

# What activities observed, for assertions (the host runs in the test process).
observed: Counter[str] = Counter()
_lock = threading.Lock()
# meet_square waits here until all of its calls run at once (set by the test via `meet`).
_meeting: list[threading.Barrier] = []
_released = threading.Event()  # held_square returns once this is set (release_held)
MEETING_PATIENCE = 60.0  # seconds; only a broken host waits this long (the barrier then breaks)


def reset() -> None:
    with _lock:
        observed.clear()
        _meeting.clear()
        _released.clear()


def release_held() -> None:
    """Let held_square calls return."""
    _released.set()


def meet(parties: int) -> None:
    """Make meet_square block until `parties` calls of it are running at the same time."""
    _meeting[:] = [threading.Barrier(parties, timeout=MEETING_PATIENCE)]


# --- activities -------------------------------------------------------------------------------


@bp.activity_trigger(input_name="name")
def hello(name: str) -> str:
    return f"Hello {name}"


@bp.activity_trigger(input_name="x")
def square(x: int) -> int:
    return x * x


@bp.activity_trigger(input_name="x")
def meet_square(x: int) -> int:
    """x * x, once every call `meet` asked for is running (raises BrokenBarrierError if not)."""
    _meeting[0].wait()
    return x * x


@bp.activity_trigger(input_name="x")
def held_square(x: int) -> int:
    """x * x, once the test calls `release_held` (fails after MEETING_PATIENCE seconds)."""
    if not _released.wait(MEETING_PATIENCE):
        raise TimeoutError("held_square was never released")
    return x * x


@bp.activity_trigger(input_name="payload")
def flaky(payload: Any) -> str:
    """Fails until it has been called `succeed_on` times for `key`."""
    with _lock:
        observed[payload["key"]] += 1
        calls = observed[payload["key"]]
    if calls < payload["succeed_on"]:
        raise RuntimeError(f"flaky failure {calls}")
    return f"ok after {calls}"


@bp.activity_trigger(input_name="message")
def boom(message: str) -> None:
    raise ValueError(message)


@bp.activity_trigger(input_name="item")
def record(item: int) -> int:
    """Leaves a marker file per execution (crash tests count them). Items after the first then
    wait until the file TOYAPP_RELEASE exists, when that variable is set: a host killed before
    then has every one of them in flight, unreported."""
    folder = Path(os.environ["TOYAPP_MARKERS"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{item}-{uuid.uuid4().hex}").touch()
    release = os.environ.get("TOYAPP_RELEASE")
    if item and release:
        while not Path(release).exists():
            time.sleep(0.01)  # polling for the file; the test creates it
    return item * 10


@bp.activity_trigger(input_name="value")
async def async_echo(value: Any) -> Any:
    return {"echo": value}


@bp.activity_trigger(input_name="marker")
def process_id(marker: Any) -> int:
    """The id of the process running it (worker-process tests)."""
    return os.getpid()


@bp.activity_trigger(input_name="marker")
def exit_once(marker: str) -> str:
    """Ends its process the first time, as a crashing worker does, when no file `marker`
    exists yet; runs normally after that."""
    path = Path(marker)
    if not path.exists():
        path.touch()
        os._exit(3)
    return "survived"


# --- orchestrators ----------------------------------------------------------------------------


@bp.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext) -> Any:
    first = yield context.call_activity("hello", "a")
    second = yield context.call_activity(hello, "b")
    echoed = yield context.call_activity("async_echo", context.get_input())
    return [first, second, echoed]


@bp.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext) -> Any:
    count = context.get_input()
    results = yield context.task_all(
        [context.call_activity("meet_square", i) for i in range(count)]
    )
    return sum(results)


@bp.orchestration_trigger(context_name="context")
def fan_out_held(context: df.DurableOrchestrationContext) -> Any:
    count = context.get_input()
    results = yield context.task_all(
        [context.call_activity("held_square", i) for i in range(count)]
    )
    return sum(results)


@bp.orchestration_trigger(context_name="context")
def first_of(context: df.DurableOrchestrationContext) -> Any:
    winner = yield context.task_any(
        [context.call_activity("square", 3), context.call_activity("held_square", 4)]
    )
    return winner.result


@bp.orchestration_trigger(context_name="context")
def retrying(context: df.DurableOrchestrationContext) -> Any:
    settings = context.get_input()
    options = df.RetryOptions(
        first_retry_interval_in_milliseconds=5000, max_number_of_attempts=settings["attempts"]
    )
    try:
        return (yield context.call_activity_with_retry("flaky", options, settings))
    except Exception as exc:
        return {"error": str(exc)}


@bp.orchestration_trigger(context_name="context")
def sleepy(context: df.DurableOrchestrationContext) -> Any:
    hours = context.get_input()
    started = context.current_utc_datetime
    yield context.create_timer(started + timedelta(hours=hours))
    return [started.isoformat(), context.current_utc_datetime.isoformat()]


@bp.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext) -> Any:
    first = yield context.call_sub_orchestrator("child", 3)
    second = yield context.call_sub_orchestrator("child", 4, f"{context.instance_id}-kid")
    looped = yield context.call_sub_orchestrator("polling", {"i": 0, "limit": 3})
    return [first, second, looped]


@bp.orchestration_trigger(context_name="context")
def child(context: df.DurableOrchestrationContext) -> Any:
    return (yield context.call_activity("square", context.get_input()))


@bp.orchestration_trigger(context_name="context")
def polling(context: df.DurableOrchestrationContext) -> Any:
    """A polling loop that keeps its history short with continue_as_new."""
    state = context.get_input()
    context.set_custom_status({"i": state["i"]})
    yield context.call_activity("square", state["i"])
    yield context.create_timer(context.current_utc_datetime + timedelta(minutes=10))
    if state["i"] + 1 < state["limit"]:
        context.continue_as_new({"i": state["i"] + 1, "limit": state["limit"]})
        return None
    return state["i"] + 1


@bp.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext) -> Any:
    context.set_custom_status("waiting for approval")
    deadline = context.create_timer(context.current_utc_datetime + timedelta(days=2))
    decision = context.wait_for_external_event("approve")
    winner = yield context.task_any([decision, deadline])
    if winner == deadline:
        return "timed out"
    deadline.cancel()
    context.set_custom_status("approved")
    return {"decision": decision.result}


@bp.orchestration_trigger(context_name="context")
def failing(context: df.DurableOrchestrationContext) -> Any:
    yield context.call_activity("boom", "kaput")


@bp.orchestration_trigger(context_name="context")
def nondeterministic(context: df.DurableOrchestrationContext) -> Any:
    yield context.call_activity("hello", uuid.uuid4().hex)  # a new input on every replay
    yield context.call_activity("hello", "second")


@bp.orchestration_trigger(context_name="context")
def calls_missing(context: df.DurableOrchestrationContext) -> Any:
    yield context.call_activity("no_such_activity", 1)


@bp.orchestration_trigger(context_name="context")
def slow_chain(context: df.DurableOrchestrationContext) -> Any:
    count = context.get_input()
    first = yield context.call_activity("record", 0)
    rest = yield context.task_all([context.call_activity("record", i) for i in range(1, count)])
    return [first, *rest]


# --- the real backends' limits (devstack.durable.limits) ------------------------------------


@bp.activity_trigger(input_name="size")
def make_text(size: int) -> str:
    return "x" * size


@bp.activity_trigger(input_name="text")
def text_length(text: str) -> int:
    return len(text)


@bp.orchestration_trigger(context_name="context")
def with_status(context: df.DurableOrchestrationContext) -> Any:
    """Sets a custom status of `text` (characters as given), then ends."""
    context.set_custom_status({"text": context.get_input()})
    yield context.create_timer(context.current_utc_datetime)
    return "done"


@bp.orchestration_trigger(context_name="context")
def sends_text(context: df.DurableOrchestrationContext) -> Any:
    """Passes a string of the given size to an activity."""
    yield context.call_activity("text_length", "x" * context.get_input())
    return "sent"


@bp.orchestration_trigger(context_name="context")
def receives_text(context: df.DurableOrchestrationContext) -> Any:
    """Asks an activity for a string of the given size."""
    text = yield context.call_activity("make_text", context.get_input())
    return len(text)
