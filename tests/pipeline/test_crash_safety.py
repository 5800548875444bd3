"""Crash safety: a worker that dies after an activity's side effect, before its result is recorded.

In both batch modes: files (uploads through the Files API, batch metadata) and blob (the service
reads the staged chunks and writes to its own output folders; no metadata, so a lost create is
found by its attempt's folder).

For every activity execution of a representative run (a file split into three chunks, one invalid
line skipped, the first batch expired and its unfinished half resubmitted in a second round), the
host's `crash_hook` drops that execution's result once, as if the worker died right after the
activity did its work; the activity then runs again. Each disturbed run must end exactly like the
undisturbed one: the same results (each custom_id once, same answers), errors, table and counts,
and no second upload or batch at Azure OpenAI. One more run loses every orchestrator episode
once (`episode_crash_hook`: the orchestrator ran, its new history was never saved).

The host runs on a VirtualClock and the emulator's clock is frozen to it (moved on every
advance, answered once its batches caught up), so every run makes the same calls however busy
the machine is, and the batches' minutes of polling take a few real seconds per run.
"""

from __future__ import annotations

import csv
import io
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from devstack.durable.clock import VirtualClock
from tests.support.stack import Stack, local_stack, requests_file

ENV = {
    "MAX_REQUESTS_PER_BATCH": "4",  # 9 valid requests -> chunks of 4, 4 and 1
    "INVALID_LINES": "skip",  # the invalid line goes to errors.jsonl, the rest runs
    "POLL_INITIAL_SECONDS": "2",  # shorter than a batch (3 s): the first check sees it running
    "POLL_MAX_SECONDS": "4",  # longer: the second check sees it end
}
DATA = requests_file(9, schema=True) + b'{"custom_id": "broken"}\n'

# Every activity execution of the run, as (activity, n-th execution of that activity).
# The undisturbed run is checked to make exactly these, so each one is a crash point below.
SHAPE = Counter(
    {
        "validate_input": 1,
        "prepare_chunks": 1,
        "submit_batch": 4,  # three chunks, then the expired chunk's second round
        # per batch: one check that sees it running, one that sees it end and collects it
        "check_batch": 8,
        "write_results": 1,
        "write_errors": 1,
        "write_table": 1,
        "write_metadata": 1,
        "cleanup_run": 1,
    }
)
BOUNDARIES = [(name, n) for name, count in SHAPE.items() for n in range(count)]


class Harness:
    """One stack for all runs; each run is a new file, so runs do not share anything."""

    def __init__(self, stack: Stack, mode: str) -> None:
        self.stack = stack
        self.mode = mode
        self.runs = 0
        self._lock = threading.Lock()

    def run(
        self, crash_at: tuple[str, int] | None = None, crash_episodes: bool = False
    ) -> dict[str, Any]:
        """Run the file once, crashing after the given activity execution, or in every
        orchestrator episode once (after the orchestrator ran, before its history is saved);
        returns what the user sees."""
        self.runs += 1
        stack = self.stack
        path = f"crash/run{self.runs}.jsonl"
        sequence: list[str] = []
        crashed: list[tuple[str, int]] = []

        def hook(instance_id: str, activity: str, attempt: int) -> bool:
            with self._lock:
                if instance_id != run_id:
                    return False
                n = sequence.count(activity)
                sequence.append(activity)
                if crash_at == (activity, n) and not crashed:
                    crashed.append((activity, attempt))
                    return True
                return False

        episodes_crashed = 0  # the host runs one episode of an instance at a time

        def episode_hook(instance_id: str, attempt: int) -> bool:
            nonlocal episodes_crashed
            if instance_id != run_id or attempt > 1:
                return False
            episodes_crashed += 1
            return True

        stack.scenario(next_batches=["expired"], seed=1)
        before = stack.emulator_state()["requests"]
        run_id = stack.stage(path, DATA)
        stack.host.crash_hook = hook
        stack.host.episode_crash_hook = episode_hook if crash_episodes else None
        try:
            assert stack.watcher.poll_once() == 1
            status = stack.host.wait_for(run_id, timeout=60)
        finally:
            stack.host.crash_hook = stack.host.episode_crash_hook = None
        assert status["runtimeStatus"] == "Completed", status
        if crash_at is not None:
            assert crashed == [(crash_at[0], 1)], (crash_at, sequence)
        after = stack.emulator_state()
        return {
            "sequence": sequence,
            "episodes_crashed": episodes_crashed,
            "output": status["output"],
            "seen": self._outputs(path, run_id),
            "uploads": after["requests"].get("POST /openai/files", 0)
            - before.get("POST /openai/files", 0),
            "batches": self._batches(run_id),
            "live_files": after["files"],
            "inputs_left": stack.names("input"),
            "work_left": [n for n in stack.names("work") if n.startswith(run_id)],
            "service_left": [n for n in self._service_blobs() if n.startswith(run_id)],
        }

    def _service_blobs(self) -> list[str]:
        if self.mode != "blob":
            return []
        return self.stack.names("service_output")

    def _batches(self, run_id: str) -> list[tuple[int, str]]:
        return self.stack.batches_of(run_id)

    def _outputs(self, path: str, run_id: str) -> dict[str, Any]:
        """The run folder, reduced to what must not depend on timing: answers by custom_id,
        errors by line/custom_id and code, table rows as a sorted list, metadata counts."""
        stack = self.stack
        folder = stack.run_folder(path, run_id)
        results = stack.jsonl("output", f"{folder}/results.jsonl")
        answers = {
            r["custom_id"]: r["response"]["body"]["choices"][0]["message"]["content"]
            for r in results
        }
        assert len(answers) == len(results), "a custom_id appears twice in results.jsonl"
        errors = sorted(
            (str(e.get("custom_id") or e.get("line")), str(e.get("code") or e.get("problems")))
            for e in stack.jsonl("output", f"{folder}/errors.jsonl")
        )
        table = list(csv.reader(io.StringIO(stack.read("output", f"{folder}/table.csv").decode())))
        meta = orjson.loads(stack.read("output", f"{folder}/metadata.json"))
        return {
            "answers": answers,
            "errors": errors,
            "table": [table[0], *sorted(table[1:])],
            "status": meta["status"],
            "requests": meta["requests"],
            "batches": sorted(
                (b["round"], b["status"], b["request_counts"]["total"]) for b in meta["batches"]
            ),
            "chunks": sorted((c["requests"], c["rounds"], c["status"]) for c in meta["chunks"]),
            "input_moved": stack.read("output", f"{folder}/input.jsonl") == DATA,
            "folder": sorted(
                n.rsplit("/", 1)[-1] for n in stack.names("output") if n.startswith(folder + "/")
            ),
        }


