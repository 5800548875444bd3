"""End to end through the local stack: files dropped into the input container become run folders."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from azure.durable_functions.models.history import HistoryEventType as T

from activities import intake as intake_activities
from batching.ops.runs import run_input
from orchestrators import run_file
from tests.support.ops import get
from tests.support.stack import local_stack, requests_file, sample, storage_requests


@pytest.fixture
def stack(azurite, tmp_path):
    with local_stack(azurite, tmp_path) as s:
        yield s


@pytest.mark.parametrize(
    ("mode", "workers"),
    [("blob", 0), ("files", 0), ("blob", 1)],
    ids=["blob", "files", "blob-in-a-worker-process"],  # the last as make run and Azure run it
)
def test_quickstart_file_becomes_a_run_folder(azurite, tmp_path, mode, workers):
    env = {"AZURE_OPENAI_BATCH_MODE": mode}
    with local_stack(azurite, tmp_path, extra_env=env, worker_processes=workers) as stack:
        _quickstart_becomes_a_run_folder(stack, mode)


def _quickstart_becomes_a_run_folder(stack, mode):
    stack.drop("demo/quickstart.jsonl", sample("quickstart.jsonl"))
    (run,) = stack.wait_all(1)
    assert run["runtimeStatus"] == "Completed", run
    out = run["output"] if isinstance(run["output"], dict) else orjson.loads(run["output"])
    assert out["status"] == "completed"
    folder = stack.run_folder("demo/quickstart.jsonl", run["instanceId"])
    assert stack.names("output") == sorted(
        f"{folder}/{n}" for n in ("results.jsonl", "metadata.json", "input.jsonl")
    )
    results = stack.jsonl("output", f"{folder}/results.jsonl")
    ids = {
        orjson.loads(x)["custom_id"] for x in sample("quickstart.jsonl").splitlines() if x.strip()
    }
    assert {r["custom_id"] for r in results} == ids
    meta = orjson.loads(stack.read("output", f"{folder}/metadata.json"))
    assert meta["status"] == "completed"
    assert meta["requests"] == {
        "total": len(ids),
        "succeeded": len(ids),
        "failed": 0,
        "skipped_invalid": 0,
    }
    assert len(meta["batches"]) == 1 and meta["batches"][0]["status"] == "completed"
    assert meta["tokens"]["usage"]["total"] > 0 and meta["cost"]["total"] > 0
    assert stack.read("output", f"{folder}/input.jsonl") == sample("quickstart.jsonl")
    assert stack.names("input") == [] and stack.names("work") == []
    assert meta["batch_mode"] == mode
    state = stack.emulator_state()
    # input, output and error files deleted after the outputs were written
    assert state["files"] == 0
    uploads = state["requests"].get("POST /openai/files", 0)
    if mode == "blob":
        assert uploads == 0, "blob mode uploads nothing"
        assert stack.names("service_output") == [], "the service's output folder was left"
    else:
        assert uploads == 1


def test_a_service_without_read_access_fails_the_run_with_input_no_permissions(stack):
    """Blob mode: the service's identity lacks its role on the work container (Microsoft Learn,
    "Configure Azure Blob Storage for batch": `input_no_permissions`). The run ends failed with
    that reason where users look, and keeps its input for a retry."""
    stack.scenario(blob_access="none")
    stack.drop("perm/denied.jsonl", requests_file(3))
    (run,) = stack.wait_all(1)
    assert _output(run)["status"] == "failed"
    folder = stack.run_folder("perm/denied.jsonl", run["instanceId"])
    meta = orjson.loads(stack.read("output", f"{folder}/metadata.json"))
    assert "input_no_permissions" in str(meta["batches"][0]["errors"]), meta["batches"]
    assert meta["reason"] and "read access" in meta["reason"], meta["reason"]
    report = orjson.loads(stack.read("error", f"{folder}/report.json"))
    assert report["reason"] == meta["reason"]
    assert f"{folder}/input.jsonl" in stack.names("error")


def _output(run):
    return run["output"] if isinstance(run["output"], dict) else orjson.loads(run["output"])


@contextlib.contextmanager
def _old_code_until(stack, activity: str, **old: Any) -> Iterator[None]:
    """A rolling deployment: each `run_file.<name>` is its `old` (the code before a change)
    until the run's `activity` runs; the episodes after that run the new code on the history
    so made."""
    real = {name: getattr(run_file, name) for name in old}

    def switch_back(instance_id: str, called: str, attempt: int) -> bool:
        if called == activity:
            for name, value in real.items():
                setattr(run_file, name, value)
        return False

    for name, value in old.items():
        setattr(run_file, name, value)
    stack.host.crash_hook = switch_back
    try:
        yield
    finally:
        for name, value in real.items():
            setattr(run_file, name, value)


def _in_history(stack, run_id):
    """The activities scheduled in the run's current execution (its history holds no other)."""
    return [e.get("Name") for e in stack.host.history(run_id) if e["EventType"] == T.TASK_SCHEDULED]


