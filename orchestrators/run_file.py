"""The orchestration of one input file: validate, split, submit, watch, collect, write, clean up.

It is a state machine over the file's chunks (one chunk unless the file is over a limit). Each
tick runs the due work of every chunk as parallel activities, then sleeps on a durable timer
(or until a cancel request arrives). After `polls_per_history` ticks it continues as new with
its state, so the history stays bounded however long the batches run. Deterministic: time comes
from the context, jitter from hashes, and every decision from the state and activity results.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df
from azure.durable_functions.models.history import HistoryEventType

from batching.logs import event
from orchestrators import policy

bp = df.Blueprint()
log = logging.getLogger("batching.orchestrator")

ORCHESTRATOR = "run_file"
CANCEL_EVENT = "cancel"


def _entry_state(config: dict[str, Any]) -> str:
    """Chunks queue for admission only when a limit is set."""
    limited = config["max_active_batches"] or config["max_enqueued_tokens"]
    return "admission" if limited else "submitting"


def _new_chunk(spec: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    return {
        **spec,
        "round": 0,
        "attempt": 0,
        "state": _entry_state(config),
        "next_at": None,
        "batch": None,
        "batches": [],
        "succeeded": 0,
        "failed": 0,
        "parts": [],
        "end": None,
        "reason": None,
        "interval": 0,
    }


class _Run:
    """One episode's view of the run: its context and state, and the helpers every step uses."""

    def __init__(self, context: df.DurableOrchestrationContext) -> None:
        self.context = context
        self.state: dict[str, Any] = context.get_input()
        self.config: dict[str, Any] = self.state["config"]
        self._retry = df.RetryOptions(
            self.config["activity_retry_seconds"] * 1000, self.config["activity_retry_attempts"]
        )

    def call(self, name: str, payload: dict[str, Any]) -> Any:
        """Schedule an activity, with durable retries for transient failures."""
        base = {
            "run_id": self.state["run_id"],
            "source": self.state["source"],
            "received_at": self.state.get("received_at"),  # the runs index's order
        }
        return self.context.call_activity_with_retry(name, self._retry, {**base, **payload})

    def note(self, message: str, level: int = logging.INFO, **fields: Any) -> None:
        """Log once, not on every replay of the history."""
        if not self.context.is_replaying:
            event(log, message, self.state["run_id"], level=level, **fields)

    def status(self, phase: str, **extra: Any) -> None:
        """The custom status: phase, live request counts and each chunk's batch."""
        state = self.state
        state["phase"] = phase
        chunks = state.get("chunks") or []
        self.context.set_custom_status(
            {
                "phase": phase,
                "run_id": state["run_id"],
                "source": state["source"]["path"],
                "requests": policy.request_counts(
                    (state.get("summary") or {}).get("requests", 0), chunks
                ),
                "chunks": len(chunks),
                "batches": sum(len(c["batches"]) for c in chunks),
                "round": max((c["round"] for c in chunks), default=0),
                "chunk_states": [
                    {
                        "index": c["index"],
                        "state": c["state"],
                        "round": c["round"],
                        "batch_id": (c.get("batch") or {}).get("id"),
                        "batch_status": (c.get("batch") or {}).get("status"),
                        "request_counts": (c.get("batch") or {}).get("request_counts"),
                    }
                    for c in chunks
                ],
                **extra,
            }
        )


