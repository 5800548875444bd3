"""The start of a run against Azurite: what validation leaves in the run's work area, and the
chunks that come of it."""

from __future__ import annotations

import os
from typing import Any

import orjson
import pytest

from batching.context import RunContext
from batching.settings import Settings
from batching.steps import intake
from batching.storage import blobs as storage
from tests.support.stack import containers, requests_file, storage_requests


def _run(azurite: Any, data: bytes, **env: str) -> tuple[RunContext, dict[str, Any], list[str]]:
    """Validate `data` as a run's input; the context, the summary and the work area's names."""
    tag = f"intake{os.urandom(4).hex()}"
    settings = Settings.from_env(
        {
            "AZURE_OPENAI_ENDPOINT": "http://127.0.0.1:9",
            "BATCH_STORAGE": azurite.connection_string,
            **containers(tag),
            **env,
        }
    )
    storage.ensure_containers(settings.storage, settings.containers)
    service = storage.blob_service(settings.storage)
    blob = service.get_container_client(settings.input_container).upload_blob("a.jsonl", data)
    etag = blob.get_blob_properties().etag
    source = {"container": settings.input_container, "path": "a.jsonl", "etag": etag}
    ctx = RunContext.of(settings, "run-1", source)
    summary = intake.validate_input(ctx)
    work = service.get_container_client(settings.work_container)
    names = [n.rsplit("/", 1)[-1] for n in work.list_blob_names()]
    return ctx, summary, sorted(names)


def test_a_file_that_is_its_own_chunk_leaves_only_its_snapshot(azurite):
    ctx, summary, names = _run(azurite, requests_file(5))
    assert summary["valid"] and names == ["input.jsonl"]  # no validation report: nobody reads it
    (chunk,) = intake.prepare_chunks(ctx, summary)
    assert chunk["input"] == ctx.layout.snapshot.to_dict() and chunk["requests"] == 5
    assert intake.one_chunk(ctx, summary) == [chunk]


@pytest.mark.parametrize(
    ("data", "env"),
    [
        (requests_file(5), {"MAX_REQUESTS_PER_BATCH": "2"}),  # three chunks
        (requests_file(5) + b'{"custom_id": "broken"}\n', {"INVALID_LINES": "skip"}),
        (requests_file(5).replace(b"\n", b"\r\n"), {}),  # chunks are the normalised lines
    ],
    ids=["chunks", "skipped-line", "crlf"],
)
def test_a_file_cut_into_chunk_blobs_keeps_its_report_for_the_splitter(azurite, data, env):
    ctx, summary, names = _run(azurite, data, **env)
    assert summary["valid"] and names == ["input.jsonl", intake.REPORT]
    assert intake.one_chunk(ctx, summary) is None
    chunks = intake.prepare_chunks(ctx, summary)
    assert sum(c["requests"] for c in chunks) == 5
    assert all(c["input"] != ctx.layout.snapshot.to_dict() for c in chunks)


def test_an_invalid_file_keeps_its_report_for_the_rejection(azurite):
    ctx, summary, names = _run(azurite, requests_file(2) + b"not json\n")
    assert not summary["valid"] and names == ["input.jsonl", intake.REPORT]
    rejected = intake.reject_input(ctx, summary)
    report = orjson.loads(
        storage.blob(ctx.settings.storage, ctx.layout.error("report.json"))
        .download_blob()
        .readall()
    )
    assert rejected["reason"] == summary["reason"]
    assert [p["line"] for p in report["problems"]] == [3]


def _kept(ctx: RunContext) -> list[str]:
    """The names in the input and work containers after keeping the input."""
    service = storage.blob_service(ctx.settings.storage)
    return sorted(
        f"{container}/{name}"
        for container in (ctx.settings.input_container, ctx.settings.work_container)
        for name in service.get_container_client(container).list_blob_names()
    )


def test_keep_input_moves_the_snapshot_in_three_requests_and_repeats_safely(
    azurite: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, _, _ = _run(azurite, requests_file(3))
    dest = ctx.layout.output("input.jsonl")
    made = storage_requests(monkeypatch)
    assert intake.keep_input(ctx, dest) == dest.to_dict()
    # copy, delete the snapshot, delete the original: no look first
    assert [method for method, _ in made] == ["PUT", "DELETE", "DELETE"]
    assert _kept(ctx) == []
    kept = storage.blob(ctx.settings.storage, dest).download_blob().readall()
    assert kept == requests_file(3)
    assert intake.keep_input(ctx, dest) == dest.to_dict()  # a repeat finds it moved
    assert storage.blob(ctx.settings.storage, dest).download_blob().readall() == kept


def test_keep_input_without_a_snapshot_moves_the_original(azurite: Any) -> None:
    ctx, _, _ = _run(azurite, requests_file(2))
    storage.blob(ctx.settings.storage, ctx.layout.snapshot).delete_blob()  # staged before them
    dest = ctx.layout.output("input.jsonl")
    assert intake.keep_input(ctx, dest) == dest.to_dict()
    assert _kept(ctx) == []
    assert storage.blob(ctx.settings.storage, dest).download_blob().readall() == requests_file(2)
    # an original replaced meanwhile is a new file: nothing is kept, the new upload stays
    ctx, _, _ = _run(azurite, requests_file(2))
    storage.blob(ctx.settings.storage, ctx.layout.snapshot).delete_blob()
    storage.blob(ctx.settings.storage, ctx.layout.source).upload_blob(b"new\n", overwrite=True)
    assert intake.keep_input(ctx, ctx.layout.output("input.jsonl")) is None
    assert _kept(ctx) == [f"{ctx.settings.input_container}/a.jsonl"]
