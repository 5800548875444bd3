"""The unchanged function_app on the local host, as the benchmarks run it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from devstack import services
from devstack.host.workers import FLEX_WORKER_PROCESSES


def app_host(
    state_dir: Path,
    env: dict[str, str],
    worker_initializer: Callable[[], None] | None = None,
    worker_processes: int = FLEX_WORKER_PROCESSES,
) -> Any:
    """A FunctionHost (not started) for function_app with the repository's host.json, the
    real clock and, as `make run` has them, the app's orchestrators and activities in a worker
    process (0: in this process); enter it to serve."""
    import function_app
    from devstack.durable.clock import RealClock
    from devstack.host.host import FunctionHost

    return FunctionHost(
        function_app.app,
        state_dir,
        RealClock(),
        env=env,
        host_json=services.ROOT / "host.json",
        worker_processes=worker_processes,
        app_dir=services.ROOT,
        worker_initializer=worker_initializer,
    )