def test_an_input_that_is_its_own_chunk_needs_no_prepare_chunks(stack, monkeypatch):
    stack.drop("one/a.jsonl", requests_file(5, prefix="a"))
    (run,) = stack.wait_all(1)
    assert _output(run)["status"] == "completed"
    assert stack.scheduled(run["instanceId"])[:2] == ["validate_input", "submit_batch"]
    assert "prepare_chunks" not in stack.host.activity_calls

    # validate_input's result before it carried the chunk: such histories still replay, through
    # prepare_chunks, to the same outputs.
    monkeypatch.setattr(intake_activities, "_with_chunk", lambda ctx, payload, summary: summary)
    stack.drop("one/b.jsonl", requests_file(5, prefix="b"))
    runs = stack.wait_all(2)
    (old,) = [r for r in runs if r["instanceId"] != run["instanceId"]]
    assert _output(old)["status"] == "completed"
    assert stack.scheduled(old["instanceId"])[:3] == [
        "validate_input",
        "prepare_chunks",
        "submit_batch",
    ]
    assert stack.host.activity_calls["prepare_chunks"] == 1
    for r, prefix in ((run, "a"), (old, "b")):
        folder = stack.run_folder(f"one/{prefix}.jsonl", r["instanceId"])
        results = stack.jsonl("output", f"{folder}/results.jsonl")
        assert sorted(x["custom_id"] for x in results) == [f"{prefix}-{n}" for n in range(5)]
    assert stack.names("work") == []


def test_a_history_whose_older_episodes_prepared_chunks_replays(stack):
    """A rolling deployment: validate_input ran the new code (its result carries the chunk) while
    the episode that received it ran the old one, which ignored the chunk and scheduled
    prepare_chunks; later episodes run the new code on that history."""
    # the old code: no chunk taken from the summary
    with _old_code_until(stack, "prepare_chunks", _chunk_given=lambda summary: None):
        stack.drop("mixed/a.jsonl", requests_file(4, prefix="m"))
        (run,) = stack.wait_all(1)
    assert run["runtimeStatus"] == "Completed", run
    assert _output(run)["status"] == "completed"
    assert stack.scheduled(run["instanceId"])[:3] == [
        "validate_input",
        "prepare_chunks",
        "submit_batch",
    ]
    folder = stack.run_folder("mixed/a.jsonl", run["instanceId"])
    results = stack.jsonl("output", f"{folder}/results.jsonl")
    assert sorted(x["custom_id"] for x in results) == [f"m-{n}" for n in range(4)]


