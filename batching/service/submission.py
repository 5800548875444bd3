"""Submitting a chunk as a batch, and watching it: each step safe to run again after a crash.

Files mode uploads the chunk (named after its run, chunk and round) and creates a batch with a
key (run, chunk, round, attempt) in its metadata. Blob mode creates the batch straight from the
staged chunk with an output folder of its own per attempt (the service takes no metadata there).
Each create is recorded in the run's ledger (`batching.service.ledger`) before and after it is
made, so an activity re-run after its result was lost reuses what it created instead of paying
twice, without listing the account. The name, the key or the folder let the recovery path (a
create started, its id never recorded) find it by listing back to when it started."""

from __future__ import annotations

import posixpath
from typing import IO, Any, cast

import openai

from batching.context import RunContext
from batching.requests import SubmitRequest
from batching.service import aoai, ledger
from batching.service.admission import release
from batching.service.ledger import Ledger, LedgerExists
from batching.settings import Settings
from batching.storage import blobs as storage
from batching.storage.refs import BlobRef


def upload_name(key: str) -> str:
    """`run/c0/r0` -> `run-c0-r0.jsonl`: unique per upload, so it can be looked up."""
    return key.replace("/", "-") + ".jsonl"


def submit_batch(ctx: RunContext, request: SubmitRequest) -> dict[str, Any]:
    """Create the batch of one chunk round (once per attempt), recorded in the run's ledger;
    in files mode upload its input first (once per round).

    Returns {"status": "created", "batch"} | {"status": "pending"} (file still processing) |
    {"status": "quota", "message"} | {"status": "error", "message"} (will not work if retried).
    """
    key = request["key"]
    # In blob mode a round's first attempt almost never finds a ledger (only a re-run of this
    # activity does), so it is not read first: its first write, create-only, finds out. (Files
    # mode is called again while its upload is processed, and that call finds one.)
    new = int(request["attempt"]) == 0 and ctx.settings.blob_mode
    try:
        return _submit(ctx, request, Ledger.new(ctx, key) if new else Ledger.load(ctx, key))
    except LedgerExists:
        return _submit(ctx, request, Ledger.load(ctx, key))


def _submit(ctx: RunContext, request: SubmitRequest, record: Ledger) -> dict[str, Any]:
    settings = ctx.settings
    c = aoai.client(settings)
    run_id, key, attempt = ctx.run_id, request["key"], int(request["attempt"])
    batch_key = f"{key}/a{attempt}"
    folder = _folder_url(ctx, key, attempt) if settings.blob_mode else None
    found = _recorded_batch(c, record, attempt, batch_key, folder)
    if found is not None:
        if found["status"] == "quota":
            release(settings, key)
        return found
    ref = BlobRef.from_dict(request["input"])
    if folder is not None:
        # The chunk as the run staged it (written once, never again); the service reads it
        # with its own identity when the batch validates, and fails the batch if it is missing
        # or changed since the create (`input_modified`), so it is not looked up first.
        target, metadata = aoai.BatchInput(blob_url=ctx.blob(ref).url, output_folder=folder), None
    else:
        uploaded = _uploaded(c, settings, record, ref, key)
        if uploaded["status"] == "refused":
            return {"status": "error", "message": uploaded["message"]}
        if uploaded["status"] == "error":
            details = uploaded.get("status_details")
            return {"status": "error", "message": f"upload failed: {details}"}
        if uploaded["status"] != "processed":
            return {"status": "pending"}
        target = aoai.BatchInput(file_id=uploaded["id"])
        source = ctx.source
        metadata = {
            "key": batch_key,
            "run_id": run_id[:512],
            "source": posixpath.join(source["container"], source["path"])[-512:],
            "tokens": str(int(request["tokens"])),
        }
    started = {"output_folder": folder} if folder else {}
    record.set_batch(attempt, started_at=ledger.now_iso(), id=None, **started)
    try:
        batch = aoai.create_batch(
            c, target, request["endpoint"], metadata, settings.file_expiry_seconds
        )
    except aoai.QuotaExceeded as e:
        quota = {"status": "quota", "message": str(e)[: ledger.MESSAGE_CHARS]}
        record.set_batch(attempt, refused=quota)
        release(settings, key)
        return quota
    except openai.BadRequestError as e:
        refused = {"status": "error", "message": f"batch refused: {_message(e)}"}
        record.set_batch(attempt, refused=refused)
        return refused
    record.set_batch(attempt, id=batch["id"])
    return {"status": "created", "batch": batch}


