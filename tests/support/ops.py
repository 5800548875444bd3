"""Helpers for the operating tests (API, CLI, dashboard, logs) on the local stack."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from batching.statuses import RUN_ENDED
from tests.support.stack import Stack

DONE = {str(s) for s in RUN_ENDED}


def api(stack: Stack) -> str:
    return f"{stack.host.base_url}/api"


def get(stack: Stack, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{api(stack)}/{path}", params=params, timeout=30)


def post(stack: Stack, path: str, body: Any = None) -> httpx.Response:
    return httpx.post(f"{api(stack)}/{path}", json=body, timeout=30)


def run(stack: Stack, run_id: str) -> dict[str, Any]:
    response = get(stack, f"runs/{run_id}")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def wait_run(
    stack: Stack,
    run_id: str,
    until: Callable[[dict[str, Any]], bool] = lambda r: r["status"] in DONE,
    timeout: float = 45.0,
    interval: float = 0.25,
) -> dict[str, Any]:
    """Poll GET /api/runs/{id} until `until(detail)` holds; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    detail: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = get(stack, f"runs/{run_id}")
        if response.status_code == 200:
            detail = response.json()
            if until(detail):
                return detail
        time.sleep(interval)
    raise AssertionError(f"run {run_id} did not get there in {timeout}s: {detail}")


def in_progress(detail: dict[str, Any]) -> bool:
    """A batch is running and some of its requests have finished: cancelling now is mid-run."""
    chunks = detail.get("chunks") or []
    return bool(chunks) and all(
        c.get("batch_status") == "in_progress"
        and int((c.get("request_counts") or {}).get("completed") or 0) >= 1
        for c in chunks
    )


def run_id_of(stack: Stack, source: str, timeout: float = 15.0) -> str:
    """The id of the run of `source` (input path), once it is listed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [r["id"] for r in get(stack, "runs", prefix=source).json()["runs"]]
        if found:
            assert len(found) == 1, found
            return str(found[0])
        time.sleep(0.2)
    raise AssertionError(f"no run for {source} in {timeout}s")


def custom_ids(data: bytes) -> list[str]:
    import orjson

    return [orjson.loads(x)["custom_id"] for x in data.splitlines() if x.strip()]
