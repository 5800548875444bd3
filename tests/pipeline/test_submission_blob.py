"""Blob batch mode against the emulator and Azurite, through the real openai and storage SDKs.

The service reads the staged chunk (`input_blob`) with its own identity and writes
`{output_folder}/{GUID}/results.jsonl` and `errors.jsonl`; the app sends no `metadata` (the
service refuses it in this mode), so a create whose id was lost is found by its attempt's own
output folder. Facts: Microsoft Learn, "Configure Azure Blob Storage for batch" (Nov 2025).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import orjson
import pytest

from batching.context import RunContext
from batching.layout import RunLayout
from batching.service import aoai, ledger, submission
from batching.settings import Settings
from batching.steps import collection, finalize
from batching.steps.ordering import read_run
from batching.storage import blobs as storage
from batching.storage.refs import BlobRef
from devstack import services
from devstack.services import AZURITE_ACCOUNT
from tests.support.stack import containers, requests_file, storage_requests

RUN = "run-1"
SOURCE = "x.jsonl"


@pytest.fixture
def env(azurite, blob_service, tmp_path: Path) -> Iterator[tuple[Settings, Any, Any]]:
    tag = f"blob{os.urandom(4).hex()}"
    with services.emulator(
        tmp_path / "emulator",
        batch_duration=1.0,
        api_key="k",
        storage=azurite.connection_string,
    ) as em:
        settings = Settings.from_env(
            {
                "AZURE_OPENAI_ENDPOINT": em.endpoint,
                "AZURE_OPENAI_API_KEY": "k",
                "AZURE_OPENAI_BATCH_MODE": "blob",
                "BATCH_STORAGE": azurite.connection_string,
                **containers(tag),
                "RUNS_TABLE": tag,  # the ledgers of this test's run-1
            }
        )
        storage.ensure_containers(settings.storage, settings.containers)
        yield settings, blob_service, em


def _ctx(settings: Settings) -> RunContext:
    return RunContext.of(settings, RUN, {"container": settings.input_container, "path": SOURCE})


def _state(em: services.Emulator) -> dict[str, Any]:
    state: dict[str, Any] = httpx.get(f"{em.endpoint}/_emulator/state").json()
    return state


def _listings(em: services.Emulator) -> int:
    requests = _state(em)["requests"]
    listing = ("GET /openai/files", "GET /openai/batches")
    return sum(int(requests.get(call, 0)) for call in listing)


def _chunk(settings: Settings, blob_service: Any, data: bytes) -> BlobRef:
    ref = RunLayout.of(settings, SOURCE, RUN).work("chunks/c0000.jsonl")
    blob_service.get_blob_client(ref.container, ref.path).upload_blob(data, overwrite=True)
    return ref


def _submit(settings: Settings, ref: BlobRef, attempt: int = 0) -> dict[str, Any]:
    return submission.submit_batch(
        _ctx(settings),
        {
            "run_id": RUN,
            "source": {"container": settings.input_container, "path": SOURCE},
            "key": f"{RUN}/c0/r0",
            "attempt": attempt,
            "input": ref.to_dict(),
            "endpoint": "/chat/completions",
            "tokens": 100,
        },
    )


def _wait_terminal(settings: Settings, batch_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        b = submission.check_batch(settings, batch_id)
        if b["status"] in aoai.TERMINAL:
            return b
        time.sleep(0.1)  # polling the emulator; the loop decides
    raise AssertionError("batch did not end")


def _ledger_requests(settings: Settings, made: list[tuple[str, str]]) -> list[str]:
    """The methods of the requests made to the runs table, which holds the ledgers."""
    table = f"/{AZURITE_ACCOUNT}/{settings.runs_table}"
    return [
        method
        for method, path in made
        if path in (table, f"{table}()") or path.startswith(f"{table}(")
    ]


def _record(settings: Settings) -> ledger.Ledger:
    return ledger.Ledger.load(_ctx(settings), f"{RUN}/c0/r0")


def test_a_blob_batch_reads_the_staged_chunk_sends_no_metadata_and_is_created_once(env):
    settings, blob_service, em = env
    ref = _chunk(settings, blob_service, requests_file(3))
    first = _submit(settings, ref)
    again = _submit(settings, ref)  # a crash after create: the re-run finds it in the ledger
    assert first["status"] == again["status"] == "created"
    assert first["batch"]["id"] == again["batch"]["id"]
    batch = first["batch"]
    chunk_url = blob_service.get_blob_client(ref.container, ref.path).url
    assert batch["input_blob"] == chunk_url
    assert batch["input_file_id"] is None and batch["metadata"] == {}
    folder = batch["output_folder"]
    assert folder.endswith(f"/{settings.service_output_container}/{RUN}/c0-r0-a0")
    state = _state(em)
    assert state["files"] == 0, "blob mode uploads nothing"
    assert sum(state["batches"].values()) == 1
    assert _listings(em) == 0
    assert (_record(settings).batch(0) or {}).get("output_folder") == folder
    assert _record(settings).upload is None


def test_a_lost_blob_create_is_found_by_its_attempts_output_folder(env):
    """The worker died between the create and the ledger write: the re-run lists back to the
    create's start and matches the attempt's folder (there is no metadata to match)."""
    settings, blob_service, em = env
    ref = _chunk(settings, blob_service, requests_file(2))
    first = _submit(settings, ref, attempt=0)["batch"]
    second = _submit(settings, ref, attempt=1)["batch"]  # a new attempt: a folder of its own
    assert first["output_folder"].endswith("-a0") and second["output_folder"].endswith("-a1")
    record = _record(settings)
    record.set_batch(1, id=None)
    again = _submit(settings, ref, attempt=1)
    assert again["batch"]["id"] == second["id"], "recovery matched another attempt's batch"
    assert sum(_state(em)["batches"].values()) == 2
    assert _listings(em) == 1
    assert (_record(settings).batch(1) or {}).get("id") == second["id"]


def test_a_first_attempt_writes_its_ledger_without_reading_it_and_a_rerun_reads_it(
    env, monkeypatch
):
    settings, blob_service, em = env
    ref = _chunk(settings, blob_service, requests_file(3))
    made = storage_requests(monkeypatch)
    first = _submit(settings, ref)
    assert _ledger_requests(settings, made) == ["POST", "PUT"], "started, then the id: no read"
    made.clear()
    again = _submit(settings, ref)  # an earlier run left the ledger: its create-only write fails
    assert _ledger_requests(settings, made) == ["POST", "GET"]
    assert again["batch"]["id"] == first["batch"]["id"]
    assert sum(_state(em)["batches"].values()) == 1


def test_a_missing_staged_chunk_is_not_looked_up_first_and_the_service_fails_its_batch(
    env, monkeypatch
):
    """The staged chunk is the run's own, written once: submit does not read it before the
    create. Should it be gone, the service's validation fails the batch, with its reason."""
    settings, _, em = env
    ref = RunLayout.of(settings, SOURCE, RUN).work("chunks/c0009.jsonl")
    made = storage_requests(monkeypatch)
    out = _submit(settings, ref)
    assert out["status"] == "created"
    assert not [path for _, path in made if path.endswith("c0009.jsonl")]
    batch = _wait_terminal(settings, out["batch"]["id"])
    assert batch["status"] == "failed"
    (problem,) = batch["errors"]
    assert "does not exist" in problem["message"]
    assert sum(_state(em)["batches"].values()) == 1


