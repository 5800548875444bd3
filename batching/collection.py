"""Collecting a finished batch: its output and error files sorted into work files.

The service's files are streamed straight into blobs of the run's work area, so a crash after
this step loses nothing, and a re-run rewrites the same blobs. The Azure OpenAI files are only
deleted at cleanup, after the run's outputs are written.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from batching import aoai, storage
from batching.layout import RunLayout
from batching.results import collect
from batching.settings import Settings
from batching.storage import BlobRef


def collect_batch(
    settings: Settings,
    run_id: str,
    source: dict[str, Any],
    chunk: dict[str, Any],
    batch: dict[str, Any],
    resubmit: bool,
) -> dict[str, Any]:
    """Sort the batch's lines into results, failures and (when `resubmit`) a retry input."""
    layout = RunLayout.of(settings, source["path"], run_id)
    prefix = f"c{chunk['index']:04d}/r{chunk['round']}"
    refs = {
        name: layout.work(f"{prefix}/{name}.jsonl") for name in ("results", "failures", "retry")
    }
    writers = {
        name: storage.BlobWriter(storage.blob(settings.storage, ref)) for name, ref in refs.items()
    }
    client = aoai.client(settings) if batch.get("id") else None
    files = [f for f in (batch.get("output_file_id"), batch.get("error_file_id")) if f]
    outputs: Iterable[Iterator[bytes]] = (
        aoai.file_content(client, f) for f in files if client is not None
    )
    chunk_input = storage.read_blocks(
        storage.blob(settings.storage, BlobRef.from_dict(chunk["input"])), chunk.get("etag")
    )
    outcome = collect(
        outputs,
        chunk_input,
        writers["results"],
        writers["failures"],
        writers["retry"],
        round_no=chunk["round"],
        batch_id=str(batch.get("id")),
        resubmit=resubmit,
        **_never_submitted(batch),
    )
    for w in writers.values():
        w.close()
    return {
        "counts": outcome.to_dict(),
        "parts": {"results": refs["results"].to_dict(), "failures": refs["failures"].to_dict()},
        "retry_input": refs["retry"].to_dict() if outcome.retry else None,
        "file_ids": files,
    }


def _never_submitted(batch: dict[str, Any]) -> dict[str, str]:
    """A chunk that never became a batch (quota exhausted, refused): why nothing of it ran."""
    reasons = "; ".join(str(e.get("message") or e.get("code")) for e in batch.get("errors") or [])
    if batch.get("id") or not reasons:
        return {}
    return {"not_run_reason": f"never submitted: {reasons}"}
