"""The runs API through the local stack: list, detail, start, cancel, retry and its error answers.

One stack serves the module; each test works under a folder of its own, and a test that changes
the emulator's scenario puts it back.
"""

from __future__ import annotations

import orjson
import pytest

from tests.e2e import local_stack, requests_file
from tests.opsutil import custom_ids, get, in_progress, post, run, run_id_of, wait_run


@pytest.fixture(scope="module")
def stack(azurite, tmp_path_factory):
    # A quota failure waits about 3 s, then tries once more before the run fails.
    env = {
        "QUOTA_RETRY_ATTEMPTS": "1",
        "QUOTA_RETRY_INITIAL_SECONDS": "3",
        "QUOTA_RETRY_MAX_SECONDS": "3",
    }
    with local_stack(azurite, tmp_path_factory.mktemp("api"), extra_env=env) as s:
        yield s


@pytest.fixture
def scenario(stack):
    """Set the emulator's scenario for one test; cleared afterwards."""
    yield stack.scenario
    stack.scenario(next_batches=[], batch_duration=None, line_failure_rate=0.0)


def test_list_filters_status_and_folder_and_pages_newest_first(stack):
    for name in ("one", "two", "three"):
        stack.drop(f"list/good/{name}.jsonl", requests_file(2, prefix=name))
    stack.drop("list/bad/broken.jsonl", b'{"custom_id": "x", "method": "POST"\n')
    stack.drop("elsewhere/other.jsonl", requests_file(1))
    ids = {
        s: run_id_of(stack, s)
        for s in (
            "list/good/one.jsonl",
            "list/good/two.jsonl",
            "list/good/three.jsonl",
            "list/bad/broken.jsonl",
            "elsewhere/other.jsonl",
        )
    }
    for run_id in ids.values():
        wait_run(stack, run_id)

    listed = get(stack, "runs", prefix="list/").json()
    assert listed["count"] == len(listed["runs"]) == 4 and listed["next"] is None
    assert {r["id"] for r in listed["runs"]} == {v for k, v in ids.items() if k.startswith("list/")}
    created = [r["created"] for r in listed["runs"]]
    assert created == sorted(created, reverse=True)

    good = get(stack, "runs", prefix="list/good/", status="completed").json()
    assert sorted(r["source"] for r in good["runs"]) == [
        "list/good/one.jsonl",
        "list/good/three.jsonl",
        "list/good/two.jsonl",
    ]
    assert all(r["progress"] == 1.0 and r["requests"]["succeeded"] == 2 for r in good["runs"])
    assert all(r["tokens"]["total"] > 0 and r["cost"]["total"] > 0 for r in good["runs"])
    invalid = get(stack, "runs", prefix="list/", status="invalid").json()
    assert [r["id"] for r in invalid["runs"]] == [ids["list/bad/broken.jsonl"]]
    assert get(stack, "runs", prefix="list/", status="running").json()["runs"] == []

    first = get(stack, "runs", prefix="list/", limit=3).json()
    assert len(first["runs"]) == 3 and first["next"] is not None
    second = get(stack, "runs", prefix="list/", limit=3, cursor=first["next"]).json()
    assert len(second["runs"]) == 1 and second["next"] is None
    assert [r["id"] for r in first["runs"] + second["runs"]] == [r["id"] for r in listed["runs"]]

    assert get(stack, "runs", limit="many").status_code == 400
    assert get(stack, "runs", cursor="x").status_code == 400
    assert get(stack, "runs", since="yesterday").status_code == 400


def test_detail_has_chunks_batches_outputs_and_metadata(stack):
    stack.drop("detail/file.jsonl", requests_file(3, prefix="d"))
    run_id = run_id_of(stack, "detail/file.jsonl")
    detail = wait_run(stack, run_id)
    assert detail["status"] == "completed" and detail["phase"] == "done"
    assert detail["requests"] == {"total": 3, "succeeded": 3, "failed": 0, "pending": 0}
    assert [c["state"] for c in detail["chunks"]] == ["done"]
    meta = detail["metadata"]
    assert meta["run_id"] == run_id and meta["status"] == "completed"
    assert len(meta["batches"]) == 1 and meta["batches"][0]["status"] == "completed"
    assert meta["tokens"]["usage"]["total"] == detail["tokens"]["total"] > 0
    assert meta["cost"]["total"] == detail["cost"]["total"] > 0
    assert meta["cost"]["batch_discount"] == 0.5
    results = detail["outputs"]["results"]
    assert results["path"] == f"detail/file/{run_id}/results.jsonl"
    assert sorted(custom_ids(stack.read("output", results["path"]))) == ["d-0", "d-1", "d-2"]

    missing = get(stack, "runs/no-such-run")
    assert missing.status_code == 404 and "no-such-run" in missing.json()["error"]


