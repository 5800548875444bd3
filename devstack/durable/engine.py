"""The durable engine: orchestration episodes, activity executions and instance management.

An episode takes the instance's due messages, appends them to the history after an
OrchestratorStarted event stamped with the engine's clock, calls the app's orchestrator function
with the JSON context the Durable extension sends (the real SDK replays it), replays the returned
actions with `Replayer` to find the new work, and commits history, status and new work in one
transaction. Activities run from a queue and report back as TaskCompleted / TaskFailed messages.
"""

from __future__ import annotations

import json
import logging
import threading
import traceback
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from azure.durable_functions.models.history import HistoryEventType as T
from azure.functions import meta

from devstack.bindings import (
    WORKER_EXITED,
    Caller,
    FunctionFailed,
    FunctionIndex,
    exception_kind,
)
from devstack.durable import history as h
from devstack.durable.clock import Clock
from devstack.durable.limits import (
    LimitError,
    check_custom_status,
    check_instance_id,
    check_payload,
)
from devstack.durable.replay import (
    NonDeterminismError,
    Replayer,
    ReplayResult,
    Scheduled,
    UnsupportedActionError,
)
from devstack.durable.store import ActivityItem, Instance, Message, Store

log = logging.getLogger("devstack.engine")

# What the extension sends with the Azure Storage provider: replay schema V3
# (`upperSchemaVersionNew`), timers longer than 6 days split into 3-day timers by the SDK.
_SCHEMA = {
    "upperSchemaVersion": 1,
    "upperSchemaVersionNew": 2,
    "maximumShortTimerDuration": "6.00:00:00",
    "longRunningTimerIntervalDuration": "3.00:00:00",
}
_OUT_OF_PROC_MARKER = "$OutOfProcData$:"
_HOST_DIR = str(Path(__file__).resolve().parents[1])  # all of devstack/

STATUS_LOG = 1000


def _status_deque() -> deque[Any]:
    return deque(maxlen=STATUS_LOG)


ActivityCrashHook = Callable[[str, str, int], bool]
EpisodeCrashHook = Callable[[str, int], bool]


class DurableError(Exception):
    """A management call that cannot be done; `status` is the Durable HTTP API's answer."""

    status = 400


class InstanceNotFoundError(DurableError):
    status = 404


class InstanceGoneError(DurableError):
    status = 410


class InstanceExistsError(DurableError):
    status = 409


class NotTerminalError(DurableError):
    status = 412


@dataclass
class _Outcome:
    """How an episode ends: still running, or finished with a status and output."""

    status: str = "Running"
    output: str | None = None
    failure: str | None = None


