"""The status vocabularies, each declared once: batches (the service's), chunks and runs (ours).

The API, the dashboard (served the lists by the API), the CLI, the orchestrator and the tests
all take them from here. Pure: no I/O, safe for orchestrator code.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class BatchStatus(StrEnum):
    """An Azure OpenAI batch's status (compare case-insensitively: `BatchStatus.of`)."""

    VALIDATING = "validating"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"

    @classmethod
    def of(cls, value: str) -> BatchStatus:
        return cls(value.lower())


BATCH_TERMINAL = frozenset(
    {BatchStatus.COMPLETED, BatchStatus.FAILED, BatchStatus.EXPIRED, BatchStatus.CANCELLED}
)


def collects_now(batch: Mapping[str, Any], cancelling: bool) -> bool:
    """Whether a checked batch's outputs are collected now: it ended, and not on a quota refusal
    that the run submits again (a run being cancelled collects even that one). The orchestrator
    and the status check that collects in the same step (`check_batch`) decide by this alone."""
    ended = str(batch.get("status")).lower() in BATCH_TERMINAL
    return ended and (cancelling or not batch.get("quota_message"))


def resubmits(batch: Mapping[str, Any], allowed: bool) -> bool:
    """Whether a collection writes a retry input: when the run allows another round, and the
    batch did not fail as a whole (a failed batch's requests never ran; they are reported)."""
    return allowed and batch.get("status") != BatchStatus.FAILED


class ChunkState(StrEnum):
    """Where one chunk of a run is: a small state machine in the run orchestration."""

    ADMISSION = "admission"  # waiting for capacity (MAX_ACTIVE_BATCHES, MAX_ENQUEUED_TOKENS)
    SUBMITTING = "submitting"  # upload and create, again after a quota refusal
    RUNNING = "running"  # its batch is in the service
    COLLECTING = "collecting"  # its batch ended: outputs to fetch
    DONE = "done"
    FAILED = "failed"


CHUNK_ENDED = frozenset({ChunkState.DONE, ChunkState.FAILED})


class RunStatus(StrEnum):
    """How a run is, or ended, as the API, the CLI and metadata.json show it."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    INVALID = "invalid"  # the input failed validation: nothing was sent
    ERROR = "error"  # the orchestration itself failed
    TERMINATED = "terminated"


RUN_ENDED = frozenset(RunStatus) - {RunStatus.PENDING, RunStatus.RUNNING}
# Ended runs a user may retry: every ended run but a completed one.
RUN_RETRYABLE = RUN_ENDED - {RunStatus.COMPLETED}
