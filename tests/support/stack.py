"""The local stack for end-to-end tests: Azurite, the emulator and the host running function_app.

Each test gets its own emulator (clean counters and scenario), its own containers in the shared
Azurite, and a host with its own state folder. Files reach the app as they do in Azure: a blob
upload, then a BlobCreated event posted to the Event Grid webhook.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from azure.durable_functions.models.history import HistoryEventType
from azure.storage.blob import BlobServiceClient, ContainerClient
from openai import AzureOpenAI

from batching.layout import run_id_for
from devstack import services
from devstack.durable.clock import VirtualClock
from devstack.watcher import Watcher

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
TERMINAL = {"Completed", "Failed", "Terminated"}


def storage_requests(monkeypatch: Any) -> list[tuple[str, str]]:
    """(method, URL path) of each Azure SDK request made from now on (storage and tables)."""
    from azure.core.pipeline.transport import RequestsTransport

    made: list[tuple[str, str]] = []
    send = RequestsTransport.send

    def recording(transport: Any, request: Any, **kwargs: Any) -> Any:
        made.append((request.method, httpx.URL(request.url).path))
        return send(transport, request, **kwargs)

    monkeypatch.setattr(RequestsTransport, "send", recording)
    return made


def containers(tag: str) -> dict[str, str]:
    """Container settings of a test's own, named after `tag`."""
    return {
        "INPUT_CONTAINER": f"{tag}-in",
        "OUTPUT_CONTAINER": f"{tag}-out",
        "ERROR_CONTAINER": f"{tag}-err",
        "WORK_CONTAINER": f"{tag}-work",
        "SERVICE_OUTPUT_CONTAINER": f"{tag}-svc",
    }


def fast_settings(
    azurite: services.Azurite, emulator: services.Emulator, tag: str
) -> dict[str, str]:
    """Local settings with second-scale intervals and containers of the test's own."""
    return {
        "AzureWebJobsStorage": azurite.connection_string,
        "BATCH_STORAGE": azurite.connection_string,
        "AZURE_OPENAI_ENDPOINT": emulator.endpoint,
        "AZURE_OPENAI_API_KEY": "test-key",
        "AZURE_OPENAI_DEPLOYMENTS": "gpt-4o-batch",
        **containers(tag),
        "RUNS_TABLE": "runs" + re.sub("[^A-Za-z0-9]", "", tag),
        "POLL_INITIAL_SECONDS": "1",
        "POLL_MAX_SECONDS": "2",
        "ACTIVITY_RETRY_SECONDS": "1",
        "ADMISSION_WAIT_SECONDS": "1",
        "QUOTA_RETRY_INITIAL_SECONDS": "1",
        "QUOTA_RETRY_MAX_SECONDS": "2",
        "RECONCILE_SCHEDULE": "0 0 0 1 1 *",
        "RECONCILE_GRACE_SECONDS": "0",
    }


