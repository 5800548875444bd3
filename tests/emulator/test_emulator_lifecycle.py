"""Batch lifecycle in the emulator: statuses, timestamps, counts, cancel, expiry, quotas,
scenario outcomes, injected failures, the virtual clock and restarts on a data dir."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from devstack import services
from tests.support.emulator import (
    azure,
    chat_file,
    chat_line,
    control,
    create_batch,
    jsonl,
    read_jsonl,
    reset,
    run_batch,
    scenario,
    upload,
    wait_batch,
    wait_for,
)

DAY = 24 * 3600


@pytest.fixture(autouse=True)
def _clean(emulator: services.Emulator) -> Iterator[None]:
    yield from reset(emulator)


def test_statuses_timestamps_and_counts(fresh_emulator: services.Emulator) -> None:
    """Stepped on the emulator's clock through a 12-hour batch of 200 requests: validating for
    the first 10 %, in_progress until 80 % with ceil(200 * share of that span) done, finalizing,
    then completed at 100 %. The points sit mid-way between count steps, far from any edge."""
    client = azure(fresh_emulator)
    duration = DAY / 2
    scenario(fresh_emulator, batch_duration=duration)
    batch = create_batch(client, upload(client, chat_file(200)).id)
    assert batch.status == "validating"

    def at(share: float) -> None:
        now = control(fresh_emulator, "clock")["now"]
        offset = control(fresh_emulator, "clock")["offset_seconds"]
        target = batch.created_at + share * duration
        control(fresh_emulator, "clock", {"offset_seconds": offset + target - now})

    def reaches(status: str, completed: int) -> None:
        wait_for(
            lambda: (
                (b := client.batches.retrieve(batch.id)).status == status
                and b.request_counts is not None
                and b.request_counts.completed == completed
            ),
            f"{status} with {completed} requests done",
        )

    at(0.05)
    reaches("validating", 0)
    # in_progress from 10 % to 80 %: 200 * (share - 0.1) / 0.7 done, rounded up.
    for share, done in ((0.2525, 44), (0.4625, 104), (0.7075, 174)):
        assert done == math.ceil(200 * (share - 0.1) / 0.7)
        at(share)
        reaches("in_progress", done)
    at(0.9)
    reaches("finalizing", 200)
    at(1.05)
    reaches("completed", 200)
    batch = client.batches.retrieve(batch.id)
    assert batch.in_progress_at is not None and batch.finalizing_at is not None
    assert batch.completed_at is not None
    assert abs(batch.in_progress_at - (batch.created_at + 0.1 * duration)) <= 1
    assert abs(batch.finalizing_at - (batch.created_at + 0.8 * duration)) <= 1
    assert abs(batch.completed_at - (batch.created_at + duration)) <= 1
    assert batch.expires_at == batch.created_at + DAY
    assert (batch.failed_at, batch.expired_at, batch.cancelling_at, batch.cancelled_at) == (
        None,
        None,
        None,
        None,
    )


def test_cancel_keeps_the_finished_requests(emulator: services.Emulator) -> None:
    client = azure(emulator)
    scenario(emulator, batch_duration=4)
    batch = create_batch(client, upload(client, chat_file(300)).id)
    wait_for(
        lambda: (
            (b := client.batches.retrieve(batch.id)).request_counts is not None
            and b.request_counts.completed > 0
        ),
        "some requests to finish",
        timeout=10,
    )
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling"
    assert cancelling.cancelling_at is not None
    done = wait_batch(client, batch.id)
    assert done.status == "cancelled"
    assert done.cancelled_at is not None
    assert done.request_counts is not None
    finished = done.request_counts.completed
    assert 0 < finished < 300
    assert len(read_jsonl(client, done.output_file_id)) == finished
    assert read_jsonl(client, done.error_file_id) == []  # the others never ran
    with pytest.raises(openai.BadRequestError, match="cancelled"):
        client.batches.cancel(batch.id)


def test_expired_outcome_splits_results(emulator: services.Emulator) -> None:
    client = azure(emulator)
    scenario(emulator, batch_duration=0.8, next_batches=["expired"])
    batch = run_batch(client, chat_file(20))
    assert batch.status == "expired"
    assert batch.expired_at is not None
    assert batch.request_counts is not None
    assert (batch.request_counts.total, batch.request_counts.completed) == (20, 10)
    finished = read_jsonl(client, batch.output_file_id)
    unrun = read_jsonl(client, batch.error_file_id)
    assert len(finished) == 10
    assert len(unrun) == 10
    for line in unrun:
        assert set(line) == {"id", "custom_id", "response", "error"}
        assert line["response"] is None
        assert line["error"]["code"] == "batch_expired"
        assert line["error"]["message"]
    ids = {x["custom_id"] for x in finished} | {x["custom_id"] for x in unrun}
    assert ids == {f"task-{i}" for i in range(20)}


def test_failed_outcome_fails_validation(emulator: services.Emulator) -> None:
    client = azure(emulator)
    scenario(emulator, batch_duration=0.5, next_batches=["failed", "completed"])
    failed = run_batch(client, chat_file(2))
    assert failed.status == "failed"
    assert failed.failed_at is not None
    assert failed.errors is not None and failed.errors.data is not None
    assert [e.code for e in failed.errors.data] == ["invalid_request"]
    assert failed.output_file_id is None
    assert run_batch(client, chat_file(2)).status == "completed"


def test_token_limit_outcomes(emulator: services.Emulator) -> None:
    client = azure(emulator)
    scenario(
        emulator, batch_duration=0.5, next_batches=["token_limit_fail_fast", "token_limit_failed"]
    )
    source = upload(client, chat_file(2))
    before = sum(control(emulator, "state")["batches"].values())
    with pytest.raises(openai.BadRequestError, match="token_limit_exceeded") as caught:
        create_batch(client, source.id)
    assert caught.value.code == "token_limit_exceeded"
    assert sum(control(emulator, "state")["batches"].values()) == before, "no batch created"
    failed = wait_batch(client, create_batch(client, source.id).id)
    assert failed.status == "failed"
    assert failed.errors is not None and failed.errors.data is not None
    assert [e.code for e in failed.errors.data] == ["token_limit_exceeded"]


def test_enqueued_token_quota(tmp_path: Path) -> None:
    """Each line here counts 1 prompt token + max_tokens 1000 = 1001 against a 3000 quota."""
    with services.emulator(
        None,
        deployments=("gpt-4o-batch=gpt-4o:3000",),
        batch_duration=2.0,
        log_path=tmp_path / "emulator.log",
    ) as em:
        client = azure(em)
        two = upload(client, jsonl([chat_line(f"a{i}", "hi", max_tokens=1000) for i in range(2)]))
        one = upload(client, jsonl([chat_line("b0", "hi", max_tokens=1000)]))
        first = create_batch(client, two.id)
        wait_batch(client, first.id, {"in_progress"})
        assert control(em, "state")["enqueued_tokens"] == {"gpt-4o-batch": 2002}
        over = wait_batch(client, create_batch(client, one.id).id)
        assert over.status == "failed"
        assert over.errors is not None and over.errors.data is not None
        assert over.errors.data[0].code == "token_limit_exceeded"
        assert wait_batch(client, first.id).status == "completed"
        assert control(em, "state")["enqueued_tokens"] == {"gpt-4o-batch": 0}
        assert wait_batch(client, create_batch(client, one.id).id).status == "completed"


def test_line_failures_are_recorded_and_repeatable(emulator: services.Emulator) -> None:
    client = azure(emulator)

    def run() -> tuple[set[str], list[dict[str, object]]]:
        scenario(
            emulator,
            batch_duration=0.6,
            line_failure_rate=0.3,
            line_failure_status=500,
            seed=7,
        )
        batch = run_batch(client, chat_file(40))
        assert batch.status == "completed"
        errors = read_jsonl(client, batch.error_file_id)
        ok = read_jsonl(client, batch.output_file_id)
        assert batch.request_counts is not None
        assert batch.request_counts.failed == len(errors) > 0
        assert batch.request_counts.completed == len(ok)
        assert {x["custom_id"] for x in ok} | {x["custom_id"] for x in errors} == {
            f"task-{i}" for i in range(40)
        }
        return {str(x["custom_id"]) for x in errors}, errors

    failed_ids, errors = run()
    for line in errors:
        assert set(line) == {"id", "custom_id", "response", "error"}
        assert line["error"] is None
        response = line["response"]
        assert isinstance(response, dict)
        assert response["status_code"] == 500
        assert response["request_id"]
        assert set(response["body"]["error"]) == {"message", "type", "param", "code"}
        assert response["body"]["error"]["param"] is None
    assert run()[0] == failed_ids, "the same seed fails the same requests"


def test_injected_api_failures_have_no_side_effects(emulator: services.Emulator) -> None:
    client = azure(emulator, max_retries=0)
    ready = upload(client, chat_file(2))
    files_before = control(emulator, "state")["files"]
    scenario(emulator, api_failure_rate=1.0, api_failure_status=429, next_batches=["failed"])
    with pytest.raises(openai.RateLimitError) as caught:
        client.files.create(file=("x.jsonl", chat_file(1)), purpose="batch")
    assert caught.value.response.headers["retry-after"] == "0"
    assert caught.value.body is not None
    assert set(caught.value.body) >= {"code", "message"}  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError):
        create_batch(client, ready.id)
    scenario(emulator, api_failure_status=503)
    with pytest.raises(openai.InternalServerError):
        client.batches.list()
    scenario(emulator, api_failure_rate=0.0, batch_duration=0.5)
    assert control(emulator, "state")["files"] == files_before
    outcome = wait_batch(client, create_batch(client, ready.id).id)
    assert outcome.status == "failed", "the refused create did not use up the scenario's outcome"

    scenario(emulator, api_failure_rate=0.5, api_failure_status=429, seed=3)
    retrying = azure(emulator, max_retries=10)
    calls_before = control(emulator, "state")["requests"]["POST /openai/files"]
    for i in range(8):
        retrying.files.create(file=(f"r{i}.jsonl", chat_file(1)), purpose="batch")
    state = control(emulator, "state")
    assert state["files"] == files_before + 8  # (the failed batch wrote no files)
    assert state["requests"]["POST /openai/files"] > calls_before + 8, "some calls were retried"


def test_batch_duration_override(fresh_emulator: services.Emulator) -> None:
    """The scenario's duration replaces the emulator's (1 s here): the batch is planned on it,
    and its timestamps, stamped with the planned times, show it."""
    client = azure(fresh_emulator)
    source = upload(client, chat_file(5))
    scenario(fresh_emulator, batch_duration=DAY / 4)
    batch = create_batch(client, source.id)
    control(fresh_emulator, "clock", {"offset_seconds": DAY / 4 + 60})
    done = wait_batch(client, batch.id)
    assert done.status == "completed"
    assert done.in_progress_at is not None and done.completed_at is not None
    assert abs(done.in_progress_at - (batch.created_at + 0.1 * DAY / 4)) <= 1
    assert abs(done.completed_at - (batch.created_at + DAY / 4)) <= 1


def test_virtual_clock_runs_a_24_hour_batch(fresh_emulator: services.Emulator) -> None:
    client = azure(fresh_emulator)
    source = upload(client, chat_file(100))
    scenario(fresh_emulator, batch_duration=DAY)
    batch = create_batch(client, source.id)
    clock = control(fresh_emulator, "clock")
    assert clock["offset_seconds"] == 0
    assert abs(clock["now"] - time.time()) < 5
    assert client.batches.retrieve(batch.id).status == "validating"

    control(fresh_emulator, "clock", {"offset_seconds": 3 * 3600})
    midway = wait_batch(client, batch.id, {"in_progress"}, timeout=5)
    midway = wait_for(
        lambda: (
            (b := client.batches.retrieve(batch.id)).request_counts is not None
            and b.request_counts.completed > 0
            and b
        ),
        "the first requests",
        timeout=5,
    )
    assert midway.request_counts is not None
    assert midway.request_counts.completed < 100

    moved = control(fresh_emulator, "clock", {"offset_seconds": DAY + 3600})
    assert abs(moved["now"] - (time.time() + DAY + 3600)) < 5
    done = wait_batch(client, batch.id, timeout=10)
    assert done.status == "completed"
    assert done.in_progress_at is not None and done.finalizing_at is not None
    assert done.completed_at is not None
    assert abs(done.in_progress_at - (batch.created_at + 0.1 * DAY)) <= 1
    assert abs(done.finalizing_at - (batch.created_at + 0.8 * DAY)) <= 1
    assert abs(done.completed_at - (batch.created_at + DAY)) <= 1
    assert len(read_jsonl(client, done.output_file_id)) == 100


def test_batch_longer_than_the_window_expires(fresh_emulator: services.Emulator) -> None:
    client = azure(fresh_emulator)
    source = upload(client, chat_file(50))
    scenario(fresh_emulator, batch_duration=2 * DAY)
    batch = create_batch(client, source.id)
    control(fresh_emulator, "clock", {"offset_seconds": DAY + 60})
    done = wait_batch(client, batch.id, timeout=10)
    assert done.status == "expired"
    assert done.expired_at is not None and done.expires_at is not None
    assert abs(done.expired_at - done.expires_at) <= 1
    assert done.request_counts is not None
    finished = done.request_counts.completed
    assert 0 < finished < 50
    unrun = read_jsonl(client, done.error_file_id)
    assert len(unrun) == 50 - finished
    assert {x["error"]["code"] for x in unrun} == {"batch_expired"}


def test_batches_survive_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "emulator"
    with services.emulator(data_dir, batch_duration=4.0) as em:
        client = azure(em)
        source = upload(client, chat_file(400))
        batch = create_batch(client, source.id, metadata={"run": "restart"})
        wait_for(
            lambda: (
                (b := client.batches.retrieve(batch.id)).request_counts is not None
                and 0 < b.request_counts.completed < 400
            ),
            "the batch to be midway",
            timeout=10,
        )
    with services.emulator(data_dir, batch_duration=4.0) as em:
        client = azure(em)
        assert client.files.retrieve(source.id).bytes == source.bytes
        done = wait_batch(client, batch.id, timeout=15)
        assert done.status == "completed"
        assert done.metadata == {"run": "restart"}
        assert done.request_counts is not None
        assert (done.request_counts.completed, done.request_counts.failed) == (400, 0)
        lines = read_jsonl(client, done.output_file_id)
        assert sorted(x["custom_id"] for x in lines) == sorted(f"task-{i}" for i in range(400))
    with services.emulator(data_dir, batch_duration=4.0) as em:
        client = azure(em)
        again = client.batches.retrieve(batch.id)
        assert (again.status, again.output_file_id) == ("completed", done.output_file_id)
        assert len(read_jsonl(client, again.output_file_id)) == 400