@dataclass
class Engine:
    """Runs orchestrations and activities of one app against one store and clock."""

    store: Store
    clock: Clock
    index: FunctionIndex
    invoker: Caller  # the app's orchestrators and activities
    on_new_work: Callable[[], None] = lambda: None
    crash_hook: ActivityCrashHook | None = None
    episode_crash_hook: EpisodeCrashHook | None = None
    activity_calls: Counter[str] = field(default_factory=Counter)
    # The largest payload of each kind seen so far (bytes; the custom status in UTF-16 bytes),
    # so a test can show how far a workload stays from the limits in devstack.durable.limits.
    peaks: Counter[str] = field(default_factory=Counter)
    # Every custom status each instance set, in order (the last STATUS_LOG), so a test can see
    # a short-lived status (a wait) without sampling the status API on a wall-clock schedule.
    status_log: dict[str, deque[Any]] = field(default_factory=lambda: defaultdict(_status_deque))
    _stats_lock: threading.Lock = field(default_factory=threading.Lock)
    _episode_attempts: Counter[tuple[str, int]] = field(default_factory=Counter)

    # --- management ---------------------------------------------------------------------------

    def start_new(self, name: str, instance_id: str | None, input_text: str | None) -> str:
        """Create (or re-create a finished) instance; `input_text` is the raw JSON input."""
        if self.index.get(name, "orchestrationTrigger") is None:
            raise DurableError(
                f"The function '{name}' doesn't exist, is disabled, or is not an orchestrator "
                "function."
            )
        iid = instance_id or uuid.uuid4().hex
        try:
            check_instance_id(iid)
            size = check_payload(f"input of orchestration '{name}'", input_text)
        except LimitError as exc:
            raise DurableError(str(exc)) from exc
        self._peak("orchestration input", size)
        with self.store.transaction() as store:
            existing = store.instance(iid)
            if existing is not None and not existing.terminal:
                raise InstanceExistsError(
                    f"An Orchestration instance with the status {existing.status} already exists."
                )
            if existing is not None:
                store.clear_history(iid)
                store.clear_messages(iid)
            self._create(iid, name, input_text, None)
        self.on_new_work()
        return iid

    def _create(
        self, iid: str, name: str, input_text: str | None, parent: dict[str, Any] | None
    ) -> None:
        now = self.clock.now()
        execution_id = uuid.uuid4().hex
        inst = Instance(
            iid, name, execution_id, "Pending", input_text, None, None, now, now, parent
        )
        self.store.save_instance(inst)
        started = h.execution_started(now, name, iid, execution_id, input_text, parent)
        self.store.send(iid, started, now, execution_id)

    def raise_event(self, instance_id: str, name: str, input_text: str | None) -> None:
        inst = self._existing(instance_id)
        if inst.terminal:
            raise InstanceGoneError(f"Instance with ID {instance_id} is gone: it is {inst.status}")
        now = self.clock.now()
        self.store.send(instance_id, h.event_raised(now, name, input_text), now)
        self.on_new_work()

    def terminate(self, instance_id: str, reason: str | None) -> None:
        inst = self._existing(instance_id)
        if inst.terminal:
            raise InstanceGoneError(f"Instance with ID {instance_id} is already {inst.status}")
        now = self.clock.now()
        self.store.send(instance_id, h.execution_terminated(now, reason), now)
        self.on_new_work()

    def purge(self, instance_id: str) -> int:
        inst = self._existing(instance_id)
        if not inst.terminal:
            raise NotTerminalError(
                "Only orchestrations in a terminal state can be purged, but the orchestration "
                f"with instance ID {instance_id} has status {inst.status}"
            )
        self.store.delete_instance(instance_id)
        return 1

    def purge_where(
        self,
        created_from: datetime | None,
        created_to: datetime | None,
        statuses: list[str] | None,
    ) -> int:
        """Delete finished instances matching the filters; returns how many."""
        doomed = [
            inst
            for inst in self._matching(created_from, created_to, statuses, None)
            if inst.terminal
        ]
        for inst in doomed:
            self.store.delete_instance(inst.instance_id)
        return len(doomed)

    def _existing(self, instance_id: str) -> Instance:
        inst = self.store.instance(instance_id)
        if inst is None:
            raise InstanceNotFoundError(f"No instance with ID {instance_id} found.")
        return inst

    def _matching(
        self,
        created_from: datetime | None,
        created_to: datetime | None,
        statuses: list[str] | None,
        prefix: str | None,
    ) -> list[Instance]:
        return [
            inst
            for inst in self.store.instances()
            if (created_from is None or inst.created >= created_from)
            and (created_to is None or inst.created <= created_to)
            and (not statuses or inst.status in statuses)
            and (not prefix or inst.instance_id.startswith(prefix))
        ]

    def status(
        self,
        instance_id: str,
        show_history: bool = False,
        show_history_output: bool = False,
        show_input: bool = True,
    ) -> dict[str, Any] | None:
        """The Durable HTTP API's status payload for one instance, or None."""
        inst = self.store.instance(instance_id)
        if inst is None:
            return None
        payload = _status_payload(inst, show_input)
        if show_history:
            payload["historyEvents"] = [
                _public_event(ev, show_history_output) for ev in self.store.history(instance_id)
            ]
        return payload

    def query(
        self,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        statuses: list[str] | None = None,
        prefix: str | None = None,
        show_input: bool = False,
    ) -> list[dict[str, Any]]:
        return [
            _status_payload(inst, show_input)
            for inst in self._matching(created_from, created_to, statuses, prefix)
        ]

    # --- activities ---------------------------------------------------------------------------

    def run_activity(self, item: ActivityItem) -> None:
        """Execute one queued activity and report its result to its orchestration."""
        attempt = self.store.count_attempt(item.id)
        spec = self.index.get(item.name, "activityTrigger")
        assert spec is not None, f"activity {item.name} vanished from the app"
        with self._stats_lock:
            self.activity_calls[item.name] += 1
        try:
            result = self.invoker.call(spec, meta.Datum(item.input, "json"))
            size = check_payload(
                f"output of activity '{item.name}'", result.value if result is not None else None
            )
            self._peak("activity output", size)
            report = h.task_completed(
                self.clock.now(), item.task_id, result.value if result is not None else None
            )
        except Exception as exc:
            log.warning("activity %s of %s failed: %s", item.name, item.instance_id, exc)
            report = h.task_failed(
                self.clock.now(),
                item.task_id,
                f"Activity function '{item.name}' failed: {exception_kind(exc)}: {exc}",
                app_traceback(exc),
            )
        if self.crash_hook is not None and self.crash_hook(item.instance_id, item.name, attempt):
            log.info("simulated crash after activity %s (attempt %d)", item.name, attempt)
            return
        with self.store.transaction() as store:
            store.delete_activity(item.id)
            store.send(item.instance_id, report, self.clock.now(), item.execution_id)
        self.on_new_work()

    # --- orchestration episodes ---------------------------------------------------------------

    def run_episode(self, instance_id: str) -> None:
        """Process the instance's due messages in one orchestrator episode."""
        now = self.clock.now()
        messages = self.store.visible_messages(instance_id, now)
        inst = self.store.instance(instance_id)
        if not messages:
            return
        if inst is None or inst.terminal:
            self.store.delete_messages([m.id for m in messages])
            return
        try:
            self._episode(inst, messages, now)
        except EpisodeAbandoned as exc:  # its messages stay: the episode runs again
            log.warning("episode of %s abandoned: %s", instance_id, exc)
        except Exception as exc:
            log.exception("episode of %s failed inside the host", instance_id)
            with self.store.transaction() as store:
                store.delete_messages([m.id for m in messages])
                failure = f"Local host error while running orchestrator '{inst.name}': {exc!r}"
                self._finish(inst, _Outcome("Failed", json.dumps(failure), failure), now)
        self.on_new_work()

    def _episode(self, inst: Instance, messages: list[Message], now: datetime) -> None:
        current = [m for m in messages if m.execution_id in (None, inst.execution_id)]
        terminate = next(
            (m for m in current if m.event["EventType"] == T.EXECUTION_TERMINATED), None
        )
        if terminate is not None:
            self._terminate_now(inst, messages, terminate, now)
            return
        past = self.store.history(inst.instance_id)
        new_events = [h.orchestrator_started(now), *(m.event for m in current)]
        started = next(
            (e for e in [*past, *new_events] if e["EventType"] == T.EXECUTION_STARTED), None
        )
        if started is None or len(new_events) == 1:
            log.warning("dropping %d stray messages for %s", len(messages), inst.instance_id)
            self.store.delete_messages([m.id for m in messages])
            return

        state = self._call_orchestrator(inst, past, new_events, started)
        outcome, new_work, continue_input = self._decide(inst, past + new_events, state)

        attempt_key = (inst.instance_id, messages[0].id)
        self._episode_attempts[attempt_key] += 1
        hook = self.episode_crash_hook
        if hook is not None and hook(inst.instance_id, self._episode_attempts[attempt_key]):
            log.info("simulated crash of an episode of %s", inst.instance_id)
            return
        del self._episode_attempts[attempt_key]

        with self.store.transaction() as store:
            store.delete_messages([m.id for m in messages])
            events = new_events + [self._schedule(inst, work, now) for work in new_work]
            if state.get("customStatus") is not None:
                inst.custom_status = json.dumps(state["customStatus"])
                self.status_log[inst.instance_id].append(state["customStatus"])
            if outcome.status != "Running":
                events.append(
                    h.execution_completed(now, outcome.status, outcome.output, outcome.failure)
                )
            events.append(h.orchestrator_completed(now))
            store.append_history(inst.instance_id, events)
            if continue_input is not None:
                self._continue_as_new(inst, continue_input, now)
            elif outcome.status == "Running":
                inst.status, inst.updated = "Running", now
                store.save_instance(inst)
            else:
                self._finish(inst, outcome, now)

    def _call_orchestrator(
        self, inst: Instance, past: list[h.Event], new: list[h.Event], started: h.Event
    ) -> dict[str, Any]:
        """Invoke the orchestrator function with the extension's JSON context."""
        spec = self.index.get(inst.name, "orchestrationTrigger")
        if spec is None:
            return {
                "isDone": False,
                "actions": [],
                "error": f"orchestrator {inst.name!r} not found",
            }
        parent = inst.parent["OrchestrationInstance"]["InstanceId"] if inst.parent else None
        input_text = started.get("Input")
        context = {
            "history": [{**e, "IsPlayed": True} for e in past]
            + [{**e, "IsPlayed": False} for e in new],
            "instanceId": inst.instance_id,
            "isReplaying": bool(past),
            "parentInstanceId": parent,
            **_SCHEMA,
        }
        try:
            text = _context_text(context, input_text)
            result = self.invoker.call(spec, meta.Datum(text, "string"))
        except Exception as exc:
            if exception_kind(exc) == WORKER_EXITED:  # the platform's failure, not the app's
                raise EpisodeAbandoned(str(exc)) from exc
            text = str(exc)
            if _OUT_OF_PROC_MARKER in text:
                message, data = text.split(_OUT_OF_PROC_MARKER, 1)
                state: dict[str, Any] = json.loads(data)
                state.setdefault("error", message.strip())
                return state
            return {"isDone": False, "actions": [], "error": f"{exception_kind(exc)}: {exc}"}
        assert result is not None
        loaded: dict[str, Any] = json.loads(result.value)
        return loaded

    def _decide(
        self, inst: Instance, full_history: list[h.Event], state: dict[str, Any]
    ) -> tuple[_Outcome, list[Scheduled], str | None]:
        """Replay the actions as the extension does: outcome, new work, continue-as-new input.

        As in the extension's shim, a replay problem wins over the orchestrator's own error.
        """
        actions = state.get("actions") or [[]]
        replay: ReplayResult | None = None
        try:
            replay = Replayer(inst.execution_id).run(full_history, actions[0])
            self._check_functions_exist(replay.new_work)
            error = state.get("error")
            if not error:
                for kind, size in _check_limits(state, replay):
                    self._peak(kind, size)
        except NonDeterminismError as exc:
            error = (
                f"Non-deterministic orchestrator detected: {exc}. Orchestrator code must make the "
                "same calls, in the same order, with the same inputs on every replay "
                "(no clocks, random values or I/O)."
            )
        except (UnsupportedActionError, LookupError, LimitError) as exc:
            error = str(exc)
        if error or replay is None:
            failure = f"Orchestrator function '{inst.name}' failed: {error}"
            log.error("instance %s: %s", inst.instance_id, failure)
            return _Outcome("Failed", json.dumps(failure), failure), [], None
        if not state.get("isDone"):
            return _Outcome(), replay.new_work, None
        if replay.continue_as_new:
            return _Outcome(), replay.new_work, json.dumps(replay.continue_as_new_input)
        return _Outcome("Completed", json.dumps(state.get("output"))), replay.new_work, None

    def _peak(self, kind: str, size: int) -> None:
        with self._stats_lock:
            self.peaks[kind] = max(self.peaks[kind], size)

    def _check_functions_exist(self, work: list[Scheduled]) -> None:
        for item in work:
            if item.kind == "activity" and not self.index.get(item.name, "activityTrigger"):
                raise LookupError(
                    f"The function '{item.name}' doesn't exist, is disabled, or is not an "
                    "activity function."
                )
            if item.kind == "sub-orchestration" and not self.index.get(
                item.name, "orchestrationTrigger"
            ):
                raise LookupError(
                    f"The function '{item.name}' doesn't exist, is disabled, or is not an "
                    "orchestrator function."
                )

    def _schedule(self, inst: Instance, work: Scheduled, now: datetime) -> h.Event:
        """Queue one piece of new work; returns the history event that records it."""
        store, iid, exec_id = self.store, inst.instance_id, inst.execution_id
        if work.kind == "activity":
            store.enqueue_activity(iid, exec_id, work.task_id, work.name, work.input)
            return h.task_scheduled(now, work.task_id, work.name, work.input)
        if work.kind == "timer":
            assert work.input is not None
            fire_at = h.parse_time(work.input)
            store.send(iid, h.timer_fired(fire_at, work.task_id, work.input), fire_at, exec_id)
            return h.timer_created(now, work.task_id, work.input)
        child_id = work.instance_id
        assert child_id is not None
        child = store.instance(child_id)
        if child is not None and not child.terminal:
            reason = f"An orchestration with instance ID '{child_id}' already exists."
            failed = h.sub_orchestration_failed(now, work.task_id, reason, "")
            store.send(iid, failed, now, exec_id)
        else:
            if child is not None:
                store.clear_history(child_id)
                store.clear_messages(child_id)
            parent = {
                "Name": inst.name,
                "Version": "",
                "OrchestrationInstance": {"InstanceId": iid, "ExecutionId": exec_id},
                "TaskScheduleId": work.task_id,
            }
            self._create(child_id, work.name, json.dumps(work.input), parent)
        return h.sub_orchestration_created(now, work.task_id, work.name, child_id, work.input)

    def _continue_as_new(self, inst: Instance, input_text: str, now: datetime) -> None:
        """Start a fresh execution (empty history) with the new input, keeping id and parent."""
        store = self.store
        store.clear_history(inst.instance_id)
        store.clear_messages_of_execution(inst.instance_id, inst.execution_id)
        inst.execution_id = uuid.uuid4().hex
        inst.input, inst.output, inst.status, inst.updated = input_text, None, "Running", now
        # The status's createdTime is the new execution's, as with the Azure Storage backend
        # (azure-functions-durable-extension#2088): a run's own start must come from its input.
        inst.created = now
        store.save_instance(inst)
        started = h.execution_started(
            now, inst.name, inst.instance_id, inst.execution_id, input_text, inst.parent
        )
        store.send(inst.instance_id, started, now, inst.execution_id)

    def _terminate_now(
        self, inst: Instance, messages: list[Message], terminate: Message, now: datetime
    ) -> None:
        reason = terminate.event.get("Input")
        output = json.dumps(reason)
        with self.store.transaction() as store:
            store.delete_messages([m.id for m in messages])
            store.append_history(
                inst.instance_id,
                [
                    h.orchestrator_started(now),
                    terminate.event,
                    h.execution_completed(now, "Terminated", output),
                    h.orchestrator_completed(now),
                ],
            )
            self._finish(inst, _Outcome("Terminated", output, f"terminated: {reason}"), now)

    def _finish(self, inst: Instance, outcome: _Outcome, now: datetime) -> None:
        """Record a final status, drop what is still queued and tell the parent, if any."""
        inst.status, inst.output, inst.updated = outcome.status, outcome.output, now
        self.store.save_instance(inst)
        self.store.clear_messages(inst.instance_id)
        if inst.parent is None:
            return
        parent = inst.parent["OrchestrationInstance"]
        task_id = inst.parent["TaskScheduleId"]
        if outcome.status == "Completed":
            report = h.sub_orchestration_completed(now, task_id, outcome.output)
        else:
            report = h.sub_orchestration_failed(now, task_id, outcome.failure or outcome.status, "")
        self.store.send(parent["InstanceId"], report, now, parent["ExecutionId"])


