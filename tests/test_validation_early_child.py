"""A large input's token counter starts before the first line (batching.validation): the
report is the same as without the size hint, whichever encoding the deployment needs."""

from __future__ import annotations

import orjson
import pytest

from batching import validation
from batching.validation import ValidationOptions, validate

OPTIONS = ValidationOptions(max_requests_per_batch=1000, max_bytes_per_batch=10_000_000)


def _file(model: str, n: int = 300) -> list[bytes]:
    lines = [
        orjson.dumps(
            {
                "custom_id": f"r{i}",
                "method": "POST",
                "url": "/chat/completions",
                "body": {
                    "model": model,
                    "messages": [{"role": "user", "content": f"question {i} " * (40 + i % 7)}],
                },
            }
        )
        for i in range(n)
    ]
    return [b"\n".join(lines) + b"\n"]


@pytest.mark.parametrize("model", ["gpt-4o-batch", "gpt-4-turbo-batch"])  # o200k, cl100k
def test_an_early_child_changes_nothing_in_the_report(monkeypatch, model):
    monkeypatch.setattr(validation, "EARLY_CHILD_BYTES", 1)
    blocks = _file(model)
    plain = validate(blocks, OPTIONS).to_dict()
    early = validate(blocks, OPTIONS, size_hint=len(blocks[0])).to_dict()
    assert early == plain
    assert plain["tokens"]["prompt"] > 0


def test_an_early_child_is_stopped_when_no_line_is_valid(monkeypatch):
    monkeypatch.setattr(validation, "EARLY_CHILD_BYTES", 1)
    started = []
    real = validation.ChildCounter

    def counting(name):
        started.append(real(name))
        return started[-1]

    monkeypatch.setattr(validation, "ChildCounter", counting)
    report = validate([b"not json\n"], OPTIONS, size_hint=10)
    assert not report.valid and report.tokens is None
    assert len(started) == 1 and started[0]._child.returncode is not None
