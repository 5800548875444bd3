"""The run orchestration's typed state and its pure transitions, tested directly.

Like the durable SDK's samples test an orchestrator's decisions without a host: each transition
takes (chunk, activity result, now, config) and the expected next chunk is written out by hand.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batching.settings import RunConfig
from batching.statuses import BatchStatus, ChunkState, collects_now, resubmits
from orchestrators import state as machine
from orchestrators.state import Chunk, Phase, RunState

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
CONFIG = RunConfig(
    poll_initial_seconds=60,
    poll_max_seconds=600,
    polls_per_history=20,
    quota_retry_initial_seconds=300,
    quota_retry_max_seconds=3600,
    quota_retry_attempts=2,
    max_active_batches=0,
    max_enqueued_tokens=0,
    admission_wait_seconds=30,
    resubmit_rounds=2,
    activity_retry_attempts=5,
    activity_retry_seconds=5,
)
LIMITED = replace(CONFIG, max_active_batches=3)
INPUT = {"container": "batch-work", "path": "run/chunks/c0000.jsonl"}


def at(seconds: int) -> str:
    return (NOW + timedelta(seconds=seconds)).isoformat()


def chunk(state: ChunkState = ChunkState.SUBMITTING, **kw: object) -> Chunk:
    return replace(Chunk(0, INPUT, 10, state, tokens=500), **kw)


def test_chunks_enter_admission_only_when_a_limit_is_set() -> None:
    spec = {"index": 3, "input": INPUT, "requests": 5, "bytes": 99, "tokens": 40}
    assert machine.new_chunk(spec, CONFIG).state == ChunkState.SUBMITTING
    fresh = machine.new_chunk(spec, LIMITED)
    assert fresh.state == ChunkState.ADMISSION
    assert (fresh.index, fresh.requests, fresh.bytes, fresh.tokens) == (3, 5, 99, 40)
    assert (fresh.round, fresh.attempt, fresh.batch, fresh.parts) == (0, 0, None, ())


def test_admission_granted_moves_on_and_refused_waits_with_its_position() -> None:
    waiting = chunk(ChunkState.ADMISSION, queue_position=4, next_at=at(-1))
    granted = machine.admitted(waiting, {"granted": True}, NOW, LIMITED)
    assert (granted.state, granted.next_at, granted.queue_position) == (
        ChunkState.SUBMITTING,
        None,
        None,
    )
    refused = machine.admitted(waiting, {"granted": False, "position": 2}, NOW, LIMITED)
    assert (refused.state, refused.next_at, refused.queue_position) == (
        ChunkState.ADMISSION,
        at(30),
        2,
    )


def test_a_created_batch_is_checked_after_the_initial_interval() -> None:
    batch = {"id": "batch_1", "status": "validating"}
    running = machine.submitted(
        chunk(waiting="quota"), {"status": "created", "batch": batch}, NOW, CONFIG, "r"
    )
    assert running.state == ChunkState.RUNNING
    assert (running.batch, running.interval, running.next_at, running.waiting) == (
        batch,
        60,
        at(60),
        None,
    )


def test_a_file_still_processing_is_submitted_again_in_five_seconds() -> None:
    pending = machine.submitted(chunk(), {"status": "pending"}, NOW, CONFIG, "r")
    assert (pending.state, pending.next_at) == (ChunkState.SUBMITTING, at(5))


def test_a_refused_batch_is_collected_as_failed_with_the_reason() -> None:
    refused = machine.submitted(chunk(), {"status": "error", "message": "bad"}, NOW, CONFIG, "r")
    assert refused.state == ChunkState.COLLECTING
    assert refused.batch == {
        "id": None,
        "status": "failed",
        "request_counts": {},
        "errors": [{"code": "batch_refused", "message": "bad"}],
    }


def test_quota_waits_with_backoff_then_gives_up_after_the_last_attempt() -> None:
    first = machine.submitted(chunk(), {"status": "quota", "message": "full"}, NOW, CONFIG, "r")
    assert (first.state, first.attempt) == (ChunkState.SUBMITTING, 1)
    # attempt 1: 300 s base, jittered within [0.75, 1.25)
    assert at(225) <= first.next_at < at(375)
    assert first.waiting is not None and first.waiting.startswith("quota: token_limit_exceeded")
    second = machine.quota_wait(first, "full", NOW, CONFIG, "r")
    assert second.attempt == 2 and second.state == ChunkState.SUBMITTING
    third = machine.quota_wait(second, "full", NOW, CONFIG, "r")
    assert third.state == ChunkState.COLLECTING
    assert third.batch is not None
    assert third.batch["errors"] == [
        {"code": "token_limit_exceeded", "message": "token_limit_exceeded after 3 attempts: full"}
    ]


def test_quota_goes_back_through_admission_when_limits_are_on() -> None:
    waited = machine.quota_wait(chunk(), "full", NOW, LIMITED, "r")
    assert waited.state == ChunkState.ADMISSION


def test_status_checks_double_the_interval_up_to_the_cap() -> None:
    c = chunk(ChunkState.RUNNING, interval=60, batch={"id": "b", "status": "validating"})
    seen = []
    for _ in range(5):
        c = machine.checked(c, {"id": "b", "status": "in_progress"}, NOW, CONFIG, "r", False)
        seen.append(c.interval)
    assert seen == [120, 240, 480, 600, 600]
    assert c.next_at == at(600) and c.state == ChunkState.RUNNING


@pytest.mark.parametrize("status", ["completed", "failed", "expired", "cancelled", "COMPLETED"])
def test_an_ended_batch_is_collected(status: str) -> None:
    batch = {"id": "b", "status": status}
    ended = machine.checked(chunk(ChunkState.RUNNING), batch, NOW, CONFIG, "r", False)
    assert (ended.state, ended.batch, ended.next_at) == (ChunkState.COLLECTING, batch, None)


def test_a_batch_that_failed_on_quota_is_kept_in_the_record_and_waits() -> None:
    batch = {"id": "b", "status": "failed", "quota_message": "token_limit_exceeded"}
    waited = machine.checked(chunk(ChunkState.RUNNING), batch, NOW, CONFIG, "r", False)
    assert waited.state == ChunkState.SUBMITTING and waited.attempt == 1
    assert waited.batches == ({**batch, "round": 0, "outcome": machine.NOTHING_RAN},)
    # ... unless the user cancelled: then it is simply collected.
    collected = machine.checked(chunk(ChunkState.RUNNING), batch, NOW, CONFIG, "r", True)
    assert collected.state == ChunkState.COLLECTING


def test_a_check_that_collected_goes_on_as_its_collection_says() -> None:
    """The check that saw the batch end collected it in the same step: the chunk comes out as
    the check's answer followed by that collection would leave it, in one transition."""
    batch = {"id": "b", "status": "completed", "request_counts": {"completed": 10}}
    outcome = {"counts": {"succeeded": 10, "failed": 0, "retry": 0}, "parts": {"round": 0}}
    running = chunk(ChunkState.RUNNING)
    one_step = machine.checked(
        running, {"batch": batch, "collected": outcome}, NOW, CONFIG, "r", False
    )
    two_steps = machine.collected(
        machine.checked(running, batch, NOW, CONFIG, "r", False), outcome, CONFIG
    )
    assert one_step == two_steps
    assert (one_step.state, one_step.succeeded, one_step.end) == (ChunkState.DONE, 10, "completed")
    # a batch still running was not collected, whatever the answer's shape
    polled = machine.checked(running, {"id": "b", "status": "in_progress"}, NOW, CONFIG, "r", False)
    assert (polled.state, polled.next_at) == (ChunkState.RUNNING, at(60))