def test_a_run_where_nothing_failed_needs_no_write_errors(stack):
    stack.drop("clean/a.jsonl", requests_file(3, prefix="a"))
    (run,) = stack.wait_all(1)
    assert _output(run)["status"] == "completed" and _output(run)["errors"] is None
    assert "write_errors" not in stack.scheduled(run["instanceId"])
    assert "write_errors" not in stack.host.activity_calls

    # Histories that scheduled write_errors although nothing failed (every run did before) still
    # replay: the episode that schedules the writes runs the old way, the later ones the new way.
    # (write_metadata is scheduled in the same episode as the other writes)
    with _old_code_until(stack, "write_metadata", failed_requests=lambda chunks, summary: 1):
        stack.drop("clean/b.jsonl", requests_file(3, prefix="b"))
        runs = stack.wait_all(2)
    (old,) = [r for r in runs if r["instanceId"] != run["instanceId"]]
    assert old["runtimeStatus"] == "Completed", old
    assert _output(old)["status"] == "completed" and _output(old)["errors"] is None
    assert "write_errors" in stack.scheduled(old["instanceId"])
    folder = stack.run_folder("clean/b.jsonl", old["instanceId"])
    assert [n for n in stack.names("output") if n.startswith(f"{folder}/")] == [
        f"{folder}/{n}" for n in ("input.jsonl", "metadata.json", "results.jsonl")
    ]


def test_the_run_continues_as_new_after_each_status_check(stack):
    """Every episode replays its execution's history: the run continues as new after each
    status check, so no history holds more than one; validation goes on into the submission,
    and the finish in the execution of the last check (a new execution costs an episode of its
    own). The run's own start still comes from its input, not the execution's."""
    stack.drop("phases/a.jsonl", requests_file(3, prefix="a"))
    (run,) = stack.wait_all(1)
    run_id = run["instanceId"]
    assert _output(run)["status"] == "completed"
    submitted, *checks = stack.executions(run_id)
    assert submitted == ["validate_input", "submit_batch"]
    assert checks and all(names.count("check_batch") == 1 for names in checks)
    # The check that saw the batch end collected it (no collect_batch); results.jsonl came with
    # the collection (one chunk, one round, no table: no write_results) and cleanup wrote
    # metadata.json, the only file left to write, first (no write_metadata)
    assert checks[-1] == ["check_batch", "cleanup_run"]
    assert _in_history(stack, run_id) == checks[-1]
    received = run_input(stack.host.get_status(run_id))["received_at"]
    assert get(stack, f"runs/{run_id}").json()["created"] == received != run["createdTime"]


def _cleanup_followed_the_writes(stack, run_id):
    """Whether cleanup_run was scheduled after a task's result came in, the writes' (it followed
    them), rather than in the same episode as metadata.json."""
    kinds = [(e["EventType"], e.get("Name")) for e in stack.host.history(run_id)]
    since = kinds.index((T.TASK_SCHEDULED, "write_metadata"))
    at = kinds.index((T.TASK_SCHEDULED, "cleanup_run"))
    return any(kind == T.TASK_COMPLETED for kind, _ in kinds[since:at])


def _metadata_scheduled(real):
    """The code before cleanup wrote metadata.json itself: every finish scheduled write_metadata
    (as `_scheduled` reads it in a history that has it)."""
    return lambda context, activity: activity == "write_metadata" or real(context, activity)


def _the_new_run(runs, *known):
    """The one run of `runs` that is none of the `known` ones."""
    seen = {r["instanceId"] for r in known}
    (new,) = [r for r in runs if r["instanceId"] not in seen]
    return new