@pytest.fixture(scope="module", params=["files", "blob"])
def harness(azurite, tmp_path_factory, request) -> Iterator[Harness]:
    clock = VirtualClock(datetime.now(UTC))
    env = {**ENV, "AZURE_OPENAI_BATCH_MODE": request.param}
    with local_stack(
        azurite, tmp_path_factory.mktemp("crash"), batch_duration=3.0, extra_env=env, clock=clock
    ) as stack:
        yield Harness(stack, request.param)


@pytest.fixture(scope="module")
def baseline(harness: Harness) -> dict[str, Any]:
    return harness.run()


def test_undisturbed_run_is_representative(harness, baseline):
    """The reference run splits, resubmits and writes every output; its executions are SHAPE."""
    assert Counter(baseline["sequence"]) == SHAPE, baseline["sequence"]
    seen = baseline["seen"]
    assert seen["status"] == "completed"
    assert sorted(seen["answers"]) == sorted(f"task-{i}" for i in range(9))
    assert seen["errors"] == [("broken", "invalid_method")], seen["errors"]
    assert seen["requests"] == {"total": 10, "succeeded": 9, "failed": 1, "skipped_invalid": 1}
    # chunks of 3; the first batch expired with one request done, the other two resubmitted
    assert seen["batches"] == [
        (0, "completed", 3),
        (0, "completed", 3),
        (0, "expired", 3),
        (1, "completed", 2),
    ]
    assert len(seen["table"]) == 1 + 9  # a header and a row per answer
    assert seen["folder"] == [
        "errors.jsonl",
        "input.jsonl",
        "metadata.json",
        "results.jsonl",
        "table.csv",
    ]
    uploads = 4 if harness.mode == "files" else 0  # blob mode: the service reads the chunks
    assert baseline["uploads"] == uploads and len(baseline["batches"]) == 4
    assert baseline["live_files"] == 0 and baseline["work_left"] == []
    assert baseline["service_left"] == []


@pytest.mark.parametrize("boundary", BOUNDARIES, ids=[f"{a}#{n}" for a, n in BOUNDARIES])
def test_crash_after_activity_changes_nothing(harness, baseline, boundary):
    disturbed = harness.run(crash_at=boundary)
    assert disturbed["sequence"].count(boundary[0]) >= baseline["sequence"].count(boundary[0]) + 1
    assert disturbed["seen"] == baseline["seen"]
    assert disturbed["uploads"] == baseline["uploads"], "an input file was uploaded twice"
    assert disturbed["batches"] == baseline["batches"], "a batch was created twice"
    assert disturbed["live_files"] == 0, "an Azure OpenAI file was left behind"
    assert disturbed["inputs_left"] == [] and disturbed["work_left"] == []
    assert disturbed["service_left"] == [], "the service's output folder was left behind"
    assert disturbed["output"]["status"] == baseline["output"]["status"] == "completed"


def test_crash_in_every_orchestrator_episode_changes_nothing(harness, baseline):
    """Each episode's decisions are lost once and made again: the same activities run."""
    disturbed = harness.run(crash_episodes=True)
    assert disturbed["episodes_crashed"] >= 15  # every episode of the run, each once
    assert Counter(disturbed["sequence"]) == SHAPE, disturbed["sequence"]
    assert disturbed["seen"] == baseline["seen"]
    assert disturbed["uploads"] == baseline["uploads"], "an input file was uploaded twice"
    assert disturbed["batches"] == baseline["batches"], "a batch was created twice"
    assert disturbed["live_files"] == 0, "an Azure OpenAI file was left behind"
    assert disturbed["inputs_left"] == [] and disturbed["work_left"] == []
    assert disturbed["service_left"] == []
    assert disturbed["output"]["status"] == "completed"
