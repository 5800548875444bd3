"""`FunctionHost`: runs an unchanged Functions app (a `df.DFApp`) locally, without `func`.

It serves the app's HTTP functions, the Event Grid webhook and the Durable HTTP API on one port,
runs orchestrations through the real Durable SDK against a SQLite task hub, runs activities on a
thread pool and timer triggers on their schedules. With a `VirtualClock` nothing runs by itself:
`run_until_idle()` drives the work and moves virtual time to the next due timer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from azure.durable_functions.models.utils.df_serialization import df_dumps
from azure.functions import meta

from devstack.bindings import AsyncLoop, FunctionIndex, FunctionSpec, Invoker
from devstack.durable.clock import Clock, RealClock
from devstack.durable.dispatch import Dispatcher
from devstack.durable.engine import ActivityCrashHook, Engine, EpisodeCrashHook
from devstack.durable.store import TERMINAL, Store
from devstack.host.concurrency import Concurrency
from devstack.host.triggers import TimerSchedules, event_grid_datum, timer_datum
from devstack.host.workers import WorkerPool

_STATE_FILE = "durable.sqlite3"
_LOOP_TICK = 0.25


class FunctionHost:
    """A local Functions host for one app object; use as a context manager (start/stop)."""

    def __init__(
        self,
        app: Any,
        state_dir: Path | None,
        clock: Clock,
        *,
        env: dict[str, str] | None = None,
        host_json: Path | None = None,
        max_workers: int | None = None,
        port: int = 0,
        route_prefix: str = "api",
        task_hub: str = "devstack",
        autorun: bool | None = None,
        worker_processes: int = 0,
        app_dir: Path | None = None,
        worker_initializer: Callable[[], None] | None = None,
    ) -> None:
        self.log = logging.getLogger("devstack.host")
        self.clock = clock
        self.index = FunctionIndex(app)
        for problem in self.index.problems():
            self.log.warning("not supported locally: %s", problem)
        self.store = Store(state_dir / _STATE_FILE if state_dir is not None else None)
        self.invoker = Invoker(self.client_binding)
        self.engine = Engine(self.store, clock, self.index, self.invoker)
        # As on Azure: host.json's durable limits, the Python worker's thread pool.
        self.concurrency = Concurrency.of(host_json, {**os.environ, **(env or {})})
        # 0: the app's orchestrators and activities run in this process (tests inject faults
        # there); else in that many worker processes, as in Azure (devstack.host.workers).
        if worker_processes and app_dir is None:
            raise ValueError("worker processes load the app from app_dir: give it")
        self.worker_processes = worker_processes
        self._app_dir = app_dir
        self._worker_initializer = worker_initializer
        self._workers: WorkerPool | None = None
        self.dispatcher = Dispatcher(
            self.engine,
            self.store,
            clock,
            max_workers or self.concurrency.worker_threads * max(1, worker_processes),
            self.concurrency.max_activities,
            self.concurrency.max_orchestrators,
        )
        self.engine.on_new_work = self.dispatcher.wake
        self.route_prefix = "/" + route_prefix.strip("/") if route_prefix.strip("/") else ""
        self.task_hub = task_hub
        self.autorun = isinstance(clock, RealClock) if autorun is None else autorun
        self._env = dict(env or {})
        self._saved_env: dict[str, str | None] = {}
        self._port = port
        self._base_url: str | None = None
        self._server: uvicorn.Server | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._state = "new"
        self._timers = TimerSchedules(self.index.of_type("timerTrigger"))
        self._running_timers: set[str] = set()

    # --- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> FunctionHost:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Apply the settings, serve HTTP and (real clock) start running due work in the background.

        Instances left in flight by a previous host on the same state_dir resume by themselves:
        their queued messages and activities are still in the store.
        """
        if self._state != "new":
            return
        self._state = "started"
        for key, value in self._env.items():
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        if self.worker_processes:  # started with the settings applied: they inherit them
            assert self._app_dir is not None
            self._workers = WorkerPool(
                self._app_dir,
                self.worker_processes,
                self.concurrency.worker_threads,
                self._worker_initializer,
            )
            self.engine.invoker = self._workers
        self._serve()
        if self.autorun:
            for spec in self._timers.start(self.clock.now()):
                self._run_timer(spec, self.clock.now())
            loop = threading.Thread(target=self._background, name="devstack-loop", daemon=True)
            loop.start()
            self._threads.append(loop)

    def stop(self) -> None:
        """Stop the loop and the server, let running work finish, close the store. Idempotent."""
        if self._state == "stopped":
            return
        was_started, self._state = self._state == "started", "stopped"
        if not was_started:
            self.dispatcher.close()
            self.store.close()
            return
        self._stopping.set()
        self.dispatcher.wake()
        if self._server is not None:
            self._server.should_exit = True
        for thread in self._threads:
            thread.join(timeout=10)
        self.dispatcher.close()
        if self._workers is not None:
            self._workers.close()
        self.store.close()
        for key, old in self._saved_env.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old

    def _serve(self) -> None:
        from devstack.host.http import build_app

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._port))
        self._base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(build_app(self), log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="devstack-http", daemon=True
        )
        thread.start()
        self._threads.append(thread)
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the local host's HTTP server did not start")
            time.sleep(0.01)

    def _background(self) -> None:
        """Real-clock loop: run due work and due timer triggers until stopped."""
        while not self._stopping.is_set():
            self.dispatcher.pump()
            now = self.clock.now()
            for spec, planned in self._timers.due(now):
                self._run_timer(spec, planned)
            wakeups = [w for w in (self.store.next_due(now), self._timers.next_wakeup()) if w]
            pause = min([_LOOP_TICK, *((w - now).total_seconds() for w in wakeups)])
            self.dispatcher.wait(max(pause, 0.005))

    def _run_timer(self, spec: FunctionSpec, planned: datetime) -> None:
        if spec.name in self._running_timers:  # a timer function never overlaps itself
            return
        self._running_timers.add(spec.name)

        def job() -> None:
            try:
                self._invoke_timer(spec, planned)
            finally:
                self._running_timers.discard(spec.name)

        self.dispatcher.submit(job)

    # --- addresses ----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("the host is not started")
        return self._base_url

    def management_urls(self, instance_id: str) -> dict[str, str]:
        """The `HttpManagementPayload` links for an instance (public webhook paths)."""
        prefix = f"{self.base_url}/runtime/webhooks/durabletask/instances/{instance_id}"
        query = f"taskHub={self.task_hub}&connection=Storage"
        return {
            "id": instance_id,
            "purgeHistoryDeleteUri": f"{prefix}?{query}",
            "restartPostUri": f"{prefix}/restart?{query}",
            "resumePostUri": f"{prefix}/resume?reason={{text}}&{query}",
            "rewindPostUri": f"{prefix}/rewind?reason={{text}}&{query}",
            "sendEventPostUri": f"{prefix}/raiseEvent/{{eventName}}?{query}",
            "statusQueryGetUri": f"{prefix}?{query}",
            "suspendPostUri": f"{prefix}/suspend?reason={{text}}&{query}",
            "terminatePostUri": f"{prefix}/terminate?reason={{text}}&{query}",
        }

    def client_binding(self) -> str:
        """The durable client binding JSON the Functions host passes to the worker."""
        webhook = f"{self.base_url}/runtime/webhooks/durabletask"
        query = f"taskHub={self.task_hub}&connection=Storage"
        create = f"{webhook}/orchestrators/{{functionName}}[/{{instanceId}}]"
        return json.dumps(
            {
                "taskHubName": self.task_hub,
                "creationUrls": {
                    "createNewInstancePostUri": f"{create}?{query}",
                    "createAndWaitOnNewInstancePostUri": (
                        f"{create}?timeout={{timeoutInSeconds}}"
                        f"&pollingInterval={{intervalInSeconds}}&{query}"
                    ),
                },
                "managementUrls": self.management_urls("INSTANCEID"),
                "baseUrl": webhook,
                "requiredQueryStringParameters": query,
                "rpcBaseUrl": f"{self.base_url}/durabletask/",
                "httpBaseUrl": "",
                "maxGrpcMessageSizeInBytes": 0,
                "grpcHttpClientTimeout": "00:01:40",
            }
        )

    # --- durable management -------------------------------------------------------------------

    def start_new(
        self, orchestrator: str, instance_id: str | None = None, input: Any = None
    ) -> str:
        """Start an orchestration as `DurableOrchestrationClient.start_new` would.

        Like the Python client, the input travels as a JSON string of the `df_dumps` text, so the
        status shows it as a string and `context.get_input()` decodes it.
        """
        input_text = json.dumps(df_dumps(input)) if input is not None else None
        return self.engine.start_new(orchestrator, instance_id, input_text)

    def get_status(self, instance_id: str) -> dict[str, Any] | None:
        """The Durable API status payload: runtimeStatus, input, output, customStatus, times."""
        return self.engine.status(instance_id)

    def list_instances(
        self,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        statuses: list[str] | None = None,
        instance_id_prefix: str | None = None,
    ) -> list[dict[str, Any]]:
        return self.engine.query(created_from, created_to, statuses, instance_id_prefix, True)

    def raise_event(self, instance_id: str, name: str, data: Any = None) -> None:
        """Raise an event as `DurableOrchestrationClient.raise_event` does.

        That client JSON-encodes the data and then posts the resulting string as JSON, so the
        orchestrator's `wait_for_external_event` task yields the JSON *text* (a known quirk of
        the Python SDK on Azure too).
        """
        self.engine.raise_event(instance_id, name, json.dumps(json.dumps(data)))

    def terminate(self, instance_id: str, reason: str) -> None:
        self.engine.terminate(instance_id, reason)

    def purge(self, instance_id: str) -> int:
        return self.engine.purge(instance_id)

    def history(self, instance_id: str) -> list[dict[str, Any]]:
        """The current execution's history events (raw, `EventType` as numbers)."""
        return self.store.history(instance_id)

    # --- running work -------------------------------------------------------------------------

    def run_until_idle(self, timeout: float = 60, max_virtual_seconds: float | None = None) -> None:
        """Run episodes and activities until nothing is runnable.

        With a VirtualClock, time then jumps to the next due timer and work continues, until no
        instance is Running/Pending or the only thing left is waiting for external events.
        Bounded by `timeout` wall seconds (TimeoutError) and `max_virtual_seconds` of virtual time.
        """
        self._require_started()
        limit = timedelta(seconds=max_virtual_seconds) if max_virtual_seconds else None
        self.dispatcher.run_until_idle(timeout, limit)

    def wait_for(self, instance_id: str, timeout: float) -> dict[str, Any]:
        """Block until the instance reaches a terminal status; returns its status."""
        self._require_started()
        deadline = time.monotonic() + timeout
        while True:
            if not self.autorun:
                self.run_until_idle(timeout=max(deadline - time.monotonic(), 0.1))
            status = self.get_status(instance_id)
            if status is not None and status["runtimeStatus"] in TERMINAL:
                return status
            if time.monotonic() > deadline:
                state = status["runtimeStatus"] if status else "missing"
                raise TimeoutError(f"instance {instance_id} is still {state} after {timeout}s")
            self.dispatcher.wait(0.05)

    # --- triggers -----------------------------------------------------------------------------

    def invoke_event_grid(self, function_name: str, event: dict[str, Any]) -> None:
        """Call an Event Grid-triggered function with one event (Event Grid or CloudEvents)."""
        self._require_started()
        spec = self._spec(function_name, "eventGridTrigger")
        self.invoker.call(spec, self.event_grid_input(event))

    def event_grid_input(self, event: dict[str, Any]) -> meta.Datum:
        return event_grid_datum(event)

    def fire_timer(self, function_name: str) -> None:
        """Run a timer-triggered function once, now."""
        self._require_started()
        self._invoke_timer(self._spec(function_name, "timerTrigger"), self.clock.now())

    def _invoke_timer(self, spec: FunctionSpec, planned: datetime) -> None:
        now = self.clock.now()
        next_at = self._timers.next_at.get(spec.name, now)
        past_due = now - planned > timedelta(minutes=1)
        data = timer_datum(self._timers.last_at.get(spec.name), next_at, now, past_due)
        self.invoker.call(spec, data)

    async def call_async(self, spec: FunctionSpec, data: meta.Datum) -> meta.Datum | None:
        """Call a function from the HTTP server's event loop without blocking it."""
        kwargs = self.invoker.prepare(spec, data)
        if spec.is_async:
            result = await asyncio.wrap_future(AsyncLoop.shared().submit(spec.fn(**kwargs)))
        else:  # on the worker's thread pool, with activities and orchestrators, as on Azure
            result = await asyncio.wrap_future(self.dispatcher.run_sync(spec.fn, **kwargs))
        return self.invoker.encode(spec, result)

    def _spec(self, name: str, trigger_type: str) -> FunctionSpec:
        spec = self.index.get(name, trigger_type)
        if spec is None:
            raise ValueError(f"the app has no {trigger_type} function named {name!r}")
        return spec

    def _require_started(self) -> None:
        if self._state != "started":
            raise RuntimeError("start the host first (use it as a context manager)")

    # --- stats and fault injection ------------------------------------------------------------

    @property
    def activity_calls(self) -> Counter[str]:
        """Executions per activity name, re-executions included."""
        return self.engine.activity_calls

    def custom_statuses(self, instance_id: str) -> list[Any]:
        """Every custom status the instance set, oldest first (the last 1,000)."""
        return list(self.engine.status_log.get(instance_id, ()))

    @property
    def peaks(self) -> Counter[str]:
        """The largest payload of each kind so far, in bytes (as devstack.durable.limits counts)."""
        return self.engine.peaks

    @property
    def crash_hook(self) -> ActivityCrashHook | None:
        """`(instance_id, activity_name, attempt) -> bool`: True discards a finished activity's
        result as if the worker crashed before reporting it; the activity runs again later."""
        return self.engine.crash_hook

    @crash_hook.setter
    def crash_hook(self, hook: ActivityCrashHook | None) -> None:
        self.engine.crash_hook = hook

    @property
    def episode_crash_hook(self) -> EpisodeCrashHook | None:
        """`(instance_id, attempt) -> bool`: True drops an orchestrator episode before its commit;
        its messages stay queued and the episode runs again."""
        return self.engine.episode_crash_hook

    @episode_crash_hook.setter
    def episode_crash_hook(self, hook: EpisodeCrashHook | None) -> None:
        self.engine.episode_crash_hook = hook