def test_cleanup_writes_metadata_first_when_nothing_else_is_written(stack):
    """A run with only metadata.json to write has cleanup write it first, in the same step (one
    activity, and the runs index written once). A run that writes errors.jsonl cleans up after
    the writes, which read what it deletes. Histories whose write_metadata ran alongside cleanup
    or before it (the code before) replay."""
    stack.drop("along/a.jsonl", requests_file(3, prefix="a"))
    (run,) = stack.wait_all(1)
    assert _output(run)["status"] == "completed" and _output(run)["errors"] is None
    assert _in_history(stack, run["instanceId"])[-2:] == ["check_batch", "cleanup_run"]
    assert "write_metadata" not in stack.host.activity_calls
    indexed = get(stack, f"runs/{run['instanceId']}").json()
    assert indexed["status"] == "completed" and indexed["requests"]["succeeded"] == 3
    assert indexed["tokens"]["total"] > 0 and indexed["cost"]["total"] > 0

    real = run_file._scheduled
    olds = {}
    for name, alongside in (("b", True), ("c", False)):
        old_code = {"_scheduled": _metadata_scheduled(real)}
        if not alongside:
            old_code["_cleans_up_alongside"] = lambda writes: False
        with _old_code_until(stack, "write_metadata", **old_code):
            stack.drop(f"along/{name}.jsonl", requests_file(3, prefix=name))
            runs = stack.wait_all(len(olds) + 2)
        olds[name] = old = _the_new_run(runs, run, *olds.values())
        assert old["runtimeStatus"] == "Completed", old
        assert _in_history(stack, old["instanceId"])[-2:] == ["write_metadata", "cleanup_run"]
        assert _cleanup_followed_the_writes(stack, old["instanceId"]) is not alongside

    stack.scenario(line_failure_rate=0.5, line_failure_status=400, seed=3)  # not resubmitted
    stack.drop("along/d.jsonl", requests_file(10, prefix="d"))
    runs = stack.wait_all(4)
    failing = _the_new_run(runs, run, *olds.values())
    assert _output(failing)["errors"] is not None
    assert _in_history(stack, failing["instanceId"])[-3:] == [
        "write_errors",
        "write_metadata",
        "cleanup_run",
    ]
    assert _cleanup_followed_the_writes(stack, failing["instanceId"])
    for r, prefix in ((run, "a"), (olds["b"], "b"), (olds["c"], "c"), (failing, "d")):
        folder = stack.run_folder(f"along/{prefix}.jsonl", r["instanceId"])
        names = [n for n in stack.names("output") if n.startswith(f"{folder}/")]
        assert f"{folder}/metadata.json" in names and f"{folder}/input.jsonl" in names
    assert stack.names("input") == [] and stack.names("work") == []


def test_a_crash_in_the_last_activity_changes_nothing(stack):
    """cleanup_run, which wrote metadata.json first, is run again when its result is lost; the
    run ends as one that nothing disturbed, with one batch."""
    path = "along/crash-cleanup_run.jsonl"
    run_id = stack.stage(path, requests_file(4, prefix="x"))
    attempts = []

    def hook(instance_id: str, activity: str, attempt: int) -> bool:
        if instance_id == run_id and activity == "cleanup_run":
            attempts.append(attempt)
        return instance_id == run_id and activity == "cleanup_run" and attempt == 1

    run = stack.run_hooked(run_id, hook)
    assert run["runtimeStatus"] == "Completed" and run["output"]["status"] == "completed", run
    assert attempts == [1, 2]  # its first result lost, run again by the host
    assert stack.scheduled(run_id).count("cleanup_run") == 1
    assert len(stack.batches_of(run_id)) == 1
    folder = stack.run_folder(path, run_id)
    assert [n for n in stack.names("output") if n.startswith(f"{folder}/")] == [
        f"{folder}/{n}" for n in ("input.jsonl", "metadata.json", "results.jsonl")
    ]
    assert run["output"]["input"]["path"] == f"{folder}/input.jsonl"
    assert run["output"]["metadata"]["path"] == f"{folder}/metadata.json"
    meta = orjson.loads(stack.read("output", f"{folder}/metadata.json"))
    assert meta["status"] == "completed" and meta["requests"]["succeeded"] == 4
    assert path not in stack.names("input")
    assert not [n for n in stack.names("work") if n.startswith(run_id)]


