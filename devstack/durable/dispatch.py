"""Running queued work: activities on a thread pool, one orchestrator episode per instance.

The same `pump()` serves the background loop (real clock) and `run_until_idle()` (tests, virtual
clock), so both paths claim work the same way and never run two episodes of one instance at once.
As the Durable extension does, it claims at most `max_activities` activities and
`max_orchestrators` episodes at a time (each its own limit); what is over stays queued in the
store. Claimed work runs on one pool of `max_workers` threads, the Python worker's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from devstack.durable.clock import Clock, VirtualClock
from devstack.durable.engine import Engine
from devstack.durable.store import ActivityItem, Store

log = logging.getLogger("devstack.dispatch")


class Dispatcher:
    """Claims due work from the store and runs it on a thread pool."""

    def __init__(
        self,
        engine: Engine,
        store: Store,
        clock: Clock,
        max_workers: int,
        max_activities: int | None = None,
        max_orchestrators: int | None = None,
    ) -> None:
        self._engine = engine
        self._store = store
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="devstack-worker")
        self._max_activities = max_activities or max_workers
        self._max_orchestrators = max_orchestrators or max_workers
        self._cond = threading.Condition()
        self._pumping = threading.Lock()  # one pump at a time: what it read stays unclaimed
        self._busy_instances: set[str] = set()
        self._leased_activities: set[int] = set()
        self._in_flight = 0
        self._finished = 0  # jobs ended so far: tells run_until_idle that pump() looked too early
        self._closed = False

    def submit(self, job: Callable[[], None]) -> None:
        """Run `job` on the pool, counted as in-flight work."""
        with self._cond:
            self._in_flight += 1
        try:
            self._pool.submit(self._run, job)
        except RuntimeError:  # pool already shut down
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()

    def _run(self, job: Callable[[], None]) -> None:
        try:
            job()
        except Exception:
            log.exception("work item failed inside the host")
        finally:
            with self._cond:
                self._in_flight -= 1
                self._finished += 1
                self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def wait(self, timeout: float) -> None:
        """Sleep until some work finishes, new work arrives or `timeout` passes."""
        with self._cond:
            self._cond.wait(timeout)

    def run_sync(self, fn: Callable[..., Any], /, **kwargs: Any) -> Future[Any]:
        """Run a synchronous function (an HTTP function) on the worker's thread pool."""
        return self._pool.submit(fn, **kwargs)

    def pump(self) -> int:
        """Start the activities and episodes that can run now, within the limits; returns how
        many started. The store is read outside the condition, so finishing jobs never wait on
        it; pumps take turns, so nothing read here is claimed by another pump meanwhile."""
        if self._closed:
            return 0
        with self._pumping:
            with self._cond:
                leased, busy = set(self._leased_activities), set(self._busy_instances)
            free_activities = self._max_activities - len(leased)
            free_episodes = self._max_orchestrators - len(busy)
            items = (
                self._store.queued_activities(leased, free_activities)
                if free_activities > 0
                else []
            )
            due = (
                self._store.instances_with_due_messages(self._clock.now(), busy, free_episodes)
                if free_episodes > 0
                else []
            )
            started = 0
            with self._cond:
                for item in items:
                    self._leased_activities.add(item.id)
                    self.submit(lambda item=item: self._activity(item))  # type: ignore[misc]
                    started += 1
                for iid in due:
                    self._busy_instances.add(iid)
                    self.submit(lambda iid=iid: self._episode(iid))  # type: ignore[misc]
                    started += 1
            return started

    def _activity(self, item: ActivityItem) -> None:
        try:
            self._engine.run_activity(item)
        finally:
            with self._cond:
                self._leased_activities.discard(item.id)

    def _episode(self, instance_id: str) -> None:
        try:
            self._engine.run_episode(instance_id)
        finally:
            with self._cond:
                self._busy_instances.discard(instance_id)

    def run_until_idle(self, timeout: float, max_virtual: timedelta | None) -> None:
        """Run work until none is runnable; a virtual clock jumps to the next due timer.

        Idle means: nothing in flight, and `pump()` found nothing to start *after* the last job
        ended. A job writes its results to the store before it counts as ended, so a job that
        ended while `pump()` was reading could leave work that `pump()` missed; then look again.
        """
        deadline = time.monotonic() + timeout
        virtual_start = self._clock.now()
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"work still running after {timeout:.0f}s of wall time")
            with self._cond:
                finished_before = self._finished
            started = self.pump()
            with self._cond:
                if self._in_flight:
                    self._cond.wait(min(0.5, max(deadline - time.monotonic(), 0.01)))
                    continue
                if self._finished != finished_before:
                    continue
            if started:
                continue
            if not self._advance_virtual_clock(virtual_start, max_virtual):
                return

    def _advance_virtual_clock(self, start: datetime, max_virtual: timedelta | None) -> bool:
        clock = self._clock
        if not isinstance(clock, VirtualClock) or not self._store.active_instance_count():
            return False
        due = self._store.next_due(clock.now())
        if due is None:
            return False
        if max_virtual is not None and due - start > max_virtual:
            log.warning(
                "stopping at virtual time %s: the next timer is past the limit", clock.now()
            )
            return False
        clock.advance_to(due)
        return True

    def close(self) -> None:
        """Finish running work, drop queued jobs and stop the pool."""
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
