"""A cancel request is never lost, whenever it reaches the orchestration.

The durable SDK hands an orchestration every message that arrived since its last episode. Two
timings are easy to get wrong: a cancel that arrives while a status check runs (the orchestration
is not waiting for the event just then), and a cancel that arrives together with the poll timer
at the moment the orchestration continues as new. The host runs on a virtual clock here, so each
timing is produced exactly, and a batch that would run a day shows whether the cancel was seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from devstack.durable.clock import VirtualClock
from orchestrators.run_file import CANCEL_EVENT
from tests.support.stack import Stack, local_stack, requests_file

DAY = 24 * 3600


@pytest.fixture(params=["1", "20"], ids=["continue-every-poll", "continue-every-20-polls"])
def day_stack(request, azurite, tmp_path) -> Iterator[tuple[Stack, VirtualClock]]:
    clock = VirtualClock(datetime.now(UTC))
    env = {
        "POLL_INITIAL_SECONDS": "60",
        "POLL_MAX_SECONDS": "600",
        "POLLS_PER_HISTORY": request.param,
    }
    with local_stack(azurite, tmp_path, extra_env=env, clock=clock) as stack:
        stack.scenario(batch_duration=DAY)
        yield stack, clock


def run_now(stack: Stack) -> None:
    """Run everything runnable without moving the clock."""
    stack.host.run_until_idle(timeout=60, max_virtual_seconds=0.001)


def next_timer(stack: Stack, clock: VirtualClock) -> datetime:
    due = stack.host.store.next_due(clock.now())
    assert due is not None
    return due


def finish(stack: Stack, run_id: str) -> dict[str, Any]:
    """Run to the end (a missed cancel means the whole virtual day); returns the run's output."""
    stack.host.run_until_idle(timeout=120, max_virtual_seconds=2 * DAY)
    status = stack.host.get_status(run_id)
    assert status["runtimeStatus"] == "Completed", status
    output = status["output"]
    return output if isinstance(output, dict) else orjson.loads(output)


def test_cancel_raised_while_a_status_check_runs(day_stack):
    stack, _ = day_stack
    stack.drop("race/during-check.jsonl", requests_file(4))
    (run_id,) = [r["instanceId"] for r in stack.runs()]
    raised: list[int] = []

    def raise_cancel_during_check(instance_id: str, activity: str, attempt: int) -> bool:
        if activity == "check_batch" and not raised:
            raised.append(attempt)
            stack.host.raise_event(run_id, CANCEL_EVENT, {"by": "test"})
        return False  # no crash: the check's result is reported after the event

    stack.host.crash_hook = raise_cancel_during_check
    output = finish(stack, run_id)

    assert raised == [1]
    assert output["status"] == "cancelled", output
    assert stack.host.activity_calls["check_batch"] <= 3  # seen at once, not after a day of polls


def test_cancel_raised_with_the_poll_timer(day_stack):
    """The timer and the cancel are in one episode, timer first: with one poll per execution,
    that episode is the one that continues as new."""
    stack, clock = day_stack
    stack.drop("race/with-timer.jsonl", requests_file(4))
    (run_id,) = [r["instanceId"] for r in stack.runs()]
    run_now(stack)
    while not stack.host.activity_calls["check_batch"]:  # until the batch is being watched
        clock.advance_to(next_timer(stack, clock))
        run_now(stack)

    clock.advance_to(next_timer(stack, clock))  # the next poll is due, and a cancel arrives
    stack.host.raise_event(run_id, CANCEL_EVENT, {"by": "test"})
    output = finish(stack, run_id)

    assert output["status"] == "cancelled", output
    assert stack.host.activity_calls["check_batch"] <= 3


def cancel_while(stack: Stack, activity: str, path: str) -> None:
    """Raise a cancel while the run's `activity` runs (after its work, before its result is
    recorded), then run to the end: the run ends cancelled, and no batch was ever created."""
    stack.drop(path, requests_file(4), deliver=False)
    raised: list[str] = []

    def raise_cancel(instance_id: str, called: str, attempt: int) -> bool:
        if called == activity and not raised:
            raised.append(instance_id)
            stack.host.raise_event(instance_id, CANCEL_EVENT, {"by": "test"})
        return False

    stack.host.crash_hook = raise_cancel
    assert stack.watcher.poll_once() == 1
    (run_id,) = [r["instanceId"] for r in stack.runs()]  # each test's stack is its own
    output = finish(stack, run_id)

    assert raised == [run_id]
    assert output["status"] == "cancelled", output
    assert "submit_batch" not in stack.scheduled(run_id)
    assert stack.batches_of(run_id) == []


def test_cancel_raised_while_the_input_is_validated(day_stack):
    """Before anything is submitted: the run waits for the cancel alongside validation, whose
    result comes into the history after it, so no batch is ever created."""
    stack, _ = day_stack
    cancel_while(stack, "validate_input", "race/during-validation.jsonl")


def test_cancel_raised_while_the_chunks_are_prepared(azurite, tmp_path):
    """An input cut into chunks: a cancel raised while `prepare_chunks` runs is seen before
    any chunk is submitted, as one raised during validation is."""
    clock = VirtualClock(datetime.now(UTC))
    env = {"POLL_INITIAL_SECONDS": "60", "POLL_MAX_SECONDS": "600", "MAX_REQUESTS_PER_BATCH": "2"}
    with local_stack(azurite, tmp_path, extra_env=env, clock=clock) as stack:
        stack.scenario(batch_duration=DAY)
        cancel_while(stack, "prepare_chunks", "race/during-chunking.jsonl")