def test_a_one_chunk_run_gets_its_results_from_the_collection(stack, monkeypatch):
    """One chunk, one round, no table: the collection writes results.jsonl in input order
    itself (the service's output is shuffled), not a work file that write_results reads back.
    A collection that runs again (its first result lost in a crash) writes it again, the same."""
    stack.scenario(line_failure_rate=0.3, line_failure_status=400, seed=3)  # not resubmitted
    made = storage_requests(monkeypatch)
    crashed: list[str] = []

    def crash_after_collecting(run_id: str, activity: str, attempt: int) -> bool:
        # the status check that saw the batch end, and collected it in the same step
        results = f"{stack.run_folder('direct/a.jsonl', run_id)}/results.jsonl"
        if activity != "check_batch" or crashed or results not in stack.names("output"):
            return False
        crashed.append(run_id)
        return True

    stack.host.crash_hook = crash_after_collecting
    stack.drop("direct/a.jsonl", requests_file(40, prefix="d"))
    (run,) = stack.wait_all(1)
    assert _output(run)["status"] == "completed"
    assert crashed == [run["instanceId"]]
    assert stack.host.activity_calls["collect_batch"] == 0
    assert "write_results" not in stack.scheduled(run["instanceId"])
    folder = stack.run_folder("direct/a.jsonl", run["instanceId"])
    results = [x["custom_id"] for x in stack.jsonl("output", f"{folder}/results.jsonl")]
    errors = [x["custom_id"] for x in stack.jsonl("output", f"{folder}/errors.jsonl")]
    order = [f"d-{n}" for n in range(40)]
    assert results and errors and sorted(results + errors, key=order.index) == order
    assert results == sorted(results, key=order.index)
    assert errors == sorted(errors, key=order.index)
    work = f"/{stack.env['WORK_CONTAINER']}/"
    assert not [p for m, p in made if p.startswith(work) and "/results-" in p]
    assert _output(run)["results"]["path"] == f"{folder}/results.jsonl"


def test_a_history_from_validation_to_cleanup_replays(azurite, tmp_path):
    """A history of one execution from validation to cleanup (status checks continuing as new
    only every 20), recorded by code that always scheduled write_results, replays to the end
    with the new code."""
    with local_stack(azurite, tmp_path, extra_env={"POLLS_PER_HISTORY": "20"}) as stack:
        # the old code always scheduled write_results
        old = {"results_written": lambda chunks: None}
        with _old_code_until(stack, "write_metadata", **old):
            stack.drop("old/a.jsonl", requests_file(3, prefix="o"))
            (run,) = stack.wait_all(1)
        assert run["runtimeStatus"] == "Completed", run
        assert _output(run)["status"] == "completed"
        in_history = _in_history(stack, run["instanceId"])
        assert in_history == stack.scheduled(run["instanceId"]), "one execution"
        assert in_history[:2] == ["validate_input", "submit_batch"]
        assert in_history[-3:] == ["write_results", "write_metadata", "cleanup_run"]
        folder = stack.run_folder("old/a.jsonl", run["instanceId"])
        results = stack.jsonl("output", f"{folder}/results.jsonl")
        # written by the collection; write_results, scheduled anyway, kept it as it was
        assert [x["custom_id"] for x in results] == [f"o-{n}" for n in range(3)]


def test_the_runs_index_is_written_when_a_run_arrives_has_figures_and_ends(stack, monkeypatch):
    """Not at the phases between: the listing reads a run that has not ended live. A run whose
    cleanup wrote metadata.json (its only write) writes its figures and its end at once."""
    made = storage_requests(monkeypatch)
    stack.drop("index/a.jsonl", requests_file(3, prefix="a"))
    stack.wait_all(1)
    table = f"/{stack.env['RUNS_TABLE']}("
    assert sum(method == "PATCH" and table in path for method, path in made) == 2
    listed = get(stack, "runs", prefix="index/").json()["runs"]
    assert [(r["phase"], r["status"]) for r in listed] == [("done", "completed")]
    assert listed[0]["requests"]["succeeded"] == 3 and listed[0]["outputs"]["metadata"]


