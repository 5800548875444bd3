"""When things go wrong, end to end through the local stack (Azurite, emulator, host).

Each test steers the emulator into one failure (API errors, an expired batch, failing lines,
token quota, admission limits, a missed event) and checks what the user finally sees: the run's
custom status while it runs, and the run folder, errors.jsonl and the error container after.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from openai import RateLimitError

from devstack.watcher import blob_created_event
from tests.support.stack import Stack, blob_batch_of, local_stack, requests_file


def ids_of(data: bytes) -> list[str]:
    return [orjson.loads(x)["custom_id"] for x in data.splitlines() if x.strip()]


def output_of(run: dict[str, Any]) -> dict[str, Any]:
    out = run["output"]
    return out if isinstance(out, dict) else orjson.loads(out)


def folder_files(stack: Stack, kind: str, folder: str) -> set[str]:
    return {n[len(folder) + 1 :] for n in stack.names(kind) if n.startswith(folder + "/")}


def all_batches(stack: Stack) -> list[Any]:
    """Every batch the emulator holds, oldest first (through the SDK, as the service lists)."""
    found = list(stack.openai().batches.list(limit=100))
    return sorted(found, key=lambda b: (b.created_at, b.id))


def batch_total(stack: Stack) -> int:
    return sum(stack.emulator_state()["batches"].values())


def finished(stack: Stack, path: str, count: int = 1, timeout: float = 90) -> dict[str, Any]:
    """Wait for the runs, then return the one of `path` with its output and run folder."""
    runs = stack.wait_all(count, timeout=timeout)
    (run,) = [r for r in runs if (r.get("customStatus") or {}).get("source") == path]
    assert run["runtimeStatus"] == "Completed", run
    return {"run": run, "out": output_of(run), "folder": stack.run_folder(path, run["instanceId"])}


@pytest.fixture
def make_stack(azurite, tmp_path):
    with contextlib.ExitStack() as stacks:

        def make(**kwargs: Any) -> Stack:
            return stacks.enter_context(local_stack(azurite, tmp_path, **kwargs))

        yield make


@pytest.mark.parametrize(("mode", "calls"), [("files", 10), ("blob", 3)])
def test_api_failures_are_retried_without_duplicate_batches(make_stack, mode, calls):
    """In files mode a run makes upload, file-status and delete calls too; in blob mode only
    the create and the status checks reach Azure OpenAI."""
    stack = make_stack(extra_env={"AZURE_OPENAI_BATCH_MODE": mode})
    stack.scenario(api_failure_rate=0.3, api_failure_status=429, seed=11)
    data = requests_file(12)
    stack.drop("faults/flaky.jsonl", data)
    got = finished(stack, "faults/flaky.jsonl")
    assert got["out"]["status"] == "completed"
    results = stack.jsonl("output", f"{got['folder']}/results.jsonl")
    assert sorted(r["custom_id"] for r in results) == sorted(ids_of(data))
    meta = orjson.loads(stack.read("output", f"{got['folder']}/metadata.json"))
    assert meta["status"] == "completed" and meta["all_succeeded"] is True
    assert len(meta["batches"]) == 1
    state = stack.emulator_state()
    assert sum(state["batches"].values()) == 1, state  # one batch despite refused calls
    assert state["files"] == 0, state  # no stray upload: every file the run made was deleted
    assert sum(state["requests"].values()) >= calls
    # The scenario was still on when the run ended: re-seeded, the emulator refuses exactly the
    # calls for which its seeded generator draws under the rate (Python's random.Random(11)).
    stack.scenario(seed=11)
    draws = random.Random(11)  # the emulator draws from random.Random(seed), one per call
    expected = [i for i in range(30) if draws.random() < 0.3]
    probe = stack.openai()
    refused = []
    for i in range(30):
        try:
            probe.batches.list(limit=1)
        except RateLimitError:
            refused.append(i)
    assert refused == expected
    assert 0 < len(expected) < 30  # the seed gives both refused and served calls


def test_expired_batch_keeps_partial_results_and_resubmits_the_rest(make_stack):
    stack = make_stack()
    stack.scenario(next_batches=["expired"], seed=3)
    data = requests_file(10)
    stack.drop("faults/expiring.jsonl", data)
    got = finished(stack, "faults/expiring.jsonl")
    assert got["out"]["status"] == "completed"
    results = stack.jsonl("output", f"{got['folder']}/results.jsonl")
    assert sorted(r["custom_id"] for r in results) == sorted(ids_of(data))  # each exactly once
    meta = orjson.loads(stack.read("output", f"{got['folder']}/metadata.json"))
    assert [(b["round"], b["status"]) for b in meta["batches"]] == [
        (0, "expired"),
        (1, "completed"),
    ]
    first, second = meta["batches"]
    assert first["request_counts"]["completed"] == 5  # the half that finished was kept...
    assert second["request_counts"]["total"] == 5  # ...and only the rest was resubmitted
    assert meta["status"] == "completed" and meta["requests"]["succeeded"] == 10
    assert "errors.jsonl" not in folder_files(stack, "output", got["folder"])
    assert stack.emulator_state()["files"] == 0


def test_failing_lines_500_are_resubmitted_until_they_succeed(make_stack):
    stack = make_stack(extra_env={"RESUBMIT_ROUNDS": "3"})
    stack.scenario(line_failure_rate=0.2, line_failure_status=500, seed=5)
    data = requests_file(30)
    stack.drop("faults/lines500.jsonl", data)
    got = finished(stack, "faults/lines500.jsonl")
    meta = orjson.loads(stack.read("output", f"{got['folder']}/metadata.json"))
    rounds = [b["round"] for b in meta["batches"]]
    assert rounds[0] == 0 and len(rounds) >= 2 and rounds == sorted(rounds), meta["batches"]
    # every later round resubmitted exactly what the previous one lost
    for prev, nxt in zip(meta["batches"], meta["batches"][1:], strict=False):
        assert nxt["request_counts"]["total"] == prev["request_counts"]["failed"]
    results = stack.jsonl("output", f"{got['folder']}/results.jsonl")
    assert sorted(r["custom_id"] for r in results) == sorted(ids_of(data))
    assert meta["status"] == "completed" and meta["all_succeeded"] is True
    assert "errors.jsonl" not in folder_files(stack, "output", got["folder"])


def test_failing_lines_400_are_not_resubmitted_and_end_in_errors(make_stack):
    stack = make_stack()
    stack.scenario(line_failure_rate=0.2, line_failure_status=400, seed=5)
    data = requests_file(30)
    stack.drop("faults/lines400.jsonl", data)
    got = finished(stack, "faults/lines400.jsonl")
    meta = orjson.loads(stack.read("output", f"{got['folder']}/metadata.json"))
    assert len(meta["batches"]) == 1  # a 400 is final: no second round
    failed = meta["batches"][0]["request_counts"]["failed"]
    assert failed > 0
    errors = stack.jsonl("output", f"{got['folder']}/errors.jsonl")
    results = stack.jsonl("output", f"{got['folder']}/results.jsonl")
    assert len(errors) == failed
    assert all(
        e["status_code"] == 400 and e["round"] == 0 and e["retryable"] is False and e["reason"]
        for e in errors
    )
    err_ids, ok_ids = {e["custom_id"] for e in errors}, {r["custom_id"] for r in results}
    assert err_ids.isdisjoint(ok_ids) and err_ids | ok_ids == set(ids_of(data))
    assert len(results) == len(ok_ids)
    assert meta["all_succeeded"] is False
    assert meta["requests"]["failed"] == failed and meta["requests"]["succeeded"] == 30 - failed


@pytest.mark.parametrize("outcome", ["token_limit_fail_fast", "token_limit_failed"])
def test_token_limit_waits_then_succeeds(make_stack, outcome):
    stack = make_stack(
        extra_env={"QUOTA_RETRY_INITIAL_SECONDS": "2", "QUOTA_RETRY_MAX_SECONDS": "4"}
    )
    stack.scenario(next_batches=[outcome])
    data = requests_file(6)
    stack.drop("faults/quota.jsonl", data)
    got = finished(stack, "faults/quota.jsonl")
    # Every status the run showed, as the host recorded it: the quota wait was one of them.
    waits = [s.get("waiting") for s in stack.host.custom_statuses(got["run"]["instanceId"])]
    assert any(w and "token_limit_exceeded" in w for w in waits), waits
    assert got["out"]["status"] == "completed"
    results = stack.jsonl("output", f"{got['folder']}/results.jsonl")
    assert sorted(r["custom_id"] for r in results) == sorted(ids_of(data))
    meta = orjson.loads(stack.read("output", f"{got['folder']}/metadata.json"))
    assert meta["status"] == "completed" and meta["all_succeeded"] is True
    statuses = [b["status"] for b in meta["batches"]]
    assert statuses == (
        ["completed"] if outcome == "token_limit_fail_fast" else ["failed", "completed"]
    )
    assert stack.emulator_state()["files"] == 0


def test_token_limit_exhausted_fails_the_run_into_the_error_container(make_stack):
    stack = make_stack(extra_env={"QUOTA_RETRY_ATTEMPTS": "2"})
    stack.scenario(
        next_batches=["token_limit_fail_fast", "token_limit_failed", "token_limit_fail_fast"]
    )
    data = requests_file(4)
    stack.drop("faults/noquota.jsonl", data)
    got = finished(stack, "faults/noquota.jsonl")
    assert got["out"]["status"] == "failed"
    folder = got["folder"]
    meta = orjson.loads(stack.read("output", f"{folder}/metadata.json"))
    assert meta["status"] == "failed"
    assert "token_limit_exceeded" in meta["reason"] and "3 attempts" in meta["reason"]
    # The input is kept, beside a report, in the error container; nothing is left to trigger.
    assert folder_files(stack, "error", folder) == {"input.jsonl", "report.json"}
    assert stack.read("error", f"{folder}/input.jsonl") == data
    report = orjson.loads(stack.read("error", f"{folder}/report.json"))
    assert report["status"] == "failed" and "token_limit_exceeded" in report["reason"]
    assert stack.names("input") == [] and stack.names("work") == []
    # every request is accounted for as failed (never run), none silently lost
    errors = stack.jsonl("output", f"{folder}/errors.jsonl")
    assert sorted(e["custom_id"] for e in errors) == sorted(ids_of(data))
    assert all(
        e["code"] == "not_run" and "never submitted: token_limit_exceeded" in e["reason"]
        for e in errors
    ), errors
    assert meta["requests"]["failed"] == 4 and meta["requests"]["succeeded"] == 0
    assert stack.emulator_state()["files"] == 0


def _wait_until_past(stamp: datetime) -> None:
    """Return once the system clock has entered a later whole second than `stamp`."""
    while datetime.now(UTC).replace(microsecond=0) <= stamp:
        time.sleep(max(0.01, stamp.timestamp() + 1 - time.time()))  # poll: the loop decides


def _file_of(batch: Any) -> str:
    """The input file a batch ran for: in its metadata (files mode), or (blob mode, which takes
    no metadata) the run id `<stem>-<hash>` that starts its output folder's path."""
    if batch.metadata:
        return str(batch.metadata["source"]).rsplit("/", 1)[-1]
    run_id, _ = blob_batch_of(batch)
    return run_id.rsplit("-", 1)[0] + ".jsonl"


