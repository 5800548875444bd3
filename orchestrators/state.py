"""The run orchestration's state, typed, and the pure transitions that move a chunk along.

`RunState` is what the orchestration carries across continue-as-new and `Chunk` is one chunk of
it; both go to and from the same JSON the history always held (`to_json` / `from_json`), so runs
recorded before these types existed replay unchanged, and keys a newer version adds survive a
round trip. Every transition is a pure function of (chunk, activity result, time, config) that
returns the next chunk: no I/O, no clock, no randomness, as orchestrator code must be, and
tested directly (tests/pipeline/test_run_state.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from batching.settings import RunConfig
from batching.statuses import BATCH_TERMINAL, CHUNK_ENDED, ChunkState, collects_now
from orchestrators import policy

JsonObject = dict[str, Any]


class Phase(StrEnum):
    """Where the run is: it is resumed from here after continue-as-new."""

    VALIDATING = "validating"
    RUNNING = "running"
    FINALIZING = "finalizing"


# What a batch that never ran counts, for metadata.json.
NOTHING_RAN: JsonObject = {
    "succeeded": 0,
    "failed": 0,
    "retry": 0,
    "failure_codes": {},
    "usage": {"prompt": 0, "completion": 0, "total": 0, "model": None},
}


@dataclass(frozen=True)
class Chunk:
    """One chunk of a run: its input, its state, its current batch and what it has collected."""

    index: int
    input: JsonObject  # the blob submitted (BlobRef.to_dict())
    requests: int
    state: ChunkState
    bytes: int = 0
    tokens: int = 0
    round: int = 0  # resubmission round
    attempt: int = 0  # quota attempts in this round
    next_at: str | None = None  # ISO time of its next due work
    interval: int = 0  # the current wait between status checks
    batch: JsonObject | None = None  # the service's batch, as last seen
    batches: tuple[JsonObject, ...] = ()  # every ended batch, for metadata.json
    parts: tuple[JsonObject, ...] = ()  # collected outputs, per round
    succeeded: int = 0
    failed: int = 0
    end: str | None = None  # how its last batch ended
    reason: str | None = None
    waiting: str | None = None  # why it waits (quota), for the custom status
    queue_position: int | None = None
    cancel_sent: bool = False
    extra: JsonObject = field(default_factory=dict)  # keys this version does not know

    @property
    def ended(self) -> bool:
        return self.state in CHUNK_ENDED

    @property
    def batch_id(self) -> str | None:
        return (self.batch or {}).get("id")

    def due(self, now: datetime) -> bool:
        return self.next_at is None or datetime.fromisoformat(self.next_at) <= now

    def to_json(self) -> JsonObject:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        extra = data.pop("extra")
        data["state"] = str(self.state)
        data["batches"], data["parts"] = list(self.batches), list(self.parts)
        return {**extra, **data}

    @classmethod
    def from_json(cls, data: JsonObject) -> Chunk:
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values = {k: v for k, v in data.items() if k in known}
        values["state"] = ChunkState(values["state"])
        values["batches"] = tuple(values.get("batches") or ())
        values["parts"] = tuple(values.get("parts") or ())
        return cls(**values, extra={k: v for k, v in data.items() if k not in known})


@dataclass
class RunState:
    """The orchestration's input: everything a run needs to go on after continue-as-new."""

    run_id: str
    source: JsonObject
    config: RunConfig
    phase: Phase = Phase.VALIDATING
    received_at: str | None = None
    attempt: int = 0  # a user's retry of the same upload
    summary: JsonObject | None = None  # the validation summary
    chunks: list[Chunk] = field(default_factory=list)
    ticks: int = 0  # status-check ticks in this execution
    cancel_requested: bool = False
    extra: JsonObject = field(default_factory=dict)

    def to_json(self) -> JsonObject:
        data: JsonObject = {
            **self.extra,
            "run_id": self.run_id,
            "source": self.source,
            "config": self.config.to_json(),
            "phase": str(self.phase),
            "received_at": self.received_at,
            "attempt": self.attempt,
            "ticks": self.ticks,
            "cancel_requested": self.cancel_requested,
        }
        if self.summary is not None:
            data["summary"] = self.summary
        if self.chunks:
            data["chunks"] = [c.to_json() for c in self.chunks]
        return data

    @classmethod
    def from_json(cls, data: JsonObject) -> RunState:
        known = {
            "run_id", "source", "config", "phase", "received_at", "attempt", "summary",
            "chunks", "ticks", "cancel_requested",
        }  # fmt: skip
        return cls(
            run_id=data["run_id"],
            source=data["source"],
            config=RunConfig.from_json(data["config"]),
            phase=Phase(data.get("phase") or Phase.VALIDATING),
            received_at=data.get("received_at"),
            attempt=int(data.get("attempt") or 0),
            summary=data.get("summary"),
            chunks=[Chunk.from_json(c) for c in data.get("chunks") or ()],
            ticks=int(data.get("ticks") or 0),
            cancel_requested=bool(data.get("cancel_requested")),
            extra={k: v for k, v in data.items() if k not in known},
        )

    @property
    def all_ended(self) -> bool:
        return all(c.ended for c in self.chunks)