def test_several_files_in_nested_folders_run_at_once(stack):
    paths = ["a.jsonl", "team/q1/b.jsonl", "team/q1/deep/er/c.jsonl", "other/d.jsonl"]
    for i, p in enumerate(paths):
        stack.container("input").upload_blob(p, requests_file(20 + i, prefix=f"f{i}"))
    assert stack.watcher.poll_once() == len(paths)  # one event each, delivered together
    runs = stack.wait_all(len(paths))
    by_source = {r["customStatus"]["source"]: r for r in runs}
    assert set(by_source) == set(paths)
    for i, p in enumerate(paths):
        run = by_source[p]
        assert _output(run)["status"] == "completed"
        folder = stack.run_folder(p, run["instanceId"])
        results = stack.jsonl("output", f"{folder}/results.jsonl")
        assert sorted(r["custom_id"] for r in results) == sorted(f"f{i}-{n}" for n in range(20 + i))
        meta = orjson.loads(stack.read("output", f"{folder}/metadata.json"))
        assert meta["source"].endswith(p)
    assert stack.names("input") == []


def test_structured_outputs_get_a_table(stack):
    stack.drop("structured/buildings.jsonl", sample("structured-buildings.jsonl"))
    (run,) = stack.wait_all(1)
    folder = stack.run_folder("structured/buildings.jsonl", run["instanceId"])
    table = stack.read("output", f"{folder}/table.csv").decode().splitlines()
    assert table[0] == "custom_id,BuildingName,HeightInFeet,City,Country"
    ids = sorted(
        orjson.loads(x)["custom_id"]
        for x in sample("structured-buildings.jsonl").splitlines()
        if x.strip()
    )
    assert sorted(row.split(",")[0] for row in table[1:]) == ids
    assert all(all(cell for cell in row.split(",")) for row in table[1:])  # every property filled


def test_invalid_file_is_rejected_before_anything_is_sent(stack):
    good = requests_file(3).splitlines()
    bad = [good[0], b'{"custom_id": "task-1", "method": "POST"', good[2], good[0]]
    stack.drop("bad/input.jsonl", b"\n".join(bad) + b"\n")
    (run,) = stack.wait_all(1)
    assert _output(run)["status"] == "invalid"
    folder = stack.run_folder("bad/input.jsonl", run["instanceId"])
    assert stack.names("error") == [f"{folder}/input.jsonl", f"{folder}/report.json"]
    report = orjson.loads(stack.read("error", f"{folder}/report.json"))
    found = {(p["line"], p["code"]) for p in report["problems"]}
    assert (2, "invalid_json_line") in found
    assert any(code == "duplicate_custom_id" and line == 4 for line, code in found)
    assert "validation failed" in report["reason"]
    assert stack.names("input") == [] and stack.names("output") == []
    state = stack.emulator_state()
    assert state["files"] == 0 and not state["batches"]
    assert not any(
        k.startswith("POST") for k in state["requests"]
    )  # nothing uploaded, nothing created


def test_the_same_event_delivered_twice_makes_one_run_and_one_batch(stack):
    stack.container("input").upload_blob("dup.jsonl", requests_file(10))
    blob = next(iter(stack.container("input").list_blobs()))
    from devstack.watcher import blob_created_event

    event = blob_created_event(stack.container("input"), blob)
    url = f"{stack.host.base_url}/runtime/webhooks/eventgrid?functionName=on_blob_created"
    import httpx

    for _ in range(3):  # Event Grid delivers at least once
        httpx.post(url, json=[event], timeout=30).raise_for_status()
    (run,) = stack.wait_all(1)
    assert _output(run)["status"] == "completed"
    assert stack.emulator_state()["requests"].get("POST /openai/batches") == 1
    # After the run, the same event once more (a late redelivery) still starts nothing.
    httpx.post(url, json=[event], timeout=30).raise_for_status()
    assert len(stack.runs()) == 1