def test_admission_runs_one_batch_at_a_time_in_arrival_order(make_stack):
    stack = make_stack(
        extra_env={"MAX_ACTIVE_BATCHES": "1", "MAX_REQUESTS_PER_BATCH": "5"}, batch_duration=1.0
    )
    # b's first batch fails on quota: its retry must queue for admission again, not jump in
    stack.scenario(next_batches=["completed", "token_limit_failed"])
    files = {
        "adm/a.jsonl": requests_file(4, "a"),
        "adm/b.jsonl": requests_file(8, "b"),
        "adm/c.jsonl": requests_file(4, "c"),
    }

    for path, data in files.items():
        stack.drop(path, data)
        # Arrival order is the blobs' upload time, in whole seconds: the next file must be
        # uploaded in a later second than this one.
        modified = stack.container("input").get_blob_client(path).get_blob_properties()
        assert modified.last_modified is not None
        _wait_until_past(modified.last_modified)
    runs = stack.wait_all(3, timeout=120)
    assert all(output_of(r)["status"] == "completed" for r in runs), runs
    batches = all_batches(stack)
    # b was split in two chunks (a batch each) and one of them was refused once for quota
    order = [(_file_of(b), b.status) for b in batches]
    assert order == [
        ("a.jsonl", "completed"),
        ("b.jsonl", "failed"),
        ("b.jsonl", "completed"),
        ("b.jsonl", "completed"),
        ("c.jsonl", "completed"),
    ], order
    # one batch after the other: each was created after the previous one ended
    for prev, nxt in itertools.pairwise(batches):
        ended = prev.completed_at or prev.failed_at
        assert ended is not None and nxt.created_at >= ended, (prev, nxt)