# --- transitions: (chunk, result, now, config) -> the next chunk --------------------------------


def entry_state(config: RunConfig) -> ChunkState:
    """Chunks queue for admission only when a limit is set."""
    limited = config.max_active_batches or config.max_enqueued_tokens
    return ChunkState.ADMISSION if limited else ChunkState.SUBMITTING


def new_chunk(spec: JsonObject, config: RunConfig) -> Chunk:
    """A chunk from `prepare_chunks`' spec, entering the machine."""
    return Chunk.from_json({**spec, "state": entry_state(config)})


def _at(now: datetime, seconds: int) -> str:
    return (now + timedelta(seconds=seconds)).isoformat()


def admitted(c: Chunk, result: JsonObject, now: datetime, config: RunConfig) -> Chunk:
    if result["granted"]:
        return replace(c, state=ChunkState.SUBMITTING, next_at=None, queue_position=None)
    return replace(
        c, next_at=_at(now, config.admission_wait_seconds), queue_position=result.get("position")
    )


def submitted(c: Chunk, result: JsonObject, now: datetime, config: RunConfig, run_id: str) -> Chunk:
    outcome = result["status"]
    if outcome == "created":
        interval = config.poll_initial_seconds
        return replace(
            c,
            state=ChunkState.RUNNING,
            batch=result["batch"],
            waiting=None,
            interval=interval,
            next_at=_at(now, interval),
        )
    if outcome == "pending":  # the uploaded file is still being processed
        return replace(
            c, next_at=_at(now, min(policy.FILE_PENDING_SECONDS, config.poll_initial_seconds))
        )
    if outcome == "quota":
        return quota_wait(c, result["message"], now, config, run_id)
    return give_up(c, "batch_refused", result["message"])


def checked(
    c: Chunk, result: JsonObject, now: datetime, config: RunConfig, run_id: str, cancelling: bool
) -> Chunk:
    """A status check's answer: keep polling, retry after a quota refusal, or collect. A check
    that saw the batch end may have collected it in the same step (`"collected"` beside the
    batch): the chunk then goes on as its collection says."""
    batch: JsonObject = result["batch"] if "collected" in result else result
    if collects_now(batch, cancelling):
        c = replace(c, batch=batch, state=ChunkState.COLLECTING, next_at=None)
        return collected(c, result["collected"], config) if "collected" in result else c
    if str(batch["status"]).lower() not in BATCH_TERMINAL:
        interval = policy.next_poll_interval(config, c.interval)
        return replace(c, batch=batch, interval=interval, next_at=_at(now, interval))
    # a quota refusal: listed in metadata.json like every batch, though none of its requests ran
    quota = str(batch.get("quota_message"))
    ran_nothing = {**batch, "round": c.round, "outcome": NOTHING_RAN}
    c = replace(c, batch=batch, batches=(*c.batches, ran_nothing))
    return quota_wait(c, quota, now, config, run_id)


