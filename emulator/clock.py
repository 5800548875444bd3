"""The emulator's notion of now: real time plus an offset that tests can move forward.

Every timestamp and lifecycle transition reads this clock, so a 24-hour batch can be run
in seconds by jumping the offset. Sleepers are woken when the offset changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time


class Clock:
    def __init__(self, offset_seconds: float = 0.0) -> None:
        self.offset_seconds = offset_seconds
        self._changed = asyncio.Event()

    def now(self) -> float:
        return time.time() + self.offset_seconds

    def set_offset(self, offset_seconds: float) -> None:
        self.offset_seconds = offset_seconds
        self._changed.set()
        self._changed = asyncio.Event()

    async def sleep(self, seconds: float, wake: asyncio.Event) -> None:
        """Sleep up to `seconds` of real time; return early if the offset moves or `wake` is set."""
        waiters = [asyncio.ensure_future(self._changed.wait()), asyncio.ensure_future(wake.wait())]
        try:
            await asyncio.wait(waiters, timeout=max(seconds, 0.0), return_when="FIRST_COMPLETED")
        finally:
            for w in waiters:
                w.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await w
