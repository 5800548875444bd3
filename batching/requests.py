"""What each activity receives: one TypedDict per activity, shared by the orchestrator and it.

The Functions worker refuses a binding whose annotation is not a class (`dict[str, Any]` is an
alias, not a class: "binding payload has invalid non-type annotation"), and the extension hands
activities plain JSON, so these TypedDicts are the honest annotation: real classes the worker
accepts, exactly the dicts that arrive, and keys that mypy checks at both ends. The history keeps
the same JSON as before, so runs recorded earlier replay unchanged.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

JsonObject = dict[str, Any]


class RunRequest(TypedDict):
    """What every activity of a run receives."""

    run_id: str
    source: JsonObject  # container, path, etag, size of the input blob
    received_at: NotRequired[str | None]  # when the upload arrived: the runs index's order


def run_part(request: RunRequest) -> RunRequest:
    """The part every request of a run shares: to build one activity's request in another
    (the check that collects, the cleanup that writes metadata.json)."""
    return {
        "run_id": request["run_id"],
        "source": request["source"],
        "received_at": request.get("received_at"),
    }


class ValidateRequest(RunRequest):
    pass


class RejectRequest(RunRequest):
    summary: JsonObject


class PrepareRequest(RunRequest):
    summary: JsonObject


class AdmitRequest(RunRequest):
    key: str
    deployment: str | None
    tokens: int
    limits: JsonObject
    arrived: str | None


class SubmitRequest(RunRequest):
    key: str
    attempt: int
    input: JsonObject  # the blob to submit (BlobRef.to_dict())
    endpoint: str
    tokens: int


class Collection(TypedDict):
    """How a chunk's ended batch is collected (the orchestrator's decisions)."""

    chunk: JsonObject  # its index, round and input (BlobRef.to_dict()) at least
    resubmit: bool  # the run allows a resubmission round (none for a failed batch: `resubmits`)
    final_results: NotRequired[bool]  # its results may be the run's results.jsonl as they are


class BatchRequest(RunRequest):
    """Check or cancel one batch; a check with `collect` collects the batch if it ended."""

    batch_id: str
    key: NotRequired[str | None]
    collect: NotRequired[CheckCollection]


class CheckCollection(Collection):
    cancelling: bool  # the run is being cancelled: even a quota refusal is collected


class CollectRequest(RunRequest, Collection):
    batch: JsonObject


class ChunksRequest(RunRequest):
    chunks: list[JsonObject]


class ErrorsRequest(ChunksRequest):
    summary: JsonObject


class TableRequest(ChunksRequest):
    columns: list[str]


class MetadataRequest(ChunksRequest):
    summary: JsonObject
    status: str
    finished_at: str


class RunEnd(TypedDict):
    """What metadata.json needs besides the chunks and status that cleanup has already."""

    summary: JsonObject
    finished_at: str


class CleanupRequest(ChunksRequest):
    status: str
    reason: str | None
    metadata: NotRequired[RunEnd]  # metadata.json is the run's only write: written first


class FailureRequest(RunRequest):
    """A run failed on an unexpected error: its detail, for metadata.json."""

    detail: str
    phase: str
    failed_at: str
