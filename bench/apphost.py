"""The unchanged function_app on the local host, as the benchmarks run it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devstack import services


def app_host(state_dir: Path, env: dict[str, str]) -> Any:
    """A FunctionHost (not started) for function_app with the repository's host.json and the
    real clock; enter it to serve."""
    import function_app
    from devstack.durable.clock import RealClock
    from devstack.host.host import FunctionHost

    return FunctionHost(
        function_app.app, state_dir, RealClock(), env=env, host_json=services.ROOT / "host.json"
    )
