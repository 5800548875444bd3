"""The unchanged function_app on the local host, as the benchmarks run it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from devstack import services


def app_host(
    state_dir: Path, env: dict[str, str], worker_initializer: Callable[[], None] | None = None
) -> Any:
    """A FunctionHost (not started) for function_app with the repository's host.json, the
    real clock and, as `make run` has them, the app's functions in worker processes; enter it
    to serve."""
    import function_app
    from devstack.durable.clock import RealClock
    from devstack.host.host import FunctionHost
    from devstack.host.workers import FLEX_WORKER_PROCESSES

    return FunctionHost(
        function_app.app,
        state_dir,
        RealClock(),
        env=env,
        host_json=services.ROOT / "host.json",
        worker_processes=FLEX_WORKER_PROCESSES,
        app_dir=services.ROOT,
        worker_initializer=worker_initializer,
    )