def test_outputs_come_from_the_service_folder_and_cleanup_removes_it(env, monkeypatch):
    settings, blob_service, _ = env
    data = requests_file(4)
    ref = _chunk(settings, blob_service, data)
    created = _submit(settings, ref)["batch"]
    batch = _wait_terminal(settings, created["id"])
    assert batch["status"] == "completed"
    assert batch["output_blob"] and batch["output_blob"].startswith(batch["output_folder"] + "/")
    chunk = {"index": 0, "round": 0, "input": ref.to_dict()}
    made = storage_requests(monkeypatch)
    out = collection.collect_batch(_ctx(settings), chunk, batch, resubmit=True)
    assert out["counts"]["succeeded"] == 4 and out["file_ids"] == []
    # the input once (positions), the results; every request succeeded: no errors blob to look
    # for, no input to read back
    reads = [path.rsplit("/", 1)[-1] for method, path in made if method == "GET"]
    assert reads == [ref.path.rsplit("/", 1)[-1], "results.jsonl"]
    results = [
        orjson.loads(line)["custom_id"]
        for p in out["parts"]["results"]
        for _, line in read_run(
            storage.read_blocks(storage.blob(settings.storage, BlobRef.from_dict(p)))
        )
    ]
    assert sorted(results) == [f"task-{i}" for i in range(4)]
    svc = blob_service.get_container_client(settings.service_output_container)
    written = sorted(b.name for b in svc.list_blobs())
    assert written and all(n.startswith(f"{RUN}/c0-r0-a0/") for n in written)
    blob_service.get_blob_client(settings.input_container, SOURCE).upload_blob(data)
    made.clear()
    finalize.cleanup_run(
        _ctx(settings),
        [{"batches": [{**batch, "round": 0}]}],
        "completed",
        None,
    )
    cleanup = list(made)
    assert list(svc.list_blobs()) == [], "the service's output folder was left behind"
    # the run's ledgers, in one query of its partition, are deleted last
    assert _ledger_requests(settings, cleanup) == ["GET", "DELETE"]
    assert cleanup[-1][0] == "DELETE" and "ledger-run-1" in unquote(cleanup[-1][1])
    assert ledger.of_run(_ctx(settings)) == []


