"""A host killed mid-run (SIGKILL) and started again on the same state finishes the run:
one batch at the service, complete results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import orjson
from azure.storage.blob import BlobServiceClient

from batching.settings import Settings
from batching.storage.blobs import ensure_containers
from devstack import services
from devstack.watcher import Watcher
from tests.support.stack import ROOT, fast_settings, requests_file


def _start_host(state, settings_file, port):
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.app_host", str(state), str(settings_file), str(port)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"ready"
    return proc


def _instances(port):
    response = httpx.get(
        f"http://127.0.0.1:{port}/runtime/webhooks/durabletask/instances", timeout=10
    )
    response.raise_for_status()
    return response.json()


def test_killed_host_resumes_without_a_second_batch(azurite, tmp_path):
    with services.emulator(
        tmp_path / "em", batch_duration=4.0, api_key="test-key", storage=azurite.connection_string
    ) as em:
        env = fast_settings(azurite, em, f"k{os.urandom(3).hex()}")
        settings = Settings.from_env(env)
        ensure_containers(settings.storage, settings.containers)
        settings_file = tmp_path / "settings.json"
        settings_file.write_text(json.dumps(env))
        port = services.free_port()
        blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
        blobs.get_container_client(settings.input_container).upload_blob(
            "k/file.jsonl", requests_file(40)
        )

        first = _start_host(tmp_path / "host", settings_file, port)
        try:
            watcher = Watcher(
                blobs.get_container_client(settings.input_container),
                f"http://127.0.0.1:{port}/runtime/webhooks/eventgrid?functionName=on_blob_created",
            )
            assert watcher.poll_once() == 1
            deadline = time.monotonic() + 30
            while not httpx.get(f"{em.endpoint}/_emulator/state").json()["batches"]:
                assert time.monotonic() < deadline, "no batch was created"
                time.sleep(0.05)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)

        second = _start_host(tmp_path / "host", settings_file, port)
        try:
            deadline = time.monotonic() + 60
            while True:
                (inst,) = _instances(port)
                if inst["runtimeStatus"] in ("Completed", "Failed"):
                    break
                assert time.monotonic() < deadline, inst
                time.sleep(0.2)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=10)

        assert inst["runtimeStatus"] == "Completed", inst
        assert (
            httpx.get(f"{em.endpoint}/_emulator/state").json()["requests"]["POST /openai/batches"]
            == 1
        )
        folder = f"k/file/{inst['instanceId']}"
        out = blobs.get_container_client(settings.output_container)
        meta = orjson.loads(
            out.get_blob_client(f"{folder}/metadata.json").download_blob().readall()
        )
        assert (meta["status"], meta["reason"]) == ("completed", None), meta
        results = (
            out.get_blob_client(f"{folder}/results.jsonl").download_blob().readall().splitlines()
        )
        assert sorted(orjson.loads(x)["custom_id"] for x in results) == sorted(
            f"task-{i}" for i in range(40)
        )