def test_reconciliation_starts_missed_files_once(make_stack):
    stack = make_stack()
    data = requests_file(5)
    stack.drop("missed/lost.jsonl", data, deliver=False)
    assert stack.runs() == []
    props = stack.container("input").get_blob_client("missed/lost.jsonl").get_blob_properties()
    event = blob_created_event(stack.container("input"), props)
    stack.host.fire_timer("reconcile")
    (run,) = stack.runs()
    # while the run is in flight: the timer again and the late event start nothing new
    stack.host.fire_timer("reconcile")
    webhook = f"{stack.host.base_url}/runtime/webhooks/eventgrid?functionName=on_blob_created"
    httpx.post(webhook, json=[event], headers={"aeg-event-type": "Notification"}).raise_for_status()
    assert [r["instanceId"] for r in stack.runs()] == [run["instanceId"]]
    got = finished(stack, "missed/lost.jsonl")
    assert got["out"]["status"] == "completed"
    # after it ended: a redelivered event and the timer still start nothing
    httpx.post(webhook, json=[event], headers={"aeg-event-type": "Notification"}).raise_for_status()
    stack.host.fire_timer("reconcile")
    assert [r["instanceId"] for r in stack.runs()] == [run["instanceId"]]
    assert batch_total(stack) == 1
    results = stack.jsonl("output", f"{got['folder']}/results.jsonl")
    assert sorted(r["custom_id"] for r in results) == sorted(ids_of(data))