@given(
    status=st.sampled_from([*BatchStatus, "COMPLETED", "Failed", "unknown"]),
    quota=st.one_of(st.none(), st.just(""), st.text(min_size=1, max_size=20)),
    cancelling=st.booleans(),
    allowed=st.booleans(),
)
def test_the_check_and_the_orchestrator_decide_collection_by_one_rule(
    status: str, quota: str | None, cancelling: bool, allowed: bool
) -> None:
    """`check_batch` collects exactly when the orchestrator would schedule the collection: the
    batch ended, and not on a quota refusal the run submits again; a failed batch is never
    resubmitted."""
    batch = {"id": "b", "status": status, "quota_message": quota}
    after = machine.checked(chunk(ChunkState.RUNNING), batch, NOW, CONFIG, "r", cancelling)
    assert collects_now(batch, cancelling) == (after.state == ChunkState.COLLECTING)
    assert resubmits(batch, allowed) == (allowed and status != "failed")


def test_collecting_with_retries_starts_the_next_round_on_the_retry_file() -> None:
    c = chunk(ChunkState.COLLECTING, batch={"id": "b", "status": "completed"}, attempt=1)
    retry_input = {"container": "batch-work", "path": "run/retry/c0000-r1.jsonl"}
    counts = {"succeeded": 7, "failed": 1, "retry": 2}
    after = machine.collected(
        c, {"counts": counts, "parts": {"round": 0}, "retry_input": retry_input}, CONFIG
    )
    assert (after.state, after.round, after.attempt, after.input, after.batch) == (
        ChunkState.SUBMITTING,
        1,
        0,
        retry_input,
        None,
    )
    assert (after.succeeded, after.failed, after.end) == (7, 1, "completed")
    assert after.batches == ({"id": "b", "status": "completed", "round": 0, "outcome": counts},)
    assert after.parts == ({"round": 0},)


