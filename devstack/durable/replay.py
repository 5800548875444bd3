"""The host side of a replay: what the Durable extension does with an orchestrator's actions.

On Azure, the Python SDK returns its actions (`CallActivity`, `CreateTimer`, `WhenAll`, ...) and the
extension's out-of-process shim re-issues them, one awaited action at a time, against a DTFx
orchestration context that replays the history. That context hands out the sequence numbers,
matches each re-issued action with the event the history recorded for that number, and turns the
actions with no recorded event into new work. Retries are done there as well (`ScheduleWithRetry`:
on a failure, a timer, then the call again, each taking the next sequence number), which is why the
Python SDK expects TaskFailed, TimerCreated/TimerFired and TaskScheduled events for a retried call.

`Replayer` reproduces that model, so ids, retry timers and the `WhenAll` waiting behave as on
Azure, and it checks what DTFx does not: an action re-issued at a recorded sequence number must
have the same type, name and input, or the orchestrator is not deterministic.
"""

from __future__ import annotations

import functools
import json
from collections import defaultdict, deque
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

from azure.durable_functions.models.actions import ActionType as A
from azure.durable_functions.models.history import HistoryEventType as T

from devstack.durable.history import Event, fmt_time, parse_time

Kind = Literal["activity", "timer", "sub-orchestration"]


class NonDeterminismError(Exception):
    """A replay issued different work than the history recorded for the same sequence number."""


class UnsupportedActionError(Exception):
    """An action this host does not implement (entities, durable HTTP)."""


@dataclass(frozen=True)
class Scheduled:
    """A piece of work an orchestration scheduled under a sequence number."""

    task_id: int
    kind: Kind
    name: str = ""
    input: str | None = None  # JSON text for calls; the fire time for timers
    instance_id: str | None = None  # sub-orchestrations only

    @classmethod
    def from_event(cls, ev: Event) -> Scheduled:
        kind = ev["EventType"]
        if kind == T.TASK_SCHEDULED:
            return cls(ev["EventId"], "activity", ev.get("Name") or "", ev.get("Input"))
        if kind == T.TIMER_CREATED:
            return cls(ev["EventId"], "timer", input=ev.get("FireAt"))
        return cls(
            ev["EventId"],
            "sub-orchestration",
            ev.get("Name") or "",
            ev.get("Input"),
            ev.get("InstanceId"),
        )

    def same_work(self, other: Scheduled) -> bool:
        return (
            self.kind == other.kind
            and self.name == other.name
            and self.instance_id == other.instance_id
            and _same_json(self.input, other.input)
        )

    def describe(self) -> str:
        if self.kind == "timer":
            return f"a timer firing at {self.input}"
        target = f" (instance {self.instance_id!r})" if self.instance_id else ""
        return f"{self.kind} {self.name!r}{target} with input {self.input}"


def _same_json(a: str | None, b: str | None) -> bool:
    if a == b:
        return True
    try:
        return bool(json.loads(a or "null") == json.loads(b or "null"))
    except ValueError:
        return False


class _Future:
    """A DTFx task as the shim sees it: completes once, runs its callbacks synchronously."""

    __slots__ = ("_callbacks", "done", "ok")

    def __init__(self) -> None:
        self.done = False
        self.ok = True
        self._callbacks: list[Callable[[], None]] = []

    def resolve(self, ok: bool = True) -> None:
        if self.done:
            return
        self.done, self.ok = True, ok
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def then(self, callback: Callable[[], None]) -> None:
        if self.done:
            callback()
        else:
            self._callbacks.append(callback)


def _done() -> _Future:
    future = _Future()
    future.resolve()
    return future


Coroutine = Generator[_Future, _Future, bool]


def _spawn(coroutine: Coroutine) -> _Future:
    """Drive a generator that yields futures, like an async method awaiting tasks."""
    result = _Future()

    def step(sent: _Future | None) -> None:
        while True:
            try:
                waiting = coroutine.send(sent) if sent is not None else next(coroutine)
            except StopIteration as stop:
                result.resolve(bool(stop.value))
                return
            if not waiting.done:
                waiting.then(functools.partial(step, waiting))
                return
            sent = waiting

    step(None)
    return result


