"""Pure decisions of the run orchestration: waits, backoff, jitter, the run's final status.

Kept apart from the generator so they can be tested directly; all are deterministic (the jitter
is a hash of the run and attempt, never a random number), as orchestrator code must be.
"""

from __future__ import annotations

import hashlib
from typing import Any

FILE_PENDING_SECONDS = 5


def jitter(key: str) -> float:
    """A stable fraction in [0, 1) for `key`, spreading retries of different runs apart."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0x1_0000_0000


def quota_backoff(config: dict[str, Any], attempt: int, key: str) -> int:
    """Seconds to wait after the `attempt`-th token_limit_exceeded: exponential, capped,
    jittered."""
    base = config["quota_retry_initial_seconds"] * (2 ** max(0, attempt - 1))
    capped = min(base, config["quota_retry_max_seconds"])
    return max(1, int(capped * (0.75 + 0.5 * jitter(f"{key}#{attempt}"))))


def next_poll_interval(config: dict[str, Any], current: int) -> int:
    """The wait after a status check that found the batch still running: doubling up to the cap."""
    initial, cap = int(config["poll_initial_seconds"]), int(config["poll_max_seconds"])
    return min(max(current * 2, initial), cap)


def final_status(chunks: list[dict[str, Any]], cancelled_by_user: bool) -> str:
    """completed | failed | expired | cancelled, from how each chunk's last batch ended."""
    if cancelled_by_user:
        return "cancelled"
    ends = [c.get("end") for c in chunks]
    for status in ("failed", "expired", "cancelled"):
        if status in ends:
            return status
    return "completed"


def request_counts(summary_requests: int, chunks: list[dict[str, Any]]) -> dict[str, int]:
    """Totals for the custom status: finished rounds plus the running batches' live counts."""
    succeeded = sum(c["succeeded"] for c in chunks)
    failed = sum(c["failed"] for c in chunks)
    for c in chunks:
        live = (c.get("batch") or {}).get("request_counts") or {}
        if c["state"] == "running":
            succeeded += int(live.get("completed") or 0)
    return {
        "total": summary_requests,
        "succeeded": succeeded,
        "failed": failed,
        "pending": max(0, summary_requests - succeeded - failed),
    }
