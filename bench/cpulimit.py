"""A CPU quota for a benchmark and every process it starts: the VM's slow phases, repeatable.

On this VM the same run's CPU seconds moved by up to two fifths within an hour, with no steal
(docs/benchmarks.md): code measured on a fast phase says little about a slow one, and a slow
phase cannot be asked for. A CFS quota gives the benchmark a fixed share of the machine instead
(1.2 = one core and a fifth), so that two versions of the code can be compared at the capacity
where the slow phases left them. It is not the same thing: a quota takes time away, a slow phase
makes each instruction dearer (the bench reports both the CPU seconds and the throttled time).

Needs root and a cgroup CPU controller: v1 (`/sys/fs/cgroup/cpu`) or v2 with `cpu` enabled at
the root. Processes started inside inherit the group; the group is removed on the way out.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PERIOD_US = 10_000  # short periods: throttling comes in slices of milliseconds, not of 100 ms
_V1 = Path("/sys/fs/cgroup/cpu")
_V2 = Path("/sys/fs/cgroup")


@dataclass
class Quota:
    """The group the benchmark runs in, and how much time the quota took from it."""

    cpus: float
    group: Path
    v2: bool

    def throttled(self) -> dict[str, float]:
        """Periods throttled and seconds throttled so far (the kernel's cpu.stat)."""
        stat = dict(
            line.split(" ", 1)
            for line in (self.group / "cpu.stat").read_text().splitlines()
            if " " in line
        )
        if self.v2:
            return {
                "periods_throttled": float(stat.get("nr_throttled", 0)),
                "throttled_s": round(int(stat.get("throttled_usec", 0)) / 1e6, 1),
            }
        return {
            "periods_throttled": float(stat.get("nr_throttled", 0)),
            "throttled_s": round(int(stat.get("throttled_time", 0)) / 1e9, 1),
        }


def _root() -> tuple[Path, bool]:
    if (_V1 / "cpu.cfs_quota_us").exists():
        return _V1, False
    controllers = _V2 / "cgroup.subtree_control"
    if controllers.exists() and "cpu" in controllers.read_text().split():
        return _V2, True
    raise SystemExit("--cpus needs a cgroup CPU controller (v1 cpu, or v2 with cpu enabled)")


@contextlib.contextmanager
def cpu_quota(cpus: float) -> Iterator[Quota]:
    """Run the body, and every process it starts, within `cpus` CPUs' worth of time."""
    if cpus <= 0:
        raise SystemExit("--cpus must be positive")
    root, v2 = _root()
    group = root / f"bench-{os.getpid()}"
    try:
        group.mkdir()
    except PermissionError:
        raise SystemExit("--cpus needs root (it creates a cgroup)") from None
    quota = int(cpus * PERIOD_US)
    try:
        if v2:
            (group / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        else:
            (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (group / "cpu.cfs_quota_us").write_text(str(quota))
        (group / "cgroup.procs").write_text(str(os.getpid()))
        yield Quota(cpus, group, v2)
    finally:
        _remove(group, root)


def _remove(group: Path, root: Path, timeout_s: float = 5.0) -> None:
    """Move what is left in the group back to the root, then remove it. Besides this process,
    a helper a child started can outlive the benchmark's body (multiprocessing's resource
    tracker lives as long as this process); a process exiting meanwhile can hold the group a
    moment, so the removal is retried for `timeout_s` (after that it is left, empty, harmless)."""
    deadline = time.monotonic() + timeout_s
    while True:
        for pid in (group / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
                (root / "cgroup.procs").write_text(pid)
        try:
            group.rmdir()
            return
        except OSError:
            if time.monotonic() > deadline:
                return
            time.sleep(0.1)
