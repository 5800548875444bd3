"""What a benchmark run costs, counted in the process that hosts the app: storage transactions
(every request that reaches Azurite, at the azure-core transport), durable history events (what
the engine appends to the histories), and CPU seconds of this process and of its children
(Azurite, the emulator), read from /proc."""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from azure.core.pipeline.transport import RequestsTransport

_TICKS = os.sysconf("SC_CLK_TCK")


class Counters:
    """Storage requests by (method, container, listing) and history events."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.storage: Counter[tuple[str, str, bool]] = Counter()
        self.history = 0
        self._patches: list[tuple[Any, str, Any]] = []

    def install(self) -> None:
        from devstack.durable.store import Store

        counters = self
        send = RequestsTransport.send

        def counting_send(transport: Any, request: Any, **kwargs: Any) -> Any:
            url = httpx.URL(request.url)
            parts = url.path.strip("/").split("/")
            container = parts[1] if len(parts) > 1 else ""
            listing = url.params.get("comp") == "list"
            with counters.lock:
                counters.storage[(request.method, container, listing)] += 1
            return send(transport, request, **kwargs)

        append = Store.append_history

        def counting_append(store: Any, instance_id: str, events: list[Any]) -> None:
            with counters.lock:
                counters.history += len(events)
            append(store, instance_id, events)

        self._patches = [(RequestsTransport, "send", send), (Store, "append_history", append)]
        RequestsTransport.send = counting_send  # type: ignore[method-assign]
        Store.append_history = counting_append  # type: ignore[method-assign]

    def uninstall(self) -> None:
        for owner, name, original in self._patches:
            setattr(owner, name, original)

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
    """CPU seconds so far of this process (`host`: it runs the app, the host, the Event Grid
    stand-in and the benchmark's own polling) and of its children by role."""
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
                else "other"
            )
            result[role] = result.get(role, 0.0) + _cpu_of(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return result


def cpu_since(before: dict[str, float]) -> dict[str, float]:
    after = cpu_by_process()
    return {k: round(v - before.get(k, 0.0), 1) for k, v in after.items()}
