"""Pure decisions of the run orchestration: waits, backoff, jitter, the run's final status.

Kept apart from the generator so they can be tested directly; all are deterministic (the jitter
is a hash of the run and attempt, never a random number), as orchestrator code must be.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from batching.settings import RunConfig

FILE_PENDING_SECONDS = 5


def jitter(key: str) -> float:
    """A stable fraction in [0, 1) for `key`, spreading retries of different runs apart."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0x1_0000_0000


Config = RunConfig | Mapping[str, Any]


def _value(config: Config, name: str) -> int:
    return int(config[name] if isinstance(config, Mapping) else getattr(config, name))


def quota_backoff(config: Config, attempt: int, key: str) -> int:
    """Seconds to wait after the `attempt`-th token_limit_exceeded: exponential, capped,
    jittered."""
    base = _value(config, "quota_retry_initial_seconds") * (2 ** max(0, attempt - 1))
    capped = min(base, _value(config, "quota_retry_max_seconds"))
    return max(1, int(capped * (0.75 + 0.5 * jitter(f"{key}#{attempt}"))))


def next_poll_interval(config: Config, current: int) -> int:
    """The wait after a status check that found the batch still running: doubling up to the cap."""
    initial, cap = _value(config, "poll_initial_seconds"), _value(config, "poll_max_seconds")
    return min(max(current * 2, initial), cap)
