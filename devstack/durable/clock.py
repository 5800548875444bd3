"""Clocks the local host reads time from.

Durable timers, `context.current_utc_datetime` and timer triggers all read one clock, so a test can
swap the wall clock for a virtual one and let a 24-hour wait pass in milliseconds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """What the host needs from a clock: the current UTC time."""

    def now(self) -> datetime: ...


class RealClock:
    """The wall clock (UTC)."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class VirtualClock:
    """A clock that only moves when told to; callbacks let other services follow it."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("VirtualClock needs a timezone-aware start time")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[datetime], None]] = []

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        """Move forward by `seconds` and notify the callbacks; returns the new time."""
        if seconds < 0:
            raise ValueError("a virtual clock never goes back")
        return self.advance_to(self.now() + timedelta(seconds=seconds))

    def advance_to(self, when: datetime) -> datetime:
        """Move forward to `when` (no-op if it is not later) and notify the callbacks."""
        with self._lock:
            if when <= self._now:
                return self._now
            self._now = when.astimezone(UTC)
            new_now = self._now
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback(new_now)
        return new_now

    def on_advance(self, callback: Callable[[datetime], None]) -> None:
        """Call `callback(new_now)` after every advance."""
        with self._lock:
            self._callbacks.append(callback)
