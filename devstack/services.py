"""Start and stop the local stand-ins (Azurite, the emulator) as child processes.

Used by `make run` and by the test fixtures, so both run the very same services the same way:
free loopback ports, their own data folders, a readiness probe with a deadline, and a stop that
always happens (terminate, then kill).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent

# Azurite's well-known development account (public, documented by Microsoft; not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(probe_url: str, proc: subprocess.Popen[bytes], timeout: float, name: str) -> None:
    """Poll `probe_url` until it answers (any HTTP status) or fail naming the service."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with code {proc.returncode} while starting")
        try:
            httpx.get(probe_url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(f"{name} did not answer at {probe_url} within {timeout:.0f}s")


def stop(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """Terminate a child process, killing it if it does not exit within `grace` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace)


@contextlib.contextmanager
def child(
    cmd: Sequence[str],
    name: str,
    probe_url: str,
    log_path: Path,
    timeout: float = 30.0,
    env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `cmd`, logging to `log_path`, until the block ends; ready when `probe_url` answers."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(  # noqa: S603 - commands are built here, not from user input
            list(cmd),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
        )
        try:
            wait_until(probe_url, proc, timeout, name)
            yield proc
        finally:
            stop(proc)


@dataclass(frozen=True)
class Azurite:
    """A running Azurite: its ports and the connection string that reaches it."""

    blob_port: int
    queue_port: int
    table_port: int

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.blob_port}/{AZURITE_ACCOUNT};"
            f"QueueEndpoint=http://127.0.0.1:{self.queue_port}/{AZURITE_ACCOUNT};"
            f"TableEndpoint=http://127.0.0.1:{self.table_port}/{AZURITE_ACCOUNT};"
        )


def azurite_binary() -> str:
    path = ROOT / "node_modules" / ".bin" / "azurite"
    if path.exists():
        return str(path)
    found = shutil.which("azurite")
    if found is None:
        raise RuntimeError("Azurite is not installed: run `make setup` (npm ci)")
    return found


@contextlib.contextmanager
def azurite(
    data_dir: Path, blob_port: int = 0, queue_port: int = 0, table_port: int = 0
) -> Iterator[Azurite]:
    """Run Azurite with its data under `data_dir`; ports of 0 are chosen free."""
    ports = Azurite(blob_port or free_port(), queue_port or free_port(), table_port or free_port())
    data_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        azurite_binary(),
        "--silent",
        "--skipApiVersionCheck",
        "--loose",
        # Azurite reports every request to Microsoft by default (its telemetry): nothing of a
        # local run should leave the machine, and the tracking cost CPU on every request.
        "--disableTelemetry",
        "--location",
        str(data_dir),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(ports.blob_port),
        "--queueHost",
        "127.0.0.1",
        "--queuePort",
        str(ports.queue_port),
        "--tableHost",
        "127.0.0.1",
        "--tablePort",
        str(ports.table_port),
    ]
    probe = f"http://127.0.0.1:{ports.blob_port}/{AZURITE_ACCOUNT}?comp=list"
    with child(cmd, "Azurite", probe, data_dir / "azurite.log"):
        yield ports


@dataclass(frozen=True)
class Emulator:
    """A running Azure OpenAI batch emulator."""

    port: int
    api_key: str | None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def emulator(
    data_dir: Path | None,
    port: int = 0,
    api_key: str | None = None,
    deployments: Sequence[str] = ("gpt-4o-batch=gpt-4o",),
    batch_duration: float = 2.0,
    extra_args: Sequence[str] = (),
    log_path: Path | None = None,
    storage: str | None = None,
) -> Iterator[Emulator]:
    """Run `python -m emulator` on loopback; `data_dir` None keeps its state in memory.

    `storage`: a connection string of the account the emulated service reaches in blob mode
    (as the real one reaches the data account with its identity)."""
    em = Emulator(port or free_port(), api_key)
    cmd = [
        sys.executable,
        "-m",
        "emulator",
        "--host",
        "127.0.0.1",
        "--port",
        str(em.port),
        "--batch-duration",
        str(batch_duration),
    ]
    for d in deployments:
        cmd += ["--deployment", d]
    if api_key:
        cmd += ["--api-key", api_key]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    if storage:
        cmd += ["--storage-connection-string", storage]
    cmd += list(extra_args)
    log = log_path or (data_dir / "emulator.log" if data_dir else Path(os.devnull))
    with child(cmd, "emulator", f"{em.endpoint}/_emulator/state", log) as proc:
        yield em
        # Let callers notice a crashed emulator instead of blaming the code under test.
        if proc.poll() is not None:
            raise RuntimeError(f"emulator exited early with code {proc.returncode}")