def test_an_error_blob_the_service_named_but_never_wrote_reads_as_empty(env):
    settings, blob_service, _ = env
    svc = blob_service.get_container_client(settings.service_output_container)
    url = f"{svc.url}/{RUN}/c0-r0-a0/guid/errors.jsonl"
    assert list(collection.service_output(settings, url)) == []


def test_a_results_blob_missing_while_requests_completed_is_an_error_not_empty_results(env):
    """Paid results must not turn into 'nothing ran' (and a resubmission): the step fails, the
    activity is retried, and the batch and its folder stay."""
    settings, blob_service, _ = env
    svc = blob_service.get_container_client(settings.service_output_container)
    url = f"{svc.url}/{RUN}/c0-r0-a0/guid/results.jsonl"
    with pytest.raises(collection.OutputMissing, match="reports 3 completed requests"):
        list(collection.service_output(settings, url, expected=3))
    ref = _chunk(settings, blob_service, requests_file(3))
    chunk = {"index": 0, "round": 0, "input": ref.to_dict()}
    batch = {
        "id": "batch_1",
        "status": "completed",
        "output_folder": f"{svc.url}/{RUN}/c0-r0-a0",
        "output_blob": url,
        "request_counts": {"total": 3, "completed": 3, "failed": 0},
    }
    with pytest.raises(collection.OutputMissing):
        collection.collect_batch(_ctx(settings), chunk, batch, resubmit=True)
    svc.upload_blob(f"{RUN}/c0-r0-a0/guid/results.jsonl", b"{}\n")
    assert b"".join(collection.service_output(settings, url, expected=3)) == b"{}\n"


@pytest.mark.parametrize(
    "url",
    [
        "https://elsewhere.blob.core.windows.net/x/results.jsonl",
        "{work}/run-1/chunks/c0000.jsonl",  # our account, but not the service's container
        "{svc}/run-1/../other/results.jsonl",
        "{svc}/",
        "{svc}x/run-1/results.jsonl",  # a container whose name only starts like ours
    ],
)
def test_a_batch_output_outside_the_service_container_is_never_read(env, url):
    """`output_blob` comes from outside: only SERVICE_OUTPUT_CONTAINER is read."""
    settings, blob_service, _ = env
    svc = blob_service.get_container_client(settings.service_output_container).url
    work = blob_service.get_container_client(settings.work_container).url
    with pytest.raises(ValueError, match="batch output"):
        collection.service_ref(settings, url.format(svc=svc, work=work))


def test_the_service_ref_of_an_encoded_name_is_the_blob_it_names(env):
    settings, blob_service, _ = env
    svc = blob_service.get_container_client(settings.service_output_container)
    name = f"{RUN}/c0-r0-a0/g uid/résults.jsonl"
    url = svc.get_blob_client(name).url  # percent-encoded, as the service echoes our folder
    assert collection.service_ref(settings, url) == BlobRef(settings.service_output_container, name)
