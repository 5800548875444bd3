"""How many of a run's requests failed, from its chunks and its validation summary.

Pure, so the orchestrator can tell with it whether the `write_errors` activity has anything to
write (errors.jsonl holds exactly these), and the activities count the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def skipped_lines(summary: Mapping[str, Any]) -> int:
    """Invalid lines the run skipped (INVALID_LINES=skip): each is a failed request."""
    return int(summary.get("skipped") or 0)


def failed_requests(chunks: Iterable[Mapping[str, Any]], summary: Mapping[str, Any]) -> int:
    """The chunks' final failures plus the skipped invalid lines."""
    return sum(int(c["failed"]) for c in chunks) + skipped_lines(summary)
