"""Sorting a finished batch's lines into results, final failures and requests to resubmit.

A batch's output and error files are read as streams. Every request of the batch's input ends in
exactly one of three places: succeeded (kept as the service wrote it), failed for good (with the
reason and the round), or to be resubmitted (its original input line). Requests that appear in
neither file (the batch expired or was cancelled before they ran) count as not run.
Each line is written with its request's input position (`batching.steps.ordering`), so that the
run's outputs can be merged back into input order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from batching.jsonlines import iter_lines
from batching.steps.ordering import UNKNOWN, KeyedSink, Positions

RETRYABLE_CODES = frozenset(
    {
        "batch_expired",
        "batch_cancelled",
        "timeout",
        "server_error",
        "rate_limit_exceeded",
        "internal_error",
        "not_run",
        "service_unavailable",
    }
)


class Sink(Protocol):
    def write(self, data: bytes) -> int: ...


@dataclass
class Usage:
    """Token usage summed over successful responses (chat and Responses API shapes)."""

    prompt: int = 0
    completion: int = 0
    model: str | None = None

    def add(self, body: Any) -> None:
        if not isinstance(body, dict):
            return
        self.model = self.model or body.get("model")
        usage = body.get("usage")
        if not isinstance(usage, dict):
            return
        self.prompt += int(usage.get("prompt_tokens") or usage.get("input_tokens") or 0)
        self.completion += int(usage.get("completion_tokens") or usage.get("output_tokens") or 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "completion": self.completion,
            "total": self.prompt + self.completion,
            "model": self.model,
        }


@dataclass
class Outcome:
    """What one batch's collection found."""

    succeeded: int = 0
    failed: int = 0
    retry: int = 0
    usage: Usage = field(default_factory=Usage)
    failure_codes: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "succeeded": self.succeeded,
            "failed": self.failed,
            "retry": self.retry,
            "usage": self.usage.to_dict(),
            "failure_codes": self.failure_codes,
        }


def _failure(line: dict[str, Any]) -> tuple[int | None, str, str]:
    """(status code, code, message) of a failed output or error line, in any of its shapes."""
    response = line.get("response") or {}
    error = line.get("error") or {}
    body = response.get("body") if isinstance(response, dict) else None
    body_error = (body or {}).get("error") if isinstance(body, dict) else None
    status = response.get("status_code") if isinstance(response, dict) else None
    detail = (
        body_error if isinstance(body_error, dict) else error if isinstance(error, dict) else {}
    )
    code = str(
        detail.get("code") or detail.get("type") or (f"http_{status}" if status else "error")
    )
    message = str(detail.get("message") or "request failed")
    return (int(status) if status is not None else None), code, message


def is_retryable(status: int | None, code: str) -> bool:
    """Transient failures: throttling, server errors, timeouts, requests the batch never ran."""
    if status is not None and (status in (408, 429) or status >= 500):
        return True
    return code in RETRYABLE_CODES


def is_success(line: dict[str, Any]) -> bool:
    response = line.get("response")
    return (
        isinstance(response, dict)
        and 200 <= int(response.get("status_code") or 0) < 300
        and not line.get("error")
    )


def collect(
    outputs: Iterable[Iterable[bytes]],
    chunk_input: Iterable[bytes],
    results: KeyedSink,
    failures: KeyedSink,
    retry: KeyedSink,
    *,
    positions: Positions,
    round_no: int,
    batch_id: str,
    resubmit: bool,
    not_run_reason: str = "the batch ended before this request ran",
) -> Outcome:
    """Sort a batch's output and error files (`outputs`) against its input.

    `resubmit` False sends retryable failures to `failures` too (last round, or cancelled by
    the user). `positions` gives a custom_id's input position, which every line is written with.
    `chunk_input` is read only when some request needs its input line: one to resubmit, or
    one the outputs do not have (a batch that ran every request is not read back).
    """
    outcome = Outcome()
    done: set[str] = set()
    to_retry: set[str] = set()
    answered = 0  # requests of the input the outputs have a line for

    def fail(position: int, custom_id: str, status: int | None, code: str, message: str) -> None:
        failures.add(
            position,
            orjson.dumps(
                {
                    "custom_id": custom_id,
                    "round": round_no,
                    "batch_id": batch_id,
                    "status_code": status,
                    "code": code,
                    "reason": message,
                    "retryable": is_retryable(status, code),
                }
            ),
        )
        outcome.failed += 1
        outcome.failure_codes[code] = outcome.failure_codes.get(code, 0) + 1

    for blocks in outputs:
        for _, raw in iter_lines(blocks):
            if not raw.strip():
                continue
            line = orjson.loads(raw)
            custom_id = str(line.get("custom_id"))
            if custom_id in done:
                continue  # the service may repeat a line; each request counts once
            done.add(custom_id)
            position = positions(custom_id)
            answered += position != UNKNOWN
            if is_success(line):
                results.add(position, raw)
                outcome.succeeded += 1
                outcome.usage.add(line["response"].get("body"))
                continue
            status, code, message = _failure(line)
            if resubmit and is_retryable(status, code):
                to_retry.add(custom_id)
            else:
                fail(position, custom_id, status, code, message)

    if not to_retry and answered == positions.count:
        return outcome
    for _, raw in iter_lines(chunk_input):
        if not raw.strip():
            continue
        custom_id = str(orjson.loads(raw).get("custom_id"))
        if custom_id in done and custom_id not in to_retry:
            continue
        if custom_id not in done and not resubmit:
            fail(positions(custom_id), custom_id, None, "not_run", not_run_reason)
            continue
        retry.add(positions(custom_id), raw)
        outcome.retry += 1
    return outcome
