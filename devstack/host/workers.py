"""The app's orchestrators and activities in a Python worker process, as Azure runs them.

In Azure the Functions host (.NET: the Durable extension, the task hub, the HTTP API) and the
Python worker are separate processes: the host sends each invocation's input to the worker (one
per instance on Flex Consumption), which runs it on its thread pool and sends the result back.
`WorkerPool` does the same with `multiprocessing` (spawned, so nothing of the host's memory is
shared) and a pipe per worker: an app that leans on memory shared with the host fails here as it
would there. The local host keeps its bookkeeping in its own process, so the two no longer share
one GIL.

Orchestrator episodes and activities go to the worker (they carry almost all of the app's CPU);
the HTTP, Event Grid and timer functions stay in the host's process, where a test can see them.
Tests that inject faults into the app's code run it in their own process (`worker_processes=0`).
"""

from __future__ import annotations

import importlib
import itertools
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions import meta

from devstack.bindings import WORKER_EXITED, FunctionFailed, FunctionIndex, FunctionSpec, Invoker
from devstack.durable.engine import app_traceback

# Flex Consumption runs one Python worker process per instance (FUNCTIONS_WORKER_PROCESS_COUNT
# is not valid there), so the local stack runs one too.
FLEX_WORKER_PROCESSES = 1
APP_MODULE = "function_app"  # the worker's script file (PYTHON_SCRIPT_FILE_NAME's default)
RESTART_PAUSE_SECONDS = 2.0  # a worker that exited is started again this long after it started
log = logging.getLogger("devstack.workers")

# host -> worker: (call id, function name, trigger type, datum value, datum type), or None: stop
# worker -> host: (call id, True, (value, type) | None) or (call id, False, (kind, text, trace))
_Call = tuple[int, str, str, Any, str | None]
_Reply = tuple[int, bool, Any]


@dataclass
class _Worker:
    process: Any  # multiprocessing's SpawnProcess
    conn: Connection
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    pending: dict[int, Future[_Reply]] = field(default_factory=dict)
    alive: bool = True
    started: float = field(default_factory=time.monotonic)


class WorkerPool:
    """`count` worker processes, each running the app from `app_dir` on `threads` threads.

    `call` has `Invoker.call`'s contract: the encoded result, or the function's exception
    (as `FunctionFailed`, carrying its type name, text and traceback)."""

    def __init__(
        self,
        app_dir: Path,
        count: int,
        threads: int,
        initializer: Callable[[], None] | None = None,
    ) -> None:
        self._app_dir = app_dir
        self._threads = threads
        self._initializer = initializer  # run first in each worker (picklable: a benchmark's)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._workers = [self._spawn(i) for i in range(count)]
        self._closed = False

    def call(self, spec: FunctionSpec, trigger_data: meta.Datum) -> meta.Datum | None:
        call_id = next(self._ids)
        answer: Future[_Reply] = Future()
        while True:
            with self._lock:
                if self._closed:
                    raise RuntimeError("the worker processes are stopped")
                index, worker = min(enumerate(self._workers), key=lambda w: len(w[1].pending))
                wait = 0.0
                if not worker.alive:  # as the host does: a worker that exited is started
                    # again, but not in a loop when it cannot load the app (see the log)
                    wait = worker.started + RESTART_PAUSE_SECONDS - time.monotonic()
                    if wait <= 0:
                        worker = self._workers[index] = self._spawn(index)
                if wait <= 0:
                    worker.pending[call_id] = answer
                    break
            time.sleep(wait)  # the call waits for the new worker, as the host queues it
        message: _Call = (
            call_id,
            spec.name,
            spec.trigger_type,
            trigger_data.value,
            trigger_data.type,
        )
        try:
            with worker.send_lock:
                worker.conn.send(message)
        except OSError:
            self._lost(worker)
        _, ok, payload = answer.result()
        if not ok:
            raise FunctionFailed(*payload)
        return None if payload is None else meta.Datum(payload[0], payload[1])

    def close(self, timeout: float = 10.0) -> None:
        """Stop every worker: they finish what they run, then exit (killed after `timeout`)."""
        with self._lock:
            self._closed = True
            workers = list(self._workers)
        for worker in workers:
            try:
                with worker.send_lock:
                    worker.conn.send(None)
            except OSError:
                pass
        for worker in workers:
            worker.process.join(timeout)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout)
            worker.conn.close()

    def _spawn(self, index: int) -> _Worker:
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        process = context.Process(
            target=_serve,
            args=(
                theirs,
                str(self._app_dir),
                self._threads,
                logging.getLogger().level,
                self._initializer,
            ),
            name=f"devstack-python-worker-{index}",
            daemon=True,
        )
        process.start()
        theirs.close()
        worker = _Worker(process, ours)
        threading.Thread(
            target=self._read, args=(worker,), name=f"devstack-worker-{index}-replies", daemon=True
        ).start()
        return worker

    def _read(self, worker: _Worker) -> None:
        """Hand each reply to its caller; when the worker exits, fail what it was running."""
        while True:
            try:
                reply: _Reply = worker.conn.recv()
            except (EOFError, OSError):
                break
            with self._lock:
                answer = worker.pending.pop(reply[0], None)
            if answer is not None:
                answer.set_result(reply)
        self._lost(worker)

    def _lost(self, worker: _Worker) -> None:
        with self._lock:
            worker.alive = False
            lost, worker.pending = worker.pending, {}
        if lost and not self._closed:
            log.warning("a Python worker process exited with %d invocations running", len(lost))
        for call_id, answer in lost.items():
            text = "the Python worker process running it exited"
            answer.set_result((call_id, False, (WORKER_EXITED, text, text)))


def _serve(
    conn: Connection,
    app_dir: str,
    threads: int,
    log_level: int,
    initializer: Callable[[], None] | None,
) -> None:
    """A worker process: load the app as the worker does, then run calls until told to stop."""
    # Ctrl-C reaches the whole process group: the host stops, and then stops its workers,
    # after what they run has finished (as the Functions host owns its workers' lifetime).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=log_level, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)
    if initializer is not None:
        initializer()
    sys.path.insert(0, app_dir)
    os.chdir(app_dir)
    module = importlib.import_module(APP_MODULE)
    app = next(v for v in vars(module).values() if isinstance(v, func.FunctionRegister))
    index = FunctionIndex(app)
    invoker = Invoker(lambda: "")  # orchestrators and activities take no client binding
    send_lock = threading.Lock()

    def reply_to(message: _Call) -> _Reply:
        call_id, name, trigger_type, value, kind = message
        spec = index.get(name, trigger_type)
        if spec is None:  # the host indexed the same app: only a file changed since gets here
            text = f"function {name!r} ({trigger_type}) is not in the app"
            return call_id, False, ("LookupError", text, text)
        try:
            result = invoker.call(spec, meta.Datum(value, kind))
        except Exception as exc:  # the function's failure goes back to the host, as in Azure
            return call_id, False, (type(exc).__name__, str(exc), app_traceback(exc))
        return call_id, True, None if result is None else (result.value, result.type)

    def run(message: _Call) -> None:
        reply = reply_to(message)
        with send_lock:
            conn.send(reply)

    with ThreadPoolExecutor(threads, thread_name_prefix="worker") as pool:
        while True:
            try:
                message: _Call | None = conn.recv()
            except (EOFError, OSError):
                break
            if message is None:
                break
            pool.submit(run, message)
    conn.close()
