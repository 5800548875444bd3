"""Run function_app in a local host process until killed (for the kill-and-restart test).

Usage: python -m tests.support.app_host STATE_DIR SETTINGS_JSON PORT
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

from devstack.durable.clock import RealClock
from devstack.host.host import FunctionHost
from devstack.services import ROOT


def main(state_dir: str, settings_json: str, port: str) -> None:
    import function_app

    env = json.loads(Path(settings_json).read_text())
    with FunctionHost(
        function_app.app,
        Path(state_dir),
        RealClock(),
        env=env,
        host_json=ROOT / "host.json",
        port=int(port),
    ):
        print("ready", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main(*sys.argv[1:4])
