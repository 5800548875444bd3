"""A large input's token counter starts before the first line (batching.validation.validator): the
report is the same as without the size hint, whichever encoding the deployment needs."""

from __future__ import annotations

import signal

import orjson
import pytest

from batching.tokens import child as tokencount
from batching.tokens.child import ChildCounter
from batching.validation.validator import ValidationOptions, validate

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
    monkeypatch.setattr(tokencount, "EARLY_CHILD_BYTES", 1)
    blocks = _file(model)
    plain = validate(blocks, OPTIONS).to_dict()
    early = validate(blocks, OPTIONS, size_hint=len(blocks[0])).to_dict()
    assert early == plain
    assert plain["tokens"]["prompt"] > 0


def test_an_early_child_is_stopped_when_no_line_is_valid():
    counter = ChildCounter("o200k_base")
    report = validate([b"not json\n"], OPTIONS, counter=counter)
    assert not report.valid and report.tokens is None
    assert counter._child.returncode is not None


def test_a_small_file_starts_no_early_child():
    assert tokencount.early_counter(tokencount.EARLY_CHILD_BYTES - 1) is None


def test_a_counter_of_the_deployments_encoding_counts_the_file_and_exits_by_itself():
    """Given the o200k counter for a gpt-4o file, validate hands it every sample: it reads
    them to the end and exits 0 (a counter left unused is killed instead)."""
    counter = ChildCounter("o200k_base")
    report = validate(_file("gpt-4o-batch", 20), OPTIONS, counter=counter)
    assert report.valid and report.tokens is not None
    assert counter._child.returncode == 0


def test_a_counter_of_another_encoding_is_not_used_but_killed():
    """gpt-4-turbo needs cl100k: an o200k counter must not count its samples, only be stopped
    (killed: it never saw the end of its input)."""
    counter = ChildCounter("o200k_base")
    report = validate(_file("gpt-4-turbo-batch", 20), OPTIONS, counter=counter)
    assert report.valid and report.tokens is not None
    assert counter._child.returncode == -signal.SIGKILL


def test_without_token_counting_a_given_counter_is_only_stopped():
    """count_tokens=False makes an approximate estimate, which takes no child: a counter given
    anyway is not handed to it (that would be refused) but killed, and the report is made."""
    counter = ChildCounter("o200k_base")
    report = validate(_file("gpt-4o-batch", 20), OPTIONS, counter=counter, count_tokens=False)
    assert report.valid and report.tokens is not None
    assert report.tokens.method == "approximate"
    assert counter._child.returncode == -signal.SIGKILL


def test_a_size_hint_at_the_threshold_starts_the_early_counter_that_then_counts(monkeypatch):
    """size_hint >= EARLY_CHILD_BYTES starts one counter (early_counter, spied on here) before
    the first line, and the file's samples go to it."""
    started: list[tuple[int, ChildCounter | None]] = []
    original = tokencount.early_counter

    def spy(size):
        counter = original(size)
        started.append((size, counter))
        return counter

    # the validator imports it when it needs it, from its module
    monkeypatch.setattr(tokencount, "early_counter", spy)
    validate(_file("gpt-4o-batch", 20), OPTIONS, size_hint=tokencount.EARLY_CHILD_BYTES)
    ((size, counter),) = started
    assert size == tokencount.EARLY_CHILD_BYTES
    assert counter is not None and counter._child.returncode == 0