def test_collecting_without_retries_ends_the_chunk_by_its_batch() -> None:
    counts = {"succeeded": 0, "failed": 10, "retry": 0}
    failed = chunk(
        ChunkState.COLLECTING,
        batch={"id": "b", "status": "failed", "errors": [{"code": "x", "message": "no model"}]},
    )
    ended = machine.collected(failed, {"counts": counts, "parts": {}}, CONFIG)
    assert (ended.state, ended.end, ended.reason, ended.failed) == (
        ChunkState.FAILED,
        "failed",
        "no model",
        10,
    )
    ok = chunk(ChunkState.COLLECTING, batch={"id": "b", "status": "expired"})
    done = machine.collected(ok, {"counts": {**counts, "failed": 0}, "parts": {}}, CONFIG)
    assert (done.state, done.end) == (ChunkState.DONE, "expired")


def test_next_wake_is_the_soonest_due_chunk_but_at_least_a_second_away() -> None:
    chunks = [
        chunk(ChunkState.RUNNING, next_at=at(90)),
        chunk(ChunkState.RUNNING, next_at=at(30)),
        chunk(ChunkState.DONE, next_at=at(5)),
    ]
    assert machine.next_wake(chunks, NOW) == NOW + timedelta(seconds=30)
    assert machine.next_wake([chunk(ChunkState.RUNNING, next_at=at(-5))], NOW) == NOW + timedelta(
        seconds=1
    )


def test_live_counts_add_running_batches_to_finished_rounds() -> None:
    chunks = [
        chunk(ChunkState.RUNNING, succeeded=3, batch={"request_counts": {"completed": 4}}),
        chunk(ChunkState.DONE, succeeded=5, failed=2, batch={"request_counts": {"completed": 9}}),
    ]
    assert machine.request_counts(20, chunks) == {
        "total": 20,
        "succeeded": 12,
        "failed": 2,
        "pending": 6,
    }


def test_state_reads_the_json_histories_always_held_and_keeps_unknown_keys() -> None:
    recorded = {
        "run_id": "data-abc",
        "source": {"container": "batch-input", "path": "a/data.jsonl", "etag": "x", "size": 1},
        "config": CONFIG.to_json(),
        "received_at": "2025-01-01T00:00:00+00:00",
        "phase": "running",
        "attempt": 0,
        "ticks": 3,
        "summary": {"requests": 10},
        "chunks": [
            {
                "index": 0,
                "input": INPUT,
                "etag": None,
                "requests": 10,
                "bytes": 1000,
                "tokens": 50,
                "round": 0,
                "attempt": 0,
                "state": "running",
                "next_at": at(60),
                "batch": {"id": "b"},
                "batches": [],
                "succeeded": 0,
                "failed": 0,
                "parts": [],
                "end": None,
                "reason": None,
                "interval": 60,
                "added_later": {"x": 1},
            }
        ],
        "from_a_newer_version": True,
    }
    state = RunState.from_json(recorded)
    assert state.phase == Phase.RUNNING and state.config == CONFIG
    assert state.chunks[0].state == ChunkState.RUNNING
    again = state.to_json()
    assert again["from_a_newer_version"] is True
    assert again["chunks"][0]["added_later"] == {"x": 1}
    assert RunState.from_json(again) == state


def test_a_new_run_starts_validating() -> None:
    started = {
        "run_id": "r",
        "source": {"path": "x.jsonl"},
        "config": CONFIG.to_json(),
        "phase": "validating",
    }
    state = RunState.from_json(started)
    assert (state.phase, state.chunks, state.cancel_requested) == (Phase.VALIDATING, [], False)
