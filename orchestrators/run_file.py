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

from batching.logs import event
from orchestrators import policy

bp = df.Blueprint()
log = logging.getLogger("batching.orchestrator")

ORCHESTRATOR = "run_file"
CANCEL_EVENT = "cancel"


def _retry(config: dict[str, Any]) -> df.RetryOptions:
    return df.RetryOptions(
        config["activity_retry_seconds"] * 1000, config["activity_retry_attempts"]
    )


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
        "admitted": False,
    }


@bp.orchestration_trigger(context_name="context", orchestration=ORCHESTRATOR)
def run_file(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    state: dict[str, Any] = context.get_input()
    config = state["config"]
    retry = _retry(config)
    base = {"run_id": state["run_id"], "source": state["source"]}

    def call(name: str, payload: dict[str, Any]) -> Any:
        return context.call_activity_with_retry(name, retry, {**base, **payload})

    def note(message: str, level: int = logging.INFO, **fields: Any) -> None:
        """Log once, not on every replay of the history."""
        if not context.is_replaying:
            event(log, message, state["run_id"], level=level, **fields)

    def status(phase: str, **extra: Any) -> None:
        state["phase"] = phase
        context.set_custom_status(
            {
                "phase": phase,
                "run_id": state["run_id"],
                "source": state["source"]["path"],
                "requests": policy.request_counts(
                    (state.get("summary") or {}).get("requests", 0), state.get("chunks") or []
                ),
                "chunks": len(state.get("chunks") or []),
                "batches": sum(len(c["batches"]) for c in state.get("chunks") or []),
                "round": max((c["round"] for c in state.get("chunks") or []), default=0),
                "chunk_states": [
                    {
                        "index": c["index"],
                        "state": c["state"],
                        "round": c["round"],
                        "batch_id": (c.get("batch") or {}).get("id"),
                        "batch_status": (c.get("batch") or {}).get("status"),
                        "request_counts": (c.get("batch") or {}).get("request_counts"),
                    }
                    for c in state.get("chunks") or []
                ],
                **extra,
            }
        )

    if state.get("phase", "validating") == "validating":
        note("orchestration started", source=state["source"]["path"])
        status("validating")
        summary = yield call("validate_input", {})
        state["summary"] = summary
        if not summary["valid"]:
            status("rejected")
            rejected = yield call("reject_input", {"summary": summary})
            note(
                "run finished",
                level=logging.WARNING,
                status="invalid",
                reason=summary.get("reason"),
            )
            return {"status": "invalid", "run_id": state["run_id"], **rejected}
        status("preparing")
        specs = yield call("prepare_chunks", {"summary": summary})
        state["chunks"] = [_new_chunk(s, config) for s in specs]
        state["phase"] = "running"
        state["ticks"] = 0

    if state["phase"] == "running":
        while True:
            now: datetime = context.current_utc_datetime
            yield from _tick(context, state, call, now)
            if all(c["state"] in ("done", "failed") for c in state["chunks"]):
                state["phase"] = "finalizing"
                break
            wake = _next_wake(state, now)
            status("running", waiting=_waiting_reason(state))
            timer = context.create_timer(wake)
            cancel = context.wait_for_external_event(CANCEL_EVENT)
            winner = yield context.task_any([timer, cancel])
            if winner == cancel:
                timer.cancel()
                state["cancel_requested"] = True
                note("cancel requested", chunks=len(state["chunks"]))
            state["ticks"] += 1
            if state["ticks"] >= config["polls_per_history"]:
                state["ticks"] = 0
                context.continue_as_new(state)
                return {"status": "continued", "run_id": state["run_id"]}

    status("writing")
    chunks = state["chunks"]
    summary = state["summary"]
    run_status = policy.final_status(chunks, bool(state.get("cancel_requested")))
    writes = [
        call("write_results", {"chunks": chunks}),
        call("write_errors", {"chunks": chunks, "summary": summary}),
        call(
            "write_metadata",
            {
                "chunks": chunks,
                "summary": summary,
                "status": run_status,
                "received_at": state.get("received_at"),
                "finished_at": context.current_utc_datetime.isoformat(),
            },
        ),
    ]
    if summary.get("table_columns"):
        writes.append(call("write_table", {"chunks": chunks, "columns": summary["table_columns"]}))
    written = yield context.task_all(writes)
    finished: dict[str, Any] = {k: v for w in written for k, v in w.items()}
    status("cleaning")
    reasons = "; ".join(f"chunk {c['index']}: {c['reason']}" for c in chunks if c.get("reason"))
    cleaned = yield call(
        "cleanup_run", {"chunks": chunks, "status": run_status, "reason": reasons or None}
    )
    finished["input"] = cleaned["input"]
    note(
        "run finished",
        level=logging.INFO if run_status == "completed" else logging.WARNING,
        status=run_status,
        reason=reasons or None,
        folder=(finished.get("metadata") or {}).get("path"),
    )
    status("done", status=run_status, tokens=finished.get("tokens"), cost=finished.get("cost"))
    return {"status": run_status, "run_id": state["run_id"], **finished}


def _tick(
    context: df.DurableOrchestrationContext, state: dict[str, Any], call: Any, now: datetime
) -> Generator[Any, Any, None]:
    """Run the due work of every chunk in parallel and fold the results into the state."""
    config = state["config"]
    summary = state["summary"]
    cancel = bool(state.get("cancel_requested"))
    due: list[tuple[dict[str, Any], str, Any]] = []
    for c in state["chunks"]:
        if c["state"] in ("done", "failed"):
            continue
        if c["next_at"] and datetime.fromisoformat(c["next_at"]) > now and not cancel:
            continue
        key = f"{state['run_id']}/c{c['index']}/r{c['round']}"
        if c["state"] in ("admission", "submitting") and cancel:
            # Never submitted (or waiting to be again): its requests end as not run.
            c["state"] = "collecting"
            c["batch"] = {"id": None, "status": "cancelled", "errors": [], "request_counts": {}}
        elif c["state"] == "admission":
            due.append(
                (
                    c,
                    "admit",
                    call(
                        "admit_batch",
                        {
                            "key": key,
                            "deployment": summary.get("deployment"),
                            "tokens": c.get("tokens", 0),
                            "limits": config,
                            "arrived": state.get("received_at"),
                        },
                    ),
                )
            )
        elif c["state"] == "submitting":
            due.append(
                (
                    c,
                    "submit",
                    call(
                        "submit_batch",
                        {
                            "key": key,
                            "attempt": c["attempt"],
                            "input": c["input"],
                            "endpoint": summary["endpoint"],
                            "tokens": c.get("tokens", 0),
                            "etag": c.get("etag"),
                        },
                    ),
                )
            )
        elif c["state"] == "running" and cancel and not c.get("cancel_sent"):
            c["cancel_sent"] = True
            due.append(
                (c, "check", call("cancel_batch", {"batch_id": c["batch"]["id"], "key": key}))
            )
        elif c["state"] == "running":
            due.append(
                (c, "check", call("check_batch", {"batch_id": c["batch"]["id"], "key": key}))
            )
    if due:  # a chunk cancelled before submission has nothing due but still needs collecting
        results = yield context.task_all([t for _, _, t in due])
        for (c, kind, _), result in zip(due, results, strict=True):
            _apply(state, c, kind, result, now)

    collect = [c for c in state["chunks"] if c["state"] == "collecting"]
    if collect:
        rounds = config["resubmit_rounds"]
        outcomes = yield context.task_all(
            [
                call(
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
            _collected(c, outcome, config)


def _apply(state: dict[str, Any], c: dict[str, Any], kind: str, result: Any, now: datetime) -> None:
    config = state["config"]
    if kind == "admit":
        if result["granted"]:
            c["state"], c["next_at"], c["admitted"] = "submitting", None, True
            c["queue_position"] = None
        else:
            c["next_at"] = _at(now, config["admission_wait_seconds"])
            c["queue_position"] = result.get("position")
    elif kind == "submit":
        outcome = result["status"]
        if outcome == "created":
            c["state"], c["batch"] = "running", result["batch"]
            c["waiting"] = None
            c["interval"] = config["poll_initial_seconds"]
            c["next_at"] = _at(now, c["interval"])
        elif outcome == "pending":
            c["next_at"] = _at(
                now, min(policy.FILE_PENDING_SECONDS, config["poll_initial_seconds"])
            )
        elif outcome == "quota":
            _quota_wait(state, c, result["message"], now)
        else:
            _give_up(c, "batch_refused", result["message"])
    elif kind == "check":
        c["batch"] = result
        if result["status"] in ("completed", "failed", "expired", "cancelled"):
            quota = result.get("quota_message")
            if quota and not state.get("cancel_requested"):
                # listed in metadata.json like every batch, though none of its requests ran
                c["batches"].append({**result, "round": c["round"], "outcome": _NOTHING_RAN})
                _quota_wait(state, c, quota, now)
            else:
                c["state"], c["next_at"] = "collecting", None
        else:
            c["interval"] = policy.next_poll_interval(config, c["interval"])
            c["next_at"] = _at(now, c["interval"])


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
        c["requests"] = outcome["counts"]["retry"]
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
