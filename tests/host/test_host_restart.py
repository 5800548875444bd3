"""A host process killed with SIGKILL mid-run resumes its instances when restarted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def host_process(state: Path, markers: Path) -> list[str]:
    return [sys.executable, "-m", "tests.support.toyapp.run_host", str(state), "crash-1", "6"]


def test_killed_host_resumes_and_reruns_unfinished_activities(tmp_path: Path) -> None:
    state, markers, release = tmp_path / "state", tmp_path / "markers", tmp_path / "release"
    env = {
        **os.environ,
        "TOYAPP_MARKERS": str(markers),
        "TOYAPP_RELEASE": str(release),
        "PYTHONPATH": str(ROOT),
    }
    first = subprocess.Popen(
        host_process(state, markers), cwd=ROOT, env=env, stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60  # only a broken host takes this long
        # Kill once the fan-out has begun: its activities wait for `release`, unreported.
        while len(list(markers.glob("*"))) < 3:
            assert time.monotonic() < deadline, "the first host never got going"
            assert first.poll() is None, "the first host exited early"
            time.sleep(0.01)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    before_kill = Counter(int(p.name.split("-")[0]) for p in markers.iterdir())
    release.touch()

    second = subprocess.run(
        host_process(state, markers),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode == 0, second.stderr
    report = json.loads(second.stdout.strip().splitlines()[-1])
    assert report["status"]["runtimeStatus"] == "Completed"
    assert report["status"]["output"] == [0, 10, 20, 30, 40, 50]

    runs = Counter(int(p.name.split("-")[0]) for p in markers.iterdir())
    assert before_kill[0] == 1 and len(before_kill) >= 3
    # Item 0 had reported before the fan-out began: it never ran again. Every fan-out item
    # in flight at the kill ran once more; the others ran once, on the second host.
    assert runs == Counter({0: 1, **{i: 1 + before_kill[i] for i in range(1, 6)}})
    assert report["calls"] == {"record": 5}
