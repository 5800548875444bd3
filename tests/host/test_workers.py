"""The app's orchestrators and activities in a worker process of their own, as Azure runs them
(`devstack.host.workers`): results and failures come back whole, a worker that exits is
replaced, and an episode it was running runs again."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.functions import meta

from devstack.bindings import WORKER_EXITED, FunctionFailed, FunctionIndex, FunctionSpec
from devstack.durable.clock import VirtualClock
from devstack.host import workers
from devstack.host.host import FunctionHost
from devstack.host.workers import WorkerPool
from tests.support.toyapp import START, make_app

INDEX = FunctionIndex(make_app())


def _activity(name: str) -> FunctionSpec:
    spec = INDEX.get(name, "activityTrigger")
    assert spec is not None
    return spec


def _json(value: Any) -> meta.Datum:
    return meta.Datum(json.dumps(value), "json")


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """A folder whose function_app.py is the toy app, as the worker loads an app."""
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "function_app.py").write_text(
        "from tests.support.toyapp import make_app\n\napp = make_app()\n"
    )
    return folder


@pytest.fixture
def pool(app_dir: Path) -> Iterator[WorkerPool]:
    workers = WorkerPool(app_dir, 1, 2)
    yield workers
    workers.close()


def _call(pool: WorkerPool, name: str, value: Any) -> Any:
    result = pool.call(_activity(name), _json(value))
    assert result is not None
    return json.loads(result.value)


def test_activities_run_in_another_process_and_their_failures_come_back_whole(
    pool: WorkerPool,
) -> None:
    assert _call(pool, "hello", "x") == "Hello x"
    assert _call(pool, "process_id", None) != os.getpid()
    with pytest.raises(FunctionFailed) as failed:
        _call(pool, "boom", "no luck")
    assert (failed.value.kind, str(failed.value)) == ("ValueError", "no luck")
    trace = failed.value.app_traceback
    assert "in boom" in trace and "ValueError: no luck" in trace
    assert "devstack" not in trace  # the app author's frames only, as the host shows them


def test_a_worker_that_exits_fails_what_it_ran_and_is_started_again(
    pool: WorkerPool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _call(pool, "process_id", None)
    marker = tmp_path / "exited"
    with pytest.raises(FunctionFailed) as failed:
        _call(pool, "exit_once", str(marker))
    assert failed.value.kind == WORKER_EXITED
    monkeypatch.setattr(workers, "RESTART_PAUSE_SECONDS", 0.0)
    assert _call(pool, "exit_once", str(marker)) == "survived"
    assert _call(pool, "process_id", None) not in (first, os.getpid())


def test_orchestrations_run_through_the_worker_on_the_local_host(app_dir: Path) -> None:
    with FunctionHost(
        make_app(), None, VirtualClock(START), worker_processes=1, app_dir=app_dir
    ) as host:
        iid = host.start_new("chain", None, {"x": 1})
        host.run_until_idle(timeout=60)
        status = host.get_status(iid)
    assert status is not None and status["runtimeStatus"] == "Completed"
    assert status["output"] == ["Hello a", "Hello b", {"echo": {"x": 1}}]


class _ExitsOnce:
    """The app's functions in this process, but the first orchestrator episode's worker
    'exits' under it, as `WorkerPool` reports that."""

    def __init__(self, host: FunctionHost) -> None:
        self.calls = host.invoker
        self.exited = False

    def call(self, spec: FunctionSpec, trigger_data: meta.Datum) -> meta.Datum | None:
        if spec.trigger_type == "orchestrationTrigger" and not self.exited:
            self.exited = True
            raise FunctionFailed(WORKER_EXITED, "the worker exited", "")
        return self.calls.call(spec, trigger_data)


def test_an_episode_whose_worker_exits_runs_again_instead_of_failing(
    host: FunctionHost,
) -> None:
    calls = _ExitsOnce(host)
    host.engine.invoker = calls
    iid = host.start_new("chain", None, {"x": 2})
    host.run_until_idle(timeout=20)
    status = host.get_status(iid)
    assert calls.exited
    assert status is not None and status["runtimeStatus"] == "Completed"
    assert status["output"] == ["Hello a", "Hello b", {"echo": {"x": 2}}]


def test_a_worker_that_keeps_exiting_is_not_started_again_in_a_loop(
    pool: WorkerPool, tmp_path: Path
) -> None:
    with pytest.raises(FunctionFailed):
        _call(pool, "exit_once", str(tmp_path / "exited"))
    started = pool._workers[0].started
    assert _call(pool, "hello", "x") == "Hello x"  # it waited for the pause, then a new worker
    assert pool._workers[0].started - started >= workers.RESTART_PAUSE_SECONDS
