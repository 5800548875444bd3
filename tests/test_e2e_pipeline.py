"""End to end through the local stack: files dropped into the input container become run folders."""

from __future__ import annotations

import orjson
import pytest

from tests.e2e import local_stack, requests_file, sample


@pytest.fixture
def stack(azurite, tmp_path):
    with local_stack(azurite, tmp_path) as s:
        yield s


def test_quickstart_file_becomes_a_run_folder(stack):
    stack.drop("demo/quickstart.jsonl", sample("quickstart.jsonl"))
    (run,) = stack.wait_all(1)
    assert run["runtimeStatus"] == "Completed", run
    out = run["output"] if isinstance(run["output"], dict) else orjson.loads(run["output"])
    assert out["status"] == "completed"
    folder = stack.run_folder("demo/quickstart.jsonl", run["instanceId"])
    assert stack.names("output") == sorted(f"{folder}/{n}" for n in ("results.jsonl", "metadata.json", "input.jsonl"))
    results = stack.jsonl("output", f"{folder}/results.jsonl")
    ids = {orjson.loads(x)["custom_id"] for x in sample("quickstart.jsonl").splitlines() if x.strip()}
    assert {r["custom_id"] for r in results} == ids
    meta = orjson.loads(stack.read("output", f"{folder}/metadata.json"))
    assert meta["status"] == "completed"
    assert meta["requests"] == {"total": len(ids), "succeeded": len(ids), "failed": 0, "skipped_invalid": 0}
    assert len(meta["batches"]) == 1 and meta["batches"][0]["status"] == "completed"
    assert meta["tokens"]["usage"]["total"] > 0 and meta["cost"]["total"] > 0
    assert stack.read("output", f"{folder}/input.jsonl") == sample("quickstart.jsonl")
    assert stack.names("input") == [] and stack.names("work") == []
    state = stack.emulator_state()
    assert state["files"] == 0  # input, output and error files deleted after the outputs were written