class EpisodeAbandoned(Exception):
    """The worker process running an episode exited: as the Durable extension abandons the
    work item, the episode's messages stay in the inbox and it runs again."""


def app_traceback(exc: BaseException) -> str:
    """The exception's traceback without this host's own frames (what the app author needs)."""
    if isinstance(exc, FunctionFailed):  # formatted in the worker process that ran it
        return exc.app_traceback
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(_HOST_DIR)
    ]
    return "".join(traceback.format_list(frames) + traceback.format_exception_only(exc))


def _loads(text: str | None) -> Any:
    return json.loads(text) if text is not None else None


def _status_payload(inst: Instance, show_input: bool) -> dict[str, Any]:
    return {
        "name": inst.name,
        "instanceId": inst.instance_id,
        "runtimeStatus": inst.status,
        "input": _loads(inst.input) if show_input else None,
        "customStatus": _loads(inst.custom_status),
        "output": _loads(inst.output),
        "createdTime": h.status_time(inst.created),
        "lastUpdatedTime": h.status_time(inst.updated),
    }


def _public_event(ev: h.Event, with_output: bool) -> dict[str, Any]:
    """A history event as the status API lists it: named type, payloads only when asked."""
    name = "".join(part.capitalize() for part in T(ev["EventType"]).name.split("_"))
    shown = {"EventType": name, "Timestamp": ev["Timestamp"]}
    for key in (
        "EventId",
        "Name",
        "FunctionName",
        "TaskScheduledId",
        "TimerId",
        "FireAt",
        "Reason",
    ):
        if key in ev:
            shown[key] = ev[key]
    if with_output:
        for key in ("Input", "Result", "Details"):
            if key in ev:
                shown[key] = ev[key]
    return shown