def _folder_url(ctx: RunContext, key: str, attempt: int) -> str:
    """Blob mode: the URL of this attempt's output folder in SERVICE_OUTPUT_CONTAINER."""
    return ctx.blob(ctx.layout.service_folder(key, attempt)).url


def _uploaded(c: Any, settings: Settings, record: Ledger, ref: BlobRef, key: str) -> dict[str, Any]:
    """Files mode: the round's upload, made once and processed (or its status so far)."""
    name = upload_name(key)
    uploaded = _recorded_upload(c, record, name)
    if uploaded is None:
        client = storage.blob(settings.storage, ref)
        size = int(client.get_blob_properties().size)
        record.set_upload(name=name, started_at=ledger.now_iso(), id=None, refused=None)
        try:
            uploaded = aoai.upload(
                c,
                name,
                cast(IO[bytes], storage.BlobReader(client, size)),
                settings.file_expiry_seconds,
            )
        except openai.BadRequestError as e:
            message = f"upload refused: {_message(e)}"
            record.set_upload(refused=message)
            return {"status": "refused", "message": message}
        record.set_upload(id=uploaded["id"])
    # An upload still being processed: the orchestration waits on a durable timer and calls
    # again (the ledger has the upload), instead of an activity sleeping in a worker meanwhile.
    return uploaded


def _recorded_batch(
    c: Any, record: Ledger, attempt: int, batch_key: str, folder: str | None
) -> dict[str, Any] | None:
    """The outcome of this attempt's create if the ledger shows one was made; None: create."""
    entry = record.batch(attempt)
    if entry is None:
        return None
    if entry.get("id"):
        return {"status": "created", "batch": aoai.get_batch(c, entry["id"])}
    if entry.get("refused"):
        return dict(entry["refused"])
    # Recovery: the create started but its id was never recorded. Blob mode has no metadata:
    # the attempt's own output folder names its batch.
    since = ledger.since(entry["started_at"])
    batch = (
        aoai.find_blob_batch_since(c, folder, since)
        if folder
        else aoai.find_batch_since(c, batch_key, since)
    )
    if batch is None:
        return None
    record.set_batch(attempt, id=batch["id"])
    return {"status": "created", "batch": batch}


def _recorded_upload(c: Any, record: Ledger, name: str) -> dict[str, Any] | None:
    """The upload the ledger shows (None: upload). An upload that failed processing is
    returned too: its batch cannot be created, which the caller reports."""
    entry = record.upload
    if entry is None:
        return None
    if entry.get("id"):
        try:
            return aoai.get_file(c, entry["id"])
        except openai.NotFoundError:
            return None  # expired or deleted meanwhile (a long quota wait): upload again
    if entry.get("refused"):
        return None
    # Recovery: the upload started but its id was never recorded.
    found = aoai.find_file_since(c, name, ledger.since(entry["started_at"]))
    if found is not None:
        record.set_upload(id=found["id"])
    return found


def check_batch(settings: Settings, batch_id: str, key: str | None = None) -> dict[str, Any]:
    """The batch's state; a terminal batch frees its admission slot."""
    batch = aoai.get_batch(aoai.client(settings), batch_id)
    return _terminal(settings, batch, key)


def cancel_batch(settings: Settings, batch_id: str, key: str | None = None) -> dict[str, Any]:
    batch = aoai.cancel_batch(aoai.client(settings), batch_id)
    return _terminal(settings, batch, key)


def _terminal(settings: Settings, batch: dict[str, Any], key: str | None) -> dict[str, Any]:
    if batch["status"] in aoai.TERMINAL:
        batch["quota_message"] = aoai.quota_failure(batch)
        if key:
            release(settings, key)
    return batch


def _message(e: openai.APIStatusError) -> str:
    """The service's message, as long as the ledger records it."""
    body = e.body if isinstance(e.body, dict) else {}
    err = body.get("error", body) if isinstance(body, dict) else {}
    text = str(err.get("message") or e.message) if isinstance(err, dict) else e.message
    return text[: ledger.MESSAGE_CHARS]