def test_a_new_upload_under_the_same_name_is_a_new_run(stack):
    stack.drop("same.jsonl", requests_file(5, prefix="v1"))
    stack.wait_all(1)
    stack.drop("same.jsonl", requests_file(5, prefix="v2"))
    runs = stack.wait_all(2)
    assert len({r["instanceId"] for r in runs}) == 2
    folders = {n.rsplit("/", 2)[-2] for n in stack.names("output")}
    assert folders == {r["instanceId"] for r in runs}


def test_batch_that_fails_at_the_service_ends_failed_with_its_reason(stack):
    stack.scenario(next_batches=["failed"])
    stack.drop("svc/fails.jsonl", requests_file(5))
    (run,) = stack.wait_all(1)
    assert _output(run)["status"] == "failed"
    folder = stack.run_folder("svc/fails.jsonl", run["instanceId"])
    meta = orjson.loads(stack.read("output", f"{folder}/metadata.json"))
    assert meta["status"] == "failed" and meta["batches"][0]["status"] == "failed"
    assert meta["reason"] and meta["batches"][0]["errors"]
    errors = stack.jsonl("output", f"{folder}/errors.jsonl")
    assert len(errors) == 5  # every request reported, none silently lost
    # A run that cannot succeed keeps its input, in the error container, beside a report.
    assert f"{folder}/input.jsonl" in stack.names("error")
    assert orjson.loads(stack.read("error", f"{folder}/report.json"))["reason"]
    assert stack.names("input") == []


def test_expired_batch_without_resubmission_ends_expired_with_partial_results(azurite, tmp_path):
    with local_stack(azurite, tmp_path, extra_env={"RESUBMIT_ROUNDS": "0"}) as stack:
        stack.scenario(next_batches=["expired"])
        stack.drop("exp/late.jsonl", requests_file(20))
        (run,) = stack.wait_all(1)
        assert _output(run)["status"] == "expired"
        folder = stack.run_folder("exp/late.jsonl", run["instanceId"])
        meta = orjson.loads(stack.read("output", f"{folder}/metadata.json"))
        results = stack.jsonl("output", f"{folder}/results.jsonl")
        errors = stack.jsonl("output", f"{folder}/errors.jsonl")
        assert meta["status"] == "expired" and [b["status"] for b in meta["batches"]] == ["expired"]
        assert 0 < len(results) < 20  # what finished before expiry is kept
        assert sorted(r["custom_id"] for r in results + errors) == sorted(
            f"task-{i}" for i in range(20)
        )
        assert {e["code"] for e in errors} <= {"batch_expired", "not_run"}
        assert all(e["retryable"] for e in errors)  # retryable, but no rounds were allowed
        assert stack.read("output", f"{folder}/input.jsonl")  # kept in the run folder
        assert stack.names("input") == []


def test_a_cancel_raised_while_the_last_check_runs_comes_too_late(stack):
    """The status check that finds every batch ended was under way: the run collects and writes
    its outputs as it would have, and ends completed (docs/operating.md)."""
    run_id = stack.stage("late/a.jsonl", requests_file(3, prefix="l"))
    raised = []

    def hook(instance_id: str, activity: str, attempt: int) -> bool:
        if instance_id == run_id and activity == "check_batch" and not raised:
            ended = stack.batches_of(run_id)
            if ended and all(status == "completed" for _, status in ended):
                raised.append(attempt)
                stack.host.raise_event(run_id, run_file.CANCEL_EVENT, {"by": "test"})
        return False

    run = stack.run_hooked(run_id, hook)
    assert raised == [1]
    assert run["runtimeStatus"] == "Completed" and _output(run)["status"] == "completed", run
    assert "cancel_batch" not in stack.scheduled(run_id)
    folder = stack.run_folder("late/a.jsonl", run_id)
    assert len(stack.jsonl("output", f"{folder}/results.jsonl")) == 3
