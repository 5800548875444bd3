"""Collecting a finished batch: its output and error files sorted into work files.

The service's outputs (files of the Files API, or in blob mode the blobs it wrote to
SERVICE_OUTPUT_CONTAINER) are streamed straight into blobs of the run's work area, so a crash
after this step loses nothing, and a re-run rewrites the same blobs. The service's outputs are
only deleted at cleanup, after the run's outputs are written.

Results and failures are written as runs sorted by input position, and a resubmission's input
with the positions of its lines beside it (`batching.steps.ordering`), so the outputs can be merged
back into input order at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import unquote

from azure.core.exceptions import ResourceNotFoundError

from batching.context import RunContext
from batching.service import aoai
from batching.settings import Settings
from batching.steps.ordering import KeyedLines, Positions, SortedRuns
from batching.steps.results import collect
from batching.storage import blobs as storage
from batching.storage.refs import BlobRef


def collect_batch(
    ctx: RunContext,
    chunk: dict[str, Any],
    batch: dict[str, Any],
    resubmit: bool,
    final_results: bool = False,
) -> dict[str, Any]:
    """Sort the batch's lines into results, failures and (when `resubmit`) a retry input.

    With `final_results` (the run's one chunk, in its first round, with no table to write),
    when nothing is resubmitted and the results fit one sorted run, they are written straight
    to the run folder's results.jsonl, in input order: no work file written, read back and
    deleted, and no `write_results` step (`counts.results_written`). A re-run rewrites it.
    """
    settings, layout = ctx.settings, ctx.layout
    prefix = f"c{chunk['index']:04d}/r{chunk['round']}"
    run_refs: dict[str, list[BlobRef]] = {"results": [], "failures": []}

    def open_run(kind: str) -> Callable[[int], storage.BlobWriter]:
        def open_one(i: int) -> storage.BlobWriter:
            ref = layout.work(f"{prefix}/{kind}-{i:03d}.jsonl")
            run_refs[kind].append(ref)
            return storage.BlobWriter(ctx.blob(ref))

        return open_one

    runs = {kind: SortedRuns(open_run(kind)) for kind in run_refs}
    retry_ref = layout.work(f"{prefix}/retry.jsonl")
    # The next round's input: written once, as a chunk is (the service may be reading it).
    retry = KeyedLines(
        storage.BlobWriter(ctx.blob(retry_ref), create_only=True),
        storage.BlobWriter(ctx.blob(_positions_ref(retry_ref)), create_only=True),
    )
    files: list[str] = []
    outputs: Iterable[Iterator[bytes]]
    if batch.get("output_folder"):  # blob mode: the service wrote them to our storage
        # Paid results are never read as nothing: with requests completed, the results blob
        # must be there (a missing one fails the step, which is retried, and keeps the batch).
        counts = batch.get("request_counts") or {}
        completed = int(counts.get("completed") or 0)
        # A completed batch with no failed request wrote no errors blob (it is named anyway), so
        # it is not looked for. Were a request missing from the results after all, reading the
        # input back finds it (`collect`): it is resubmitted or failed, never lost.
        errors = batch.get("status") != "completed" or int(counts.get("failed") or 0) > 0
        named = (
            (batch.get("output_blob"), completed),
            (batch.get("error_blob") if errors else None, 0),
        )
        outputs = (service_output(settings, u, expected) for u, expected in named if u)
    else:
        client = aoai.client(settings) if batch.get("id") else None
        files = [f for f in (batch.get("output_file_id"), batch.get("error_file_id")) if f]
        outputs = (aoai.file_content(client, f) for f in files if client is not None)
    input_ref = BlobRef.from_dict(chunk["input"])

    def chunk_input() -> Iterator[bytes]:
        return storage.read_blocks(ctx.blob(input_ref))

    outcome = collect(
        outputs,
        chunk_input(),
        runs["results"],
        runs["failures"],
        retry,
        positions=Positions.of_input(chunk_input(), _round_positions(settings, chunk)),
        round_no=chunk["round"],
        batch_id=str(batch.get("id")),
        resubmit=resubmit,
        **_never_submitted(batch),
    )
    written: dict[str, Any] = {}
    if final_results and not outcome.retry:
        dest = layout.output("results.jsonl")
        size = runs["results"].close_unkeyed(storage.BlobWriter(ctx.blob(dest)))
        if size is not None:
            written = {"results_written": {"results": dest.to_dict(), "bytes": size}}
    for sorted_runs in runs.values():
        sorted_runs.close()
    if outcome.retry:  # nothing to resubmit: no retry input (its writers hold nothing yet)
        retry.close()
    return {
        "counts": outcome.to_dict(),
        # sorted runs by input position (batching.steps.ordering), merged at the end
        "parts": {
            "results": [r.to_dict() for r in run_refs["results"]],
            "failures": [r.to_dict() for r in run_refs["failures"]],
            "keyed": True,
            **written,
        },
        "retry_input": retry_ref.to_dict() if outcome.retry else None,
        "file_ids": files,
    }


def service_ref(settings: Settings, url: str) -> BlobRef:
    """The blob of SERVICE_OUTPUT_CONTAINER a batch's `output_blob` / `error_blob` names.

    The URL comes from outside: only a blob in that container of the data account is read
    (ValueError otherwise), never whatever a URL points at."""
    container = storage.blob_service(settings.storage).get_container_client(
        settings.service_output_container
    )
    prefix = container.url.rstrip("/") + "/"
    if not url.startswith(prefix):
        raise ValueError("a batch output outside SERVICE_OUTPUT_CONTAINER")
    path = unquote(url[len(prefix) :].split("?", 1)[0])
    if not path or any(part in ("", ".", "..") for part in path.split("/")):
        raise ValueError("a batch output with a malformed path")
    return BlobRef(settings.service_output_container, path)


class OutputMissing(RuntimeError):
    """A batch reports completed requests, but the blob that should hold them is not there."""


def service_output(settings: Settings, url: str, expected: int = 0) -> Iterator[bytes]:
    """Stream one of the service's output blobs; nothing when it was never written (the service
    names both blobs whether or not it wrote them), unless it holds `expected` requests."""
    client = storage.blob(settings.storage, service_ref(settings, url))
    try:
        download = client.download_blob(max_concurrency=1)
    except ResourceNotFoundError:
        if expected:
            raise OutputMissing(
                f"the batch reports {expected} completed requests, but its results blob is "
                "missing from SERVICE_OUTPUT_CONTAINER"
            ) from None
        return
    yield from download.chunks()


def _positions_ref(input_ref: BlobRef) -> BlobRef:
    """Where the positions of a resubmission input's lines are: beside it."""
    return BlobRef(input_ref.container, input_ref.path.removesuffix(".jsonl") + ".positions")


def _round_positions(settings: Settings, chunk: dict[str, Any]) -> Iterator[bytes] | None:
    """A resubmission round's positions file; None in the first round (lines are 0, 1, ...)."""
    if not chunk["round"]:
        return None
    client = storage.blob(settings.storage, _positions_ref(BlobRef.from_dict(chunk["input"])))
    try:
        return iter([client.download_blob().readall()])  # 4 bytes a request of the round
    except ResourceNotFoundError:
        return None  # a run collected before positions were kept: that round's own order


def _never_submitted(batch: dict[str, Any]) -> dict[str, str]:
    """A chunk that never became a batch (quota exhausted, refused): why nothing of it ran."""
    reasons = "; ".join(str(e.get("message") or e.get("code")) for e in batch.get("errors") or [])
    if batch.get("id") or not reasons:
        return {}
    return {"not_run_reason": f"never submitted: {reasons}"}