def test_start_a_run_for_a_blob_already_in_the_input_container(stack):
    stack.drop("started/by-post.jsonl", requests_file(2, prefix="p"), deliver=False)
    assert get(stack, "runs", prefix="started/").json()["runs"] == []  # no event, no run

    answer = post(stack, "runs", {"path": "started/by-post.jsonl"})
    assert answer.status_code == 202, answer.text
    run_id = answer.json()["id"]
    assert answer.json()["started"] is True
    again = post(stack, "runs", {"path": "/started/by-post.jsonl"})  # same upload: same run
    assert again.status_code == 200 and again.json() == {"id": run_id, "started": False}
    detail = wait_run(stack, run_id)
    assert detail["status"] == "completed" and detail["source"] == "started/by-post.jsonl"
    assert len(get(stack, "runs", prefix="started/").json()["runs"]) == 1

    assert post(stack, "runs", {"path": "started/none.jsonl"}).status_code == 404
    assert post(stack, "runs", {"path": "started/notes.txt"}).status_code == 400
    assert post(stack, "runs", {"file": "x.jsonl"}).status_code == 400
    assert post(stack, "runs", [1, 2]).status_code == 400


def test_cancel_mid_run_writes_partial_results_and_metadata(stack, scenario):
    scenario(batch_duration=30)
    stack.drop("cancel/long.jsonl", requests_file(6, prefix="c"))
    run_id = run_id_of(stack, "cancel/long.jsonl")
    wait_run(stack, run_id, in_progress, timeout=20)

    answer = post(stack, f"runs/{run_id}/cancel")
    assert answer.status_code == 202 and answer.json() == {"id": run_id, "cancelling": True}
    detail = wait_run(stack, run_id, timeout=20)  # far sooner than the 30 s batch

    assert detail["status"] == "cancelled"
    counts = detail["requests"]
    assert 1 <= counts["succeeded"] < 6 and counts["succeeded"] + counts["failed"] == 6
    meta = detail["metadata"]
    assert meta["status"] == "cancelled" and meta["batches"][0]["status"] == "cancelled"
    assert meta["requests"]["succeeded"] == counts["succeeded"]
    folder = f"cancel/long/{run_id}"
    done = custom_ids(stack.read("output", f"{folder}/results.jsonl"))
    failed = custom_ids(stack.read("output", f"{folder}/errors.jsonl"))
    assert len(done) == counts["succeeded"]
    assert sorted(done + failed) == [f"c-{i}" for i in range(6)]
    assert f"{folder}/input.jsonl" in stack.names("output")

    again = post(stack, f"runs/{run_id}/cancel")
    assert again.status_code == 409 and "cancelled" in again.json()["error"]
    assert post(stack, "runs/no-such-run/cancel").status_code == 404


def test_cancel_while_no_batch_exists_ends_the_run(stack, scenario):
    """A cancel while the chunk waits to submit again (after token_limit_exceeded)."""
    scenario(next_batches=["token_limit_fail_fast"] * 2)
    stack.drop("cancel/early.jsonl", requests_file(2, prefix="e"))
    run_id = run_id_of(stack, "cancel/early.jsonl")
    waiting = wait_run(
        stack, run_id, lambda d: (d["waiting"] or "").startswith("quota"), timeout=15, interval=0.05
    )
    assert waiting["chunks"][0]["state"] == "submitting"
    assert post(stack, f"runs/{run_id}/cancel").status_code == 202
    detail = wait_run(stack, run_id, timeout=15)
    assert detail["status"] == "cancelled", detail
    assert detail["metadata"]["batches"] == []  # nothing was submitted
    assert detail["metadata"]["requests"]["total"] == 2
    assert detail["requests"]["succeeded"] + detail["requests"]["failed"] == 2
    # Its upload never became a batch, yet cleanup deleted it too.
    from openai import AzureOpenAI

    aoai = AzureOpenAI(
        azure_endpoint=stack.emulator.endpoint, api_key="test-key", api_version="2024-10-21"
    )
    assert not [f.id for f in aoai.files.list(purpose="batch") if f.filename.startswith(run_id)]


