"""Input validation in the emulator: each of the service's error codes, with its line number."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from openai import AzureOpenAI

from devstack import services
from tests.support.emulator import azure, chat_line, jsonl, run_batch


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzureOpenAI]:
    """An emulator with two deployments (needed for `model_mismatch`) and quick batches."""
    log = tmp_path_factory.mktemp("emulator-validation") / "emulator.log"
    with services.emulator(
        None,
        deployments=("gpt-4o-batch=gpt-4o", "gpt-4o-mini-batch=gpt-4o-mini:1000000000"),
        batch_duration=0.3,
        log_path=log,
    ) as em:
        yield azure(em)


def _with(line: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**line, **changes}


def _without(line: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in line.items() if k != key}


OK = chat_line("ok-1")
MINI = chat_line("mini")
MINI["body"]["model"] = "gpt-4o-mini-batch"
NOPE = chat_line("nope")
NOPE["body"]["model"] = "no-such-deployment"

CASES = {
    "invalid_json_line": (jsonl([OK]) + b"{not json\n", "invalid_json_line", 2),
    "url_mismatch": (jsonl([OK, _with(chat_line("r"), url="/responses")]), "url_mismatch", 2),
    "model_not_found": (jsonl([NOPE]), "model_not_found", 1),
    "duplicate_custom_id": (jsonl([OK, chat_line("x"), chat_line("x")]), "duplicate_custom_id", 3),
    "empty_file": (b"", "empty_file", None),
    "model_mismatch": (jsonl([OK, MINI]), "model_mismatch", 2),
    "missing custom_id": (jsonl([_without(chat_line("a"), "custom_id")]), "invalid_request", 1),
    "method GET": (jsonl([OK, _with(chat_line("g"), method="GET")]), "invalid_request", 2),
    "missing body": (jsonl([_without(chat_line("b"), "body")]), "invalid_request", 1),
    "missing model": (jsonl([_with(chat_line("m"), body={"messages": []})]), "invalid_request", 1),
    "not an object": (b"[1, 2]\n", "invalid_request", 1),
    "byte-order mark": (b"\xef\xbb\xbf" + jsonl([OK]), "invalid_json_line", 1),
}


@pytest.mark.parametrize("case", list(CASES))
def test_validation_failure(client: AzureOpenAI, case: str) -> None:
    data, code, line = CASES[case]
    batch = run_batch(client, data)
    assert batch.status == "failed"
    assert batch.failed_at is not None
    assert batch.in_progress_at is None
    assert batch.errors is not None and batch.errors.data is not None
    found = [(e.code, e.line) for e in batch.errors.data]
    assert (code, line) in found
    assert all(e.message for e in batch.errors.data)
    assert (batch.output_file_id, batch.error_file_id) == (None, None)


def test_too_many_tasks(client: AzureOpenAI) -> None:
    line = json.dumps(chat_line("{}", "q")).encode()
    data = b"".join(line.replace(b'"{}"', f'"t{i}"'.encode()) + b"\n" for i in range(100_001))
    batch = run_batch(client, data)
    assert batch.status == "failed"
    assert batch.errors is not None and batch.errors.data is not None
    assert [(e.code, e.line) for e in batch.errors.data] == [("too_many_tasks", 100_001)]


def test_every_bad_line_is_reported(client: AzureOpenAI) -> None:
    data = jsonl([OK, NOPE, chat_line("fine"), _with(chat_line("g"), method="GET")])
    batch = run_batch(client, data)
    assert batch.errors is not None and batch.errors.data is not None
    assert [(e.code, e.line) for e in batch.errors.data] == [
        ("model_not_found", 2),
        ("invalid_request", 4),
    ]


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("/chat/completions", "/v1/chat/completions"),
        ("/v1/chat/completions", "/chat/completions"),
        ("/v1/responses", "/responses"),
    ],
)
def test_v1_and_plain_urls_are_the_same_endpoint(
    client: AzureOpenAI, endpoint: str, url: str
) -> None:
    line = _with(chat_line("same"), url=url)
    if "responses" in url:
        line["body"] = {"model": "gpt-4o-batch", "input": "Hi there"}
    batch = run_batch(client, jsonl([line]) + b"\n", endpoint=endpoint)
    assert batch.status == "completed", batch.errors


def test_a_validated_file_may_use_the_second_deployment(client: AzureOpenAI) -> None:
    batch = run_batch(client, jsonl([MINI]))
    assert batch.status == "completed"
    text = client.files.content(batch.output_file_id or "").text
    assert json.loads(text)["response"]["body"]["model"] == "gpt-4o-mini"