def _when_all(futures: list[_Future]) -> _Future:
    """Task.WhenAll: done when every child is done (even if one failed early)."""
    result = _Future()
    pending = [f for f in futures if not f.done]
    remaining = [len(pending)]

    def one_done() -> None:
        remaining[0] -= 1
        if remaining[0] == 0:
            result.resolve(all(f.ok for f in futures))

    if not pending:
        result.resolve(all(f.ok for f in futures))
    for future in pending:
        future.then(one_done)
    return result


def _when_any(futures: list[_Future]) -> _Future:
    result = _Future()
    for future in futures:
        future.then(result.resolve)
    if not futures:
        result.resolve()
    return result


@dataclass
class ReplayResult:
    """New work (not in the history yet) in sequence order; whether continue-as-new was reached."""

    new_work: list[Scheduled]
    continue_as_new: bool = False
    continue_as_new_input: str | None = None


@dataclass
class Replayer:
    """Replays one execution's history against the actions the orchestrator returned."""

    execution_id: str
    now: datetime = field(init=False)
    _next_id: int = field(default=0, init=False)
    _unmatched: dict[int, Scheduled] = field(default_factory=dict, init=False)
    _open: dict[int, _Future] = field(default_factory=dict, init=False)
    _waiters: defaultdict[str, list[_Future]] = field(
        default_factory=lambda: defaultdict(list), init=False
    )
    _buffered: defaultdict[str, deque[str | None]] = field(
        default_factory=lambda: defaultdict(deque), init=False
    )
    _continue_as_new: tuple[bool, str | None] = field(default=(False, None), init=False)

    def run(self, history: Iterable[Event], actions: list[Any]) -> ReplayResult:
        """Process the history in order, starting the shim at ExecutionStarted, as DTFx does."""
        for ev in history:
            kind = ev["EventType"]
            if kind == T.ORCHESTRATOR_STARTED:
                self.now = parse_time(ev["Timestamp"])
            elif kind == T.EXECUTION_STARTED:
                _spawn(self._shim(actions))
            elif kind in (T.TASK_SCHEDULED, T.TIMER_CREATED, T.SUB_ORCHESTRATION_INSTANCE_CREATED):
                self._match(Scheduled.from_event(ev))
            elif kind in (T.TASK_COMPLETED, T.SUB_ORCHESTRATION_INSTANCE_COMPLETED):
                self._complete(ev["TaskScheduledId"], ok=True)
            elif kind in (T.TASK_FAILED, T.SUB_ORCHESTRATION_INSTANCE_FAILED):
                self._complete(ev["TaskScheduledId"], ok=False)
            elif kind == T.TIMER_FIRED:
                self._complete(ev["TimerId"], ok=True)
            elif kind == T.EVENT_RAISED:
                self._raise(ev.get("Name") or "", ev.get("Input"))
        reached, input_text = self._continue_as_new
        return ReplayResult(
            [self._unmatched[k] for k in sorted(self._unmatched)], reached, input_text
        )

    # --- history side -------------------------------------------------------------------------

    def _match(self, recorded: Scheduled) -> None:
        issued = self._unmatched.pop(recorded.task_id, None)
        if issued is None:
            raise NonDeterminismError(
                f"a previous execution scheduled {recorded.describe()} with sequence number "
                f"{recorded.task_id}, but this replay has not scheduled it"
            )
        if not issued.same_work(recorded):
            raise NonDeterminismError(
                f"a previous execution scheduled {recorded.describe()} with sequence number "
                f"{recorded.task_id}, but this replay scheduled {issued.describe()} instead"
            )

    def _complete(self, task_id: int, ok: bool) -> None:
        future = self._open.pop(task_id, None)
        if future is not None:  # completions of cancelled or unknown tasks are ignored
            future.resolve(ok)

    def _raise(self, name: str, input_text: str | None) -> None:
        waiters = self._waiters[name]
        if waiters:
            waiters.pop().resolve()  # newest waiter first, like the extension's stack
        else:
            self._buffered[name].append(input_text)

    # --- shim side ----------------------------------------------------------------------------

    def _shim(self, actions: list[Any]) -> Coroutine:
        """ProcessAsyncActionsV2: await each action in turn; a failed task does not stop it."""
        for action in actions:
            yield self._invoke(action)
        return True

    def _invoke(self, action: dict[str, Any]) -> _Future:
        handler = self._handlers.get(action["actionType"])
        if handler is None:
            raise UnsupportedActionError(
                f"action type {action['actionType']} (entities, durable HTTP) is not supported "
                "by the local host"
            )
        return handler(self, action)

    def _activity(self, action: dict[str, Any]) -> _Future:
        return self._schedule(Scheduled(-1, "activity", action["functionName"], action["input"]))

    def _activity_with_retry(self, action: dict[str, Any]) -> _Future:
        work = Scheduled(-1, "activity", action["functionName"], action["input"])
        return _spawn(self._with_retry(work, action["retryOptions"]))

    def _sub_orchestrator(self, action: dict[str, Any]) -> _Future:
        return self._schedule(self._sub_orchestration(action))

    def _sub_orchestrator_with_retry(self, action: dict[str, Any]) -> _Future:
        return _spawn(self._with_retry(self._sub_orchestration(action), action["retryOptions"]))

    def _timer(self, action: dict[str, Any]) -> _Future:
        timer = self._schedule(Scheduled(-1, "timer", input=action["fireAt"]))
        if action.get("isCanceled"):
            self._cancel(timer)
        return timer

    def _external_event(self, action: dict[str, Any]) -> _Future:
        return self._wait_for_event(action["externalEventName"])

    def _continue(self, action: dict[str, Any]) -> _Future:
        self._continue_as_new = (True, action.get("input"))
        return _done()

    def _all(self, action: dict[str, Any]) -> _Future:
        return _when_all([self._invoke(a) for a in action["compoundActions"]])

    def _any(self, action: dict[str, Any]) -> _Future:
        return _when_any([self._invoke(a) for a in action["compoundActions"]])

    _handlers: ClassVar[dict[int, Callable[[Replayer, dict[str, Any]], _Future]]] = {
        A.CALL_ACTIVITY: _activity,
        A.CALL_ACTIVITY_WITH_RETRY: _activity_with_retry,
        A.CALL_SUB_ORCHESTRATOR: _sub_orchestrator,
        A.CALL_SUB_ORCHESTRATOR_WITH_RETRY: _sub_orchestrator_with_retry,
        A.CREATE_TIMER: _timer,
        A.WAIT_FOR_EXTERNAL_EVENT: _external_event,
        A.CONTINUE_AS_NEW: _continue,
        A.WHEN_ALL: _all,
        A.WHEN_ANY: _any,
    }

    def _sub_orchestration(self, action: dict[str, Any]) -> Scheduled:
        # The id is only known once scheduled; DTFx names unnamed children "<executionId>:<seq>".
        return Scheduled(
            -1,
            "sub-orchestration",
            action["functionName"],
            action["input"],
            action.get("instanceId"),
        )

    def _schedule(self, work: Scheduled) -> _Future:
        task_id = self._next_id
        self._next_id += 1
        instance_id = work.instance_id
        if work.kind == "sub-orchestration" and not instance_id:
            instance_id = f"{self.execution_id}:{task_id}"
        self._unmatched[task_id] = Scheduled(task_id, work.kind, work.name, work.input, instance_id)
        future = _Future()
        self._open[task_id] = future
        return future

    def _cancel(self, timer: _Future) -> None:
        for task_id, future in list(self._open.items()):
            if future is timer:
                del self._open[task_id]
        timer.resolve(ok=False)

    def _wait_for_event(self, name: str) -> _Future:
        future = _Future()
        if self._buffered[name]:
            self._buffered[name].popleft()
            future.resolve()
        else:
            self._waiters[name].append(future)
        return future

    def _with_retry(self, work: Scheduled, options: dict[str, Any]) -> Coroutine:
        """DTFx RetryInterceptor: call; on failure wait the interval (even after the last try)."""
        interval = timedelta(milliseconds=options["firstRetryIntervalInMilliseconds"])
        for _attempt in range(options["maxNumberOfAttempts"]):
            call = yield self._schedule(work)
            if call.ok:
                return True
            yield self._schedule(Scheduled(-1, "timer", input=fmt_time(self.now + interval)))
        return False
