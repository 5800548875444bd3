"""The runs index in Azurite's Table service: newest first, pages, filters, idempotent writes."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from batching.ops import runindex
from batching.settings import Settings

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def settings(azurite) -> Settings:
    return Settings.from_env(
        {
            "AZURE_OPENAI_ENDPOINT": "http://127.0.0.1:9",
            "BATCH_STORAGE": azurite.connection_string,
            "RUNS_TABLE": f"runs{os.urandom(4).hex()}",
        }
    )


def _at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def _fill(settings: Settings, n: int) -> None:
    """Run i received at minute i, under `a/` when even and `b/` when odd; every third ended."""
    for i in range(n):
        folder = "a" if i % 2 == 0 else "b"
        source = {"container": "in", "path": f"{folder}/f{i:03d}.jsonl"}
        runindex.record(settings, f"run-{i:03d}", _at(i), source, "validating")
        if i % 3 == 0:
            runindex.record(
                settings,
                f"run-{i:03d}",
                _at(i),
                source,
                "done",
                "completed",
                requests={"total": 2, "succeeded": 2, "failed": 0},
                outputs={"input": {"container": "out", "path": "x"}},
            )


def _ids(rows: list[dict]) -> list[str]:
    return [str(r["RunId"]) for r in rows]


def test_pages_newest_first_to_the_end(settings):
    _fill(settings, 25)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        rows, cursor = runindex.query(settings, 10, cursor)
        seen += _ids(rows)
        pages += 1
        if cursor is None:
            break
    assert seen == [f"run-{i:03d}" for i in reversed(range(25))]
    assert pages == 3


def test_an_upsert_twice_changes_nothing_and_later_writes_merge(settings):
    _fill(settings, 3)
    _fill(settings, 3)
    rows, _ = runindex.query(settings, 10)
    assert _ids(rows) == ["run-002", "run-001", "run-000"]
    done = runindex.summary(rows[-1])
    assert done["status"] == "completed" and done["phase"] == "done"
    assert done["requests"]["succeeded"] == 2 and done["progress"] == 1.0
    assert done["outputs"] == {"input": {"container": "out", "path": "x"}}
    assert done["created"] == _at(0)
    runindex.record(
        settings, "run-000", _at(0), {"path": "a/f000.jsonl"}, "done", "completed",
        outputs={"metadata": {"container": "out", "path": "m"}},
    )  # fmt: skip
    rows, _ = runindex.query(settings, 10)
    assert set(runindex.summary(rows[-1])["outputs"]) == {"input", "metadata"}


def test_a_write_without_a_phase_keeps_the_runs_end(settings):
    """metadata.json's figures may be written after cleanup wrote the run's end (the two run
    alongside): the figures land, the end stays."""
    source = {"path": "a/f.jsonl"}
    runindex.record(settings, "run-x", _at(0), source, "done", "completed")
    runindex.record(
        settings, "run-x", _at(0), source, None,
        requests={"total": 3, "succeeded": 3, "failed": 0, "pending": 0},
    )  # fmt: skip
    rows, _ = runindex.query(settings, 10, status="completed")
    (row,) = [runindex.summary(r) for r in rows]
    assert (row["phase"], row["status"]) == ("done", "completed")
    assert row["requests"]["succeeded"] == 3 and row["progress"] == 1.0


def test_filters_by_status_prefix_and_time(settings):
    _fill(settings, 12)
    rows, cursor = runindex.query(settings, 50, status="completed")
    assert _ids(rows) == ["run-009", "run-006", "run-003", "run-000"] and cursor is None
    rows, _ = runindex.query(settings, 50, prefix="b/")
    assert _ids(rows) == [f"run-{i:03d}" for i in (11, 9, 7, 5, 3, 1)]
    rows, _ = runindex.query(settings, 50, status="running", prefix="a/f01")
    assert _ids(rows) == ["run-010"]
    rows, _ = runindex.query(settings, 50, since=_at(4), until=_at(7))
    assert _ids(rows) == ["run-006", "run-005", "run-004"]
    rows, cursor = runindex.query(settings, 2, prefix="b/", since=_at(3))
    assert _ids(rows) == ["run-011", "run-009"] and cursor is not None
    rows, cursor = runindex.query(settings, 2, cursor, prefix="b/", since=_at(3))
    assert _ids(rows) == ["run-007", "run-005"] and cursor is not None
    rows, cursor = runindex.query(settings, 2, cursor, prefix="b/", since=_at(3))
    assert _ids(rows) == ["run-003"] and cursor is None


def test_row_keys_sort_newest_first_across_digits():
    older = runindex.row_key("2026-01-01T00:00:00+00:00", "z")
    newer = runindex.row_key("2026-01-01T00:00:00.001+00:00", "a")
    assert newer < older
    assert len(older.split("_")[0]) == 13
