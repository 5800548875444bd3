"""Files over the limits are split into chunks that run as parallel batches and merge back."""

from __future__ import annotations

import orjson
import pytest

from tests.support.stack import local_stack, requests_file


@pytest.fixture
def split_stack(azurite, tmp_path):
    env = {"MAX_REQUESTS_PER_BATCH": "50", "RESUBMIT_ROUNDS": "1"}
    with local_stack(azurite, tmp_path, extra_env=env) as s:
        yield s


def test_split_file_merges_into_one_run_folder(split_stack):
    stack = split_stack
    stack.scenario(line_failure_rate=0.1, line_failure_status=400, seed=7)
    stack.drop("big/many.jsonl", requests_file(230, schema=True))
    (run,) = stack.wait_all(1)
    folder = stack.run_folder("big/many.jsonl", run["instanceId"])
    meta = orjson.loads(stack.read("output", f"{folder}/metadata.json"))
    assert len(meta["chunks"]) == 5
    assert all(c["requests"] <= 50 for c in meta["chunks"])
    assert {b["chunk"] for b in meta["batches"]} == set(range(5))
    results = stack.jsonl("output", f"{folder}/results.jsonl")
    errors = stack.jsonl("output", f"{folder}/errors.jsonl")
    ids = [r["custom_id"] for r in results] + [e["custom_id"] for e in errors]
    assert sorted(ids) == sorted(f"task-{i}" for i in range(230))  # each exactly once
    assert errors and all(e["status_code"] == 400 and not e["retryable"] for e in errors)
    assert meta["requests"]["succeeded"] == len(results)
    assert meta["requests"]["failed"] == len(errors)
    table = stack.read("output", f"{folder}/table.csv").decode().splitlines()
    assert len(table) == 231  # header + one row per request, failed ones included
    assert stack.names("work") == []  # chunks and parts cleaned up
    assert stack.emulator_state()["files"] == 0


def test_skip_mode_runs_the_valid_lines_and_reports_the_rest(azurite, tmp_path):
    with local_stack(azurite, tmp_path, extra_env={"INVALID_LINES": "skip"}) as stack:
        lines = requests_file(6).splitlines()
        lines[2] = b'{"custom_id": "task-2", "method": "GET"}'
        lines[4] = b"not json"
        stack.drop("skip/some-bad.jsonl", b"\n".join(lines) + b"\n")
        (run,) = stack.wait_all(1)
        folder = stack.run_folder("skip/some-bad.jsonl", run["instanceId"])
        results = stack.jsonl("output", f"{folder}/results.jsonl")
        assert sorted(r["custom_id"] for r in results) == ["task-0", "task-1", "task-3", "task-5"]
        errors = stack.jsonl("output", f"{folder}/errors.jsonl")
        assert sorted(e["line"] for e in errors) == [3, 5]
        assert all(e["code"] and e["message"] for e in errors)
        meta = orjson.loads(stack.read("output", f"{folder}/metadata.json"))
        assert meta["requests"] == {"total": 6, "succeeded": 4, "failed": 2, "skipped_invalid": 2}


def test_a_run_of_100_chunks_with_a_resubmission_round_stays_within_the_durable_limits(
    azurite, tmp_path
):
    """The host enforces the real limits (devstack/durable/limits.py): exceeding one fails the run.

    100 chunks of 2 requests, a retryable failure on a quarter of the lines, one resubmission
    round: the run completes, and the largest custom status and payloads stay under the limits.
    """
    from devstack.durable.limits import CUSTOM_STATUS_MAX_KB, PAYLOAD_MAX_BYTES

    env = {"MAX_REQUESTS_PER_BATCH": "2", "RESUBMIT_ROUNDS": "1"}
    with local_stack(azurite, tmp_path, batch_duration=0.5, extra_env=env) as stack:
        stack.scenario(line_failure_rate=0.25, line_failure_status=500, seed=3)
        stack.drop("wide/hundred.jsonl", requests_file(200))
        (run,) = stack.wait_all(1, timeout=600)
        assert run["runtimeStatus"] == "Completed", run.get("output")
        folder = stack.run_folder("wide/hundred.jsonl", run["instanceId"])
        meta = orjson.loads(stack.read("output", f"{folder}/metadata.json"))
        assert len(meta["chunks"]) == 100
        assert max(c["rounds"] for c in meta["chunks"]) == 2  # resubmitted at least once
        results = stack.jsonl("output", f"{folder}/results.jsonl")
        errors = stack.jsonl("output", f"{folder}/errors.jsonl")
        assert sorted(r["custom_id"] for r in results + errors) == sorted(
            f"task-{i}" for i in range(200)
        )
        peaks = stack.host.peaks
        print(dict(peaks))  # recorded in docs/devstack.md
        assert 0 < peaks["custom status"] < CUSTOM_STATUS_MAX_KB * 1024
        for kind in ("activity input", "activity output", "orchestration input"):
            assert 0 < peaks[kind] < PAYLOAD_MAX_BYTES, kind
