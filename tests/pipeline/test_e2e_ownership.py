"""A run owns its input: overwriting or deleting the original mid-run changes nothing for it.

The run stages its own snapshot of the upload (exactly the ETag it was started for) when it
validates, and reads only that from then on. Each test changes the original at one phase of a
run, end to end through the local stack, from the host's `crash_hook` (called after an
activity's work, before its result is recorded; it never crashes anything here), so the change
lands at a known point of the run without sleeping:

- validating: right after validate_input;
- running: right after submit_batch created the batch;
- collecting: after a check_batch that saw the batch still running, so before the check that
  sees it end collects it (in that same step) and reads anything;
- writing: after the check that saw the batch end and collected it, before cleanup writes
  metadata.json and takes the original away (if it is still the upload the run started for).

The run must still write its results and end `completed`, keep its own input in its run folder,
delete its Azure OpenAI files, and leave alone the upload that replaced its input (which is a
new run of its own).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from batching.layout import run_id_for
from devstack.durable.clock import VirtualClock
from devstack.watcher import blob_created_event
from tests.support.stack import Stack, local_stack, requests_file

ENV = {"POLL_INITIAL_SECONDS": "2", "POLL_MAX_SECONDS": "4"}
DATA = requests_file(5, prefix="old")
NEW = requests_file(3, prefix="new")
TERMINAL = {"completed", "failed", "expired", "cancelled"}


def _ids(data: bytes) -> list[str]:
    return sorted(orjson.loads(x)["custom_id"] for x in data.splitlines() if x.strip())


class Owner:
    """Runs one file on the shared stack and changes its original when the phase is reached."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.count = 0
        self._lock = threading.Lock()

    def batches_ended(self, run_id: str) -> bool:
        mine = self.stack.batches_of(run_id)
        return bool(mine) and all(status in TERMINAL for _, status in mine)

    def run(self, phase: str, change: Callable[[str], None]) -> dict[str, Any]:
        """Run DATA as a new file; `change(path)` once at `phase`. Returns what happened."""
        self.count += 1
        stack = self.stack
        path = f"own/{phase}-{self.count}.jsonl"
        run_id = stack.stage(path, DATA)
        sequence: list[str] = []
        changed_at: list[int] = []

        def due(activity: str) -> bool:
            if phase == "validating":
                return activity == "validate_input"
            if phase == "running":
                return activity == "submit_batch"
            if phase == "collecting":
                return activity == "check_batch" and not self.batches_ended(run_id)
            assert phase == "writing"
            return activity == "check_batch" and self.batches_ended(run_id)

        def hook(instance_id: str, activity: str, attempt: int) -> bool:
            with self._lock:
                if instance_id != run_id:
                    return False
                sequence.append(activity)
                if not changed_at and due(activity):
                    change(path)
                    changed_at.append(len(sequence))
                return False  # never a crash: the hook only marks the moment

        status = stack.run_hooked(run_id, hook)
        assert changed_at, f"the run never reached {phase}: {sequence}"
        return {
            "path": path,
            "run_id": run_id,
            "status": status,
            "before": sequence[: changed_at[0]],
            "after": sequence[changed_at[0] :],
        }

    def check_kept_results(self, got: dict[str, Any]) -> None:
        """The run ended completed with DATA's results, its own input and no leftovers."""
        stack, run_id = self.stack, got["run_id"]
        status = got["status"]
        assert status["runtimeStatus"] == "Completed", status
        assert status["output"]["status"] == "completed", status["output"]
        folder = stack.run_folder(got["path"], run_id)
        results = stack.jsonl("output", f"{folder}/results.jsonl")
        assert sorted(r["custom_id"] for r in results) == _ids(DATA)
        meta = orjson.loads(stack.read("output", f"{folder}/metadata.json"))
        assert meta["status"] == "completed" and meta["all_succeeded"] is True
        assert stack.read("output", f"{folder}/input.jsonl") == DATA  # its own input, kept
        assert [n for n in stack.names("work") if n.startswith(run_id)] == []
        assert not [n for n in stack.names("error") if run_id in n]


@pytest.fixture(scope="module", params=["blob", "files"])
def owner(azurite, tmp_path_factory, request) -> Iterator[Owner]:
    """The same stack for every test of a batch mode: blob (the service reads the staged chunk
    from the work container) and files (uploaded through the Files API)."""
    clock = VirtualClock(datetime.now(UTC))
    env = {**ENV, "AZURE_OPENAI_BATCH_MODE": request.param}
    with local_stack(
        # 3 s (virtual): the first check, 2 s after the create, sees the batch running
        azurite,
        tmp_path_factory.mktemp("own"),
        batch_duration=3.0,
        extra_env=env,
        clock=clock,
    ) as stack:
        yield Owner(stack)


PHASES = ["validating", "running", "collecting", "writing"]


