"""How much the local host runs at once, held to what Azure does: the Durable extension's
limits from host.json (`maxConcurrentActivityFunctions`, `maxConcurrentOrchestratorFunctions`,
each its own, default 10 x processors: azure-functions-durable-extension `DurableTaskOptions`)
and the Python worker's thread pool (`PYTHON_THREADPOOL_THREAD_COUNT`, else min(32, processors
+ 4): azure-functions-runtime `utils/threadpool.py`)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from devstack.durable.clock import VirtualClock
from devstack.host.concurrency import Concurrency
from devstack.host.host import FunctionHost
from devstack.services import ROOT
from tests.support.toyapp import make_app, orchestrations


def test_limits_follow_host_json_and_the_worker_defaults() -> None:
    cpu = os.cpu_count() or 1
    assert Concurrency.of(None, {}) == Concurrency(min(32, cpu + 4), 10 * cpu, 10 * cpu)
    app = Concurrency.of(ROOT / "host.json", {})
    assert (app.max_activities, app.max_orchestrators) == (8, 8)
    assert Concurrency.of(None, {"PYTHON_THREADPOOL_THREAD_COUNT": "3"}).worker_threads == 3


def _until(condition: Callable[[], bool], host: FunctionHost, what: str) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, what
        host.dispatcher.pump()
        host.dispatcher.wait(0.05)


def test_activities_wait_in_the_hub_at_the_limit_and_episodes_do_not_wait_behind_them(
    clock: VirtualClock, tmp_path: Path
) -> None:
    orchestrations.reset()
    host_json = tmp_path / "host.json"
    host_json.write_text(
        json.dumps(
            {
                "version": "2.0",
                "extensions": {
                    "durableTask": {
                        "maxConcurrentActivityFunctions": 2,
                        "maxConcurrentOrchestratorFunctions": 1,
                    }
                },
            }
        )
    )
    with FunctionHost(make_app(), None, clock, host_json=host_json) as host:
        fan = host.start_new("fan_out_held", None, 5)
        _until(lambda: host.activity_calls["held_square"] == 2, host, "two activities start")
        for _ in range(5):  # the other three stay queued while two are held
            host.dispatcher.pump()
            host.dispatcher.wait(0.05)
        assert host.activity_calls["held_square"] == 2
        # An orchestration episode still runs: it is not queued behind the held activities.
        other = host.start_new("with_status", None, "x")
        _until(
            lambda: (host.get_status(other) or {}).get("runtimeStatus") == "Completed",
            host,
            "an episode runs while the activity slots are full",
        )
        orchestrations.release_held()
        status = host.wait_for(fan, timeout=20)
        assert status["runtimeStatus"] == "Completed"
        assert status["output"] == sum(i * i for i in range(5))
        assert host.activity_calls["held_square"] == 5
