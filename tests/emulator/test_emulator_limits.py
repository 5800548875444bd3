"""The emulator at the service's limits: 200 MB uploads, 100,000-line files, many batches."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest

from devstack import services
from tests.support.emulator import azure, chat_file, reset, run_batch, scenario

LIMIT = 200 * 1024 * 1024


@pytest.fixture(autouse=True)
def _clean(emulator: services.Emulator) -> Iterator[None]:
    yield from reset(emulator)


def _file_of(path: Path, size: int) -> Path:
    block = (b"x" * 1023 + b"\n") * 1024
    with path.open("wb") as f:
        for _ in range(size // len(block)):
            f.write(block)
        f.write(b"x" * (size % len(block)))
    return path


def test_200_mb_is_accepted_and_more_is_refused(
    emulator: services.Emulator, tmp_path: Path
) -> None:
    client = azure(emulator, max_retries=0, timeout=120)
    with _file_of(tmp_path / "max.jsonl", LIMIT).open("rb") as f:
        accepted = client.files.create(file=f, purpose="batch")
    assert accepted.bytes == LIMIT
    client.files.delete(accepted.id)

    over = _file_of(tmp_path / "over.jsonl", LIMIT + 1)
    with over.open("rb") as f, pytest.raises(openai.BadRequestError, match="too large") as caught:
        client.files.create(file=f, purpose="batch")
    assert "200 MB" in str(caught.value)


def test_100_000_line_batch(emulator: services.Emulator) -> None:
    client = azure(emulator, timeout=120)
    scenario(emulator, batch_duration=1.0)
    batch = run_batch(client, chat_file(100_000))
    assert batch.status == "completed"
    assert batch.request_counts is not None
    assert batch.request_counts.completed == 100_000
    content = client.files.content(batch.output_file_id or "").read()
    ids = {json.loads(line)["custom_id"] for line in content.splitlines()}
    assert len(ids) == 100_000
    for file_id in (batch.input_file_id, batch.output_file_id or "", batch.error_file_id or ""):
        client.files.delete(file_id)


def test_many_batches_at_once(emulator: services.Emulator) -> None:
    client = azure(emulator)
    scenario(emulator, batch_duration=1.0)

    def one(k: int) -> int:
        batch = run_batch(client, chat_file(1_000, prefix=f"f{k}"))
        assert batch.status == "completed"
        return len(client.files.content(batch.output_file_id or "").read().splitlines())

    with ThreadPoolExecutor(max_workers=20) as pool:
        assert list(pool.map(one, range(20))) == [1_000] * 20
