"""What a run's chunks say about its outputs: how many requests failed, and whether
results.jsonl is written already.

Pure, so the orchestrator can tell with it which writes are left (errors.jsonl holds exactly
the failures; `write_results` has nothing to do when the collection wrote results.jsonl), and
the activities count the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def skipped_lines(summary: Mapping[str, Any]) -> int:
    """Invalid lines the run skipped (INVALID_LINES=skip): each is a failed request."""
    return int(summary.get("skipped") or 0)


def failed_requests(chunks: Iterable[Mapping[str, Any]], summary: Mapping[str, Any]) -> int:
    """The chunks' final failures plus the skipped invalid lines."""
    return sum(int(c["failed"]) for c in chunks) + skipped_lines(summary)


def results_written(chunks: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """What `write_results` returns, when the collection wrote results.jsonl itself: the run's
    one chunk, collected once, with `final_results` (`collection.collect_batch`)."""
    if len(chunks) != 1 or len(chunks[0]["parts"]) != 1:
        return None
    written: dict[str, Any] | None = chunks[0]["parts"][0].get("results_written")
    return written
