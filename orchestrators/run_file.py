"""The orchestration of one input file: validate, split, submit, watch, collect, write, clean up.

It is a state machine over the file's chunks (one chunk unless the file is over a limit). Each
tick runs the due work of every chunk as parallel activities, then sleeps on a durable timer
(or until a cancel request arrives). Deterministic: time comes from the context, jitter from
hashes, and every decision from the state and activity results. The state is typed
(orchestrators/state.py) and travels as the same JSON as always.

Every episode replays its execution's whole history (the durable SDK parses each event again),
so the run keeps its histories short: it continues as new with its state after every
`polls_per_history` ticks while running (a 500-file drop spent half its worker CPU replaying
before it did). Not between phases: validation goes on into the first submission, and the last
tick into the finish, as a new execution would cost an episode of its own. A cancel raised
while the input is validated is waited for alongside validation, so it is seen before anything
is submitted.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import replace
from datetime import datetime
from typing import Any

import azure.durable_functions as df
from azure.durable_functions.models.history import HistoryEventType

from batching.logs import event
from batching.statuses import ChunkState
from batching.steps.counts import failed_requests, results_written
from orchestrators import state as machine
from orchestrators.state import Chunk, Phase, RunState

bp = df.Blueprint()
log = logging.getLogger("batching.orchestrator")

ORCHESTRATOR = "run_file"
CANCEL_EVENT = "cancel"
# Chunks listed in the custom status; with the other fields it stays well under 16 KB of UTF-16.
CHUNKS_SHOWN = 16


class _Run:
    """One episode's view of the run: its context and state, and the helpers every step uses."""

    def __init__(self, context: df.DurableOrchestrationContext) -> None:
        self.context = context
        self.state = RunState.from_json(context.get_input())
        self.config = self.state.config
        self._retry = df.RetryOptions(
            self.config.activity_retry_seconds * 1000, self.config.activity_retry_attempts
        )

    def call(self, name: str, payload: dict[str, Any]) -> Any:
        """Schedule an activity, with durable retries for transient failures."""
        base = {
            "run_id": self.state.run_id,
            "source": self.state.source,
            "received_at": self.state.received_at,  # the runs index's order
        }
        return self.context.call_activity_with_retry(name, self._retry, {**base, **payload})

    def note(self, message: str, level: int = logging.INFO, **fields: Any) -> None:
        """Log once, not on every replay of the history."""
        if not self.context.is_replaying:
            event(log, message, self.state.run_id, level=level, **fields)

    def status(self, phase: str, **extra: Any) -> None:
        """The custom status: phase, live request counts, chunk counts and some chunks' batches.

        The host caps the custom status at 16 KB of UTF-16, so it holds a bounded view whatever
        the number of chunks: counts by state, and the first `CHUNKS_SHOWN` chunks still at
        work (then ended ones). Every chunk's batches are in metadata.json at the end.
        """
        state = self.state
        chunks = state.chunks
        shown = sorted(chunks, key=lambda c: (c.ended, c.index))[:CHUNKS_SHOWN]
        self.context.set_custom_status(
            {
                "phase": phase,
                "run_id": state.run_id,
                "source": state.source["path"],
                "requests": machine.request_counts(
                    (state.summary or {}).get("requests", 0), chunks
                ),
                "chunks": len(chunks),
                "chunk_counts": dict(sorted(Counter(str(c.state) for c in chunks).items())),
                "batches": sum(len(c.batches) for c in chunks),
                "round": max((c.round for c in chunks), default=0),
                "chunk_states": [
                    {
                        "index": c.index,
                        "state": str(c.state),
                        "round": c.round,
                        "batch_id": c.batch_id,
                        "batch_status": (c.batch or {}).get("status"),
                        "request_counts": (c.batch or {}).get("request_counts"),
                    }
                    for c in sorted(shown, key=lambda c: c.index)
                ],
                **extra,
            }
        )


