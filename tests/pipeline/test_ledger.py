"""The ledger on Azurite's table service: what a run created, recorded so that a re-run finds it.

Its writes are conditional (create-only, then on the ETag read or written last), so two copies
of one activity cannot both start a create; a run's ledgers are found by one query of its own
partition, never by listing, and deleted last by its cleanup.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from batching.context import RunContext
from batching.service import ledger
from batching.service.ledger import Ledger, LedgerConflict, LedgerExists
from batching.settings import QUOTA_RETRY_ATTEMPTS_MAX, Settings


@pytest.fixture
def settings(azurite: Any) -> Settings:
    return Settings.from_env(
        {
            "AZURE_OPENAI_ENDPOINT": "http://127.0.0.1:9",
            "BATCH_STORAGE": azurite.connection_string,
            "RUNS_TABLE": f"ledger{os.urandom(4).hex()}",
        }
    )


def _ctx(settings: Settings, run_id: str = "run-1") -> RunContext:
    return RunContext.of(settings, run_id, {"container": "in", "path": "x.jsonl"})


def test_a_ledger_round_trips_its_upload_and_every_attempt(settings: Settings) -> None:
    record = Ledger.new(_ctx(settings), "run-1/c2/r1")
    record.set_upload(name="run-1-c2-r1.jsonl", started_at="t0", id=None)
    record.set_upload(id="file-1")
    for attempt in range(QUOTA_RETRY_ATTEMPTS_MAX + 1):
        record.set_batch(attempt, started_at=f"t{attempt}", id=None)
    record.set_batch(3, refused={"status": "quota", "message": "m" * ledger.MESSAGE_CHARS})
    again = Ledger.load(_ctx(settings), "run-1/c2/r1")
    assert again.key == "run-1/c2/r1" and again.etag == record.etag
    assert again.upload == {"name": "run-1-c2-r1.jsonl", "started_at": "t0", "id": "file-1"}
    assert sorted(again.batches) == list(range(QUOTA_RETRY_ATTEMPTS_MAX + 1))
    assert again.batch(3) == {
        "started_at": "t3",
        "id": None,
        "refused": {"status": "quota", "message": "m" * ledger.MESSAGE_CHARS},
    }
    assert Ledger.load(_ctx(settings), "run-1/c2/r2").batches == {}, "another round: empty"


def test_two_copies_of_an_activity_cannot_both_start_a_create(settings: Settings) -> None:
    first = Ledger.new(_ctx(settings), "run-1/c0/r0")
    first.set_batch(0, started_at="t0", id=None)
    with pytest.raises(LedgerExists):  # a copy that took it as new finds it there
        Ledger.new(_ctx(settings), "run-1/c0/r0").set_batch(0, started_at="t1", id=None)
    a, b = Ledger.load(_ctx(settings), "run-1/c0/r0"), Ledger.load(_ctx(settings), "run-1/c0/r0")
    a.set_batch(0, id="batch-a")
    with pytest.raises(LedgerConflict):  # b read the version a replaced
        b.set_batch(0, id="batch-b")
    assert Ledger.load(_ctx(settings), "run-1/c0/r0").batch(0) == {
        "started_at": "t0",
        "id": "batch-a",
    }
    ledger.forget(ledger.of_run(_ctx(settings)))
    with pytest.raises(LedgerConflict):  # deleted meanwhile: not written back
        a.set_batch(1, started_at="t2", id=None)


def test_a_run_finds_and_forgets_its_own_ledgers_only(settings: Settings) -> None:
    for key in ("run-1/c0/r0", "run-1/c1/r0", "run-1/c0/r1"):
        Ledger.new(_ctx(settings), key).set_upload(name=key, started_at="t", id=f"file-{key}")
    Ledger.new(_ctx(settings, "run-10"), "run-10/c0/r0").set_upload(name="x", started_at="t")
    mine = ledger.of_run(_ctx(settings))
    assert sorted(r.key for r in mine) == ["run-1/c0/r0", "run-1/c0/r1", "run-1/c1/r0"]
    ids, unknown = ledger.uploads(mine)
    assert sorted(ids) == ["file-run-1/c0/r0", "file-run-1/c0/r1", "file-run-1/c1/r0"]
    assert unknown == []
    ledger.forget(mine)
    ledger.forget(mine)  # a cleanup run twice
    assert ledger.of_run(_ctx(settings)) == []
    (other,) = ledger.of_run(_ctx(settings, "run-10"))
    assert ledger.uploads([other]) == ([], [("x", "t")])


@hypothesis_settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(message=st.text(max_size=ledger.MESSAGE_CHARS))
def test_any_refusal_message_the_service_sends_is_recorded_as_text(
    settings: Settings, message: str
) -> None:
    """A refusal's message comes from outside: whatever its characters (control characters,
    quotes, astral planes), bounded as submission bounds it, it is kept and read back as sent."""
    key = f"run-1/c{os.urandom(4).hex()}/r0"
    record = Ledger.new(_ctx(settings), key)
    record.set_batch(0, refused={"status": "error", "message": message})
    assert Ledger.load(_ctx(settings), key).batch(0) == {
        "refused": {"status": "error", "message": message}
    }
