"""Helpers shared by the emulator tests (this module holds no tests of its own).

The tests reach the emulator only as a user would: the real `openai` SDK for the service's
routes, plain HTTP for the `/_emulator/` control API. Every wait has a deadline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
from openai import AzureOpenAI, OpenAI
from openai.types import Batch, FileObject

from devstack import services

API_VERSION = "2024-10-21"
DEPLOYMENT = "gpt-4o-batch"
TERMINAL = {"completed", "failed", "expired", "cancelled"}


def azure(em: services.Emulator, api_key: str | None = None, **kw: Any) -> AzureOpenAI:
    return AzureOpenAI(
        azure_endpoint=em.endpoint,
        api_key=api_key or em.api_key or "any-key",
        api_version=kw.pop("api_version", API_VERSION),
        **kw,
    )


def v1(em: services.Emulator, **kw: Any) -> OpenAI:
    return OpenAI(base_url=f"{em.endpoint}/openai/v1/", api_key=em.api_key or "any-key", **kw)


def control(em: services.Emulator, path: str, body: dict[str, Any] | None = None) -> Any:
    url = f"{em.endpoint}/_emulator/{path}"
    reply = httpx.post(url, json=body or {}) if body is not None else httpx.get(url)
    reply.raise_for_status()
    return reply.json()


def scenario(em: services.Emulator, **settings: Any) -> Any:
    return control(em, "scenario", settings)


def reset(em: services.Emulator) -> Iterator[None]:
    """Body of each module's autouse fixture: a cleared scenario before and after a test."""
    control(em, "reset", {})
    yield
    control(em, "reset", {})


def chat_line(custom_id: str, text: str = "Hello", **body: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/chat/completions",
        "body": {
            "model": DEPLOYMENT,
            "messages": [{"role": "user", "content": text}],
            **body,
        },
    }


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def chat_file(n: int, prefix: str = "task") -> bytes:
    return jsonl([chat_line(f"{prefix}-{i}", f"Question {i}?") for i in range(n)])


def wait_for(probe: Any, what: str, timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Call `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def upload(client: AzureOpenAI | OpenAI, data: bytes, name: str = "input.jsonl") -> FileObject:
    """Upload and wait until the file is `processed`, as a careful caller does."""
    created = client.files.create(file=(name, data), purpose="batch")
    return wait_for(
        lambda: (f := client.files.retrieve(created.id)).status == "processed" and f,
        f"file {created.id} to be processed",
    )


def create_batch(
    client: AzureOpenAI | OpenAI, file_id: str, endpoint: str = "/chat/completions", **kw: Any
) -> Batch:
    return client.batches.create(
        input_file_id=file_id,
        endpoint=endpoint,  # type: ignore[arg-type]
        completion_window="24h",
        **kw,
    )


def wait_batch(
    client: AzureOpenAI | OpenAI,
    batch_id: str,
    statuses: set[str] = TERMINAL,
    timeout: float = 20.0,
) -> Batch:
    return wait_for(
        lambda: (b := client.batches.retrieve(batch_id)).status in statuses and b,
        f"batch {batch_id} to reach {sorted(statuses)}",
        timeout,
    )


def run_batch(client: AzureOpenAI | OpenAI, data: bytes, **kw: Any) -> Batch:
    return wait_batch(client, create_batch(client, upload(client, data).id, **kw).id)


def read_jsonl(client: AzureOpenAI | OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id, "expected a file id"
    text = client.files.content(file_id).text
    return [json.loads(line) for line in text.splitlines() if line.strip()]