def _context_text(context: dict[str, Any], input_text: str | None) -> str:
    """An episode's context as JSON text, with the orchestration's input (JSON text already)
    as its `input`, as it came. The history is most of the rest: its events hold only what
    orjson writes as json would (`Store`), several times faster; only the spacing differs,
    which JSON readers ignore."""
    head = orjson.dumps(context).decode()
    return f'{head[:-1]},"input":{"null" if input_text is None else input_text}}}'


def _compact(value: Any) -> str:
    """JSON as the extension's serializer writes it: no spaces, non-ASCII kept as is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _check_limits(state: dict[str, Any], replay: ReplayResult) -> list[tuple[str, int]]:
    """What the real backend refuses in an episode's result (devstack.durable.limits); sizes."""
    sizes: list[tuple[str, int]] = []
    if state.get("customStatus") is not None:
        sizes.append(("custom status", check_custom_status(_compact(state["customStatus"]))))
    for work in replay.new_work:
        if work.kind == "activity":
            sizes.append(
                ("activity input", check_payload(f"input of activity '{work.name}'", work.input))
            )
        elif work.kind == "sub-orchestration":
            assert work.instance_id is not None
            check_instance_id(work.instance_id)
            what = f"input of orchestration '{work.name}'"
            sizes.append(("orchestration input", check_payload(what, work.input)))
    if replay.continue_as_new:
        what = "continue-as-new input"
        sizes.append(("orchestration input", check_payload(what, replay.continue_as_new_input)))
    elif state.get("isDone"):
        what = "orchestration output"
        sizes.append(("orchestration output", check_payload(what, _compact(state.get("output")))))
    return sizes
