"""Run the toy app in a host process on a state dir (used by the kill-and-restart test).

Usage: python -m tests.support.toyapp.run_host STATE_DIR INSTANCE_ID COUNT
Starts `slow_chain` unless the instance already exists, waits for it to finish and prints its
status as JSON. The test kills the first run with SIGKILL and starts a second one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from devstack.durable.clock import RealClock
from devstack.host.host import FunctionHost
from tests.support.toyapp import make_app


def main(state_dir: str, instance_id: str, count: str) -> None:
    with FunctionHost(make_app(), Path(state_dir), RealClock()) as host:
        if host.get_status(instance_id) is None:
            host.start_new("slow_chain", instance_id, int(count))
        print("started", flush=True)
        status = host.wait_for(instance_id, timeout=30)
        print(json.dumps({"status": status, "calls": dict(host.activity_calls)}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