def test_retry_an_invalid_run_validates_its_kept_input_again(stack):
    stack.drop("retry/bad.jsonl", b"not json at all\n")
    run_id = run_id_of(stack, "retry/bad.jsonl")
    assert wait_run(stack, run_id)["status"] == "invalid"
    assert f"retry/bad/{run_id}/input.jsonl" in stack.names("error")
    assert "retry/bad.jsonl" not in stack.names("input")

    answer = post(stack, f"runs/{run_id}/retry")
    assert answer.status_code == 202, answer.text
    new_id = answer.json()["id"]
    assert new_id != run_id and answer.json()["retry_of"] == run_id
    detail = wait_run(stack, new_id)
    assert detail["status"] == "invalid" and detail["source"] == "retry/bad.jsonl"
    assert detail["report"]["problem_counts"] == {"invalid_json_line": 1}
    assert f"retry/bad/{new_id}/input.jsonl" in stack.names("error")
    # The copy's BlobCreated event, delivered late, lands on the same run.
    stack.watcher.poll_once()
    assert len(get(stack, "runs", prefix="retry/bad.jsonl").json()["runs"]) == 2

    assert post(stack, "runs/no-such-run/retry").status_code == 404


def test_retry_after_quota_exhaustion_completes(stack, scenario):
    scenario(next_batches=["token_limit_fail_fast"] * 2)
    stack.drop("retry/quota.jsonl", requests_file(3, prefix="q"))
    run_id = run_id_of(stack, "retry/quota.jsonl")
    failed = wait_run(stack, run_id)
    assert failed["status"] == "failed", failed
    assert "token_limit_exceeded" in failed["metadata"]["reason"]
    assert f"retry/quota/{run_id}/input.jsonl" in stack.names("error")
    report = orjson.loads(stack.read("error", f"retry/quota/{run_id}/report.json"))
    assert report["status"] == "failed"

    answer = post(stack, f"runs/{run_id}/retry")
    assert answer.status_code == 202, answer.text
    detail = wait_run(stack, answer.json()["id"])
    assert detail["status"] == "completed"
    assert detail["requests"] == {"total": 3, "succeeded": 3, "failed": 0, "pending": 0}
    conflict = post(stack, f"runs/{answer.json()['id']}/retry")
    assert conflict.status_code == 409 and "completed" in conflict.json()["error"]


def test_each_retry_of_a_run_whose_input_stayed_in_place_is_a_new_run(stack, scenario):
    """A terminated run never moved its input: every retry starts from the same upload."""
    scenario(batch_duration=30)
    stack.drop("retry/again.jsonl", requests_file(1, prefix="a"))
    ids = [run_id_of(stack, "retry/again.jsonl")]
    for _ in range(2):
        wait_run(stack, ids[-1], lambda d: d["status"] == "running", timeout=20)
        stack.host.terminate(ids[-1], "stopped by the test")
        assert wait_run(stack, ids[-1], timeout=20)["status"] == "terminated"
        answer = post(stack, f"runs/{ids[-1]}/retry")
        assert answer.status_code == 202, answer.text
        assert answer.json()["retry_of"] == ids[-1]
        ids.append(answer.json()["id"])
    assert len(set(ids)) == 3, ids
    assert wait_run(stack, ids[-1], lambda d: d["status"] == "running", timeout=20)
    assert "retry/again.jsonl" in stack.names("input")


def test_retry_or_cancel_of_a_running_run_is_a_conflict(stack, scenario):
    scenario(batch_duration=30)
    stack.drop("conflict/long.jsonl", requests_file(1))
    run_id = run_id_of(stack, "conflict/long.jsonl")
    assert run(stack, run_id)["status"] == "running"
    retry = post(stack, f"runs/{run_id}/retry")
    assert retry.status_code == 409 and "running" in retry.json()["error"]
    assert post(stack, f"runs/{run_id}/cancel").status_code == 202
    assert wait_run(stack, run_id, timeout=20)["status"] == "cancelled"
