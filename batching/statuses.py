"""The status vocabularies, each declared once: batches (the service's), chunks and runs (ours).

The API, the dashboard (served the lists by the API), the CLI, the orchestrator and the tests
all take them from here. Pure: no I/O, safe for orchestrator code.
"""

from __future__ import annotations

from enum import StrEnum


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
