"""What a benchmark run costs: storage transactions (every request that reaches Azurite, at the
azure-core transport, in the host's process and in the app's worker processes), durable history
events (what the engine appends to the histories), and CPU seconds of this process and of its
children (the app's worker processes, Azurite, the emulator), read from /proc."""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from azure.core.pipeline.transport import RequestsTransport

_TICKS = os.sysconf("SC_CLK_TCK")


_Key = tuple[str, str, bool]  # method, container, whether it lists


def _key(request: Any) -> _Key:
    url = httpx.URL(request.url)
    parts = url.path.strip("/").split("/")
    return request.method, parts[1] if len(parts) > 1 else "", url.params.get("comp") == "list"


def record_requests(folder: str) -> None:
    """In a worker process (its initializer): append each storage request's key to a file of
    its own in `folder`, which `Counters` reads."""
    out = (Path(folder) / f"worker-{os.getpid()}.log").open("a", buffering=1)
    lock = threading.Lock()
    send = RequestsTransport.send

    def recording(transport: Any, request: Any, **kwargs: Any) -> Any:
        method, container, listing = _key(request)
        with lock:
            out.write(f"{method} {container} {int(listing)}\n")
        return send(transport, request, **kwargs)

    RequestsTransport.send = recording  # type: ignore[method-assign]


def _recorded(folder: Path | None) -> Counter[_Key]:
    found: Counter[_Key] = Counter()
    for path in folder.glob("worker-*.log") if folder else ():
        for line in path.read_text().splitlines():
            parts = line.split(" ")
            if len(parts) == 3:  # a line being written is not whole yet
                found[(parts[0], parts[1], parts[2] == "1")] += 1
    return found


class Counters:
    """Storage requests by (method, container, listing) and history events; with
    `worker_requests`, the folder `record_requests` writes to, the workers' requests too."""

    def __init__(self, worker_requests: Path | None = None) -> None:
        self.lock = threading.Lock()
        self.storage: Counter[_Key] = Counter()
        self.history = 0
        self.replayed = 0  # events the episodes read back: each replays its execution's history
        self.episodes = 0  # orchestrator episodes: each appends one OrchestratorStarted
        self._patches: list[tuple[Any, str, Any]] = []
        self._workers = worker_requests
        self._workers_before: Counter[_Key] = Counter()

    def install(self) -> None:
        from azure.durable_functions.models.history import HistoryEventType as T

        from devstack.durable.store import Store

        counters = self
        send = RequestsTransport.send
        self._workers_before = _recorded(self._workers)

        def counting_send(transport: Any, request: Any, **kwargs: Any) -> Any:
            key = _key(request)
            with counters.lock:
                counters.storage[key] += 1
            return send(transport, request, **kwargs)

        append, history = Store.append_history, Store.history

        def counting_append(store: Any, instance_id: str, events: list[Any]) -> None:
            started = sum(e["EventType"] == T.ORCHESTRATOR_STARTED for e in events)
            with counters.lock:
                counters.history += len(events)
                counters.episodes += started
            append(store, instance_id, events)

        def counting_history(store: Any, instance_id: str) -> list[Any]:
            events = history(store, instance_id)
            with counters.lock:
                counters.replayed += len(events)
            return events

        self._patches = [
            (RequestsTransport, "send", send),
            (Store, "append_history", append),
            (Store, "history", history),
        ]
        RequestsTransport.send = counting_send  # type: ignore[method-assign]
        Store.append_history = counting_append  # type: ignore[method-assign]
        Store.history = counting_history  # type: ignore[method-assign]

    def uninstall(self) -> None:
        for owner, name, original in self._patches:
            setattr(owner, name, original)
        workers = _recorded(self._workers)
        workers.subtract(self._workers_before)
        self.storage.update(workers)

    def app_storage(self, input_container: str, output_container: str, uploads: int) -> int:
        """Requests the app made: all but the watcher's and the benchmark's listing of the
        input and output containers, and the benchmark's own uploads."""
        own = sum(
            n
            for (method, container, listing), n in self.storage.items()
            if listing and container in (input_container, output_container)
        )
        return sum(self.storage.values()) - own - uploads


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process (its own threads, not its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _command(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def cpu_by_process() -> dict[str, float]:
    """CPU seconds so far of this process (`host`: the local host, the app's HTTP and Event
    Grid functions, the Event Grid stand-in and the benchmark's own polling) and of its
    children by role (`workers`: the app's orchestrators and activities)."""
    me = os.getpid()
    result = {"host": _cpu_of(me)}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != me:
                continue
            command = _command(int(entry.name))
            role = (
                "emulator"
                if "-m emulator" in command
                else "azurite"
                if "azurite" in command
                else "workers"
                if "spawn_main" in command
                else "other"
            )
            result[role] = result.get(role, 0.0) + _cpu_of(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return result


def cpu_since(before: dict[str, float]) -> dict[str, float]:
    after = cpu_by_process()
    return {k: round(v - before.get(k, 0.0), 1) for k, v in after.items()}


def machine_cpu() -> dict[str, float]:
    """CPU seconds of the whole machine so far, all cores (`/proc/stat`): busy, idle (with I/O
    wait) and steal, the time the hypervisor ran something else while a core of this VM was
    ready. Empty where there is no /proc/stat."""
    try:
        fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return {}
    if len(fields) < 8:  # kernels before 2.6.11 count no steal
        return {}
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    return {
        "busy": (user + nice + system + irq + softirq) / _TICKS,
        "idle": (idle + iowait) / _TICKS,
        "steal": steal / _TICKS,
    }


def machine_cpu_since(before: dict[str, float]) -> dict[str, float]:
    after = machine_cpu()
    return {k: round(v - before.get(k, 0.0), 2) for k, v in after.items()}
