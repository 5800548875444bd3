"""How much work the host runs at once, as the Functions host and the Python worker decide it.

Two layers, as on Azure:

- the Durable extension dispatches at most `maxConcurrentActivityFunctions` activities and
  `maxConcurrentOrchestratorFunctions` orchestrator episodes at a time, each its own limit
  (host.json, `extensions.durableTask`; default 10 x the number of processors:
  azure-functions-durable-extension, `DurableTaskOptions`). Work beyond that stays queued in the
  task hub, not in the worker;
- the Python worker runs every synchronous function (activities, orchestrators, sync HTTP and
  timer functions) on one thread pool of `PYTHON_THREADPOOL_THREAD_COUNT` threads, or
  `ThreadPoolExecutor`'s default, min(32, processors + 4), when the setting is not set
  (azure-functions-runtime, `utils/threadpool.py`); `async` functions run on its event loop.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

THREAD_COUNT_SETTING = "PYTHON_THREADPOOL_THREAD_COUNT"


def _processors() -> int:
    return os.cpu_count() or 1


def _positive(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{what} must be a positive integer, not {value!r}")
    return value


@dataclass(frozen=True)
class Concurrency:
    worker_threads: int
    max_activities: int
    max_orchestrators: int

    @classmethod
    def of(cls, host_json: Path | None, env: Mapping[str, str]) -> Concurrency:
        """The limits for an app with this host.json (None: none, the defaults) and settings."""
        durable: dict[str, Any] = {}
        if host_json is not None:
            config = json.loads(host_json.read_text())
            durable = config.get("extensions", {}).get("durableTask", {}) or {}
        default = 10 * _processors()
        activities = durable.get("maxConcurrentActivityFunctions", default)
        orchestrators = durable.get("maxConcurrentOrchestratorFunctions", default)
        threads_setting = env.get(THREAD_COUNT_SETTING)
        threads = int(threads_setting) if threads_setting else min(32, _processors() + 4)
        return cls(
            worker_threads=_positive(threads, THREAD_COUNT_SETTING),
            max_activities=_positive(activities, "maxConcurrentActivityFunctions"),
            max_orchestrators=_positive(orchestrators, "maxConcurrentOrchestratorFunctions"),
        )