@pytest.mark.parametrize("phase", PHASES)
def test_overwrite_mid_run_changes_nothing_for_the_run(owner: Owner, phase: str) -> None:
    stack = owner.stack

    def overwrite(path: str) -> None:
        stack.container("input").upload_blob(path, NEW, overwrite=True)

    got = owner.run(phase, overwrite)
    if phase == "collecting":  # the batch was collected by a later check
        assert "check_batch" in got["after"], got
    owner.check_kept_results(got)
    # The replacement was left where the user put it; its own event starts its own run.
    assert stack.read("input", got["path"]) == NEW
    props = stack.container("input").get_blob_client(got["path"]).get_blob_properties()
    new_id = run_id_for(stack.env["INPUT_CONTAINER"], got["path"], str(props.etag))
    assert stack.watcher.poll_once() == 1
    new = stack.host.wait_for(new_id, timeout=60)
    assert new["runtimeStatus"] == "Completed" and new["output"]["status"] == "completed", new
    folder = stack.run_folder(got["path"], new_id)
    assert sorted(r["custom_id"] for r in stack.jsonl("output", f"{folder}/results.jsonl")) == (
        _ids(NEW)
    )
    assert stack.read("output", f"{folder}/input.jsonl") == NEW
    assert got["path"] not in stack.names("input")  # each run took its own upload away
    assert stack.emulator_state()["files"] == 0  # both runs deleted every file they made


@pytest.mark.parametrize("phase", PHASES)
def test_delete_mid_run_changes_nothing_for_the_run(owner: Owner, phase: str) -> None:
    stack = owner.stack

    def delete(path: str) -> None:
        stack.container("input").delete_blob(path)  # every phase comes before cleanup's

    got = owner.run(phase, delete)
    if phase == "collecting":  # the batch was collected by a later check
        assert "check_batch" in got["after"], got
    owner.check_kept_results(got)
    assert got["path"] not in stack.names("input")
    assert stack.emulator_state()["files"] == 0  # its Azure OpenAI files were cleaned up


def test_retry_starts_from_the_snapshot_when_the_original_is_gone(azurite, tmp_path) -> None:
    """A run stopped mid-way (terminated) whose original was deleted is retried from the
    snapshot it staged; the retry completes with the original's requests."""
    clock = VirtualClock(datetime.now(UTC))
    with local_stack(azurite, tmp_path, batch_duration=1.0, extra_env=ENV, clock=clock) as stack:
        path = "own/retry.jsonl"
        run_id = stack.stage(path, DATA)
        reached = threading.Event()

        def hook(instance_id: str, activity: str, attempt: int) -> bool:
            if instance_id == run_id and activity == "submit_batch" and not reached.is_set():
                stack.container("input").delete_blob(path)
                stack.host.terminate(run_id, "stopped by the test")
                reached.set()
            return False

        stack.host.crash_hook = hook
        try:
            assert stack.watcher.poll_once() == 1
            assert stack.host.wait_for(run_id, timeout=60)["runtimeStatus"] == "Terminated"
        finally:
            stack.host.crash_hook = None
        assert reached.is_set()
        assert path not in stack.names("input")

        answer = httpx.post(f"{stack.host.base_url}/api/runs/{run_id}/retry", timeout=30)
        assert answer.status_code == 202, answer.text
        new_id = answer.json()["id"]
        status = stack.host.wait_for(new_id, timeout=60)
        assert status["runtimeStatus"] == "Completed", status
        assert status["output"]["status"] == "completed"
        folder = stack.run_folder(path, new_id)
        results = stack.jsonl("output", f"{folder}/results.jsonl")
        assert sorted(r["custom_id"] for r in results) == _ids(DATA)
        assert stack.read("output", f"{folder}/input.jsonl") == DATA


def test_a_change_before_the_snapshot_ends_that_run_with_a_reason(owner: Owner) -> None:
    """Overwritten before its run could stage it (a late event for the first upload): that
    run ends `invalid` saying why, sends nothing, and the new upload runs on its own."""
    stack = owner.stack
    path = "own/early.jsonl"
    stack.drop(path, DATA, deliver=False)
    first = stack.container("input").get_blob_client(path).get_blob_properties()
    stack.drop(path, NEW, deliver=False)
    run_id = run_id_for(stack.env["INPUT_CONTAINER"], path, str(first.etag))
    webhook = f"{stack.host.base_url}/runtime/webhooks/eventgrid?functionName=on_blob_created"
    event = blob_created_event(stack.container("input"), first)
    httpx.post(webhook, json=[event], headers={"aeg-event-type": "Notification"}).raise_for_status()
    status = stack.host.wait_for(run_id, timeout=60)
    assert status["runtimeStatus"] == "Completed", status
    assert status["output"]["status"] == "invalid"
    assert "deleted or replaced before it could be validated" in status["output"]["reason"]
    assert stack.read("input", path) == NEW  # the replacement is untouched
    assert [n for n in stack.names("work") if n.startswith(run_id)] == []
    props = stack.container("input").get_blob_client(path).get_blob_properties()
    new_id = run_id_for(stack.env["INPUT_CONTAINER"], path, str(props.etag))
    assert stack.watcher.poll_once() == 1
    new = stack.host.wait_for(new_id, timeout=60)
    assert new["runtimeStatus"] == "Completed" and new["output"]["status"] == "completed", new
    folder = stack.run_folder(path, new_id)
    assert stack.read("output", f"{folder}/input.jsonl") == NEW
    assert stack.emulator_state()["files"] == 0
