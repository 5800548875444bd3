"""The emulator's notion of now: real time plus an offset that tests can move forward, or a
frozen time that moves only when told.

Every timestamp and lifecycle transition reads this clock, so a 24-hour batch can be run
in seconds by jumping the offset. Sleepers are woken when the time changes. A frozen clock
follows a test's virtual clock exactly: batches then progress only when it moves, so what a
status check sees depends on virtual time alone, never on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import contextlib
import time


class Clock:
    def __init__(self, offset_seconds: float = 0.0) -> None:
        self.offset_seconds = offset_seconds
        self.frozen_at: float | None = None
        self._changed = asyncio.Event()

    @property
    def frozen(self) -> bool:
        return self.frozen_at is not None

    def now(self) -> float:
        if self.frozen_at is not None:
            return self.frozen_at
        return time.time() + self.offset_seconds

    def set_offset(self, offset_seconds: float) -> None:
        """Real time plus `offset_seconds` from now on (unfreezes)."""
        self.offset_seconds, self.frozen_at = offset_seconds, None
        self._moved()

    def freeze(self, at: float) -> None:
        """Stop at `at` (epoch seconds) until told otherwise; never moves back."""
        self.frozen_at = max(at, self.frozen_at) if self.frozen_at is not None else at
        self.offset_seconds = self.frozen_at - time.time()
        self._moved()

    def _moved(self) -> None:
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