def quota_wait(c: Chunk, message: str, now: datetime, config: RunConfig, run_id: str) -> Chunk:
    """token_limit_exceeded: wait with backoff and submit again, until the attempts run out."""
    attempt = c.attempt + 1
    if attempt > config.quota_retry_attempts:
        reason = f"token_limit_exceeded after {attempt} attempts: {message}"
        return give_up(replace(c, attempt=attempt), "token_limit_exceeded", reason)
    delay = policy.quota_backoff(config, attempt, f"{run_id}/c{c.index}")
    # Back through admission when limits are on: the refused batch's slot was released.
    return replace(
        c,
        attempt=attempt,
        state=entry_state(config),
        batch=None,
        next_at=_at(now, delay),
        waiting=f"quota: token_limit_exceeded, attempt {attempt}, retry in {delay}s",
    )


def give_up(c: Chunk, code: str, reason: str) -> Chunk:
    """The chunk cannot be submitted: collect it as a failed batch that ran nothing, so each of
    its requests is reported in errors.jsonl (and counted as failed) with the reason."""
    failed_batch: JsonObject = {
        "id": None,
        "status": "failed",
        "request_counts": {},
        "errors": [{"code": code, "message": reason}],
    }
    return replace(c, state=ChunkState.COLLECTING, next_at=None, batch=failed_batch)


def cancelled_before_submission(c: Chunk) -> Chunk:
    """Never submitted (or waiting to be again): its requests end as not run."""
    nothing: JsonObject = {"id": None, "status": "cancelled", "errors": [], "request_counts": {}}
    return replace(c, state=ChunkState.COLLECTING, batch=nothing)


def collected(c: Chunk, outcome: JsonObject, config: RunConfig) -> Chunk:
    """The batch's outputs are in the run's work area: end, or go round again for retries."""
    batch = c.batch or {}
    batches = c.batches
    if batch.get("id"):
        batches = (*batches, {**batch, "round": c.round, "outcome": outcome["counts"]})
    status = str(batch.get("status"))
    reason = c.reason
    if status == "failed":
        messages = [e.get("message", e.get("code", "")) for e in batch.get("errors") or ()]
        reason = "; ".join(messages) or None
    c = replace(
        c,
        batches=batches,
        parts=(*c.parts, outcome["parts"]),
        succeeded=c.succeeded + outcome["counts"]["succeeded"],
        failed=c.failed + outcome["counts"]["failed"],
        end=status,
        reason=reason,
    )
    if outcome.get("retry_input"):
        return replace(
            c,
            round=c.round + 1,
            attempt=0,
            input=outcome["retry_input"],
            state=entry_state(config),
            batch=None,
            next_at=None,
        )
    return replace(c, state=ChunkState.FAILED if status == "failed" else ChunkState.DONE)


# --- questions about the whole run ---------------------------------------------------------------


def next_wake(chunks: list[Chunk], now: datetime) -> datetime:
    """When the next chunk has work due (at least a second from now)."""
    soonest = now + timedelta(seconds=1)
    times = [datetime.fromisoformat(c.next_at) for c in chunks if not c.ended and c.next_at]
    return max(min(times), soonest) if times else soonest


def waiting_reason(chunks: list[Chunk]) -> str | None:
    for c in chunks:
        if c.state == ChunkState.ADMISSION and c.queue_position is not None:
            return f"admission: waiting for capacity (position {c.queue_position})"
        if c.state in (ChunkState.ADMISSION, ChunkState.SUBMITTING) and c.waiting:
            return c.waiting
    return None


def final_status(chunks: list[Chunk], cancelled_by_user: bool) -> str:
    """completed | failed | expired | cancelled, from how each chunk's last batch ended."""
    if cancelled_by_user:
        return "cancelled"
    ends = {c.end for c in chunks}
    for status in ("failed", "expired", "cancelled"):
        if status in ends:
            return status
    return "completed"


def request_counts(summary_requests: int, chunks: list[Chunk]) -> dict[str, int]:
    """Totals for the custom status: finished rounds plus the running batches' live counts."""
    succeeded = sum(c.succeeded for c in chunks)
    failed = sum(c.failed for c in chunks)
    for c in chunks:
        if c.state == ChunkState.RUNNING:
            live = (c.batch or {}).get("request_counts") or {}
            succeeded += int(live.get("completed") or 0)
    return {
        "total": summary_requests,
        "succeeded": succeeded,
        "failed": failed,
        "pending": max(0, summary_requests - succeeded - failed),
    }
