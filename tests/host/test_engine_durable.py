"""Durable semantics of the local host, driven through the real azure-functions-durable SDK."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from azure.durable_functions.models.history import HistoryEventType as T

from devstack.durable.clock import VirtualClock
from devstack.durable.dispatch import Dispatcher
from devstack.durable.store import ActivityItem
from devstack.host.host import FunctionHost
from tests.support.toyapp import START, make_app, orchestrations


def run(host: FunctionHost, name: str, payload: object = None, **kwargs: object) -> dict[str, Any]:
    iid = host.start_new(name, None, payload)
    host.run_until_idle(timeout=20, **kwargs)  # type: ignore[arg-type]
    status = host.get_status(iid)
    assert status is not None
    return status


def types(host: FunctionHost, iid: str) -> list[int]:
    return [e["EventType"] for e in host.history(iid)]


def test_activities_in_sequence_with_sync_and_async_functions(host: FunctionHost) -> None:
    status = run(host, "chain", {"x": 1})
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == ["Hello a", "Hello b", {"echo": {"x": 1}}]
    # Like the Python client, the input travels as JSON text.
    assert status["input"] == '{"x": 1}'
    assert host.activity_calls == {"hello": 2, "async_echo": 1}


def test_fan_out_runs_activities_concurrently(host: FunctionHost) -> None:
    # Each meet_square call waits until all six run at once: a host that ran fewer of them at a
    # time would break the barrier and fail the orchestration.
    orchestrations.meet(6)
    status = run(host, "fan_out", 6)
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == 0 + 1 + 4 + 9 + 16 + 25


class _FinishesWhilePumpLooks(Dispatcher):
    """A dispatcher whose first activity ends completely right after a `pump()` found nothing.

    That is the interleaving behind a once-flaky fan-out test: `run_until_idle` saw nothing to
    start, then nothing in flight, and returned with the activity's result still unprocessed.
    """

    def __init__(self, host: FunctionHost, clock: VirtualClock) -> None:
        super().__init__(host.engine, host.store, clock, max_workers=4)
        self.gate = threading.Event()

    def _activity(self, item: ActivityItem) -> None:
        assert self.gate.wait(timeout=60), "the test never released the activity"
        super()._activity(item)

    def pump(self) -> int:
        started = super().pump()
        with self._cond:
            if started or not self._in_flight or self.gate.is_set():
                return started
            self.gate.set()
            while self._in_flight:
                self._cond.wait()
        return started


def test_run_until_idle_sees_work_left_by_a_job_that_ended_during_pump(clock: VirtualClock) -> None:
    orchestrations.reset()
    host = FunctionHost(make_app(), None, clock)
    host.dispatcher = _FinishesWhilePumpLooks(host, clock)
    host.engine.on_new_work = host.dispatcher.wake
    with host:
        status = run(host, "chain", {"x": 1})
    assert host.dispatcher.gate.is_set()  # the interleaving did happen
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == ["Hello a", "Hello b", {"echo": {"x": 1}}]


def test_task_any_returns_the_first_finished_task(host: FunctionHost) -> None:
    # square(3) and held_square(4) race; held_square returns only once the run has completed.
    iid = host.start_new("first_of", None, None)

    def release_when_completed() -> None:
        while (host.get_status(iid) or {}).get("runtimeStatus") != "Completed":
            time.sleep(0.01)  # polling the status; the loop decides
        orchestrations.release_held()

    releaser = threading.Thread(target=release_when_completed, daemon=True)
    releaser.start()
    host.run_until_idle(timeout=20)
    releaser.join(timeout=20)
    status = host.get_status(iid)
    assert status is not None
    assert status["output"] == 9
    assert host.activity_calls == {"square": 1, "held_square": 1}


def test_retry_reproduces_the_history_the_extension_writes(host: FunctionHost) -> None:
    status = run(host, "retrying", {"key": "twice", "succeed_on": 3, "attempts": 3})
    assert status["output"] == "ok after 3"
    assert host.activity_calls["flaky"] == 3
    events = host.history(status["instanceId"])
    work = [(e["EventType"], e["EventId"]) for e in events if e["EventId"] >= 0]
    assert work == [
        (T.TASK_SCHEDULED, 0),
        (T.TIMER_CREATED, 1),
        (T.TASK_SCHEDULED, 2),
        (T.TIMER_CREATED, 3),
        (T.TASK_SCHEDULED, 4),
    ]
    fired = [e for e in events if e["EventType"] == T.TIMER_FIRED]
    failed = [e["TaskScheduledId"] for e in events if e["EventType"] == T.TASK_FAILED]
    assert [e["TimerId"] for e in fired] == [1, 3]
    assert failed == [0, 2]


def test_retry_gives_up_after_the_last_attempt(host: FunctionHost) -> None:
    status = run(host, "retrying", {"key": "never", "succeed_on": 99, "attempts": 2})
    assert "flaky failure 2" in status["output"]["error"]
    assert host.activity_calls["flaky"] == 2
    # DTFx waits one more retry interval after the last failure before giving up.
    assert types(host, status["instanceId"]).count(T.TIMER_FIRED) == 2


def test_a_day_long_timer_passes_in_virtual_time(host: FunctionHost, clock: VirtualClock) -> None:
    # `run` allows 20 s of wall time, so the day can only have passed on the virtual clock.
    status = run(host, "sleepy", 24)
    started, woke = (datetime.fromisoformat(t) for t in status["output"])
    assert started == START
    assert woke - started == timedelta(hours=24)
    assert clock.now() == START + timedelta(hours=24)


def test_timers_longer_than_six_days_are_split_like_on_azure(host: FunctionHost) -> None:
    status = run(host, "sleepy", 24 * 8)
    assert status["output"][1] == "2024-01-09T00:00:00+00:00"
    fires = [
        e["FireAt"] for e in host.history(status["instanceId"]) if e["EventType"] == T.TIMER_CREATED
    ]
    assert fires == ["2024-01-04T00:00:00.000000Z", "2024-01-09T00:00:00.000000Z"]


def test_sub_orchestrations_and_a_child_that_continues_as_new(host: FunctionHost) -> None:
    status = run(host, "parent")
    assert status["output"] == [9, 16, 3]
    parent_id = status["instanceId"]
    kid = host.get_status(f"{parent_id}-kid")
    assert kid is not None
    assert kid["runtimeStatus"] == "Completed"
    assert kid["output"] == 16
    children = [s for s in host.list_instances() if s["name"] == "child"]
    assert len(children) == 2
    # The looping child reported to its parent only when it finally completed.
    looped = next(s for s in host.list_instances() if s["name"] == "polling")
    assert looped["output"] == 3


def test_continue_as_new_keeps_history_bounded(host: FunctionHost) -> None:
    lengths: list[int] = []

    def measure(instance_id: str, attempt: int) -> bool:
        lengths.append(len(host.history(instance_id)))
        return False

    host.episode_crash_hook = measure
    iid = host.start_new("polling", None, {"i": 0, "limit": 25})
    first = host.get_status(iid)
    host.run_until_idle(timeout=20)
    status = host.get_status(iid)
    assert first is not None and status is not None
    assert status["output"] == 25
    # the status's createdTime is the last execution's, as on the Azure Storage backend
    # (azure-functions-durable-extension#2088): 24 timers of ten minutes after the first
    assert status["createdTime"] > first["createdTime"]
    assert host.activity_calls["square"] == 25
    assert max(lengths) <= 12
    assert len(host.history(status["instanceId"])) <= 14
    assert status["customStatus"] == {"i": 24}


def test_external_event_arrives_as_the_python_client_sends_it(host: FunctionHost) -> None:
    iid = host.start_new("approval", "approve-me")
    host.run_until_idle(max_virtual_seconds=3600)
    waiting = host.get_status(iid)
    assert waiting is not None
    assert waiting["runtimeStatus"] == "Running"
    assert waiting["customStatus"] == "waiting for approval"
    host.raise_event(iid, "approve", {"by": "ana"})
    host.run_until_idle()
    done = host.get_status(iid)
    assert done is not None
    assert done["customStatus"] == "approved"
    # The Python client JSON-encodes event data twice; the orchestrator gets the JSON text.
    assert done["output"] == {"decision": '{"by": "ana"}'}


def test_timer_wins_when_no_event_comes(host: FunctionHost) -> None:
    assert run(host, "approval")["output"] == "timed out"


def test_terminate_stops_a_waiting_instance(host: FunctionHost) -> None:
    iid = host.start_new("approval", "to-stop")
    host.run_until_idle(max_virtual_seconds=60)
    host.terminate(iid, "no longer needed")
    host.run_until_idle()
    status = host.get_status(iid)
    assert status is not None
    assert status["runtimeStatus"] == "Terminated"
    assert status["output"] == "no longer needed"
    assert types(host, iid)[-3:] == [T.EXECUTION_TERMINATED, T.EXECUTION_COMPLETED, 13]


def test_status_counts_count_instances_by_runtime_status(host: FunctionHost) -> None:
    assert host.store.status_counts() == {}
    run(host, "chain", {"x": 1})
    waiting = host.start_new("approval", "waits")
    host.run_until_idle(max_virtual_seconds=60)
    assert host.store.status_counts() == {"Running": 1, "Completed": 1}
    host.terminate(waiting, "done waiting")
    host.run_until_idle()
    assert host.store.status_counts() == {"Terminated": 1, "Completed": 1}


def test_activity_failure_fails_the_orchestration_with_its_message(host: FunctionHost) -> None:
    status = run(host, "failing")
    assert status["runtimeStatus"] == "Failed"
    assert "Activity function 'boom' failed: ValueError: kaput" in status["output"]
    assert types(host, status["instanceId"]).count(T.TASK_FAILED) == 1


def test_calling_an_unknown_activity_fails_clearly(host: FunctionHost) -> None:
    status = run(host, "calls_missing")
    assert status["runtimeStatus"] == "Failed"
    assert "'no_such_activity' doesn't exist" in status["output"]


def test_non_deterministic_orchestrator_fails_loudly(host: FunctionHost) -> None:
    status = run(host, "nondeterministic")
    assert status["runtimeStatus"] == "Failed"
    assert "Non-deterministic orchestrator detected" in status["output"]
    assert "sequence number 0" in status["output"]
    assert host.activity_calls["hello"] == 1  # the second call was never scheduled


def test_crashed_activity_runs_again(host: FunctionHost) -> None:
    crashes: list[tuple[str, int]] = []

    def crash_first_try(instance_id: str, name: str, attempt: int) -> bool:
        if name == "hello" and attempt == 1:
            crashes.append((name, attempt))
            return True
        return False

    host.crash_hook = crash_first_try
    status = run(host, "chain", None)
    assert status["output"][:2] == ["Hello a", "Hello b"]
    assert crashes == [("hello", 1), ("hello", 1)]
    assert host.activity_calls["hello"] == 4


def test_crashed_episode_is_replayed_before_its_work_is_committed(host: FunctionHost) -> None:
    attempts: list[int] = []

    def crash_every_first_attempt(instance_id: str, attempt: int) -> bool:
        attempts.append(attempt)
        return attempt == 1

    host.episode_crash_hook = crash_every_first_attempt
    status = run(host, "chain", None)
    assert status["runtimeStatus"] == "Completed"
    assert host.activity_calls["hello"] == 2  # a dropped episode scheduled nothing
    assert attempts.count(1) == attempts.count(2) == 4


def test_unknown_orchestrator_is_rejected(host: FunctionHost) -> None:
    with pytest.raises(Exception, match="doesn't exist"):
        host.start_new("nope")


def test_instances_resume_on_a_new_host_with_the_same_state_dir(tmp_path: object) -> None:
    from pathlib import Path

    state = Path(str(tmp_path))
    clock = VirtualClock(START)
    with FunctionHost(make_app(), state, clock) as first:
        iid = first.start_new("sleepy", "resume-me", 24)
        first.run_until_idle(max_virtual_seconds=60)
        assert first.get_status(iid)["runtimeStatus"] == "Running"  # type: ignore[index]
    with FunctionHost(make_app(), state, clock) as second:
        second.run_until_idle()
        status = second.get_status(iid)
    assert status is not None
    assert status["runtimeStatus"] == "Completed"
