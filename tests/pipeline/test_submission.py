"""Submitting and watching batches against the emulator, through the real openai SDK.

Each step is run twice where a crash could repeat it: the second run must find what the first
created (one upload, one batch), never pay twice.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest

from batching.context import RunContext
from batching.service import aoai, ledger, submission
from batching.settings import Settings
from batching.steps import collection
from batching.storage.refs import BlobRef
from tests.support.stack import requests_file

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@pytest.fixture
def env(azurite, blob_service, fresh_emulator):
    tag = os.urandom(4).hex()
    container = f"sub-{tag}"
    blob_service.create_container(container)
    settings = Settings.from_env(
        {
            "AZURE_OPENAI_ENDPOINT": fresh_emulator.endpoint,
            "AZURE_OPENAI_API_KEY": "k",
            "AZURE_OPENAI_BATCH_MODE": "files",
            "BATCH_STORAGE": azurite.connection_string,
            "INPUT_CONTAINER": container,
            "WORK_CONTAINER": container,
            "OUTPUT_CONTAINER": container,
            "RUNS_TABLE": f"sub{tag}",  # the ledgers of this test's run-1
        }
    )
    return settings, blob_service.get_container_client(container), fresh_emulator


def _ctx(settings):
    """Run-1's context (the input's path does not matter)."""
    return RunContext.of(settings, "run-1", {"container": "in", "path": "x.jsonl"})


def _state(em):
    return httpx.get(f"{em.endpoint}/_emulator/state").json()


def _submit(settings, ref, key="run-1/c0/r0", attempt=0):
    for _ in range(100):
        source = {"container": ref.container, "path": ref.path}
        out = submission.submit_batch(
            RunContext.of(settings, "run-1", source),
            {
                "run_id": "run-1",
                "source": {"container": ref.container, "path": ref.path},
                "key": key,
                "attempt": attempt,
                "input": ref.to_dict(),
                "endpoint": "/chat/completions",
                "tokens": 100,
            },
        )
        if out["status"] != "pending":
            return out
        time.sleep(0.1)
    raise AssertionError("file never processed")


def _wait_terminal(settings, batch_id, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        b = submission.check_batch(settings, batch_id)
        if b["status"] in aoai.TERMINAL:
            return b
        time.sleep(0.2)
    raise AssertionError("batch did not end")


def test_submit_is_idempotent_and_streams_from_blob(env):
    settings, container, em = env
    container.upload_blob("q/quickstart.jsonl", (SAMPLES / "quickstart.jsonl").read_bytes())
    ref = BlobRef(container.container_name, "q/quickstart.jsonl")
    first = _submit(settings, ref)
    again = _submit(settings, ref)  # a crash after create: the re-run finds the batch
    assert first["status"] == again["status"] == "created"
    assert first["batch"]["id"] == again["batch"]["id"]
    state = _state(em)
    assert state["files"] == 1
    assert sum(state["batches"].values()) == 1
    assert first["batch"]["metadata"]["key"] == "run-1/c0/r0/a0"

    batch = _wait_terminal(settings, first["batch"]["id"])
    assert batch["status"] == "completed"
    chunk = {"index": 0, "round": 0, "input": ref.to_dict()}
    out = collection.collect_batch(
        RunContext.of(
            settings, "run-1", {"container": ref.container, "path": "q/quickstart.jsonl"}
        ),
        chunk,
        batch,
        resubmit=True,
    )
    lines = (
        container.get_blob_client(out["parts"]["results"][0]["path"])
        .download_blob()
        .readall()
        .splitlines()
    )
    assert (
        out["counts"]["succeeded"]
        == len(lines)
        == len((SAMPLES / "quickstart.jsonl").read_bytes().splitlines())
    )
    assert out["retry_input"] is None
    assert out["counts"]["usage"]["total"] > 0


def test_upload_of_a_file_processed_earlier_is_reused(env):
    settings, container, em = env
    container.upload_blob("a.jsonl", (SAMPLES / "quickstart.jsonl").read_bytes())
    ref = BlobRef(container.container_name, "a.jsonl")
    _submit(settings, ref, attempt=0)
    _submit(settings, ref, attempt=1)  # a new attempt (after quota) reuses the upload
    state = _state(em)
    assert state["files"] == 1 and sum(state["batches"].values()) == 2


def test_quota_fail_fast_and_in_validation_are_both_recognised(env):
    settings, container, em = env
    container.upload_blob("b.jsonl", (SAMPLES / "quickstart.jsonl").read_bytes())
    ref = BlobRef(container.container_name, "b.jsonl")
    httpx.post(
        f"{em.endpoint}/_emulator/scenario",
        json={"next_batches": ["token_limit_fail_fast", "token_limit_failed"]},
    ).raise_for_status()
    fast = _submit(settings, ref, attempt=0)
    assert fast["status"] == "quota" and "token_limit_exceeded" in fast["message"]
    slow = _submit(settings, ref, attempt=1)
    assert slow["status"] == "created"
    ended = _wait_terminal(settings, slow["batch"]["id"])
    assert ended["status"] == "failed" and ended["quota_message"]


def test_cancel_keeps_finished_requests(env):
    """Cancelled half-way (on the emulator's clock), the batch keeps the half that ran: its
    output file holds exactly those responses and its counts say so."""
    settings, container, em = env
    duration = 1000.0
    httpx.post(f"{em.endpoint}/_emulator/scenario", json={"batch_duration": duration})
    data = requests_file(20)
    container.upload_blob("c.jsonl", data)
    ref = BlobRef(container.container_name, "c.jsonl")
    created = _submit(settings, ref)["batch"]
    # In progress from 10 % to 80 % of the duration, done = ceil(20 * share of that span): 10 from
    # just past 42.5 % to 45 %. Aim at the middle (43.25 %, 9.5 -> 10), not at 45 %, where any
    # real time passing since the jump made it 11: 17.5 s of margin on the emulator's clock.
    clock = httpx.get(f"{em.endpoint}/_emulator/clock").json()
    offset = clock["offset_seconds"] + created["created_at"] + 0.4325 * duration - clock["now"]
    httpx.post(f"{em.endpoint}/_emulator/clock", json={"offset_seconds": offset})
    for _ in range(600):
        midway = submission.check_batch(settings, created["id"])
        if midway["request_counts"]["completed"] >= 10:
            break
        time.sleep(0.05)  # polling the emulator; the loop decides
    assert midway["status"] == "in_progress"
    assert midway["request_counts"]["completed"] == 10
    cancelled = submission.cancel_batch(settings, created["id"])
    assert cancelled["status"] in ("cancelling", "cancelled")
    final = _wait_terminal(settings, created["id"])
    assert final["status"] == "cancelled"
    assert final["request_counts"]["completed"] == 10
    client = aoai.client(settings)
    kept = [
        orjson.loads(x)
        for x in b"".join(aoai.file_content(client, final["output_file_id"])).splitlines()
        if x
    ]
    assert len(kept) == 10
    assert {r["custom_id"] for r in kept} < {f"task-{i}" for i in range(20)}
    assert all(r["response"]["status_code"] == 200 for r in kept)


def _listings(em) -> int:
    requests = _state(em)["requests"]
    return int(requests.get("GET /openai/files", 0)) + int(requests.get("GET /openai/batches", 0))


def _ledger(settings, container, key="run-1/c0/r0"):
    return ledger.Ledger.load(_ctx(settings), key)


def test_normal_path_and_its_reruns_never_list(env):
    """Submit, and submit again as after a crash: found from the ledger, not by listing."""
    settings, container, em = env
    container.upload_blob("n.jsonl", (SAMPLES / "quickstart.jsonl").read_bytes())
    ref = BlobRef(container.container_name, "n.jsonl")
    first = _submit(settings, ref)
    again = _submit(settings, ref)
    assert first["batch"]["id"] == again["batch"]["id"]
    recorded = _ledger(settings, container)
    assert recorded.upload is not None and recorded.upload["id"] == first["batch"]["input_file_id"]
    assert (recorded.batch(0) or {}).get("id") == first["batch"]["id"]
    assert _listings(em) == 0


def test_a_create_whose_id_was_never_recorded_is_found_by_listing_back_to_its_start(env):
    """The recovery path: the ledger says a create started but holds no id (the worker died
    between the call and the write). The run lists, newest first, finds its batch and upload,
    records them, and creates nothing twice."""
    settings, container, em = env
    container.upload_blob("r.jsonl", (SAMPLES / "quickstart.jsonl").read_bytes())
    ref = BlobRef(container.container_name, "r.jsonl")
    first = _submit(settings, ref)
    recorded = _ledger(settings, container)
    recorded.set_batch(0, id=None)
    recorded.set_upload(id=None)
    again = _submit(settings, ref)
    assert again["batch"]["id"] == first["batch"]["id"]
    state = _state(em)
    assert state["files"] == 1 and sum(state["batches"].values()) == 1
    assert _listings(em) == 1  # the batch was found: the upload was not needed
    assert (_ledger(settings, container).batch(0) or {}).get("id") == first["batch"]["id"]
    # cleanup finds the upload whose id was never recorded, again by listing back to its start
    assert finalize_uploads(settings) == [first["batch"]["input_file_id"]]


def test_recovery_listing_stops_at_the_create_start(env):
    """A create recorded as started after everything in the account: the listing stops at the
    first (older) item and the create runs."""
    settings, container, em = env
    container.upload_blob("s.jsonl", (SAMPLES / "quickstart.jsonl").read_bytes())
    ref = BlobRef(container.container_name, "s.jsonl")
    first = _submit(settings, ref)
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    recorded = _ledger(settings, container)
    recorded.set_batch(0, id=None, started_at=later)
    again = _submit(settings, ref)
    assert again["status"] == "created" and again["batch"]["id"] != first["batch"]["id"]
    assert _listings(em) == 1


def finalize_uploads(settings):
    ids, unrecorded = ledger.uploads(ledger.of_run(_ctx(settings)))
    c = aoai.client(settings)
    found = [aoai.find_file_since(c, name, ledger.since(at)) for name, at in unrecorded]
    return sorted(ids + [f["id"] for f in found if f])


def test_a_recorded_upload_that_is_gone_is_uploaded_again(env):
    """An upload expired or deleted meanwhile (say, during a long quota wait): the next attempt
    uploads again instead of failing on the recorded id."""
    settings, container, em = env
    container.upload_blob("g.jsonl", (SAMPLES / "quickstart.jsonl").read_bytes())
    ref = BlobRef(container.container_name, "g.jsonl")
    first = _submit(settings, ref, attempt=0)
    aoai.delete_file(aoai.client(settings), first["batch"]["input_file_id"])
    again = _submit(settings, ref, attempt=1)
    assert again["status"] == "created"
    assert again["batch"]["input_file_id"] != first["batch"]["input_file_id"]
    recorded = _ledger(settings, container).upload or {}
    assert recorded.get("id") == again["batch"]["input_file_id"]
    assert _listings(em) == 0