@dataclass
class Stack:
    host: Any
    blobs: BlobServiceClient
    emulator: services.Emulator
    env: dict[str, str]
    watcher: Watcher
    started: list[str] = field(default_factory=list)
    # the activities each instance scheduled, by execution (a history holds one)
    schedule_log: dict[str, list[list[str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        store = self.host.store
        append = store.append_history

        def recording(instance_id: str, events: list[Any]) -> None:
            append(instance_id, events)
            executions = self.schedule_log.setdefault(instance_id, [])
            for e in events:
                if e["EventType"] == HistoryEventType.EXECUTION_STARTED:
                    executions.append([])
                elif e["EventType"] == HistoryEventType.TASK_SCHEDULED:
                    executions[-1].append(e["Name"])

        store.append_history = recording

    def scheduled(self, run_id: str) -> list[str]:
        """The activities a run scheduled, in order, over all its executions."""
        return [name for execution in self.executions(run_id) for name in execution]

    def executions(self, run_id: str) -> list[list[str]]:
        """The activities a run scheduled, in order, in each of its executions."""
        return [list(names) for names in self.schedule_log.get(run_id, ())]

    def container(self, kind: str) -> ContainerClient:
        return self.blobs.get_container_client(self.env[f"{kind.upper()}_CONTAINER"])

    def drop(self, path: str, data: bytes, deliver: bool = True) -> str:
        """Upload into the input container and (by default) deliver its BlobCreated event."""
        self.container("input").upload_blob(path, data, overwrite=True)
        if deliver:
            self.watcher.poll_once()
        return path

    def stage(self, path: str, data: bytes) -> str:
        """Upload without delivering its event; returns the id its run will have."""
        self.drop(path, data, deliver=False)
        props = self.container("input").get_blob_client(path).get_blob_properties()
        return run_id_for(self.env["INPUT_CONTAINER"], path, str(props.etag))

    def run_hooked(
        self, run_id: str, hook: Callable[[str, str, int], bool], timeout: float = 60
    ) -> dict[str, Any]:
        """Deliver the staged upload's event and wait for its run, the host calling
        `hook(instance_id, activity, attempt)` after each activity's work (True: its result is
        lost, as in a crash)."""
        self.host.crash_hook = hook
        try:
            assert self.watcher.poll_once() == 1
            status: dict[str, Any] = self.host.wait_for(run_id, timeout=timeout)
            return status
        finally:
            self.host.crash_hook = None

    def scenario(self, **kwargs: Any) -> None:
        httpx.post(f"{self.emulator.endpoint}/_emulator/scenario", json=kwargs).raise_for_status()

    def emulator_state(self) -> dict[str, Any]:
        state: dict[str, Any] = httpx.get(f"{self.emulator.endpoint}/_emulator/state").json()
        return state

    def runs(self) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = self.host.list_instances()
        return [r for r in runs if r.get("name") in (None, "run_file")]

    def wait_all(self, count: int, timeout: float = 90.0) -> list[dict[str, Any]]:
        """Wait until `count` runs exist and all have ended; returns their statuses."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.runs()
            if len(runs) >= count and all(r["runtimeStatus"] in TERMINAL for r in runs):
                return runs
            time.sleep(0.2)
        left = [(r["instanceId"], r["runtimeStatus"], r.get("customStatus")) for r in self.runs()]
        raise AssertionError(f"runs did not finish in {timeout}s: {left}")

    def read(self, kind: str, path: str) -> bytes:
        return self.container(kind).get_blob_client(path).download_blob().readall()

    def jsonl(self, kind: str, path: str) -> list[dict[str, Any]]:
        return [orjson.loads(x) for x in self.read(kind, path).splitlines() if x.strip()]

    def names(self, kind: str) -> list[str]:
        return sorted(b.name for b in self.container(kind).list_blobs())

    def run_folder(self, source: str, run_id: str) -> str:
        return f"{source[: -len('.jsonl')]}/{run_id}"

    def openai(self) -> AzureOpenAI:
        """An SDK client of the test's emulator that does not retry (tests count calls)."""
        return AzureOpenAI(
            azure_endpoint=self.emulator.endpoint,
            api_key="test-key",
            api_version="2025-04-01-preview",
            max_retries=0,
        )

    def batches_of(self, run_id: str) -> list[tuple[int, str]]:
        """(round, status) of the run's batches at the emulator, in either batch mode: files
        mode's batches carry the run in their metadata, blob mode's (which takes no metadata)
        in their output folder."""
        found = []
        for b in self.openai().batches.list(limit=100):
            if b.metadata:
                if b.metadata.get("run_id") == run_id:
                    key = b.metadata["key"]
                    found.append((int(key.split("/r")[-1].split("/")[0]), b.status))
                continue
            folder_run, round_no = blob_batch_of(b)
            if folder_run == run_id:
                found.append((round_no, b.status))
        return sorted(found)


def blob_batch_of(batch: Any) -> tuple[str, int]:
    """(run id, round) of a blob-mode batch, from its output folder
    `<run id>/c<chunk>-r<round>-a<attempt>`."""
    folder = str((batch.model_dump().get("output_folder") or {}).get("url"))
    match = re.search(r"/([^/]+)/c(\d+)-r(\d+)-a(\d+)$", folder)
    assert match, f"a batch with neither metadata nor an output folder: {batch.id}"
    return match[1], int(match[3])


def _emulator_follows(clock: VirtualClock, emulator: services.Emulator) -> None:
    """Freeze the emulator's clock at the host's virtual time and move it with it: batches then
    progress only with virtual time, and the emulator answers once they have caught up, so what
    a status check sees never depends on the machine's speed."""

    def follow(now: datetime) -> None:
        answer = httpx.post(
            f"{emulator.endpoint}/_emulator/clock",
            json={"frozen_at": now.timestamp()},
            timeout=60,
        )
        answer.raise_for_status()
        assert answer.json()["settled"], "the emulator's batches did not catch up with its clock"

    follow(clock.now())
    clock.on_advance(follow)


@contextlib.contextmanager
def local_stack(
    azurite: services.Azurite,
    tmp: Path,
    batch_duration: float = 1.5,
    extra_env: dict[str, str] | None = None,
    clock: Any = None,
    worker_processes: int = 0,
) -> Iterator[Stack]:
    """The stack; with `worker_processes`, the app's orchestrators and activities run in worker
    processes, as `make run` and Azure run them (tests that patch the app's code run it here)."""
    import function_app
    from batching.settings import Settings
    from batching.storage.blobs import ensure_containers
    from devstack.durable.clock import RealClock
    from devstack.host.host import FunctionHost

    tag = f"t{os.urandom(3).hex()}"
    with services.emulator(
        tmp / "emulator",
        batch_duration=batch_duration,
        api_key="test-key",
        storage=azurite.connection_string,
    ) as em:
        if isinstance(clock, VirtualClock):
            _emulator_follows(clock, em)
        env = {**fast_settings(azurite, em, tag), **(extra_env or {})}
        settings = Settings.from_env(env)
        ensure_containers(settings.storage, settings.containers)
        host = FunctionHost(
            function_app.app,
            tmp / "host",
            clock or RealClock(),
            env=env,
            host_json=ROOT / "host.json",
            worker_processes=worker_processes,
            app_dir=ROOT,
        )
        with host:
            blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
            watcher = Watcher(
                blobs.get_container_client(settings.input_container),
                f"{host.base_url}/runtime/webhooks/eventgrid?functionName=on_blob_created",
            )
            try:
                yield Stack(host, blobs, em, env, watcher)
            finally:
                watcher.stop()


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def requests_file(n: int, prefix: str = "task", schema: bool = False) -> bytes:
    """`n` chat requests for the emulator's deployment; with a json_schema response_format."""
    lines = []
    for i in range(n):
        body: dict[str, Any] = {
            "model": "gpt-4o-batch",
            "messages": [{"role": "user", "content": f"question {i}"}],
        }
        if schema:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": "answer",
                    "strict": True,
                    "schema": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["City", "Height"],
                        "properties": {"City": {"type": "string"}, "Height": {"type": "integer"}},
                    },
                },
            }
        lines.append(
            orjson.dumps(
                {
                    "custom_id": f"{prefix}-{i}",
                    "method": "POST",
                    "url": "/chat/completions",
                    "body": body,
                }
            )
        )
    return b"\n".join(lines) + b"\n"