@bp.orchestration_trigger(context_name="context", orchestration=ORCHESTRATOR)
def run_file(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    run = _Run(context)
    if run.state.get("phase", "validating") == "validating":
        rejected = yield from _prepare(run)
        if rejected is not None:
            return rejected
    if run.state["phase"] == "running":
        continued = yield from _watch(run)
        if continued is not None:
            return continued
    return (yield from _finish(run))


def _prepare(run: _Run) -> Generator[Any, Any, dict[str, Any] | None]:
    """Validate; reject an invalid file (the run's end), or cut it into chunks."""
    state = run.state
    run.note("orchestration started", source=state["source"]["path"])
    run.status("validating")
    summary = yield run.call("validate_input", {})
    state["summary"] = summary
    if not summary["valid"]:
        run.status("rejected")
        rejected = yield run.call("reject_input", {"summary": summary})
        run.note("run finished", logging.WARNING, status="invalid", reason=summary.get("reason"))
        return {"status": "invalid", "run_id": state["run_id"], **rejected}
    run.status("preparing")
    specs = yield run.call("prepare_chunks", {"summary": summary})
    state["chunks"] = [_new_chunk(s, run.config) for s in specs]
    state["phase"] = "running"
    state["ticks"] = 0
    return None


def _watch(run: _Run) -> Generator[Any, Any, dict[str, Any] | None]:
    """Tick until every chunk has ended; continue as new every `polls_per_history` ticks."""
    state, context = run.state, run.context
    # One wait for the whole execution: with a fresh wait per tick, a cancel arriving mid-tick
    # goes to the previous tick's wait, still open, and the next tick's wait never sees it.
    cancel = context.wait_for_external_event(CANCEL_EVENT)
    while True:
        now: datetime = context.current_utc_datetime
        yield from _tick(run, now)
        if all(c["state"] in ("done", "failed") for c in state["chunks"]):
            state["phase"] = "finalizing"
            return None
        run.status("running", waiting=_waiting_reason(state))
        timer = context.create_timer(_next_wake(state, now))
        if state.get("cancel_requested"):
            yield timer
        elif (yield context.task_any([timer, cancel])) == cancel:
            timer.cancel()
            state["cancel_requested"] = True
            run.note("cancel requested", chunks=len(state["chunks"]))
        state["ticks"] += 1
        if state["ticks"] >= run.config["polls_per_history"]:
            state["ticks"] = 0
            # Events that came with the timer are dropped with this execution: keep a cancel.
            state["cancel_requested"] = state.get("cancel_requested") or _cancel_raised(context)
            context.continue_as_new(state)
            return {"status": "continued", "run_id": state["run_id"]}


def _cancel_raised(context: df.DurableOrchestrationContext) -> bool:
    """Whether this execution's history holds a cancel request, handled or not yet."""
    return any(
        e.event_type == HistoryEventType.EVENT_RAISED and e.Name == CANCEL_EVENT
        for e in context.histories
    )


def _finish(run: _Run) -> Generator[Any, Any, dict[str, Any]]:
    """Write the run folder's files in parallel, then clean up (inputs move, files go)."""
    state = run.state
    run.status("writing")
    chunks, summary = state["chunks"], state["summary"]
    run_status = policy.final_status(chunks, bool(state.get("cancel_requested")))
    metadata = {
        "chunks": chunks,
        "summary": summary,
        "status": run_status,
        "received_at": state.get("received_at"),
        "finished_at": run.context.current_utc_datetime.isoformat(),
    }
    writes = [
        run.call("write_results", {"chunks": chunks}),
        run.call("write_errors", {"chunks": chunks, "summary": summary}),
        run.call("write_metadata", metadata),
    ]
    if summary.get("table_columns"):
        writes.append(
            run.call("write_table", {"chunks": chunks, "columns": summary["table_columns"]})
        )
    written = yield run.context.task_all(writes)
    finished: dict[str, Any] = {k: v for w in written for k, v in w.items()}
    run.status("cleaning")
    reasons = "; ".join(f"chunk {c['index']}: {c['reason']}" for c in chunks if c.get("reason"))
    cleaned = yield run.call(
        "cleanup_run", {"chunks": chunks, "status": run_status, "reason": reasons or None}
    )
    finished["input"] = cleaned["input"]
    run.note(
        "run finished",
        logging.INFO if run_status == "completed" else logging.WARNING,
        status=run_status,
        reason=reasons or None,
        folder=(finished.get("metadata") or {}).get("path"),
    )
    run.status("done", status=run_status, tokens=finished.get("tokens"), cost=finished.get("cost"))
    return {"status": run_status, "run_id": state["run_id"], **finished}


def _due_work(run: _Run, c: dict[str, Any], key: str, cancel: bool) -> tuple[str, Any] | None:
    """The activity a chunk needs now, if any, as (kind of result, task)."""
    summary = run.state["summary"]
    if c["state"] == "admission":
        return "admit", run.call(
            "admit_batch",
            {
                "key": key,
                "deployment": summary.get("deployment"),
                "tokens": c.get("tokens", 0),
                "limits": run.config,
                "arrived": run.state.get("received_at"),
            },
        )
    if c["state"] == "submitting":
        return "submit", run.call(
            "submit_batch",
            {
                "key": key,
                "attempt": c["attempt"],
                "input": c["input"],
                "endpoint": summary["endpoint"],
                "tokens": c.get("tokens", 0),
                "etag": c.get("etag"),
            },
        )
    if c["state"] == "running" and cancel and not c.get("cancel_sent"):
        c["cancel_sent"] = True
        return "check", run.call("cancel_batch", {"batch_id": c["batch"]["id"], "key": key})
    if c["state"] == "running":
        return "check", run.call("check_batch", {"batch_id": c["batch"]["id"], "key": key})
    return None


def _tick(run: _Run, now: datetime) -> Generator[Any, Any, None]:
    """Run the due work of every chunk in parallel and fold the results into the state."""
    state = run.state
    cancel = bool(state.get("cancel_requested"))
    due: list[tuple[dict[str, Any], str, Any]] = []
    for c in state["chunks"]:
        if c["state"] in ("done", "failed"):
            continue
        if c["next_at"] and datetime.fromisoformat(c["next_at"]) > now and not cancel:
            continue
        if c["state"] in ("admission", "submitting") and cancel:
            # Never submitted (or waiting to be again): its requests end as not run.
            c["state"] = "collecting"
            c["batch"] = {"id": None, "status": "cancelled", "errors": [], "request_counts": {}}
            continue
        work = _due_work(run, c, f"{state['run_id']}/c{c['index']}/r{c['round']}", cancel)
        if work is not None:
            due.append((c, *work))
    if due:  # a chunk cancelled before submission has nothing due but still needs collecting
        results = yield run.context.task_all([t for _, _, t in due])
        for (c, kind, _), result in zip(due, results, strict=True):
            _APPLY[kind](state, c, result, now)

    collect = [c for c in state["chunks"] if c["state"] == "collecting"]
    if collect:
        rounds = run.config["resubmit_rounds"]
        outcomes = yield run.context.task_all(
            [
                run.call(
                    "collect_batch",
                    {
                        "chunk": c,
                        "batch": c["batch"],
                        "resubmit": c["round"] < rounds
                        and not cancel
                        and c["batch"]["status"] != "failed",
                    },
                )
                for c in collect
            ]
        )
        for c, outcome in zip(collect, outcomes, strict=True):
            _collected(c, outcome, run.config)


def _admitted(state: dict[str, Any], c: dict[str, Any], result: Any, now: datetime) -> None:
    if result["granted"]:
        c["state"], c["next_at"] = "submitting", None
        c["queue_position"] = None
    else:
        c["next_at"] = _at(now, state["config"]["admission_wait_seconds"])
        c["queue_position"] = result.get("position")


def _submitted(state: dict[str, Any], c: dict[str, Any], result: Any, now: datetime) -> None:
    config = state["config"]
    outcome = result["status"]
    if outcome == "created":
        c["state"], c["batch"] = "running", result["batch"]
        c["waiting"] = None
        c["interval"] = config["poll_initial_seconds"]
        c["next_at"] = _at(now, c["interval"])
    elif outcome == "pending":
        c["next_at"] = _at(now, min(policy.FILE_PENDING_SECONDS, config["poll_initial_seconds"]))
    elif outcome == "quota":
        _quota_wait(state, c, result["message"], now)
    else:
        _give_up(c, "batch_refused", result["message"])


def _checked(state: dict[str, Any], c: dict[str, Any], result: Any, now: datetime) -> None:
    c["batch"] = result
    if result["status"] not in ("completed", "failed", "expired", "cancelled"):
        c["interval"] = policy.next_poll_interval(state["config"], c["interval"])
        c["next_at"] = _at(now, c["interval"])
        return
    quota = result.get("quota_message")
    if quota and not state.get("cancel_requested"):
        # listed in metadata.json like every batch, though none of its requests ran
        c["batches"].append({**result, "round": c["round"], "outcome": _NOTHING_RAN})
        _quota_wait(state, c, quota, now)
    else:
        c["state"], c["next_at"] = "collecting", None


_APPLY = {"admit": _admitted, "submit": _submitted, "check": _checked}


def _quota_wait(state: dict[str, Any], c: dict[str, Any], message: str, now: datetime) -> None:
    """token_limit_exceeded: wait with backoff and submit again, until the attempts run out."""
    config = state["config"]
    c["attempt"] += 1
    if c["attempt"] > config["quota_retry_attempts"]:
        reason = f"token_limit_exceeded after {c['attempt']} attempts: {message}"
        _give_up(c, "token_limit_exceeded", reason)
        return
    delay = policy.quota_backoff(config, c["attempt"], f"{state['run_id']}/c{c['index']}")
    # Back through admission when limits are on: the refused batch's slot was released.
    c["state"], c["batch"], c["next_at"] = _entry_state(config), None, _at(now, delay)
    c["waiting"] = f"quota: token_limit_exceeded, attempt {c['attempt']}, retry in {delay}s"


def _give_up(c: dict[str, Any], code: str, reason: str) -> None:
    """The chunk cannot be submitted: collect it as a failed batch that ran nothing, so each
    of its requests is reported in errors.jsonl (and counted as failed) with the reason."""
    c["state"], c["next_at"] = "collecting", None
    c["batch"] = {
        "id": None,
        "status": "failed",
        "request_counts": {},
        "errors": [{"code": code, "message": reason}],
    }


def _collected(c: dict[str, Any], outcome: dict[str, Any], config: dict[str, Any]) -> None:
    batch = c["batch"]
    if batch["id"]:
        c["batches"].append({**batch, "round": c["round"], "outcome": outcome["counts"]})
    c["parts"].append(outcome["parts"])
    c["succeeded"] += outcome["counts"]["succeeded"]
    c["failed"] += outcome["counts"]["failed"]
    c["end"] = batch["status"]
    if batch["status"] == "failed":
        c["reason"] = (
            "; ".join(e.get("message", e.get("code", "")) for e in batch["errors"]) or None
        )
    if outcome.get("retry_input"):
        c["round"] += 1
        c["attempt"] = 0
        c["input"] = outcome["retry_input"]
        c["etag"] = None  # a work blob of ours; the source's ETag guards only the source
        c["state"], c["batch"], c["next_at"] = _entry_state(config), None, None
    else:
        c["state"] = "failed" if batch["status"] == "failed" else "done"


_NOTHING_RAN = {
    "succeeded": 0,
    "failed": 0,
    "retry": 0,
    "failure_codes": {},
    "usage": {"prompt": 0, "completion": 0, "total": 0, "model": None},
}


def _at(now: datetime, seconds: int) -> str:
    return (now + timedelta(seconds=seconds)).isoformat()


def _next_wake(state: dict[str, Any], now: datetime) -> datetime:
    times = [
        datetime.fromisoformat(c["next_at"])
        for c in state["chunks"]
        if c["state"] not in ("done", "failed") and c["next_at"]
    ]
    return max(min(times), now + timedelta(seconds=1)) if times else now + timedelta(seconds=1)


def _waiting_reason(state: dict[str, Any]) -> str | None:
    for c in state["chunks"]:
        if c["state"] == "admission" and c.get("queue_position") is not None:
            return f"admission: waiting for capacity (position {c['queue_position']})"
        if c["state"] in ("admission", "submitting") and c.get("waiting"):
            return str(c["waiting"])
    return None