@bp.orchestration_trigger(context_name="context", orchestration=ORCHESTRATOR)
def run_file(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    run = _Run(context)
    # One wait for the whole execution: a second wait for the same event would take a cancel
    # meant for the first, or leave it to one nobody waits on any more.
    cancel = context.wait_for_external_event(CANCEL_EVENT)
    try:
        if run.state.phase == Phase.VALIDATING:
            rejected = yield from _prepare(run, cancel)
            if rejected is not None:
                return rejected
        if run.state.phase == Phase.RUNNING:
            continued = yield from _watch(run, cancel)
            if continued is not None:
                return continued
        return (yield from _finish(run))
    except Exception as exc:  # an activity failed after its retries: the run ends `error`
        yield from _record_failure(run, exc)
        raise


def _record_failure(run: _Run, exc: Exception) -> Generator[Any, Any, None]:
    """Log the failure's full detail and keep it in metadata.json, under the run id.

    The API shows only a code and a one-line reason. If even this write fails, the run still
    fails with its first error.
    """
    detail = str(exc).strip()
    phase = str(run.state.phase)
    run.note("run failed", logging.ERROR, phase=phase, detail=detail)
    with contextlib.suppress(Exception):  # the first error is the one the run ends with
        yield run.call(
            "record_failure",
            {
                "detail": detail,
                "phase": phase,
                "failed_at": run.context.current_utc_datetime.isoformat(),
            },
        )


def _prepare(run: _Run, cancel: Any) -> Generator[Any, Any, dict[str, Any] | None]:
    """Validate; reject an invalid file (the run's end), or cut it into chunks. A cancel raised
    while the input is validated comes into the history before validation's result, so it is
    seen here, before anything is submitted."""
    state = run.state
    run.note("orchestration started", source=state.source["path"])
    run.status("validating")
    summary = yield from _heeding(run, run.call("validate_input", {}), cancel)
    # An input that is itself the one chunk comes back with its chunk; other inputs go through
    # prepare_chunks, and so do histories that scheduled it anyway: those of runs validated
    # before validate_input did this, or whose earlier episodes ran older orchestrator code.
    specs = _chunk_given(summary)
    state.summary = summary
    if not summary["valid"]:
        run.status("rejected")
        rejected = yield run.call("reject_input", {"summary": summary})
        run.note("run finished", logging.WARNING, status="invalid", reason=summary.get("reason"))
        return {"status": "invalid", "run_id": state.run_id, **rejected}
    if specs is None or _scheduled(run.context, "prepare_chunks"):
        run.status("preparing")
        specs = yield from _heeding(run, run.call("prepare_chunks", {"summary": summary}), cancel)
    state.chunks = [machine.new_chunk(s, run.config) for s in specs]
    state.phase = Phase.RUNNING
    state.ticks = 0
    return None


def _heeding(run: _Run, task: Any, cancel: Any) -> Generator[Any, Any, Any]:
    """The task's result; a cancel raised while it runs (before its result, in the history) is
    noted in the state, so that nothing is submitted after it."""
    if not run.state.cancel_requested and (yield run.context.task_any([task, cancel])) == cancel:
        run.state.cancel_requested = True
        run.note("cancel requested", phase=str(run.state.phase))
    return (yield task)


def _watch(run: _Run, cancel: Any) -> Generator[Any, Any, dict[str, Any] | None]:
    """Tick until every chunk has ended; continue as new every `polls_per_history` ticks. The
    execution's one cancel wait: with a fresh wait per tick, a cancel arriving mid-tick goes to
    the previous tick's wait, still open, and the next tick's wait never sees it."""
    state, context = run.state, run.context
    # a new execution's first episode has set no status yet (Azure may show none meanwhile)
    run.status("running", waiting=machine.waiting_reason(state.chunks))
    while True:
        now: datetime = context.current_utc_datetime
        yield from _tick(run, now)
        if state.all_ended:
            state.phase = Phase.FINALIZING
            return None
        run.status("running", waiting=machine.waiting_reason(state.chunks))
        timer = context.create_timer(machine.next_wake(state.chunks, now))
        if state.cancel_requested:
            yield timer
        elif (yield context.task_any([timer, cancel])) == cancel:
            timer.cancel()
            state.cancel_requested = True
            run.note("cancel requested", chunks=len(state.chunks))
        state.ticks += 1
        if state.ticks >= run.config.polls_per_history:
            return _continue(run)


def _continue(run: _Run) -> dict[str, Any]:
    """Continue as new with the state. Events that came with this episode are dropped with the
    execution: a cancel among them is kept in the state."""
    state = run.state
    state.ticks = 0
    state.cancel_requested = state.cancel_requested or _cancel_raised(run.context)
    run.context.continue_as_new(state.to_json())
    return {"status": "continued", "run_id": state.run_id}


def _chunk_given(summary: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The chunk validate_input returned with its summary; None if none. It stays in the
    summary, so the activities that take the summary get the same input whichever code ran."""
    specs: list[dict[str, Any]] | None = summary.get("chunks")
    return specs


def _in_history(context: df.DurableOrchestrationContext, kind: HistoryEventType, name: str) -> bool:
    """Whether this execution's history holds an event of `kind` named `name`."""
    return any(e.event_type == kind and e.Name == name for e in context.histories)


def _cancel_raised(context: df.DurableOrchestrationContext) -> bool:
    """Whether this execution's history holds a cancel request, handled or not yet."""
    return _in_history(context, HistoryEventType.EVENT_RAISED, CANCEL_EVENT)


def _scheduled(context: df.DurableOrchestrationContext, activity: str) -> bool:
    """Whether this execution's history has scheduled `activity`."""
    return _in_history(context, HistoryEventType.TASK_SCHEDULED, activity)


def _finish(run: _Run) -> Generator[Any, Any, dict[str, Any]]:
    """Write the run folder's files in parallel, then clean up (inputs move, files go); when
    metadata.json is the only file to write, cleanup writes it first, in the same step."""
    state, context = run.state, run.context
    run.status("writing")
    chunks = [c.to_json() for c in state.chunks]
    summary = state.summary or {}
    run_status = machine.final_status(state.chunks, state.cancel_requested)
    finished_at = context.current_utc_datetime.isoformat()
    metadata = {
        "chunks": chunks,
        "summary": summary,
        "status": run_status,
        "received_at": state.received_at,
        "finished_at": finished_at,
    }
    # results.jsonl may be written already, by the collection (`results_written`); histories
    # that scheduled write_results anyway replay with it (it then returns what was written).
    written_early = results_written(chunks)
    writes: list[tuple[str, dict[str, Any]]] = []
    if written_early is None or _scheduled(context, "write_results"):
        writes.append(("write_results", {"chunks": chunks}))
    # errors.jsonl is written only when something failed, so a run where nothing did needs no
    # write_errors activity; histories that scheduled it anyway (before this) replay with it.
    if failed_requests(chunks, summary) or _scheduled(context, "write_errors"):
        writes.append(("write_errors", {"chunks": chunks, "summary": summary}))
    writes.append(("write_metadata", metadata))
    if summary.get("table_columns"):
        writes.append(("write_table", {"chunks": chunks, "columns": summary["table_columns"]}))
    reasons = "; ".join(f"chunk {c.index}: {c.reason}" for c in state.chunks if c.reason)
    cleanup: dict[str, Any] = {"chunks": chunks, "status": run_status, "reason": reasons or None}
    if len(writes) == 1 and not _scheduled(context, "write_metadata"):
        cleanup["metadata"] = {"summary": summary, "finished_at": finished_at}
        cleaned = yield run.call("cleanup_run", cleanup)
        written = [cleaned["written"]]
    else:
        tasks = [run.call(name, payload) for name, payload in writes]
        if _cleans_up_alongside(len(tasks)):
            *written, cleaned = yield context.task_all([*tasks, run.call("cleanup_run", cleanup)])
        else:
            written = yield context.task_all(tasks)
            run.status("cleaning")
            cleaned = yield run.call("cleanup_run", cleanup)
    finished: dict[str, Any] = {
        "errors": None,
        **(written_early or {}),
        **{k: v for w in written for k, v in w.items()},
        "input": cleaned["input"],
    }
    run.note(
        "run finished",
        logging.INFO if run_status == "completed" else logging.WARNING,
        status=run_status,
        reason=reasons or None,
        folder=(finished.get("metadata") or {}).get("path"),
    )
    run.status("done", status=run_status, tokens=finished.get("tokens"), cost=finished.get("cost"))
    return {"status": run_status, "run_id": state.run_id, **finished}


def _cleans_up_alongside(writes: int) -> bool:
    """Whether cleanup runs alongside the writes rather than after them: in histories whose
    only write, metadata.json, was its own activity (code from before cleanup wrote it first).
    Cleanup deletes what the other writes read (the service's outputs, the results part), so it
    follows them. A history that scheduled cleanup after metadata.json (before that) replays
    the same: its tasks come in the same order."""
    return writes == 1


Apply = Callable[[Chunk, Any, datetime], Chunk]


def _due_work(run: _Run, c: Chunk, key: str, cancel: bool) -> tuple[Chunk, Apply, Any] | None:
    """The activity a chunk needs now, if any: (chunk, how to apply its result, task)."""
    summary, config, run_id = run.state.summary or {}, run.config, run.state.run_id
    if c.state == ChunkState.ADMISSION:
        task = run.call(
            "admit_batch",
            {
                "key": key,
                "deployment": summary.get("deployment"),
                "tokens": c.tokens,
                "limits": config.to_json(),
                "arrived": run.state.received_at,
            },
        )
        return c, lambda c, r, now: machine.admitted(c, r, now, config), task
    if c.state == ChunkState.SUBMITTING:
        task = run.call(
            "submit_batch",
            {
                "key": key,
                "attempt": c.attempt,
                "input": c.input,
                "endpoint": summary["endpoint"],
                "tokens": c.tokens,
            },
        )
        return c, lambda c, r, now: machine.submitted(c, r, now, config, run_id), task
    if c.state == ChunkState.RUNNING:
        request: dict[str, Any] = {"batch_id": c.batch_id, "key": key}
        if cancel and not c.cancel_sent:
            c, name = replace(c, cancel_sent=True), "cancel_batch"
        else:
            # A check that sees the batch end collects it in the same step: one activity and
            # one episode fewer a batch than a collect_batch scheduled after it.
            name = "check_batch"
            request["collect"] = {"cancelling": cancel, **_collection(run, c)}
        task = run.call(name, request)
        return c, lambda c, r, now: machine.checked(c, r, now, config, run_id, cancel), task
    return None


def _tick(run: _Run, now: datetime) -> Generator[Any, Any, None]:
    """Run the due work of every chunk in parallel and fold the results into the state."""
    state = run.state
    cancel = state.cancel_requested
    due: list[tuple[int, Apply, Any]] = []
    for i, c in enumerate(state.chunks):
        if c.ended or (not cancel and not c.due(now)):
            continue
        if c.state in (ChunkState.ADMISSION, ChunkState.SUBMITTING) and cancel:
            state.chunks[i] = machine.cancelled_before_submission(c)
            continue
        work = _due_work(run, c, f"{state.run_id}/c{c.index}/r{c.round}", cancel)
        if work is not None:
            state.chunks[i], apply, task = work
            due.append((i, apply, task))
    if due:  # a chunk cancelled before submission has nothing due but still needs collecting
        results = yield run.context.task_all([task for _, _, task in due])
        for (i, apply, _), result in zip(due, results, strict=True):
            state.chunks[i] = apply(state.chunks[i], result, now)

    collect = [i for i, c in enumerate(state.chunks) if c.state == ChunkState.COLLECTING]
    if collect:
        tasks = []
        for i in collect:
            c = state.chunks[i]
            tasks.append(run.call("collect_batch", {"batch": c.batch or {}, **_collection(run, c)}))
        outcomes = yield run.context.task_all(tasks)
        for i, outcome in zip(collect, outcomes, strict=True):
            state.chunks[i] = machine.collected(state.chunks[i], outcome, run.config)


def _collection(run: _Run, c: Chunk) -> dict[str, Any]:
    """How a chunk's batch is collected: the chunk (what the collection reads of it), whether
    the run allows a resubmission round (the collection makes none for a failed batch), and
    whether its results may be results.jsonl (the run's one chunk, first round, no table)."""
    state = run.state
    how: dict[str, Any] = {
        "chunk": {"index": c.index, "round": c.round, "input": c.input},
        "resubmit": c.round < run.config.resubmit_rounds and not state.cancel_requested,
    }
    if len(state.chunks) == 1 and c.round == 0 and not (state.summary or {}).get("table_columns"):
        how["final_results"] = True
    return how
