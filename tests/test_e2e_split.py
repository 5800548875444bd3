"""Files over the limits are split into chunks that run as parallel batches and merge back."""

from __future__ import annotations

import orjson
import pytest

from tests.e2e import local_stack, requests_file


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
